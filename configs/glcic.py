"""GLCIC (Iizuka, Simo-Serra and Ishikawa, 2017) on the embedded photos, free-form masks.

The completion network (convolutions to 1/4 resolution, four dilated 3×3
convolutions, up-convolutions back) fills the whole 128×128 image; the
global + local discriminator sees the composite and a 64×64 patch around the
hole. The paper's schedule: reconstruction (L2) only, then D only, then both
with adversarial weight 4e-4. Same masks, data and step budget as
`configs/freeform.py` and `configs/deepfill2.py`, so the three compare.

  python -m ce_jax.main --config=configs/glcic.py --workdir=runs/glcic
  python -m ce_jax.evaluate --config=configs/glcic.py --workdir=runs/glcic
"""

import ml_collections

from configs import freeform


def get_config() -> ml_collections.ConfigDict:
  config = freeform.get_config()
  config.model.family = 'glcic'
  # 64 in the paper; 16 keeps a 128×128 step on a 2-core CPU near the Context Encoder's.
  config.model.gen_features = 16
  config.model.disc_features = 16
  config.model.local_size = 64
  config.loss.rec = 'l2'
  config.loss.gan = 'bce'
  config.loss.rec_weight = 1.0
  config.loss.adv_weight = 4e-4
  # The default's reconstruction-only steps (the paper's T_C), then D alone
  # for a tenth of them (T_C : T_D = 9 : 1 in the paper), then both.
  config.loss.d_only_steps = config.loss.rec_only_steps // 10
  return config
