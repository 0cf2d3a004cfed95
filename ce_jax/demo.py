"""A local web page to brush a mask over a photo and fill it with a trained model.

  pip install -e '.[demo]'
  python -m ce_jax.demo --workdir=runs/default

prints the page's address (http://127.0.0.1:7860 unless `--port`). Upload a
photo or pick a bundled one, brush over what to fill (the eraser takes strokes
back; both tools have a size slider) and press **Fill**: the page shows the
masked input | the model's completion | OpenCV's Telea inpainting, and offers the
completion as a PNG. The fill is `ce_jax.inpaint.Inpainter`'s, so every pixel
outside the strokes is the photo's own, bit for bit. The model is restored and
compiled once, at start-up. Nothing leaves the machine: no analytics, no share
link, the page is served on localhost only (`--host` to change).
"""

import dataclasses
import os
import tempfile
import time
from concurrent import futures

import cv2
import ml_collections
import numpy as np
from absl import app, flags
from PIL import Image, ImageDraw, ImageOps

from ce_jax import baselines, cli, inpaint, input_pipeline, trained
from ce_jax.errors import UserError

os.environ['GRADIO_ANALYTICS_ENABLED'] = 'False'  # Read when Gradio is imported (lazily).

MAX_PIXELS = 4_000_000  # Larger photos are downscaled to this many pixels, with a note.
REFUSE_PIXELS = 50_000_000  # Larger ones are refused before they are decoded.
# The editor brushes on a copy at most this wide and high: the browser exports and uploads
# its layers on every Fill. Strokes are scaled back to the photo; its pixels stay its own.
EDITOR_SIDE = 1024
# The bundled photos offered on the page: the held-out ones, then two training photos.
BUNDLED = input_pipeline.EMBEDDED_EVAL + (
    ('skimage', 'data/chelsea.png'), ('matplotlib', 'mpl-data/sample_data/grace_hopper.jpg'))
BRUSH_COLOUR = ('#ff00ff', 0.6)  # Half-transparent magenta, rarely confused with a photo.
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


