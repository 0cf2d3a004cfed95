"""All of CelebA, 64×64 center hole in 128×128: the setting of published CelebA numbers.

Every aligned face (162,770 train, 19,867 validation) is cropped to its central
178×178 square and resized to 128×128; the released Context Encoder fills the
central 64×64 region (a 56×56 hole plus the 4-px band weighted 10×), and the
discriminator sees that patch. All hyperparameters are the paper's (see
configs/paper.py).

Published figures for this setting measure the hole only (hole PSNR/SSIM on
the CelebA test split): 16.31 dB / 0.581 for L2 + adversarial and 19.46 dB /
0.687 for L2 alone (xyfJASON/Repro-Image-Inpainting). `eval_hole_psnr` here
is the same quantity on `data.num_eval_examples` validation faces.

  python -m ce_jax.main --config=configs/celeba_center.py --workdir=runs/celeba_center \\
    --config.model.dtype=bfloat16 [--config.data.celeba_dir=/data/celeba]

The tfds source holds the train split's JPEGs in memory (about 1.2 GB on
every host); use `data.celeba_dir` to read files from disk instead.
"""

import ml_collections

from configs import default, paper


def get_config() -> ml_collections.ConfigDict:
  config = default.celeba(paper.get_config())
  config.data.source = 'celeba'
  config.data.celeba_keep = 'all'
  config.data.image_size = 128
  config.data.num_eval_examples = 512
  config.mask.kind = 'center'
  config.mask.hole_size = 64
  config.model.output = 'center'
  config.train.batch_size = 64
  config.train.num_steps = 50_000
  config.train.log_every = 100
  config.train.eval_every = 2500
  config.train.sample_every = 1000
  config.train.checkpoint_every = 2500
  return config
