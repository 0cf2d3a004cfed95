"""The photo corpus: preparation from real .deb files built here, and the 'photos' source."""

import hashlib
import io
import json
import logging
import os
import shutil
import subprocess
import sys
import tomllib

import numpy as np
import pytest
from PIL import Image

from ce_jax import config_checks, corpus, input_pipeline, run_config
from ce_jax.errors import UserError
from configs import photos as photos_config
from configs import test as test_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = 'ce-test-photos'
FOREST = 'usr/share/backgrounds/forest.png'
BEACH = 'usr/share/backgrounds/beach.jpg'
LOGO = 'usr/share/backgrounds/logo.png'

needs_dpkg = pytest.mark.skipif(shutil.which('dpkg-deb') is None,
                                reason='building and reading .deb files needs dpkg-deb')


def encoded(shape, fmt, seed):
  rng = np.random.default_rng(seed)
  out = io.BytesIO()
  Image.fromarray(rng.integers(0, 255, shape, np.uint8)).save(out, fmt)
  return out.getvalue()


IMAGES = {FOREST: encoded((60, 80, 3), 'PNG', 0), BEACH: encoded((72, 54, 3), 'JPEG', 1),
          LOGO: encoded((16, 16, 3), 'PNG', 2)}


def build_deb(folder, files, package=PACKAGE, version='1.0-1'):
  """A real .deb holding `files` ({path in the package: bytes}), made by dpkg-deb --build."""
  tree = folder / f'{package}_{version}'
  (tree / 'DEBIAN').mkdir(parents=True)
  (tree / 'DEBIAN' / 'control').write_text(
      f'Package: {package}\nVersion: {version}\nArchitecture: all\n'
      'Maintainer: Nobody <nobody@example.org>\nDescription: test photos\n')
  for path, data in files.items():
    (tree / path).parent.mkdir(parents=True, exist_ok=True)
    (tree / path).write_bytes(data)
  deb = folder / f'{package}_{version}_all.deb'
  subprocess.run(['dpkg-deb', '--root-owner-group', '-Zgzip', '--build', str(tree), str(deb)],
                 check=True, capture_output=True)
  return str(deb)


def entry(path, data, package=PACKAGE):
  return {'package': package, 'path': path, 'licence': 'CC0-1.0', 'copyright': 'test',
          'sha256': hashlib.sha256(data).hexdigest(), 'bytes': len(data)}


def write_manifest(folder, files, versions=None):
  path = folder / 'manifest.json'
  path.write_text(json.dumps({'packages': versions or {PACKAGE: '1.0-1'}, 'files': files}))
  return path


def manifest_of(folder, paths=(FOREST, BEACH), versions=None):
  """The manifest listing `paths` of IMAGES (not the logo: the list leaves artwork out)."""
  return corpus.load_manifest(str(write_manifest(
      folder, [entry(p, IMAGES[p]) for p in paths], versions)))


def leftovers(cache):
  return [os.path.join(root, n) for root, dirs, files in os.walk(cache) for n in dirs + files
          if n.startswith((corpus.PARTIAL, corpus.DOWNLOAD))]


@pytest.fixture
def deb(tmp_path):
  return build_deb(tmp_path, IMAGES)


@needs_dpkg
def test_prepare_copies_only_the_listed_files_then_skips_them(tmp_path, deb, capsys):
  cache = tmp_path / 'cache'
  fetched = []

  def fetch(package, version, folder):
    fetched.append((package, version))
    return deb

  summary = corpus.prepare(str(cache), manifest_of(tmp_path), fetch)
  assert (summary.prepared, summary.missing, summary.errors) == (2, 0, [])
  assert fetched == [(PACKAGE, '1.0-1')]
  for path in (FOREST, BEACH):
    assert (cache / PACKAGE / path).read_bytes() == IMAGES[path]
  assert not (cache / PACKAGE / LOGO).exists() and not leftovers(cache)
  out = capsys.readouterr().out
  assert f'{PACKAGE} 1.0-1: 2 of 2 photos (2 copied)' in out

  summary = corpus.prepare(str(cache), manifest_of(tmp_path), fetch)
  assert summary.missing == 0 and len(fetched) == 1  # nothing left to fetch
  assert '2 already there, 0 copied' in capsys.readouterr().out