def editor_background(inpainter: inpaint.Inpainter, image: np.ndarray) -> np.ndarray:
  """The copy of `image` `[H, W, 3]` uint8 to brush on: at most `EDITOR_SIDE` pixels wide and
  high, with the square a center-output model fills outlined."""
  h, w = image.shape[:2]
  scale = min(1.0, EDITOR_SIDE / max(h, w))
  size = max(1, round(w * scale)), max(1, round(h * scale))
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

  Raises `UserError` for an empty hole, or one outside a center-output model's square.
  """
  if not hole.any():
    raise UserError('The mask is empty: brush over the part of the photo to fill, then press '
                    'Fill.')
  small = inpainter.to_model(hole)
  if inpainter.outside_center(small):
    y0, y1, x0, x1 = inpainter.center_box(image.shape[:2])
    raise UserError(
        f'Some strokes reach outside the outlined square (rows {y0}–{y1}, columns {x0}–{x1}): '
        'this center-output model fills only that square. Erase the strokes outside it, or '
        "use a full-output model (model.output='full', e.g. configs/freeform.py), which fills "
        'anywhere.')
  mean = np.round(np.asarray(inpainter.config.data.mean_pixel)).astype(np.uint8)
  return Fill(masked=np.where(hole[..., None], mean, image),
              completion=inpainter(image, hole, small),
              telea=baselines.telea(image, hole))


def save_png(image: np.ndarray, path: str) -> str:
  """Writes `[H, W, 3]` uint8 RGB as a quickly compressed PNG; returns `path`."""
  ok, data = cv2.imencode('.png', cv2.cvtColor(image, cv2.COLOR_RGB2BGR),
                          [cv2.IMWRITE_PNG_COMPRESSION, 1])
  if not ok:
    raise OSError(f'could not encode {path} as PNG')
  with open(path, 'wb') as f:
    f.write(data.tobytes())
  return path


def respond(inpainter: inpaint.Inpainter, photo: Photo,
            layers: list[np.ndarray]) -> tuple[str, str, str, str]:
  """What Fill does: the editor's stroke layers `[h, w, 4]` uint8 → (masked, completion,
  Telea) PNG files in a new temporary folder, and a status line. Raises `UserError`."""
  start = time.perf_counter()
  shape = photo.image.shape[:2]
  hole = np.zeros(shape, bool)
  for layer in layers:
    hole |= hole_from_layer(layer, shape)
  result = fill(inpainter, photo.image, hole)
  folder = tempfile.mkdtemp(prefix='ce_jax_demo_')
  images = {'masked.png': result.masked, f'{photo.name}_filled.png': result.completion,
            'telea.png': result.telea}
  with futures.ThreadPoolExecutor(len(images)) as pool:  # OpenCV encodes without the GIL.
    paths = tuple(pool.map(lambda kv: save_png(kv[1], os.path.join(folder, kv[0])),
                           images.items()))
  status = (f'Filled {int(hole.sum())} pixels ({hole.mean():.1%} of the photo) in '
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


def build(inpainter: inpaint.Inpainter, examples: list[str], description: str):
  """The page, a `gradio.Blocks` (not yet launched)."""
  import gradio as gr  # noqa: PLC0415 (optional dependency: the demo extra)

  center = inpainter.config.model.output == 'center'
  how = ('This center-output model fills only the outlined square: brush inside it.' if center
         else 'This full-output model fills any region: brush over anything.')

  def load(path):
    if path is None:
      return None, None, ''
    try:
      photo = read_photo(path)
    except UserError as e:
      return None, None, f'**Error:** {e}'
    shown = editor_background(inpainter, photo.image)
    h, w = photo.image.shape[:2]
    status = f'{w}×{h}. {how}' + (f' {photo.note}' if photo.note else '')
    return photo, {'background': shown, 'layers': [], 'composite': None}, status

  def on_fill(editor, photo):
    blank = (None, None, None, gr.DownloadButton(value=None, interactive=False))
    if photo is None:
      return (*blank, '**Error:** upload a photo or pick one of the bundled photos first.')
    try:
      masked, completion, telea, status = respond(inpainter, photo,
                                                  (editor or {}).get('layers') or [])
    except UserError as e:
      return (*blank, f'**Error:** {e}')
    return (masked, completion, telea, gr.DownloadButton(value=completion, interactive=True),
            status)

  with gr.Blocks(title='ce_jax inpainting') as page:
    gr.Markdown(f'## Context Encoder inpainting\n{description}\n\n'
                'Upload a photo or pick a bundled one, brush over what to fill (the eraser '
                'takes strokes back; click a tool again for its size), then press **Fill**.')
    photo = gr.State(None)
    with gr.Row():
      upload = gr.File(label='Photo (JPEG, PNG, BMP, WebP)', type='filepath',
                       elem_id='upload', scale=1)
      with gr.Column(scale=3):
        editor = gr.ImageEditor(
            label='Brush the mask', sources=(), type='numpy', image_mode='RGBA',
            format='png', layers=False, transforms=(), elem_id='editor',
            brush=gr.Brush(colors=[BRUSH_COLOUR], color_mode='fixed'),
            eraser=gr.Eraser(), buttons=[])
        button = gr.Button('Fill', variant='primary', elem_id='fill')
    status = gr.Markdown(elem_id='status')
    gr.Examples(examples=[[p] for p in examples], inputs=[upload], label='Bundled photos')
    with gr.Row():
      masked = gr.Image(label='Masked', type='filepath', interactive=False,
                        elem_id='masked', buttons=['download', 'fullscreen'])
      completion = gr.Image(label='Completion', type='filepath', interactive=False,
                            elem_id='completion', buttons=['download', 'fullscreen'])
      telea = gr.Image(label='OpenCV Telea', type='filepath', interactive=False,
                       elem_id='telea', buttons=['download', 'fullscreen'])
    download = gr.DownloadButton('Download the completion (PNG)', interactive=False,
                                 elem_id='download')
    upload.change(load, [upload], [photo, editor, status])
    button.click(on_fill, [editor, photo], [masked, completion, telea, download, status])
  return page


def load_inpainter(config: ml_collections.ConfigDict | None, workdir: str | None,
                   checkpoint: str) -> tuple[inpaint.Inpainter, str]:
  """(an `Inpainter` of the run or export, compiled by one fill; its description).

  `config` None: the run's (or export's) saved config.
  """
  generator = trained.load(config, workdir, checkpoint)
  config = generator.config
  inpainter = inpaint.Inpainter(config, generator.variables)
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


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {" ".join(argv[1:])}')
  config = cli.load_config(required=False)
  try:
    import gradio  # noqa: F401, PLC0415
  except ImportError:
    cli.fail("the demo needs Gradio: pip install -e '.[demo]'")
  inpainter, description = cli.call(
      lambda: load_inpainter(config, FLAGS.workdir, FLAGS.checkpoint))
  page = build(inpainter, bundled_photos(), description)
  page.queue(default_concurrency_limit=1)
  _, url, _ = page.launch(server_name=FLAGS.host, server_port=FLAGS.port, share=False,
                          quiet=True, prevent_thread_lock=True, max_file_size='100mb')
  print(f'ce_jax demo: {url}', flush=True)
  page.block_thread()


if __name__ == '__main__':
  define_flags()
  cli.run(main)
