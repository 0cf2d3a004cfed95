"""Free-form masks (DeepFill v2 style) with full-image output: fills holes of any shape.

Each 128×128 crop loses a random box plus one to three random brush strokes
(at most half of the image); the generator predicts the whole image and the
discriminator sees the whole composited image. This is the model to use with
`ce_jax.inpaint` on masks drawn by hand.

  python -m ce_jax.main --config=configs/freeform.py --workdir=runs/freeform
  python -m ce_jax.evaluate --config=configs/freeform.py --workdir=runs/freeform
"""

import ml_collections

from configs import default


def get_config() -> ml_collections.ConfigDict:
  config = default.get_config('adversarial,mask_kinds')
  config.mask.kind = 'freeform'
  config.model.output = 'full'
  # Half the steps on reconstruction alone, then the adversarial term joins.
  config.loss.rec_only_steps = config.train.num_steps // 2
  # Plain L2, as measured in docs/families.md (the joint phase's adv_weight
  # is sized for it).
  config.loss.rec = 'l2'
  return config
