"""Real photographs from Debian packages, prepared once into a local cache.

    python -m ce_jax.corpus [--cache=DIR] [--deb=PACKAGE=FILE.deb ...]

The manifest (`ce_jax/data/photo_corpus.json`) lists each photograph kept:
its package, its path inside the package, licence, copyright and sha256. The
list was made by looking at every image of the packages; their artwork,
logos, drawings and renders are simply not on it. For each package with a
photo not yet in the cache, `apt-get download` fetches the .deb (no install,
no root) into a temporary folder in the cache, `dpkg-deb --fsys-tarfile`
streams its files, and each listed file is written to
`<cache>/<package>/<path in the package>` through a temporary file that is
renamed into place only once its sha256 matches. A photo in the cache is
therefore whole and verified; an interrupted run leaves only temporaries,
which the next run removes before it skips the photos already there.

A package apt-get cannot fetch, a file whose checksum differs, or missing
`apt-get`/`dpkg-deb` is one `error:` line naming the package (and file) and
what to do; the other packages still proceed, and the exit status is 1 when
any photo is missing. `--deb` takes a .deb fetched elsewhere (a system
without apt, another mirror).

OpenCV's documentation photos (`opencv-doc`) are the outside held-out set of
the README's results and are never part of this corpus.
"""

import dataclasses
import hashlib
import importlib.resources
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Callable, Iterator
from typing import IO

from absl import app, flags, logging

from ce_jax import cli
from ce_jax.errors import UserError

DEFAULT_CACHE = os.path.join(os.environ.get('XDG_CACHE_HOME', '~/.cache'), 'ce_jax', 'photos')
# Packages whose photos are held out of training (the README's outside eval set).
HELD_OUT_PACKAGES = ('opencv-doc',)
FIELDS = ('package', 'path', 'licence', 'copyright', 'sha256', 'bytes')
# Names of the temporaries in the cache: never a photo, removed by the next run.
PARTIAL = '.partial-'
DOWNLOAD = '.download-'
INTERRUPTED = 'an earlier run was interrupted'


def manifest_path() -> str:
  """The manifest that ships with the package."""
  return str(importlib.resources.files('ce_jax') / 'data' / 'photo_corpus.json')


@dataclasses.dataclass(frozen=True)
class Photo:
  """One file of the corpus: where it is in its package and what it must hash to."""

  package: str
  path: str
  licence: str
  copyright: str
  sha256: str
  bytes: int

  def cached(self, cache: str) -> str:
    """Its place in `cache`: `<cache>/<package>/<path in the package>`."""
    return os.path.join(os.path.expanduser(cache), self.package, self.path)


@dataclasses.dataclass(frozen=True)
class Manifest:
  """The photos to keep and the package versions they were listed from."""

  versions: dict[str, str]
  photos: tuple[Photo, ...]

  def of(self, package: str) -> list[Photo]:
    return [p for p in self.photos if p.package == package]


def load_manifest(path: str | None = None) -> Manifest:
  """Reads and checks a manifest (default: the one that ships with ce_jax)."""
  path = path or manifest_path()
  try:
    with open(path, encoding='utf-8') as f:
      data = json.load(f)
    versions = dict(data['packages'])
    photos = tuple(Photo(**{k: entry[k] for k in FIELDS}) for entry in data['files'])
  except (OSError, ValueError, KeyError, TypeError) as e:
    raise UserError(f'{path}: not a photo manifest ({type(e).__name__}: {e}); expected '
                    f'{{"packages": {{name: version}}, "files": [{{{", ".join(FIELDS)}}}]}}.'
                    ) from e
  for photo in photos:
    if photo.package not in versions:
      raise UserError(f'{path}: {photo.path} names package {photo.package!r}, which '
                      '"packages" does not list.')
    if photo.package in HELD_OUT_PACKAGES:
      raise UserError(f'{path}: {photo.package} is held out of training (the outside eval '
                      'set); its photos cannot be in the corpus.')
    parts = photo.path.split('/')
    if photo.path.startswith('/') or '..' in parts or '' in parts:
      raise UserError(f'{path}: {photo.path!r}: expected a relative path inside the package.')
  return Manifest(versions, photos)


