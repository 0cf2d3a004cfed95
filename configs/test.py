"""Tiny configuration for tests: 32×32 images, narrow networks, a few steps.

  python -m ce_jax.main --config=configs/test.py --workdir=/tmp/ce_test
  python -m ce_jax.main --config=configs/test.py:deepfill2 --workdir=/tmp/ce_test_df

After the colon, a model family ('glcic' or 'deepfill2'; default the Context
Encoder) with its loss kinds, full-image output and free-form masks.
"""

import ml_collections

from configs import default


def get_config(family: str = 'context_encoder') -> ml_collections.ConfigDict:
  config = default.get_config(','.join(default.GROUPS))
  config.data.image_size = 32
  config.data.resize_shorter = 48
  config.data.num_eval_examples = 8
  # Plain fixed-size crops (the tests that need augmentation turn it on).
  default.plain_crops(config)
  config.mask.hole_size = 16
  config.mask.overlap = 2
  config.mask.hole_range = (4, 16)
  # The joint phase from the first step, so that every short test runs D and G.
  config.loss.rec_only_steps = 0
  config.model.bottleneck = 'conv'
  config.model.bottleneck_dim = 32
  # The paper's input and a constant rate: the recipe tests turn the others on.
  config.model.color_offset = 'none'
  config.optim.lr_schedule = 'constant'
  config.loss.rec = 'l2'
  config.model.gen_features = 8
  config.model.disc_features = 8
  config.train.batch_size = 8
  config.train.num_steps = 4
  config.train.log_every = 2
  config.train.eval_every = 4
  config.train.sample_every = 4
  config.train.checkpoint_every = 2
  config.train.num_samples = 4
  if family != 'context_encoder':
    config.model.family = family
    config.model.output = 'full'
    config.mask.kind = 'freeform'
  if family == 'deepfill2':
    config.model.gen_features = 4
    config.loss.rec, config.loss.gan = 'l1', 'hinge'
  return config
