"""ce_jax.demo: its fill and checks, and the page itself driven in headless Chromium."""

import base64
import io
import os
import socket
import subprocess
import sys

import numpy as np
import pytest
import skimage.data
import test_inpaint
from PIL import Image

from ce_jax import demo
from ce_jax.errors import UserError
from configs import test as test_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CHROMIUM = '/usr/bin/chromium'
STATUS = '#status [data-testid=markdown]'  # the status line's text, without progress
# Without the background-networking flags Chromium's own connections are refused offline.
CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic',
                 '--no-first-run', '--disable-background-networking',
                 '--disable-component-update', '--disable-sync']


@pytest.fixture(scope='module')
def full_workdir(tmp_path_factory):
  return test_inpaint.save_initial_state(test_inpaint.full_config(),
                                         tmp_path_factory.mktemp('full'))


@pytest.fixture(scope='module')
def center_inpainter(tmp_path_factory):
  config = test_config.get_config()
  workdir = test_inpaint.save_initial_state(config, tmp_path_factory.mktemp('center'))
  return demo.load_inpainter(None, workdir, 'latest')[0]


def photo() -> np.ndarray:
  """A 300×200 (width×height) photo, `[200, 300, 3]` uint8."""
  return skimage.data.chelsea()[50:250, 100:400]


# ----------------------------------------------------------------------------
# Without a browser
# ----------------------------------------------------------------------------


def test_fill_keeps_known_pixels_and_refuses_an_empty_mask(full_workdir):
  config = test_inpaint.full_config()
  inpainter, description = demo.load_inpainter(None, full_workdir, 'latest')
  assert description.startswith(f'`{full_workdir}`, step 0')
  image = photo()
  hole = np.zeros(image.shape[:2], bool)
  hole[150:190, 10:60] = True  # a corner: a full-output model fills anything
  result = demo.fill(inpainter, image, hole)
  np.testing.assert_array_equal(result.completion, inpainter(image, hole))
  np.testing.assert_array_equal(result.completion[~hole], image[~hole])
  np.testing.assert_array_equal(result.telea[~hole], image[~hole])
  assert (result.telea[hole] != image[hole]).any()
  mean = np.round(config.data.mean_pixel).astype(np.uint8)
  assert (result.masked[hole] == mean).all()
  with pytest.raises(UserError, match='The mask is empty'):
    demo.fill(inpainter, image, np.zeros_like(hole))


