"""Seconds the demo page takes to answer Fill on a photo of `--megapixels`, after the first.

  python benchmarks/demo_latency.py --workdir=runs/default
  python benchmarks/demo_latency.py --workdir=runs/default --browser

Restores and compiles the model as `python -m ce_jax.demo` does, then times
`demo.respond` (what Fill runs on the server: the hole from the stroke layer,
the model's fill, OpenCV Telea, three PNGs written) on the astronaut photo
resized to `--megapixels`, with a brush stroke across the middle (inside the
square a center-output model fills). With `--browser` it also serves the page
and times, in headless Chromium, the click on Fill until the page shows the
result: the editor's export and upload, the server's work and the page update
(`--screenshot=docs/demo.png` then saves the page after the last fill).
Median, min and max of `--repeats` fills after one warm-up fill.
"""

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


def stroke_layer(shape: tuple[int, int]) -> np.ndarray:
  """A brush stroke across the middle, as the editor sends it: `[H, W, 4]` uint8."""
  h, w = shape
  layer = Image.new('RGBA', (w, h), (0, 0, 0, 0))
  ImageDraw.Draw(layer).line([(w * 0.4, h * 0.45), (w * 0.5, h * 0.55), (w * 0.6, h * 0.47)],
                             fill=(255, 0, 255, 153), width=max(1, h // 25))
  return np.asarray(layer)


def summary(times: list[float]) -> str:
  return (f'median {statistics.median(times):.3f} s, min {min(times):.3f} s, '
          f'max {max(times):.3f} s over {len(times)} fills')


def time_server(inpainter, photo: demo.Photo, repeats: int) -> list[float]:
  layers = [stroke_layer(photo.image.shape[:2])]
  demo.respond(inpainter, photo, layers)  # warm-up
  times = []
  for _ in range(repeats):
    t0 = time.perf_counter()
    demo.respond(inpainter, photo, layers)
    times.append(time.perf_counter() - t0)
  return times


def time_browser(page_app, path: str, repeats: int, screenshot: str | None) -> list[float]:
  from playwright.sync_api import sync_playwright  # noqa: PLC0415

  _, url, _ = page_app.launch(server_name='127.0.0.1', server_port=None, share=False,
                              quiet=True, prevent_thread_lock=True)
  times = []
  try:
    with sync_playwright() as p:
      browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
      page = browser.new_page(viewport={'width': 1280, 'height': 1000})
      page.goto(url)
      page.set_input_files('#upload input[type=file]', path)
      page.wait_for_selector(f'{STATUS} >> text=×')
      page.get_by_role('button', name='Brush', exact=True).click()
      box = page.locator('#editor canvas').first.bounding_box()
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
        t0 = time.perf_counter()
        page.click('#fill')
        page.wait_for_function(
            '([sel, b]) => { const s = document.querySelector(sel).innerText;'
            ' return s !== b && (s.includes("Filled") || s.includes("Error")); }',
            arg=[STATUS, before], timeout=120_000)
        page.wait_for_function('() => { const i = document.querySelector("#completion img");'
                               ' return i && i.complete && i.naturalWidth > 0; }')
        elapsed = time.perf_counter() - t0
        status = page.inner_text(STATUS)
        if 'Error' in status:
          raise SystemExit(f'the page refused the stroke: {status}')
        if i:  # The first is the warm-up.
          times.append(elapsed)
          print(f'  {elapsed:.2f} s; {status}')
      if screenshot:
        page.wait_for_timeout(2000)  # Gradio's fade-in of the new outputs.
        page.screenshot(path=screenshot, full_page=True)
      browser.close()
  finally:
    page_app.close()
  return times


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
      page_app = demo.build(inpainter, [], description)
      page_app.queue(default_concurrency_limit=1)
      print('browser (click Fill → result shown):',
            summary(time_browser(page_app, path, FLAGS.repeats, FLAGS.screenshot)))
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
