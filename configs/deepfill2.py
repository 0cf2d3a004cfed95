"""DeepFill v2 (Yu et al., 2019) without contextual attention, free-form masks.

Gated convolutions (ELU features × sigmoid gates) in a coarse and a refine
stage, both with L1 on the hole; the SN-PatchGAN discriminator
(spectrally normalised 5×5 stride-2 convolutions on image + mask, every output
a logit) with the hinge loss. Same masks, data and step budget as
`configs/freeform.py` and `configs/glcic.py`, so the three compare.

  python -m ce_jax.main --config=configs/deepfill2.py --workdir=runs/deepfill2
  python -m ce_jax.evaluate --config=configs/deepfill2.py --workdir=runs/deepfill2
"""

import ml_collections

from configs import freeform


def get_config() -> ml_collections.ConfigDict:
  config = freeform.get_config()
  config.model.family = 'deepfill2'
  # 48 and 64 in the paper (256×256); these keep a 128×128 step on a 2-core
  # CPU near the Context Encoder's.
  config.model.gen_features = 12
  config.model.disc_features = 16
  config.loss.rec = 'l1'
  config.loss.gan = 'hinge'
  # Provisional: chosen for this scale, not tuned; reconstruction first as in
  # configs/default.py.
  config.loss.rec_weight = 1.0
  config.loss.adv_weight = 0.01
  return config
