"""A local web page to brush a mask over a photo and fill it with a trained model.

  pip install -e '.[demo]'
  python -m ce_jax.demo --workdir=runs/default

prints the page's address (http://127.0.0.1:7860 unless `--port`). Upload a
photo or pick a bundled one, brush over what to fill (the eraser takes strokes
back; one slider sizes both) and press **Fill**: the page shows the masked
input | the model's completion | OpenCV's Telea inpainting (JPEG copies), and
offers the completion as a PNG. The fill is `ce_jax.inpaint.Inpainter`'s, so
every pixel of the PNG outside the strokes is the photo's own, bit for bit, and
each stroke is filled from a square of the photo around it (`--fill`,
`--context_factor`: as for `ce_jax.inpaint`). The
brush is a canvas in the page, and Fill sends only its strokes, so a fill costs
little more than the model's work. The model is restored and compiled once, at
start-up. Nothing leaves the machine: no analytics, no share
link, the page is served on localhost only (`--host` to change).
"""

import base64
import binascii
import dataclasses
import io
import os
import tempfile
import time
from concurrent import futures

import cv2
import ml_collections
import numpy as np
from absl import app, flags
from PIL import Image, ImageDraw, ImageOps

from ce_jax import baselines, cli, completion, inpaint, input_pipeline, models, trained
from ce_jax.errors import UserError

os.environ['GRADIO_ANALYTICS_ENABLED'] = 'False'  # Read when Gradio is imported (lazily).

MAX_PIXELS = 4_000_000  # Larger photos are downscaled to this many pixels, with a note.
REFUSE_PIXELS = 50_000_000  # Larger ones are refused before they are decoded.
# The page brushes on a copy at most this wide and high, and sends only the strokes (a PNG
# of that size, mostly transparent) on Fill. They are scaled back to the photo; its pixels
# stay its own.
EDITOR_SIDE = 1024
JPEG_QUALITY = 90  # of the copies shown on the page; the download is a lossless PNG
# The bundled photos offered on the page: the held-out ones, then two training photos.
BUNDLED = input_pipeline.EMBEDDED_EVAL + (
    ('skimage', 'data/chelsea.png'), ('matplotlib', 'mpl-data/sample_data/grace_hopper.jpg'))
BRUSH_COLOUR = '#ff00ff'  # Magenta at 60 % opacity, rarely confused with a photo.
BOX_COLOUR = (255, 215, 0)  # The square a center-output model fills, outlined in gold.


@dataclasses.dataclass(frozen=True)
class Photo:
  """An uploaded photo as the model will see it."""

  image: np.ndarray  # [H, W, 3] uint8, downscaled to at most MAX_PIXELS
  name: str  # the file's stem
  note: str  # '' or what was done to it (downscaled)


@dataclasses.dataclass(frozen=True)
class Fill:
  """One fill: `[H, W, 3]` uint8 images of the photo's size."""

  masked: np.ndarray  # the hole set to the mean pixel (the generator's input)
  completion: np.ndarray  # the model's; pixels outside the hole are the photo's
  telea: np.ndarray  # OpenCV Telea's
  plan: completion.FillPlan  # where the model ran for each stroke


# ----------------------------------------------------------------------------
# Pure parts: photo, mask, fill
# ----------------------------------------------------------------------------


def read_photo(path: str) -> Photo:
  """Decodes an uploaded file; raises `UserError` for a non-image or a huge one."""
  name = os.path.basename(path)
  try:
    with Image.open(path) as im:
      w, h = im.size
      if w * h > REFUSE_PIXELS:
        raise UserError(f"'{name}' is {w}×{h} pixels ({w * h / 1e6:.0f} megapixels); photos "
                        f'above {REFUSE_PIXELS // 1_000_000} megapixels are refused. '
                        'Shrink it first.')
      im.load()
      rgb = ImageOps.exif_transpose(im).convert('RGB')
  except UserError:
    raise
  except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
    raise UserError(f"'{name}' cannot be read as an image ({e}): upload a JPEG, PNG, BMP or "
                    'WebP photo.') from e
  note = ''
  w, h = rgb.size
  if w * h > MAX_PIXELS:
    scale = (MAX_PIXELS / (w * h)) ** 0.5
    size = max(1, int(w * scale)), max(1, int(h * scale))
    rgb = rgb.resize(size, Image.LANCZOS)
    note = (f'The photo was {w}×{h}; it is filled at {size[0]}×{size[1]} '
            f'(at most {MAX_PIXELS / 1e6:g} megapixels).')
  return Photo(np.asarray(rgb), os.path.splitext(name)[0], note)


