"""ce_jax.inpaint on user images: any size, known pixels kept bit for bit, clear errors."""

import os
import subprocess
import sys

import jax
import numpy as np
import pytest
import skimage.data
from PIL import Image, ImageDraw

from ce_jax import checkpointing, inpaint, run_config, train_state
from ce_jax.errors import UserError
from configs import test as test_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def full_config():
  config = test_config.get_config()
  config.mask.kind = 'freeform'
  config.model.output = 'full'
  return config


def save_initial_state(config, workdir):
  with checkpointing.create_manager(str(workdir), 1) as manager:
    checkpointing.save(manager, train_state.create(config, jax.random.PRNGKey(0)))
  run_config.save(config, workdir)  # as training does
  return str(workdir)


@pytest.fixture(scope='module')
def full_workdir(tmp_path_factory):
  return save_initial_state(full_config(), tmp_path_factory.mktemp('full'))


@pytest.fixture(scope='module')
def center_workdir(tmp_path_factory):
  return save_initial_state(test_config.get_config(), tmp_path_factory.mktemp('center'))


@pytest.fixture
def photo(tmp_path):
  """A 300×200 (width×height) JPEG and a mask drawn with a brush, as files."""
  path = tmp_path / 'photo.jpg'
  Image.fromarray(skimage.data.chelsea()[50:250, 100:400]).save(path, quality=90)
  mask = Image.new('L', (300, 200), 0)
  draw = ImageDraw.Draw(mask)
  draw.line([(30, 40), (150, 120), (260, 60)], fill=255, width=15)
  draw.ellipse((200, 140, 240, 180), fill=255)
  mask.save(tmp_path / 'photo_mask.png')
  return str(path), str(tmp_path / 'photo_mask.png')


def load(path):
  with Image.open(path) as im:
    return np.asarray(im.convert('RGB'))


def test_fills_only_the_hole_at_the_original_size(full_workdir, photo, tmp_path):
  image, mask = photo
  out = str(tmp_path / 'out' / 'filled.png')
  written = inpaint.run(None, full_workdir, 'latest', image, mask, out, grid=True)
  assert written == [out, str(tmp_path / 'out' / 'filled_grid.png')]
  original, result = load(image), load(out)
  hole = load(mask)[..., 0] >= 128
  assert result.shape == original.shape == (200, 300, 3)
  np.testing.assert_array_equal(result[~hole], original[~hole])
  assert (result[hole] != original[hole]).any(axis=-1).mean() > 0.5
  assert load(written[1]).shape == (200, 3 * 300 + 4, 3)


def test_mask_of_another_size_with_the_same_aspect(full_workdir, photo, tmp_path):
  image, mask = photo
  small = tmp_path / 'small_mask.png'
  Image.open(mask).resize((150, 100), Image.NEAREST).save(small)
  out = str(tmp_path / 'filled.png')
  inpaint.run(full_config(), full_workdir, 'latest', image, str(small), out)
  hole = np.asarray(Image.open(small).resize((300, 200), Image.NEAREST)) >= 128
  np.testing.assert_array_equal(load(out)[~hole], load(image)[~hole])


def test_folder_mode_pairs_files_by_name(full_workdir, tmp_path):
  images, mask_dir, out = tmp_path / 'images', tmp_path / 'masks', tmp_path / 'out'
  images.mkdir()
  mask_dir.mkdir()
  holes = {}
  for name, ext, box in (('a', '.jpg', (10, 10, 40, 30)), ('b', '.png', (60, 5, 90, 50))):
    Image.fromarray(skimage.data.astronaut()[:64, :96]).save(images / f'{name}{ext}')
    m = Image.new('L', (96, 64), 0)
    ImageDraw.Draw(m).rectangle(box, fill=255)
    m.save(mask_dir / f'{name}.png')
    holes[name] = np.asarray(m) >= 128
  written = inpaint.run(full_config(), full_workdir, 'latest', str(images), str(mask_dir),
                        str(out))
  assert sorted(written) == [str(out / 'a.png'), str(out / 'b.png')]
  for name, ext in (('a', '.jpg'), ('b', '.png')):
    changed = (load(out / f'{name}.png') != load(images / f'{name}{ext}')).any(axis=-1)
    assert not changed[~holes[name]].any() and changed[holes[name]].mean() > 0.5
  os.remove(mask_dir / 'b.png')
  with pytest.raises(UserError, match=r'no mask named b\.\*'):
    inpaint.run(full_config(), full_workdir, 'latest', str(images), str(mask_dir), str(out))