def test_center_model_shows_its_square_and_refuses_strokes_outside(center_inpainter):
  image = photo()
  y0, y1, x0, x1 = center_inpainter.center_box(image.shape[:2])
  # The test model fills the central 16×16 (mask.hole_size) of 32×32.
  assert (y0, y1, x0, x1) == (200 * 8 // 32, 200 * 24 // 32, 300 * 8 // 32, 300 * 24 // 32)
  outlined = demo.editor_background(center_inpainter, image)
  changed = (outlined != image).any(-1)
  assert changed[y0 - 1, x0:x1].all() and changed[y1, x0:x1].all()
  assert not changed[y0 + 2:y1 - 2, x0 + 2:x1 - 2].any()
  large = np.asarray(Image.fromarray(image).resize((3000, 2000)))
  assert demo.editor_background(center_inpainter, large).shape == (683, 1024, 3)
  inside = np.zeros(image.shape[:2], bool)
  inside[y0 + 5:y1 - 5, x0 + 5:x1 - 5] = True
  result = demo.fill(center_inpainter, image, inside)
  np.testing.assert_array_equal(result.completion[~inside], image[~inside])
  # A small stroke anywhere is filled from a square around it (the large one inside, from
  # the whole photo) …
  small = inside.copy()
  small[5:10, 5:10] = True
  result = demo.fill(center_inpainter, image, small)
  assert [c.path for c in result.plan.crops] == ['crop', 'whole']
  np.testing.assert_array_equal(result.completion[~small], image[~small])
  # … but one too large for that must lie inside the square.
  large = inside.copy()
  large[5:195, 5:15] = True
  with pytest.raises(UserError, match=f'outside the outlined square .rows {y0}–{y1}, columns '
                                      f'{x0}–{x1}.'):
    demo.fill(center_inpainter, image, large)
  with pytest.raises(UserError, match='The strokes cover the whole photo'):
    demo.fill(center_inpainter, image, np.ones_like(inside))


def test_small_stroke_on_a_large_upload_is_filled_from_the_photo_around_it(center_inpainter):
  image = np.asarray(Image.fromarray(photo()).resize((1600, 1200), Image.BICUBIC))
  hole = np.zeros(image.shape[:2], bool)
  hole[700:724, 1000:1030] = True  # 24×30: a 60×60 square around it, resized to 32×32
  result = demo.fill(center_inpainter, image, hole)
  (crop,) = result.plan.crops
  assert crop.path == 'crop' and crop.height == crop.width == 60 and crop.resized
  assert crop.top <= 700 and crop.top + 60 >= 724 and crop.left <= 1000 and crop.left + 60 >= 1030
  np.testing.assert_array_equal(result.completion[~hole], image[~hole])
  assert (result.completion[hole] != image[hole]).any(-1).mean() > 0.5


def test_hole_from_the_stroke_layer():
  layer = np.zeros((20, 30, 4), np.uint8)
  layer[5:8, 10:20] = (255, 0, 255, 153)
  layer[12, 3] = (255, 0, 255, 1)  # the faint edge of a stroke still counts
  hole = demo.hole_from_layer(layer, (20, 30))
  assert hole.sum() == 31 and hole[12, 3] and hole[5:8, 10:20].all()
  np.testing.assert_array_equal(demo.hole_from_layer(layer[::2, ::2], (20, 30))[::2, ::2],
                                hole[::2, ::2])
  assert not demo.hole_from_layer(None, (20, 30)).any()


def test_hole_from_the_strokes_the_page_sends():
  layer = np.zeros((10, 15, 4), np.uint8)
  layer[2:5, 3:9] = (255, 0, 255, 255)
  layer[7, 1] = (255, 0, 255, 3)  # an anti-aliased edge
  buffer = io.BytesIO()
  Image.fromarray(layer).save(buffer, 'PNG')
  sent = 'data:image/png;base64,' + base64.b64encode(buffer.getvalue()).decode('ascii')
  hole = demo.hole_from_strokes(sent, (20, 30))  # the photo is twice the editor's copy
  expected = np.zeros((20, 30), bool)
  expected[4:10, 6:18] = expected[14:16, 2:4] = True
  np.testing.assert_array_equal(hole, expected)
  assert not demo.hole_from_strokes('', (20, 30)).any()
  for bad in ('data:image/jpeg;base64,AAAA', 'data:image/png;base64,@@@',
              'data:image/png;base64,' + base64.b64encode(b'not a png').decode('ascii')):
    with pytest.raises(UserError, match='The strokes sent with Fill are not a PNG data URL'):
      demo.hole_from_strokes(bad, (20, 30))


def test_uploads_that_are_not_photos_or_too_large(tmp_path):
  text = tmp_path / 'notes.png'
  text.write_text('not an image')
  with pytest.raises(UserError, match="'notes.png' cannot be read as an image"):
    demo.read_photo(str(text))
  big = tmp_path / 'big.png'
  Image.new('RGB', (2400, 1800), (10, 20, 30)).save(big)
  read = demo.read_photo(str(big))
  h, w = read.image.shape[:2]
  assert h * w <= demo.MAX_PIXELS and abs(w / h - 2400 / 1800) < 0.01
  assert read.note.startswith(f'The photo was 2400×1800; it is filled at {w}×{h}')
  huge = tmp_path / 'huge.png'
  Image.new('1', (9000, 6000)).save(huge)
  with pytest.raises(UserError, match=r"'huge.png' is 9000×6000 pixels .54 megapixels.; "
                                      'photos above 50 megapixels are refused'):
    demo.read_photo(str(huge))


# ----------------------------------------------------------------------------
# In a browser
# ----------------------------------------------------------------------------


def free_port() -> int:
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    return s.getsockname()[1]


@pytest.fixture
def server(full_workdir, tmp_path):
  """The demo command on a free localhost port; yields its address."""
  log = open(tmp_path / 'server.log', 'w+')  # noqa: SIM115 (closed below)
  proc = subprocess.Popen(
      [sys.executable, '-m', 'ce_jax.demo', f'--workdir={full_workdir}',
       f'--port={free_port()}'],
      cwd=ROOT, stdout=subprocess.PIPE, stderr=log, text=True)
  try:
    line = proc.stdout.readline()  # The demo prints its address once it serves.
    if not line.startswith('ce_jax demo: http://127.0.0.1:'):
      log.seek(0)
      pytest.fail(f'the demo did not start: {line!r}\n{log.read()[-3000:]}')
    yield line.split(': ', 1)[1].strip()
  finally:
    proc.terminate()
    proc.wait(timeout=30)
    log.close()


def status_contains(page, text: str, timeout_ms: int = 120_000) -> str:
  from playwright.sync_api import TimeoutError as PlaywrightTimeout  # noqa: PLC0415

  try:
    page.wait_for_function('([sel, t]) => document.querySelector(sel).innerText.includes(t)',
                           arg=[STATUS, text], timeout=timeout_ms)
  except PlaywrightTimeout:
    pytest.fail(f'the status line never said {text!r}; it says {page.inner_text(STATUS)!r}')
  return page.inner_text(STATUS)


@pytest.mark.skipif(not os.path.exists(CHROMIUM),
                    reason=f'needs Chromium at {CHROMIUM} (Debian: apt-get install chromium)')
def test_page_in_a_browser(server, tmp_path):
  from playwright.sync_api import sync_playwright  # noqa: PLC0415

  image = photo()
  Image.fromarray(image).save(tmp_path / 'cat.png')
  (tmp_path / 'notes.png').write_text('not an image')
  with sync_playwright() as p:
    browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    page = browser.new_page(viewport={'width': 1280, 'height': 1000})
    page.goto(server)

    page.set_input_files('#upload input[type=file]', str(tmp_path / 'notes.png'))
    assert "'notes.png' cannot be read as an image" in status_contains(page, 'Error')
    page.locator('#upload').get_by_role('button', name='Clear').click()

    page.set_input_files('#upload input[type=file]', str(tmp_path / 'cat.png'))
    status_contains(page, '300×200')
    page.click('#fill')
    assert 'The mask is empty' in status_contains(page, 'Error')

    # The page shows the 300×200 photo at its own size: a page pixel is a photo pixel.
    page.wait_for_function('() => document.querySelector("#sketch canvas")?.width === 300')
    canvas = page.locator('#sketch canvas')
    box = canvas.bounding_box()
    assert (box['width'], box['height']) == (300, 200)
    x, y = box['x'] + 150, box['y'] + 100  # the photo's centre
    # A brush 30 pixels wide (10 % of the longer side) along row 100, columns 90 to 210 …
    page.locator('#sketch .size').fill('10')
    page.mouse.move(x - 60, y)
    page.mouse.down()
    for dx in range(-60, 61, 5):
      page.mouse.move(x + dx, y)
    page.mouse.up()
    # … and an eraser 60 pixels wide that takes back the stroke's right end (column 180 on).
    page.get_by_role('button', name='Eraser', exact=True).click()
    page.locator('#sketch .size').fill('20')
    page.mouse.click(x + 60, y)
    sent = canvas.evaluate('c => c.toDataURL("image/png")')  # what Fill sends
    page.click('#fill')
    status_contains(page, 'Filled')

    shown = page.request.get(page.locator('#completion img').get_attribute('src')).body()
    with page.expect_download() as download:
      page.click('#download')
    downloaded = download.value.path().read_bytes()

    page.get_by_role('button', name='Clear strokes', exact=True).click()
    page.click('#fill')
    assert 'The mask is empty' in status_contains(page, 'Error')

    page.get_by_text('coffee.png', exact=True).click()  # a bundled photo, 600×400
    status_contains(page, '600×400. This full-output model')
    browser.close()

  result, shown = (np.asarray(Image.open(io.BytesIO(b)).convert('RGB'))
                   for b in (downloaded, shown))
  assert Image.open(io.BytesIO(downloaded)).format == 'PNG'
  assert result.shape == shown.shape == image.shape
  assert np.abs(shown.astype(int) - result).mean() < 5  # the JPEG the page shows (about 2.4)
  # The hole of the strokes the page sent: only it changed, nearly all of it.
  hole = demo.hole_from_strokes(sent, image.shape[:2])
  np.testing.assert_array_equal(result[~hole], image[~hole])
  assert (result[hole] != image[hole]).any(-1).mean() > 0.9
  changed = (result != image).any(-1)
  assert changed[100, 80:175].mean() > 0.9 and changed[88:113, 120].mean() > 0.9
  assert not changed[:, 186:].any()  # erased (the eraser reaches column 184 at rows 85, 115)
  outside = np.ones_like(changed)
  outside[80:121, 70:186] = False
  np.testing.assert_array_equal(result[outside], image[outside])
