"""Seconds the demo page takes to answer Fill on a photo of `--megapixels`, after the first.

  python benchmarks/demo_latency.py --workdir=runs/default
  python benchmarks/demo_latency.py --workdir=runs/default --browser

Restores and compiles the model as `python -m ce_jax.demo` does, then times
`demo.respond` (what Fill runs on the server: the hole from the page's strokes,
the model's fill, OpenCV Telea, three JPEGs and a PNG written) on the astronaut
photo resized to `--megapixels`, with a brush stroke across the middle (inside
the square a center-output model fills). With `--browser` it also serves the
page and times, in headless Chromium, the click on Fill until the page shows
the completion, and each stage of that round trip (`STAGES`: wall-clock marks
from the page's requests, the start and end of `demo.respond` in this process,
and the page's state; `--screenshot=docs/demo.png` then saves the page after
the last fill). Median, min and max of `--repeats` fills after one warm-up fill.
"""

import base64
import io
import os
import statistics
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
if ROOT not in sys.path:
  sys.path.insert(0, ROOT)

import numpy as np  # noqa: E402
import skimage.data  # noqa: E402
from absl import app, flags  # noqa: E402
from PIL import Image, ImageDraw  # noqa: E402

from ce_jax import cli, demo  # noqa: E402

CHROMIUM = '/usr/bin/chromium'
STATUS = '#status [data-testid=markdown]'  # the status line's text, without progress
CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic',
                 '--no-first-run', '--disable-background-networking',
                 '--disable-component-update', '--disable-sync']
FLAGS = flags.FLAGS


def sample_photo(megapixels: float) -> np.ndarray:
  """The astronaut photo resized to `megapixels` (4:3), `[H, W, 3]` uint8."""
  h = int(round((megapixels * 1e6 * 3 / 4) ** 0.5))
  w = int(round(h * 4 / 3))
  return np.asarray(Image.fromarray(skimage.data.astronaut()).resize((w, h), Image.LANCZOS))