def test_center_model_accepts_only_center_holes(center_workdir, photo, tmp_path):
  image, mask = photo
  config = test_config.get_config()
  with pytest.raises(UserError, match='center-output model'):
    inpaint.run(config, center_workdir, 'latest', image, mask, str(tmp_path / 'x.png'))
  out = str(tmp_path / 'center.png')
  inpaint.run(config, center_workdir, 'latest', image, 'center', out)
  changed = (load(out) != load(image)).any(axis=-1)
  rows, cols = np.nonzero(changed)
  # The 12×12 hole of the 32×32 model input, scaled to 200×300.
  assert rows.min() >= 200 * 10 // 32 and rows.max() < 200 * 22 // 32 + 1
  assert cols.min() >= 300 * 10 // 32 and cols.max() < 300 * 22 // 32 + 1


def test_bad_inputs_give_clear_errors(full_workdir, photo, tmp_path):
  image, mask = photo
  run = lambda img, m, out='o.png', config=None: inpaint.run(  # noqa: E731
      config or full_config(), full_workdir, 'latest', img, m, str(tmp_path / out))
  wide = tmp_path / 'wide_mask.png'
  Image.new('L', (300, 100), 255).save(wide)
  with pytest.raises(UserError, match='aspect ratios differ') as e:
    run(image, str(wide))
  assert str(wide) in str(e.value)
  empty = tmp_path / 'empty_mask.png'
  Image.new('L', (300, 200), 0).save(empty)
  with pytest.raises(UserError, match='no white pixels'):
    run(image, str(empty))
  broken = tmp_path / 'broken.png'
  broken.write_text('not an image')
  with pytest.raises(UserError, match=f"--image file '{broken}' cannot be read"):
    run(str(broken), mask)
  with pytest.raises(UserError, match='expected a .png file'):
    run(image, mask, out='o.jpg')
  with pytest.raises(UserError, match='no such file'):
    run(str(tmp_path / 'missing.jpg'), mask)
  with pytest.raises(UserError, match='does not fit --config'):
    run(image, mask, config=test_config.get_config())


def inpaint_command(*args):
  return subprocess.run([sys.executable, '-m', 'ce_jax.inpaint', *args], cwd=ROOT,
                        capture_output=True, text=True, timeout=300)


def test_command_line_needs_only_the_workdir(full_workdir, photo, tmp_path):
  image, mask = photo
  out = tmp_path / 'o.png'
  proc = inpaint_command(f'--workdir={full_workdir}', f'--image={image}', f'--mask={mask}',
                         f'--output={out}')
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert proc.stdout.split() == [str(out)] and proc.stderr == ''
  expected = tmp_path / 'expected.png'
  inpaint.run(full_config(), full_workdir, 'latest', image, mask, str(expected))
  np.testing.assert_array_equal(load(out), load(expected))


def test_command_line_error_is_one_line_and_exit_2(full_workdir, photo, tmp_path):
  image, _ = photo
  empty = tmp_path / 'empty.png'
  Image.new('L', (300, 200), 0).save(empty)
  proc = inpaint_command('--config=configs/test.py', '--config.model.output=full',
                         '--config.mask.kind=freeform', f'--workdir={full_workdir}',
                         f'--image={image}', f'--mask={empty}', f'--output={tmp_path / "o.png"}')
  assert proc.returncode == 2
  errors = [line for line in proc.stderr.splitlines() if line.startswith('error:')]
  assert errors == [f"error: --mask file '{empty}' has no white pixels (white = fill, "
                    'black = keep).']