def hole_from_layer(layer: np.ndarray | None, shape: tuple[int, int]) -> np.ndarray:
  """The brushed hole `[H, W]` bool of the editor's stroke layer `[h, w, 4]` uint8.

  Any stroke pixel that is not fully transparent is part of the hole; a layer
  of another size is resized to `shape` (nearest neighbour).
  """
  if layer is None:
    return np.zeros(shape, bool)
  alpha = np.asarray(layer)[..., 3] if np.ndim(layer) == 3 else np.asarray(layer)
  alpha = (alpha > 0).astype(np.uint8) * 255
  if alpha.shape != shape:
    alpha = np.asarray(Image.fromarray(alpha).resize((shape[1], shape[0]), Image.NEAREST))
  return alpha > 0


def hole_from_strokes(data_url: str, shape: tuple[int, int]) -> np.ndarray:
  """The brushed hole `[H, W]` bool of the page's strokes: '' (none) or a PNG data URL of
  the stroke canvas, `[h, w]` RGBA, transparent where nothing is brushed (`hole_from_layer`).
  """
  if not data_url:
    return np.zeros(shape, bool)
  head, _, data = data_url.partition(',')
  try:
    if head != 'data:image/png;base64':
      raise ValueError(f'it starts {head[:30]!r}')
    with Image.open(io.BytesIO(base64.b64decode(data, validate=True))) as im:
      layer = np.asarray(im.convert('RGBA'))
  except (ValueError, binascii.Error, OSError, Image.DecompressionBombError) as e:
    raise UserError(f'The strokes sent with Fill are not a PNG data URL ({e}).') from e
  return hole_from_layer(layer, shape)


def editor_size(shape: tuple[int, int]) -> tuple[int, int]:
  """(height, width) of the copy of a photo of `shape` (H, W) that the page brushes on."""
  h, w = shape
  scale = min(1.0, EDITOR_SIDE / max(h, w))
  return max(1, round(h * scale)), max(1, round(w * scale))