def strokes(shape: tuple[int, int]) -> str:
  """A brush stroke across the middle, as the page sends it: a PNG data URL of the stroke
  canvas at the editor's size."""
  h, w = demo.editor_size(shape)
  layer = Image.new('RGBA', (w, h), (0, 0, 0, 0))
  ImageDraw.Draw(layer).line([(w * 0.4, h * 0.45), (w * 0.5, h * 0.55), (w * 0.6, h * 0.47)],
                             fill=(255, 0, 255, 255), width=max(1, h // 25))
  buffer = io.BytesIO()
  layer.save(buffer, 'PNG')
  return 'data:image/png;base64,' + base64.b64encode(buffer.getvalue()).decode('ascii')


def summary(times: list[float]) -> str:
  return (f'median {statistics.median(times):.3f} s, min {min(times):.3f} s, '
          f'max {max(times):.3f} s over {len(times)} fills')


def time_server(inpainter, photo: demo.Photo, repeats: int) -> list[float]:
  sent = strokes(photo.image.shape[:2])
  demo.respond(inpainter, photo, sent)  # warm-up
  times = []
  for _ in range(repeats):
    t0 = time.perf_counter()
    demo.respond(inpainter, photo, sent)
    times.append(time.perf_counter() - t0)
  return times


# The parts of one fill in the browser, each from the end of the one before.
STAGES = (('sent', 'click → request sent (the page reads its strokes, starts the request)'),
          ('start', 'request sent → demo.respond starts (queue, inputs decoded)'),
          ('end', 'demo.respond (the fill, three JPEGs and a PNG written)'),
          ('status', 'demo.respond ends → status shown (outputs cached, sent, page updated)'),
          ('shown', 'status shown → completion image decoded (its download)'))


def timed_respond(marks: dict[str, float]):
  """`demo.respond` that notes the wall-clock time of its start and end in `marks`."""
  respond = demo.respond

  def wrapper(*args):
    marks['start'] = time.time()
    try:
      return respond(*args)
    finally:
      marks['end'] = time.time()
  return wrapper


def time_browser(inpainter, description: str, path: str, repeats: int,
                 screenshot: str | None) -> list[dict[str, float]]:
  """Per fill after the first: {stage: seconds} for `STAGES` and 'total' (click → shown)."""
  from playwright.sync_api import sync_playwright  # noqa: PLC0415

  marks = {}
  demo.respond = timed_respond(marks)  # The page's Fill calls the module's `respond`.
  page_app = demo.build(inpainter, [], description)
  page_app.queue(default_concurrency_limit=1)
  _, url, _ = page_app.launch(server_name='127.0.0.1', server_port=None, share=False,
                              quiet=True, prevent_thread_lock=True)
  fills = []
  try:
    with sync_playwright() as p:
      browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
      page = browser.new_page(viewport={'width': 1280, 'height': 1000})
      # Fill's one POST (Gradio's queue/join); its timing is known once it has finished.
      page.on('requestfinished', lambda r: marks.setdefault('sent', r.timing['startTime'] / 1000)
              if r.method == 'POST' else None)
      page.goto(url)
      page.set_input_files('#upload input[type=file]', path)
      page.wait_for_selector(f'{STATUS} >> text=×')
      page.wait_for_function('() => document.querySelector("#sketch canvas")?.width > 300')
      box = page.locator('#sketch canvas').bounding_box()
      x, y = box['x'] + box['width'] / 2, box['y'] + box['height'] / 2
      page.mouse.move(x - 40, y)
      page.mouse.down()
      for dx in range(-40, 41, 5):
        page.mouse.move(x + dx, y + dx / 4)
      page.mouse.up()
      for i in range(repeats + 1):
        # One more dab each time, so each fill's status line differs from the last.
        page.mouse.click(x - 40 + 4 * i, y + 15)
        before = page.inner_text(STATUS)
        marks.clear()
        marks['click'] = time.time()
        page.click('#fill')
        page.wait_for_function(
            '([sel, b]) => { const s = document.querySelector(sel).innerText;'
            ' return s !== b && (s.includes("Filled") || s.includes("Error")); }',
            arg=[STATUS, before], timeout=120_000, polling=5)
        marks['status'] = time.time()
        page.wait_for_function('() => { const i = document.querySelector("#completion img");'
                               ' return i && i.complete && i.naturalWidth > 0; }', polling=5)
        marks['shown'] = time.time()
        status = page.inner_text(STATUS)
        if 'Error' in status:
          raise SystemExit(f'the page refused the stroke: {status}')
        if i:  # The first is the warm-up.
          times, previous = {}, marks['click']
          for stage, _ in STAGES:
            times[stage], previous = marks[stage] - previous, marks[stage]
          times['total'] = marks['shown'] - marks['click']
          fills.append(times)
          print(f'  {times["total"]:.2f} s (' +
                ', '.join(f'{times[s]:.2f}' for s, _ in STAGES) + f'); {status}')
      if screenshot:
        page.wait_for_timeout(2000)  # Gradio's fade-in of the new outputs.
        page.screenshot(path=screenshot, full_page=True)
      browser.close()
  finally:
    page_app.close()
  return fills


def main(argv: list[str]) -> None:
  del argv
  config = cli.load_config(required=False)
  t0 = time.perf_counter()
  inpainter, description = cli.call(
      lambda: demo.load_inpainter(config, FLAGS.workdir, FLAGS.checkpoint))
  print(f'{description} Restored and compiled in {time.perf_counter() - t0:.1f} s.')
  image = sample_photo(FLAGS.megapixels)
  h, w = image.shape[:2]
  print(f'photo {w}×{h} ({w * h / 1e6:.2f} MP); load average {os.getloadavg()[0]:.1f}, '
        f'{os.cpu_count()} CPUs')
  photo = demo.Photo(image, 'astronaut', '')
  print('server (demo.respond):', summary(time_server(inpainter, photo, FLAGS.repeats)))
  if FLAGS.browser:
    with tempfile.TemporaryDirectory() as tmp:
      path = os.path.join(tmp, 'astronaut.png')
      Image.fromarray(image).save(path)
      fills = time_browser(inpainter, description, path, FLAGS.repeats, FLAGS.screenshot)
      print('browser (click Fill → result shown):', summary([f['total'] for f in fills]))
      for stage, what in STAGES:
        print(f'  {what}:', summary([f[stage] for f in fills]))
  print(f'load average at the end {os.getloadavg()[0]:.1f}')


if __name__ == '__main__':
  cli.define_checkpoint_flags()
  flags.DEFINE_float('megapixels', 1.0, 'Size of the test photo.')
  flags.DEFINE_integer('repeats', 10, 'Timed fills, after one warm-up fill.')
  flags.DEFINE_bool('browser', False, 'Also time the page in headless Chromium.')
  flags.DEFINE_string('screenshot', None, 'With --browser: a PNG of the page after the last '
                      'fill (docs/demo.png).')
  os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
  app.run(main, flags_parser=cli.parse_flags)