@needs_dpkg
def test_checksum_mismatch_is_one_error_line_and_leaves_no_file(tmp_path, deb, capsys):
  files = [entry(FOREST, IMAGES[FOREST]), dict(entry(BEACH, IMAGES[BEACH]), sha256='0' * 64)]
  manifest = corpus.load_manifest(str(write_manifest(tmp_path, files)))
  cache = tmp_path / 'cache'
  summary = corpus.prepare(str(cache), manifest, corpus.fetch_with({PACKAGE: deb}))
  assert (summary.prepared, summary.missing) == (1, 1)
  errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith('error:')]
  assert len(errors) == 1 and PACKAGE in errors[0] and BEACH in errors[0]
  assert 'sha256' in errors[0] and '--deb=' in errors[0]
  assert not (cache / PACKAGE / BEACH).exists() and not leftovers(cache)
  assert (cache / PACKAGE / FOREST).read_bytes() == IMAGES[FOREST]


@needs_dpkg
def test_command_line_exit_status_names_what_is_missing(tmp_path, deb):
  files = [entry(FOREST, IMAGES[FOREST]), dict(entry(BEACH, IMAGES[BEACH]), sha256='0' * 64)]
  manifest = write_manifest(tmp_path, files)

  def run(*flags):
    return subprocess.run([sys.executable, '-m', 'ce_jax.corpus', f'--cache={tmp_path}/c',
                           f'--manifest={manifest}', *flags], capture_output=True, text=True,
                          cwd=ROOT, check=False)

  result = run(f'--deb={PACKAGE}={deb}')
  assert result.returncode == 1, result.stderr
  errors = [line for line in result.stderr.splitlines() if line.startswith('error:')]
  assert len(errors) == 1 and BEACH in errors[0]
  assert '1 of 2 photos' in result.stdout
  write_manifest(tmp_path, files[:1])
  assert run(f'--deb={PACKAGE}={deb}').returncode == 0
  result = run('--deb=no-such-package=x.deb')
  assert result.returncode == 2 and 'no-such-package' in result.stderr


@needs_dpkg
def test_other_version_with_the_same_files_is_accepted(tmp_path):
  deb = build_deb(tmp_path, IMAGES, version='2.0-3')
  summary = corpus.prepare(str(tmp_path / 'cache'), manifest_of(tmp_path),
                           corpus.fetch_with({PACKAGE: deb}))
  assert summary.missing == 0


@needs_dpkg
def test_changed_file_in_another_version_names_both_versions(tmp_path, capsys):
  deb = build_deb(tmp_path, {**IMAGES, BEACH: encoded((72, 54, 3), 'JPEG', 9)}, version='2.0-3')
  summary = corpus.prepare(str(tmp_path / 'cache'), manifest_of(tmp_path),
                           corpus.fetch_with({PACKAGE: deb}))
  assert summary.missing == 1
  (error,) = [line for line in capsys.readouterr().err.splitlines() if 'error:' in line]
  assert BEACH in error and '2.0-3' in error and '1.0-1' in error


@needs_dpkg
def test_file_absent_from_the_package_is_named(tmp_path, capsys):
  deb = build_deb(tmp_path, {FOREST: IMAGES[FOREST]})
  summary = corpus.prepare(str(tmp_path / 'cache'), manifest_of(tmp_path),
                           corpus.fetch_with({PACKAGE: deb}))
  assert summary.missing == 1
  assert f'{BEACH} is not in the package' in capsys.readouterr().err


@needs_dpkg
def test_interrupted_run_leaves_temporaries_that_the_next_run_clears(tmp_path, deb, capsys):
  cache = tmp_path / 'cache'
  folder = cache / PACKAGE / os.path.dirname(FOREST)
  folder.mkdir(parents=True)
  # What a killed run leaves: a download folder, a half-written photo, one finished photo.
  (cache / f'{corpus.DOWNLOAD}{PACKAGE}-x1y2').mkdir()
  (cache / f'{corpus.DOWNLOAD}{PACKAGE}-x1y2' / 'half.deb').write_bytes(b'!<arch>\n')
  (folder / f'{corpus.PARTIAL}beach.jpg-k3j4').write_bytes(IMAGES[BEACH][:100])
  (cache / PACKAGE / FOREST).write_bytes(IMAGES[FOREST])

  summary = corpus.prepare(str(cache), manifest_of(tmp_path), corpus.fetch_with({PACKAGE: deb}))
  assert summary.missing == 0 and not leftovers(cache)
  assert (cache / PACKAGE / BEACH).read_bytes() == IMAGES[BEACH]
  out = capsys.readouterr().out
  assert corpus.INTERRUPTED in out and '1 already there, 1 copied' in out


