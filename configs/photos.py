"""The default model and recipe, trained on the photo corpus instead of the embedded photos.

The corpus is 90 photographs from four Debian packages, listed with their
licences in ce_jax/data/photo_corpus.json: Scratch's 53 backgrounds
(480×360), 14 Lomiri, 12 MATE and 11 Plasma wallpapers (up to 5312×2988),
against the embedded default's 16 photos. Everything else is
configs/default.py's, and eval uses the same held-out embedded crops
(coffee, rocket, flower: `input_pipeline.EMBEDDED_EVAL`), so `eval_hole_psnr`
compares with the default's directly. OpenCV's documentation photos stay out
of it, the outside held-out set of the README's results.

Prepare the photos once (downloads ~190 MB of packages, keeps ~32 MB in
~/.cache/ce_jax/photos; `--cache=DIR` elsewhere, then pass
`--config.data.photo_cache=DIR`):

  python -m ce_jax.corpus

then train:

  python -m ce_jax.main --config=configs/photos.py --workdir=runs/photos

Start-up loads every photo once, resized to the shorter side
`data.resize_shorter` (a few seconds). Not yet measured.
"""

import ml_collections

from ce_jax import corpus
from configs import default


def add_photo_fields(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """Adds `data.source='photos'`'s field: the folder `python -m ce_jax.corpus` prepared."""
  config.data.photo_cache = corpus.DEFAULT_CACHE
  return config


def get_config() -> ml_collections.ConfigDict:
  config = add_photo_fields(default.get_config())
  config.data.source = 'photos'
  return config
