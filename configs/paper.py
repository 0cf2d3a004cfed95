"""The paper's recipe (Pathak et al., 2016, as released) on the embedded photos.

The released Context Encoder training: λ_rec 0.999, λ_adv 0.001 from the first
step, Adam β1 = 0.5, D lr 2e-4 and G lr 10× that, the fixed 56×56 hole with a
4-px overlap band weighted 10×, the live weights for eval, no augmentation
beyond random crops and flips. Use it for faithful reproduction at the paper's scale (days of
GPU on CelebA or ImageNet-size data: see configs/celeba_center.py, which takes
its recipe from here). At the embedded default's scale it does not learn to
inpaint: the generator memorises the training photos' palettes (see
configs/default.py for the measured comparison).

  python -m ce_jax.main --config=configs/paper.py --workdir=runs/paper
"""

import ml_collections

from configs import default


def get_config() -> ml_collections.ConfigDict:
  """configs/default.py's model and data with the released training recipe."""
  config = default.get_config('adversarial,model_options')
  config.model.bottleneck = 'conv'
  config.model.color_offset = 'none'
  config.optim.lr_schedule = 'constant'
  config.loss.rec = 'l2'
  config.train.num_steps = 2400
  config.optim.d_lr = 2e-4
  config.optim.g_lr = 2e-3  # 10× D's.
  config.optim.b1 = 0.5
  config.loss.rec_weight = 0.999
  config.loss.adv_weight = 0.001
  config.loss.rec_only_steps = 0
  config.loss.d_only_steps = 0
  config.train.ema_decay = 0.0
  config.mask.hole_range = (0, 0)
  config.mask.overlap_weight = 10.0
  return default.plain_crops(config)