def sha256(path: str) -> str:
  h = hashlib.sha256()
  with open(path, 'rb') as f:
    for chunk in iter(lambda: f.read(1 << 20), b''):
      h.update(chunk)
  return h.hexdigest()


def is_prepared(photo: Photo, cache: str) -> bool:
  """Whether the cache holds `photo` with its size and checksum."""
  path = photo.cached(cache)
  return (os.path.isfile(path) and os.path.getsize(path) == photo.bytes
          and sha256(path) == photo.sha256)


# ----------------------------------------------------------------------------
# Fetching a package
# ----------------------------------------------------------------------------


class FetchError(Exception):
  """A package could not be fetched or read; the message says what to do."""


# (package, version listed in the manifest, folder to put it in) → path of its .deb.
Fetch = Callable[[str, str, str], str]


def apt_fetch(package: str, version: str, folder: str) -> str:
  """`apt-get download` of `package` into `folder`: the listed version, else apt's own."""
  if shutil.which('apt-get') is None:
    raise FetchError(f'apt-get not found: on a system without apt, download {package} '
                     f'{version} (a .deb) elsewhere and pass --deb={package}=FILE.deb.')
  reason = ''
  for spec in (f'{package}={version}', package):
    result = subprocess.run(['apt-get', 'download', spec], cwd=folder, capture_output=True,
                            text=True, check=False)
    if result.returncode == 0:
      break
    lines = [line for line in result.stderr.splitlines() if line.startswith('E:')]
    reason = lines[-1] if lines else f'exit status {result.returncode}'
  else:
    raise FetchError(f'apt-get download {package} failed ({reason}); run `apt-get update` '
                     f'(the package is in Debian main) or pass --deb={package}=FILE.deb.')
  debs = sorted(f for f in os.listdir(folder) if f.endswith('.deb'))
  if not debs:
    raise FetchError(f'apt-get download {package} left no .deb in {folder}.')
  return os.path.join(folder, debs[0])


def fetch_with(debs: dict[str, str]) -> Fetch:
  """A `Fetch` that takes the .deb of `debs` (package → file) and apt's for the others."""
  def fetch(package: str, version: str, folder: str) -> str:
    if package not in debs:
      return apt_fetch(package, version, folder)
    if not os.path.isfile(debs[package]):
      raise FetchError(f'--deb={package}={debs[package]}: no such file.')
    return debs[package]
  return fetch