def editor_background(inpainter: inpaint.Inpainter, image: np.ndarray) -> np.ndarray:
  """The copy of `image` `[H, W, 3]` uint8 to brush on: at most `EDITOR_SIDE` pixels wide and
  high, with the square a center-output model fills outlined."""
  h, w = image.shape[:2]
  scale = min(1.0, EDITOR_SIDE / max(h, w))
  size = editor_size((h, w))[::-1]
  shown = Image.fromarray(image)
  if size != (w, h):
    shown = shown.resize(size, Image.BILINEAR)
  box = inpainter.center_box(image.shape[:2])
  if box is not None:
    y0, y1, x0, x1 = (round(v * scale) for v in box)
    width = max(1, min(size) // 200)
    ImageDraw.Draw(shown).rectangle((x0 - width, y0 - width, x1 + width - 1, y1 + width - 1),
                                    outline=BOX_COLOUR, width=width)
  return np.asarray(shown)


def fill(inpainter: inpaint.Inpainter, image: np.ndarray, hole: np.ndarray) -> Fill:
  """Fills `hole` `[H, W]` bool of `image` `[H, W, 3]` uint8 with the model and with Telea.

  Raises `UserError` for an empty hole, one covering the whole photo, or one too large
  for a square around it that reaches outside a center-output model's square.
  """
  if not hole.any():
    raise UserError('The mask is empty: brush over the part of the photo to fill, then press '
                    'Fill.')
  if hole.all():
    raise UserError('The strokes cover the whole photo: leave some of it unbrushed to fill '
                    'from.')
  plan = inpainter.plan(hole)
  whole = inpainter.whole_hole(plan)
  if whole is not None and inpainter.outside_center(whole):
    y0, y1, x0, x1 = inpainter.center_box(image.shape[:2])
    raise UserError(
        f'A stroke too large to fill from the photo around it reaches outside the outlined '
        f'square (rows {y0}–{y1}, columns {x0}–{x1}): this center-output model fills such a '
        'stroke only inside that square. Erase it outside, or use a full-output model '
        "(model.output='full', e.g. configs/freeform.py), which fills anywhere.")
  mean = np.round(np.asarray(inpainter.config.data.mean_pixel)).astype(np.uint8)
  return Fill(masked=np.where(hole[..., None], mean, image),
              completion=inpainter(image, hole, plan=plan),
              telea=baselines.telea(image, hole), plan=plan)


def encode(image: np.ndarray, ext: str) -> bytes:
  """`[H, W, 3]` uint8 RGB as a quickly compressed PNG (`ext` '.png', lossless) or a JPEG
  ('.jpg', `JPEG_QUALITY`)."""
  params = ([cv2.IMWRITE_PNG_COMPRESSION, 1] if ext == '.png' else
            [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
  ok, data = cv2.imencode(ext, cv2.cvtColor(image, cv2.COLOR_RGB2BGR), params)
  if not ok:
    raise OSError(f'could not encode a {image.shape} image as {ext}')
  return data.tobytes()


def save(image: np.ndarray, path: str) -> str:
  """Writes `[H, W, 3]` uint8 RGB as `encode` does for `path`'s extension; returns `path`."""
  with open(path, 'wb') as f:
    f.write(encode(image, os.path.splitext(path)[1]))
  return path


def data_url(image: np.ndarray) -> str:
  """`[H, W, 3]` uint8 RGB as a JPEG data URL, for the page to show."""
  return 'data:image/jpeg;base64,' + base64.b64encode(encode(image, '.jpg')).decode('ascii')


def respond(inpainter: inpaint.Inpainter, photo: Photo,
            strokes: str) -> tuple[str, str, str, str, str]:
  """What Fill does: the page's strokes (`hole_from_strokes`) → (masked, completion, Telea)
  JPEGs to show, the completion as a PNG, all in a new temporary folder, and a status
  line. Raises `UserError`."""
  start = time.perf_counter()
  hole = hole_from_strokes(strokes, photo.image.shape[:2])
  result = fill(inpainter, photo.image, hole)
  folder = tempfile.mkdtemp(prefix='ce_jax_demo_')
  images = {'masked.jpg': result.masked, 'completion.jpg': result.completion,
            'telea.jpg': result.telea, f'{photo.name}_filled.png': result.completion}
  with futures.ThreadPoolExecutor(len(images)) as pool:  # OpenCV encodes without the GIL.
    paths = tuple(pool.map(lambda kv: save(kv[1], os.path.join(folder, kv[0])),
                           images.items()))
  around = sum(len(c.holes) for c in result.plan.crops if c.path == 'crop')
  whole = len(result.plan.boxes) - around
  how = ', '.join([f'{around} stroke(s) from the photo around each'] * bool(around) +
                  [f'{whole} from the whole photo'] * bool(whole))
  status = (f'Filled {int(hole.sum())} pixels ({hole.mean():.1%} of the photo; {how}) in '
            f'{time.perf_counter() - start:.2f} s.' + (f' {photo.note}' if photo.note else ''))
  return (*paths, status)


def bundled_photos() -> list[str]:
  """Paths of the `BUNDLED` photos that are installed."""
  paths = []
  for package, file in BUNDLED:
    try:
      paths.append(input_pipeline.embedded_path(package, file))
    except UserError:
      pass
  return paths


# ----------------------------------------------------------------------------
# Page
# ----------------------------------------------------------------------------


# The brush: a canvas over the photo's copy, in the page itself. Fill sends only its strokes.
SKETCH_HTML = """<div class="tools">
<button type="button" data-tool="brush" class="active">Brush</button>
<button type="button" data-tool="eraser">Eraser</button>
<label>Size <input type="range" class="size" min="1" max="30" value="6"
  aria-label="Brush size (percent of the longer side)"></label>
<button type="button" data-tool="clear">Clear strokes</button></div>
${value ? `<div class="board"><img src="${value}" alt="The photo to brush on" draggable="false">`
          + `<canvas aria-label="Brush here"></canvas></div>`
        : '<p class="empty">Upload a photo or pick a bundled one.</p>'}"""
SKETCH_CSS = f"""
.tools {{ display: flex; gap: 8px; align-items: center; margin-bottom: 6px; }}
.tools button {{ padding: 2px 10px; border: 1px solid #999; border-radius: 4px; }}
.tools button.active {{ background: {BRUSH_COLOUR}; color: white; }}
.board {{ position: relative; display: inline-block; line-height: 0; }}
.board img {{ display: block; max-width: 100%; max-height: 70vh; margin: 0; }}
.board canvas {{ position: absolute; inset: 0; width: 100%; height: 100%; opacity: 0.6;
  cursor: crosshair; touch-action: none; }}
.empty {{ padding: 40px; text-align: center; }}
"""
SKETCH_JS = f"""
let tool = 'brush', last = null;
const canvas = () => element.querySelector('canvas');
function fit() {{  // the canvas: the photo's copy's own pixels, blank
  const img = element.querySelector('img'), c = canvas();
  if (img && c && img.naturalWidth) {{ c.width = img.naturalWidth; c.height = img.naturalHeight; }}
}}
function mark() {{  // the chosen tool's button
  element.querySelectorAll('[data-tool]').forEach(
      b => b.classList.toggle('active', b.dataset.tool === tool));
}}
function setup() {{  // a new photo (the template was rendered again)
  mark();
  const img = element.querySelector('img');
  if (img) {{ fit(); img.addEventListener('load', fit, {{once: true}}); }}
}}
function at(e) {{
  const c = canvas(), r = c.getBoundingClientRect();
  return [(e.clientX - r.left) * c.width / r.width, (e.clientY - r.top) * c.height / r.height];
}}
function paint(from, to) {{
  const c = canvas(), g = c.getContext('2d');
  const width = element.querySelector('.size').value / 100 * Math.max(c.width, c.height);
  g.globalCompositeOperation = tool === 'eraser' ? 'destination-out' : 'source-over';
  g.strokeStyle = g.fillStyle = '{BRUSH_COLOUR}';
  g.lineWidth = width;
  g.lineCap = g.lineJoin = 'round';
  g.beginPath(); g.moveTo(...from); g.lineTo(...to); g.stroke();
  g.beginPath(); g.arc(...to, width / 2, 0, 2 * Math.PI); g.fill();
}}
element.addEventListener('click', e => {{
  const b = e.target.closest('[data-tool]');
  if (!b) return;
  if (b.dataset.tool === 'clear') {{ fit(); return; }}
  tool = b.dataset.tool;
  mark();
}});
element.addEventListener('pointerdown', e => {{
  if (e.target !== canvas()) return;
  e.preventDefault();
  e.target.setPointerCapture(e.pointerId);
  last = at(e);
  paint(last, last);
}});
element.addEventListener('pointermove', e => {{
  if (last === null) return;
  const p = at(e);
  paint(last, p);
  last = p;
}});
for (const t of ['pointerup', 'pointercancel']) {{
  element.addEventListener(t, () => {{ last = null; }});
}}
watch('value', setup);
setup();
"""
# What Fill sends instead of the sketch: its strokes as a PNG data URL ('' with no photo).
STROKES_JS = """(strokes, photo) => {
  const c = document.querySelector('#sketch canvas');
  return [c ? c.toDataURL('image/png') : '', photo];
}"""


def build(inpainter: inpaint.Inpainter, examples: list[str], description: str):
  """The page, a `gradio.Blocks` (not yet launched)."""
  import gradio as gr  # noqa: PLC0415 (optional dependency: the demo extra)

  center = inpainter.config.model.output == 'center'
  how = ('This center-output model fills a stroke anywhere from the photo around it; a stroke '
         'too large for that only inside the outlined square.' if center
         else 'This full-output model fills any region: brush over anything.')

  def load(path):
    if path is None:
      return None, '', ''
    try:
      photo = read_photo(path)
    except UserError as e:
      return None, '', f'**Error:** {e}'
    h, w = photo.image.shape[:2]
    status = f'{w}×{h}. {how}' + (f' {photo.note}' if photo.note else '')
    return photo, data_url(editor_background(inpainter, photo.image)), status

  def on_fill(strokes, photo):
    blank = (None, None, None, gr.DownloadButton(value=None, interactive=False))
    if photo is None:
      return (*blank, '**Error:** upload a photo or pick one of the bundled photos first.')
    try:
      *shown, png, status = respond(inpainter, photo, strokes or '')
    except UserError as e:
      return (*blank, f'**Error:** {e}')
    return (*shown, gr.DownloadButton(value=png, interactive=True), status)

  with gr.Blocks(title='ce_jax inpainting') as page:
    gr.Markdown(f'## {models.family_name(inpainter.config)} inpainting\n{description}\n\n'
                'Upload a photo or pick a bundled one, brush over what to fill (the eraser '
                'takes strokes back; the slider sets the size of both), then press **Fill**.')
    photo = gr.State(None)
    strokes = gr.Textbox(visible=False)
    with gr.Row():
      upload = gr.File(label='Photo (JPEG, PNG, BMP, WebP)', type='filepath',
                       elem_id='upload', scale=1)
      with gr.Column(scale=3):
        sketch = gr.HTML('', html_template=SKETCH_HTML, css_template=SKETCH_CSS,
                         js_on_load=SKETCH_JS, elem_id='sketch', label='Brush the mask')
        button = gr.Button('Fill', variant='primary', elem_id='fill')
    status = gr.Markdown(elem_id='status')
    gr.Examples(examples=[[p] for p in examples], inputs=[upload], label='Bundled photos')
    with gr.Row():  # JPEG copies to look at; the download button gives the lossless PNG.
      masked, completion, telea = (
          gr.Image(label=label, type='filepath', format='jpeg', interactive=False,
                   elem_id=name, buttons=['fullscreen'])
          for name, label in (('masked', 'Masked'), ('completion', 'Completion'),
                              ('telea', 'OpenCV Telea')))
    download = gr.DownloadButton('Download the completion (PNG)', interactive=False,
                                 elem_id='download')
    upload.change(load, [upload], [photo, sketch, status])
    button.click(on_fill, [strokes, photo], [masked, completion, telea, download, status],
                 js=STROKES_JS)
  return page


def load_inpainter(config: ml_collections.ConfigDict | None, workdir: str | None,
                   checkpoint: str, fill: str = 'crop',
                   context_factor: float = completion.CONTEXT_FACTOR
                   ) -> tuple[inpaint.Inpainter, str]:
  """(an `Inpainter` of the run or export, compiled by one fill; its description).

  `config` None: the run's (or export's) saved config. `fill`, `context_factor`:
  `completion.plan_fills`'.
  """
  generator = trained.load(config, workdir, checkpoint)
  config = generator.config
  inpainter = inpaint.Inpainter(config, generator.variables, fill, context_factor)
  size = inpainter.size
  hole = np.zeros((size, size), bool)
  hole[size // 2 - 1:size // 2 + 1, size // 2 - 1:size // 2 + 1] = True
  inpainter(np.zeros((size, size, 3), np.uint8), hole)  # Compiles the generator now.
  kind = 'center-output' if config.model.output == 'center' else 'full-output'
  weights = ' (EMA weights)' if config.train.ema_decay > 0 else ''
  return inpainter, (f'`{workdir or generator.home}`, step {generator.step}{weights}: '
                     f'a {size}×{size} {kind} model.')


# ----------------------------------------------------------------------------
# Command line
# ----------------------------------------------------------------------------

FLAGS = flags.FLAGS


def define_flags() -> None:
  """Command-line flags (defined only when run as a program)."""
  cli.define_checkpoint_flags()
  flags.DEFINE_string('host', '127.0.0.1', 'Address to serve the page on.')
  flags.DEFINE_integer('port', 7860, 'Port to serve the page on.')
  inpaint.define_fill_flags()


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {" ".join(argv[1:])}')
  config = cli.load_config(required=False)
  try:
    import gradio  # noqa: F401, PLC0415
  except ImportError:
    cli.fail("the demo needs Gradio: pip install -e '.[demo]'")
  inpainter, description = cli.call(
      lambda: load_inpainter(config, FLAGS.workdir, FLAGS.checkpoint, FLAGS.fill,
                             FLAGS.context_factor))
  page = build(inpainter, bundled_photos(), description)
  page.queue(default_concurrency_limit=1)
  _, url, _ = page.launch(server_name=FLAGS.host, server_port=FLAGS.port, share=False,
                          quiet=True, prevent_thread_lock=True, max_file_size='100mb')
  print(f'ce_jax demo: {url}', flush=True)
  page.block_thread()


if __name__ == '__main__':
  define_flags()
  cli.run(main)
