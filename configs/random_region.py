"""Random-region masks with full-image output (the paper's general setting).

The hole is a smooth random blob covering 20–30 % of each 128×128 crop; the
generator predicts the whole image, on reconstruction alone like the
default (the paper's discriminator: `default.adversarial(config)`).

  python -m ce_jax.main --config=configs/random_region.py --workdir=/tmp/ce_region
"""

import ml_collections

from configs import default


def get_config() -> ml_collections.ConfigDict:
  config = default.get_config('mask_kinds')
  config.mask.kind = 'random_region'
  config.mask.region_coverage = (0.2, 0.3)
  config.model.output = 'full'
  # Plain L2: the adversarial weights are sized for it (configs/default.py, loss.rec).
  config.loss.rec = 'l2'
  return config