def _dpkg_deb(*args: str) -> subprocess.Popen:
  if shutil.which('dpkg-deb') is None:
    raise FetchError('dpkg-deb not found: it reads the .deb; install dpkg (Debian and '
                     'Ubuntu have it) or prepare the cache on a system that has it.')
  return subprocess.Popen(['dpkg-deb', *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def deb_version(deb: str) -> str:
  """The version field of a .deb."""
  proc = _dpkg_deb('--field', deb, 'Version')
  out, err = proc.communicate()
  if proc.returncode != 0:
    raise FetchError(f'{deb} is not a readable .deb ({err.decode().strip()}).')
  return out.decode().strip()


def deb_files(deb: str, wanted: set[str]) -> Iterator[tuple[str, IO[bytes]]]:
  """`(path, stream)` of each regular file of the .deb whose path is in `wanted`.

  The package's file tree streams through `dpkg-deb --fsys-tarfile`: nothing
  else of it is written anywhere, and reading stops once every wanted file
  came by. Each stream must be read before the next item.
  """
  proc = _dpkg_deb('--fsys-tarfile', deb)
  remaining, failure = set(wanted), ''
  try:
    with tarfile.open(fileobj=proc.stdout, mode='r|') as tar:
      for member in tar:
        name = os.path.normpath(member.name)
        if member.isfile() and name in remaining:
          remaining.discard(name)
          yield name, tar.extractfile(member)
          if not remaining:
            break
  except tarfile.TarError as e:
    failure = str(e)
  finally:
    # Closing the pipe early ends dpkg-deb (SIGPIPE) once the wanted files are read.
    proc.stdout.close()
    err = proc.stderr.read().decode().strip()
    proc.stderr.close()
    proc.wait()
  if failure or (remaining and proc.returncode != 0):
    raise FetchError(f'{deb} is not a readable .deb ({err or failure}).')


# ----------------------------------------------------------------------------
# Writing the cache
# ----------------------------------------------------------------------------


def install(photo: Photo, stream: IO[bytes], cache: str) -> str | None:
  """Writes `stream` to `photo`'s place in the cache if it hashes to the listed sha256.

  Written to a temporary file beside it, synced, then renamed: the photo
  appears whole or not at all. Returns None, or the checksum it had instead.
  """
  dest = photo.cached(cache)
  os.makedirs(os.path.dirname(dest), exist_ok=True)
  fd, tmp = tempfile.mkstemp(prefix=PARTIAL + os.path.basename(dest) + '-',
                             dir=os.path.dirname(dest))
  try:
    h = hashlib.sha256()
    with os.fdopen(fd, 'wb') as f:
      for chunk in iter(lambda: stream.read(1 << 20), b''):
        h.update(chunk)
        f.write(chunk)
      f.flush()
      os.fsync(f.fileno())
    if h.hexdigest() != photo.sha256:
      os.unlink(tmp)
      return h.hexdigest()
    os.replace(tmp, dest)
  except BaseException:
    if os.path.exists(tmp):
      os.unlink(tmp)
    raise
  return None


def sweep(cache: str) -> int:
  """Removes the temporaries an interrupted run left in `cache`; returns how many."""
  removed = 0
  for root, dirs, files in os.walk(cache):
    for d in [d for d in dirs if d.startswith(DOWNLOAD)]:
      shutil.rmtree(os.path.join(root, d), ignore_errors=True)
      dirs.remove(d)
      removed += 1
    for f in files:
      if f.startswith(PARTIAL):
        os.unlink(os.path.join(root, f))
        removed += 1
  return removed


@dataclasses.dataclass
class Summary:
  """What a preparation left in the cache."""

  cache: str
  total: int = 0
  prepared: int = 0
  bytes: int = 0
  # One line per problem, each naming its package (and file) and what to do.
  errors: list[str] = dataclasses.field(default_factory=list)

  @property
  def missing(self) -> int:
    return self.total - self.prepared


def _say(line: str) -> None:
  print(line, flush=True)


def _error(line: str, summary: Summary) -> None:
  summary.errors.append(line)
  print(f'error: {line}', file=sys.stderr, flush=True)


def prepare_package(package: str, manifest: Manifest, cache: str, fetch: Fetch,
                    summary: Summary) -> None:
  """Brings the cache's copies of `package`'s listed photos up to date; one progress line."""
  photos = manifest.of(package)
  listed = manifest.versions[package]
  todo = {p.path: p for p in photos if not is_prepared(p, cache)}
  have = len(photos) - len(todo)
  fetched, seen = 0, listed
  if todo:
    with tempfile.TemporaryDirectory(prefix=f'{DOWNLOAD}{package}-', dir=cache) as folder:
      try:
        deb = fetch(package, listed, folder)
        seen = deb_version(deb)
        for path, stream in deb_files(deb, set(todo)):
          photo = todo.pop(path)
          got = install(photo, stream, cache)
          if got is None:
            fetched += 1
            continue
          if seen != listed:
            _error(f'{package}: {path}: sha256 {got[:12]}… instead of {photo.sha256[:12]}… '
                   f'(apt offered version {seen}; the list was made from {listed}); not '
                   f'copied. Fetch {package} {listed} (e.g. from snapshot.debian.org) and '
                   f'pass --deb={package}=FILE.deb.', summary)
          else:
            _error(f'{package}: {path}: sha256 {got[:12]}… instead of {photo.sha256[:12]}… '
                   f'in version {seen}, the one the list was made from; not copied. A '
                   'damaged download or mirror: run again, or pass '
                   f'--deb={package}=FILE.deb with a good copy.', summary)
        for path in todo:
          _error(f'{package}: {path} is not in the package (version {seen}; the list was '
                 f'made from {listed}); fetch {package} {listed} (e.g. from '
                 f'snapshot.debian.org) and pass --deb={package}=FILE.deb.', summary)
      except FetchError as e:
        _error(f'{package}: {e}', summary)
  done = have + fetched
  size = sum(p.bytes for p in photos if os.path.isfile(p.cached(cache)))
  summary.total += len(photos)
  summary.prepared += done
  summary.bytes += size
  state = f'{have} already there, {fetched} copied' if have else f'{fetched} copied'
  _say(f'{package} {seen}: {done} of {len(photos)} photos ({state}), {size / 1e6:.1f} MB')


def prepare(cache: str = DEFAULT_CACHE, manifest: Manifest | None = None,
            fetch: Fetch = apt_fetch) -> Summary:
  """Prepares every photo of `manifest` (default: the shipped one) in `cache`.

  Package by package (one progress line each); a package that fails leaves
  the others unaffected. Raises UserError only when `cache` cannot be made.
  """
  manifest = manifest or load_manifest()
  cache = os.path.expanduser(cache)
  try:
    os.makedirs(cache, exist_ok=True)
  except OSError as e:
    raise UserError(f'--cache={cache}: cannot create the folder ({e.strerror}); give a '
                    'writable one.') from e
  if sweep(cache):
    _say(f'{cache}: removed the temporary files of {INTERRUPTED}.')
  summary = Summary(cache)
  for package in manifest.versions:
    prepare_package(package, manifest, cache, fetch, summary)
  line = (f'{cache}: {summary.prepared} of {summary.total} photos, '
          f'{summary.bytes / 1e6:.1f} MB')
  if summary.missing:
    line += (f'; {summary.missing} missing (see the errors above; a new run keeps the '
             'photos already there)')
  _say(line + '.')
  return summary


def prepared_files(cache: str, manifest: Manifest | None = None,
                   what: str = 'data.photo_cache') -> list[str]:
  """The paths of the manifest's photos that `cache` holds intact, in manifest order.

  A missing or unverified photo is left out, all of them named in one warning
  with the command that fetches them again; none at all is a UserError.
  """
  manifest = manifest or load_manifest()
  path = os.path.expanduser(cache)
  found, absent, corrupt = [], [], []
  for photo in manifest.photos:
    file = photo.cached(path)
    if not os.path.isfile(file):
      absent.append(file)
    elif os.path.getsize(file) != photo.bytes or sha256(file) != photo.sha256:
      corrupt.append(file)
    else:
      found.append(file)
  command = f'python -m ce_jax.corpus --cache={cache}'
  if not found:
    raise UserError(f"{what}='{cache}' holds none of the corpus's {len(manifest.photos)} "
                    f'photos: run `{command}` first (downloads ~190 MB of Debian packages, '
                    'keeps ~32 MB).')
  if absent:
    logging.warning('%s: %d of %d photos are not there (prepared by `%s`): %s', what,
                    len(absent), len(manifest.photos), command, ', '.join(absent))
  if corrupt:
    logging.warning('%s: %d photos differ from their checksum and are left out (`%s` '
                    'fetches them again): %s', what, len(corrupt), command, ', '.join(corrupt))
  return found


# ----------------------------------------------------------------------------
# Command line
# ----------------------------------------------------------------------------


def _parse_debs(values: list[str]) -> dict[str, str]:
  debs = {}
  for value in values:
    package, sep, file = value.partition('=')
    if not sep or not package or not file:
      raise UserError(f'--deb={value}: expected PACKAGE=FILE.deb.')
    debs[package] = os.path.expanduser(file)
  return debs


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {" ".join(argv[1:])}')
  values = flags.FLAGS
  try:
    manifest = load_manifest(values.manifest)
    debs = _parse_debs(values.deb or [])
    unknown = sorted(set(debs) - set(manifest.versions))
    if unknown:
      raise UserError(f'--deb: {", ".join(unknown)} is not a package of the manifest '
                      f'(expected one of {", ".join(manifest.versions)}).')
    summary = prepare(values.cache, manifest, fetch_with(debs))
  except UserError as e:
    cli.fail(str(e))
  sys.exit(1 if summary.missing else 0)


def define_flags() -> None:
  """Command-line flags (defined only when run as a program)."""
  flags.DEFINE_string('cache', DEFAULT_CACHE, 'Where the photos go (data.photo_cache reads '
                      'them from there).')
  flags.DEFINE_multi_string('deb', None, 'PACKAGE=FILE.deb: use this .deb instead of '
                            '`apt-get download PACKAGE` (repeatable).')
  flags.DEFINE_string('manifest', None, 'The list of photos to prepare (default: the one that '
                      'ships with ce_jax, ce_jax/data/photo_corpus.json).')


if __name__ == '__main__':
  define_flags()
  app.run(main, flags_parser=cli.parse_flags)