def test_write_interrupted_midway_leaves_no_file(tmp_path):
  photo = corpus.Photo(PACKAGE, BEACH, 'CC0-1.0', 'test', hashlib.sha256(b'x').hexdigest(), 1)

  class Broken(io.RawIOBase):
    def __init__(self):
      self.calls = 0

    def read(self, n=-1):
      self.calls += 1
      if self.calls > 1:
        raise KeyboardInterrupt
      return b'half a photo'

  with pytest.raises(KeyboardInterrupt):
    corpus.install(photo, Broken(), str(tmp_path))
  assert not os.path.exists(photo.cached(str(tmp_path))) and not leftovers(tmp_path)


@needs_dpkg
def test_failed_fetch_is_one_line_and_other_packages_proceed(tmp_path, deb, capsys):
  files = [entry(FOREST, IMAGES[FOREST]), entry(BEACH, IMAGES[BEACH], package='other-photos')]
  manifest = corpus.load_manifest(str(write_manifest(
      tmp_path, files, {'other-photos': '3', PACKAGE: '1.0-1'})))
  fetch = corpus.fetch_with({PACKAGE: deb, 'other-photos': str(tmp_path / 'absent.deb')})
  summary = corpus.prepare(str(tmp_path / 'cache'), manifest, fetch)
  assert (summary.prepared, summary.missing) == (1, 1)
  (error,) = [line for line in capsys.readouterr().err.splitlines() if 'error:' in line]
  assert error.startswith('error: other-photos:') and 'absent.deb' in error


def test_missing_apt_get_says_what_to_do(tmp_path, monkeypatch):
  monkeypatch.setenv('PATH', str(tmp_path))
  with pytest.raises(corpus.FetchError, match=r'apt-get not found.*--deb=scratch=FILE.deb'):
    corpus.apt_fetch('scratch', '1.0', str(tmp_path))


def test_not_a_deb_is_a_fetch_error(tmp_path):
  if shutil.which('dpkg-deb') is None:
    pytest.skip('needs dpkg-deb')
  junk = tmp_path / 'junk.deb'
  junk.write_bytes(b'not an archive')
  with pytest.raises(corpus.FetchError, match='junk.deb'):
    list(corpus.deb_files(str(junk), {FOREST}))


def test_manifest_keeps_held_out_packages_and_bad_paths_out(tmp_path):
  bad = entry(FOREST, IMAGES[FOREST], package='opencv-doc')
  with pytest.raises(UserError, match='opencv-doc is held out'):
    corpus.load_manifest(str(write_manifest(tmp_path, [bad], {'opencv-doc': '4'})))
  with pytest.raises(UserError, match='relative path'):
    corpus.load_manifest(str(write_manifest(tmp_path, [entry('../etc/passwd', b'')])))
  (tmp_path / 'bad.json').write_text('{"files": []}')
  with pytest.raises(UserError, match='not a photo manifest'):
    corpus.load_manifest(str(tmp_path / 'bad.json'))


def test_shipped_manifest_lists_photos_of_four_packages_and_ships_with_ce_jax():
  manifest = corpus.load_manifest()
  counts = {p: len(manifest.of(p)) for p in manifest.versions}
  assert counts == {'scratch': 53, 'lomiri-wallpapers-16.04': 14, 'mate-backgrounds': 12,
                    'plasma-workspace-wallpapers': 11}
  assert len({(p.package, p.path) for p in manifest.photos}) == len(manifest.photos)
  for photo in manifest.photos:
    assert len(photo.sha256) == 64 and int(photo.sha256, 16) >= 0
    assert photo.licence and photo.copyright and photo.bytes > 0
  with open(os.path.join(ROOT, 'pyproject.toml'), 'rb') as f:
    package_data = tomllib.load(f)['tool']['setuptools']['package-data']['ce_jax']
  relative = os.path.relpath(corpus.manifest_path(), os.path.join(ROOT, 'ce_jax'))
  assert any(os.path.dirname(relative) == os.path.dirname(g) and relative.endswith('.json')
             for g in package_data)


