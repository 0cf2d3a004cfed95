"""Mustaches on CelebA: the faces with the Mustache attribute, the upper lip masked.

CelebA labels 8,417 faces Mustache, about 4 % of each split. Each
aligned 178×218 face is cropped to its central 178×178 square and resized to
128×128. The hole is a box over the upper lip, from the nose tip to the mouth
corners and between the corners plus 20 % margins (`masks.mustache`), found
from the face's own landmarks; a 4-px band around it weighs 10× in the L2
loss. The generator predicts the whole image (`model.output='full'`), the
hole is pasted into the photo and the discriminator judges the whole
composite. Everything else is the paper's: λ_rec 0.999, λ_adv 0.001, Adam
β1 0.5, D lr 2e-4, G lr 2e-3, batch 64, mean-pixel fill.

Get CelebA first (README, "CelebA and the mustache task"): either
`tfds build celeb_a` (automatic download) or the official files in a folder
passed as `--config.data.celeba_dir=DIR`. Then:

  CPU (a smoke test; add the folder flag if you use one):
    python -m ce_jax.main --config=configs/mustache.py --workdir=runs/mustache_cpu \\
      --config.train.batch_size=8 --config.train.num_steps=200 \\
      --config.data.celeba_dir=/data/celeba
  One GPU:
    python -m ce_jax.main --config=configs/mustache.py --workdir=runs/mustache \\
      --config.model.dtype=bfloat16 --config.data.celeba_dir=/data/celeba
  TPU VM (CelebA prepared with `tfds build celeb_a --data_dir=gs://BUCKET/tfds`):
    CONFIG=configs/mustache.py launch/tpu_vm.sh train --config.model.dtype=bfloat16 \\
      --config.train.batch_size=256 --config.data.tfds_data_dir=gs://BUCKET/tfds

Start-up logs how many faces each split keeps (about 4 %: some 6,800 train
and 800 validation faces). Not yet measured on the full data: on this
schedule each face is seen about 100 times (10k steps × 64 / 6.8k), so watch
`eval_hole_psnr` (validation faces, their own mustache boxes) for the point
where it stops rising. The L2 term alone gives smooth skin-coloured fills;
hair-like texture has to come from the adversarial term. Sample grids
(masked | completion | original) go to `<workdir>/samples/`.
"""

import ml_collections

from configs import default


def get_config() -> ml_collections.ConfigDict:
  config = default.get_config('adversarial,celeba,mask_kinds')
  # Reconstruction alone for the first 2,000 steps, then the adversarial term joins.
  config.loss.rec_only_steps = 2000
  config.data.source = 'celeba'
  config.data.celeba_attribute = 'Mustache'
  config.data.celeba_keep = 'true'
  config.data.image_size = 128
  config.data.num_eval_examples = 256
  config.mask.kind = 'mustache'
  config.mask.mustache_margin_x = 0.2
  config.mask.mustache_margin_y = 0.2
  config.mask.overlap = 4
  config.mask.overlap_weight = 10.0
  config.model.output = 'full'
  # Plain L2: the adversarial weights are sized for it (configs/default.py, loss.rec).
  config.loss.rec = 'l2'
  config.train.batch_size = 64
  config.train.num_steps = 10_000
  config.train.log_every = 50
  config.train.eval_every = 1000
  config.train.sample_every = 500
  config.train.checkpoint_every = 1000
  return config