# ----------------------------------------------------------------------------
# The 'photos' source
# ----------------------------------------------------------------------------


def corpus_config(cache):
  config = photos_config.add_photo_fields(test_config.get_config())
  config.data.source = 'photos'
  config.data.photo_cache = str(cache)
  return config


def prepared_corpus(tmp_path, deb):
  """(config of the 'photos' source, manifest) of FOREST and BEACH, prepared from `deb`."""
  manifest = manifest_of(tmp_path)
  cache = tmp_path / 'cache'
  corpus.prepare(str(cache), manifest, corpus.fetch_with({PACKAGE: deb}))
  return corpus_config(cache), manifest


@needs_dpkg
def test_photos_source_yields_float_batches_in_range(tmp_path, deb):
  config, manifest = prepared_corpus(tmp_path, deb)
  source = input_pipeline.corpus_source(config, manifest)
  assert source.count == 2
  batch = next(input_pipeline.train_dataset(source, config, batch_size=4, seed=0)
               .as_numpy_iterator())
  size = config.data.image_size
  assert batch['image'].shape == (4, size, size, 3) and batch['image'].dtype == np.float32
  assert -1.0 <= batch['image'].min() < batch['image'].max() <= 1.0


@needs_dpkg
def test_add_embedded_trains_on_the_embedded_training_photos_too(tmp_path, deb):
  config, manifest = prepared_corpus(tmp_path, deb)
  config.data.add_embedded = True
  source = input_pipeline.corpus_source(config, manifest)
  assert source.count == 2 + len(input_pipeline.EMBEDDED_TRAIN)
  # The corpus's photos first, then the embedded ones, as `embedded_source` reads them.
  embedded = input_pipeline.embedded_source(config, 'train')
  for j in range(embedded.count):
    np.testing.assert_array_equal(source.read(2 + j).numpy(), embedded.read(j).numpy())
  del config.data['add_embedded']
  with pytest.raises(UserError, match=r'data.add_embedded.*configs/photos.py'):
    config_checks.check(config)


@needs_dpkg
def test_corrupt_or_undecodable_photo_is_skipped_and_named(tmp_path, caplog):
  garbage = b'\xff\xd8 not a jpeg, though the list says so'
  deb = build_deb(tmp_path, {**IMAGES, 'usr/share/backgrounds/broken.jpg': garbage})
  files = [entry(p, IMAGES[p]) for p in (FOREST, BEACH)]
  files.append(entry('usr/share/backgrounds/broken.jpg', garbage))
  manifest = corpus.load_manifest(str(write_manifest(tmp_path, files)))
  cache = tmp_path / 'cache'
  assert corpus.prepare(str(cache), manifest, corpus.fetch_with({PACKAGE: deb})).missing == 0
  (cache / PACKAGE / BEACH).write_bytes(IMAGES[BEACH][:200])  # damaged after preparation

  with caplog.at_level(logging.WARNING):
    source = input_pipeline.corpus_source(corpus_config(cache), manifest)
  assert source.count == 1
  messages = ' '.join(r.getMessage() for r in caplog.records)
  assert 'beach.jpg' in messages and 'python -m ce_jax.corpus' in messages
  assert 'broken.jpg' in messages and 'cannot be decoded' in messages


def test_unprepared_cache_is_one_error_naming_the_command(tmp_path):
  config = corpus_config(tmp_path / 'never-prepared')
  with pytest.raises(UserError, match=r'data.photo_cache=.*python -m ce_jax.corpus'):
    input_pipeline.make_sources(config)
  del config.data['photo_cache']
  with pytest.raises(UserError, match='configs/photos.py'):
    config_checks.check(config)


def test_photos_config_reads_the_corpus_from_the_default_cache():
  config = photos_config.get_config()
  assert config.data.source == 'photos' and config.data.photo_cache == corpus.DEFAULT_CACHE


def test_photos_long_variant_changes_only_the_schedule():
  base, long = photos_config.get_config(), photos_config.get_config('long')
  config_checks.check(long)
  assert long.train.num_steps == 2 * base.train.num_steps
  changed = set(run_config.differences(base, long))
  assert changed and all(k.startswith('train.') for k in changed), changed
  with pytest.raises(ValueError, match='expected a variant among'):
    photos_config.get_config('longer')
