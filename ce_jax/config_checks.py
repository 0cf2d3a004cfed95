"""Every check of a config's fields, in one place.

`check(config)` runs once when a program loads a config: training
(`train.train_and_evaluate`) and every program that takes a trained run
(`run_config.for_run`: evaluate, inpaint, export, the demo). Each field is
checked here and nowhere else; an error names the field and what it expected.
Checks of the data themselves (files, folders, CelebA's presence) stay with
the code that reads them.
"""

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections

from ce_jax import checkpointing, completion, losses, masks, models, train_state
from ce_jax.errors import UserError

DATA_SOURCES = ('embedded', 'photos', 'folder', 'celeba')
UPSAMPLE = ('auto', 'transpose', 'subpixel')
CONV_REWRITES = ('auto', 'off')
ENCODERS = ('dcgan', 'alexnet')
BOTTLENECKS = ('conv', 'channelwise_fc')
OUTPUTS = ('center', 'full')
DTYPES = ('float32', 'bfloat16', 'float16')
CELEBA_SPLITS = ('train', 'validation', 'test')
CELEBA_KEEP = ('true', 'false', 'all')


def _one_of(field: str, value: Any, choices: Sequence[Any], hint: str = '') -> None:
  if value not in choices:
    raise UserError(f'{field}={value!r}: expected one of {tuple(choices)}{hint}.')


def _positive(field: str, value: Any, what: str = 'a positive integer') -> None:
  if not value > 0:
    raise UserError(f'{field}={value}: expected {what}.')


def _range(field: str, value: Sequence[float], lo: float, hi: float | None,
           what: str) -> tuple[float, float]:
  """A `(low, high)` pair with `lo <= low <= high (<= hi)`."""
  try:
    a, b = value
  except (TypeError, ValueError):
    raise UserError(f'{field}={value!r}: expected a pair (low, high); {what}.') from None
  if not (lo <= a <= b and (hi is None or b <= hi)):
    raise UserError(f'{field}={tuple(value)}: expected {what}.')
  return a, b


# A setting and the fields it needs (the default config leaves them out: it
# holds only the fields that act in it), with the config that has them.
NEEDS = (
    ('data.source', 'photos', ('data.photo_cache', 'data.add_embedded'), 'configs/photos.py'),
    ('data.source', 'folder', ('data.folder', 'data.eval_folder', 'data.eval_fraction'),
     'folder'),
    ('data.source', 'celeba', ('data.celeba_dir', 'data.tfds_data_dir', 'data.celeba_download',
                               'data.celeba_attribute', 'data.celeba_keep', 'data.crop_offset',
                               'data.train_split', 'data.eval_split'), 'celeba'),
    ('mask.kind', 'random_region', ('mask.region_coverage', 'mask.noise_size'), 'mask_kinds'),
    ('mask.kind', 'freeform', ('mask.freeform_strokes', 'mask.freeform_vertices',
                               'mask.freeform_width', 'mask.freeform_mean_angle',
                               'mask.freeform_angle_range', 'mask.freeform_box',
                               'mask.freeform_max_coverage'), 'mask_kinds'),
    ('mask.kind', 'mustache', ('mask.mustache_margin_x', 'mask.mustache_margin_y'),
     'mask_kinds'),
    ('model.bottleneck', 'conv', ('model.bottleneck_dim',), 'model_options'),
    ('model.family', 'glcic', ('model.local_size',), 'model_options'),
)


def _get(config: ml_collections.ConfigDict, field: str) -> Any:
  node = config
  for part in field.split('.'):
    node = node[part]
  return node


def _check_present(config: ml_collections.ConfigDict) -> None:
  names = flat_names(config)
  for field, value, needs, group in NEEDS:
    if field in names and _get(config, field) == value:
      missing = [n for n in needs if n not in names]
      if missing:
        where = group if group.endswith('.py') else f'configs/default.py:{group}'
        raise UserError(f'{field}={value!r} needs {", ".join(missing)}, which this config lacks: '
                        f'use --config={where} (or add them to your config file).')


def check(config: ml_collections.ConfigDict) -> None:
  """Raises `UserError` naming the first field of `config` that cannot work."""
  _check_present(config)
  _check_train(config)
  _check_optim(config)
  _check_loss(config)
  _check_model(config)
  _check_mask(config)
  _check_data(config)


def _check_train(config: ml_collections.ConfigDict) -> None:
  t = config.train
  for field in ('batch_size', 'num_steps', 'log_every', 'eval_every', 'sample_every',
                'checkpoint_every', 'keep_checkpoints'):
    _positive(f'train.{field}', t[field])
  if not 0 <= t.ema_decay < 1:
    raise UserError(f'train.ema_decay={t.ema_decay}: expected 0 (off) or a decay in (0, 1), '
                    'e.g. 0.999.')
  _one_of('train.best_metric', t.best_metric, tuple(checkpointing.BEST_MODES))


def _check_optim(config: ml_collections.ConfigDict) -> None:
  o = config.optim
  for field in ('g_lr', 'd_lr'):
    if field in o and not 0 < o[field] < float('inf'):
      raise UserError(f'optim.{field}={o[field]}: expected a positive learning rate, e.g. 2e-4.')
  _one_of('optim.lr_schedule', o.lr_schedule, train_state.LR_SCHEDULES)
  if not 0 <= o.final_lr_fraction <= 1:
    raise UserError(f'optim.final_lr_fraction={o.final_lr_fraction}: expected a fraction of '
                    'the learning rate in [0, 1].')


def _check_loss(config: ml_collections.ConfigDict) -> None:
  loss = config.loss
  _one_of('loss.rec', loss.rec, losses.RECONSTRUCTION)
  if loss.perceptual_weight < 0:
    raise UserError(f'loss.perceptual_weight={loss.perceptual_weight}: expected ≥ 0 (0 = off).')
  if not train_state.adversarial(config):
    return
  missing = [f for f in train_state.ADVERSARIAL_FIELDS if f not in flat_names(config)]
  if missing:
    raise UserError(f'loss.gan={loss.gan!r} needs {", ".join(missing)}, which this config lacks: '
                    'load it as --config=configs/default.py:adversarial (or add them to your '
                    'config file).')
  _one_of('loss.gan', loss.gan, losses.GAN)
  for field in ('rec_only_steps', 'd_only_steps'):
    if loss[field] < 0:
      raise UserError(f'loss.{field}={loss[field]}: expected a non-negative integer.')
  for field in ('rec_weight', 'adv_weight'):
    if loss[field] < 0:
      raise UserError(f'loss.{field}={loss[field]}: expected a weight ≥ 0.')


def _check_model(config: ml_collections.ConfigDict) -> None:
  m, size = config.model, config.data.image_size
  _one_of('model.family', m.family, models.FAMILIES)
  _one_of('model.output', m.output, OUTPUTS)
  _one_of('model.dtype', m.dtype, DTYPES)
  _one_of('model.upsample', m.upsample, UPSAMPLE, " ('auto': the faster for the backend)")
  _one_of('model.conv_rewrites', m.conv_rewrites, CONV_REWRITES)
  _one_of('model.color_offset', m.color_offset, completion.COLOR_OFFSETS)
  _positive('model.offset_sigma', m.offset_sigma, 'a positive blur radius in pixels, e.g. 8')
  _positive('model.gen_features', m.gen_features)
  if train_state.adversarial(config):
    _positive('model.disc_features', m.disc_features)
  if m.family == 'context_encoder':
    if m.output == 'center' and config.mask.kind != 'center':
      raise UserError(f"model.output='center' predicts only the center square, but "
                      f"mask.kind='{config.mask.kind}': use model.output='full'.")
    _one_of('model.encoder', m.encoder, ENCODERS)
    _one_of('model.bottleneck', m.bottleneck, BOTTLENECKS)
    if m.encoder == 'dcgan' and (size < 8 or size & (size - 1)):
      raise UserError(f'data.image_size={size}: the dcgan networks need a power of two ≥ 8.')
    if m.skips and m.encoder != 'dcgan':
      raise UserError(f"model.skips=True needs model.encoder='dcgan' (got {m.encoder!r}).")
    return
  family = m.family
  if m.output != 'full':
    raise UserError(f"model.family='{family}' predicts the whole image: set model.output='full' "
                    f"(got '{m.output}').")
  if not m.mask_channel:
    raise UserError(f"model.family='{family}' needs the mask channel: set model.mask_channel=True.")
  if size % 4:
    raise UserError(f'data.image_size={size}: model.family={family!r} needs a multiple of 4.')
  if family == 'glcic' and not 4 <= models.local_size(config) <= size:
    raise UserError(f'model.local_size={m.local_size}: expected 0 (half the image) '
                    f'or a side in [4, data.image_size={size}].')


def _check_mask(config: ml_collections.ConfigDict) -> None:
  """`mask.kind`, then the kind's own fields, by tracing `masks.from_config` once (no compute)."""
  mask, size = config.mask, config.data.image_size
  _one_of('mask.kind', mask.kind, masks.KINDS)
  if mask.overlap < 0:
    raise UserError(f'mask.overlap={mask.overlap}: expected a band of ≥ 0 pixels.')
  if mask.kind == 'mustache':
    if config.data.source != 'celeba':
      raise UserError("mask.kind='mustache' needs face landmarks: use data.source='celeba'.")
    return
  batch = {'image': jax.ShapeDtypeStruct((1, size, size, 3), jnp.float32)}
  for training in (True, False):
    jax.eval_shape(lambda key, b, t=training: masks.from_config(mask, key, b, training=t),
                   jax.random.PRNGKey(0), batch)


def _check_data(config: ml_collections.ConfigDict) -> None:
  data = config.data
  _one_of('data.source', data.source, DATA_SOURCES)
  _positive('data.num_eval_examples', data.num_eval_examples)
  if data.source in ('embedded', 'photos', 'folder'):
    if data.scale_range and tuple(data.scale_range) != (0, 0):
      _range('data.scale_range', data.scale_range, 1e-9, 1,
             '(lo, hi) with 0 < lo ≤ hi ≤ 1 (fractions of the shorter side), or (0, 0) for '
             'fixed-size crops')
    for field in ('saturation_range', 'contrast_range'):
      if data[field]:
        _range(f'data.{field}', data[field], 0, None,
               'factors (lo, hi) with 0 ≤ lo ≤ hi; (1, 1) leaves images as they are')
    if not 0 <= data.brightness_delta <= 1:
      raise UserError(f'data.brightness_delta={data.brightness_delta}: expected a value in '
                      '[0, 1] (0 turns it off).')
  if data.source == 'photos' and not (isinstance(data.photo_cache, str)
                                      and data.photo_cache.strip()):
    raise UserError(f'data.photo_cache={data.photo_cache!r}: expected the folder that '
                    '`python -m ce_jax.corpus --cache=DIR` prepares.')
  if data.source == 'celeba':
    for field in ('train_split', 'eval_split'):
      _one_of(f'data.{field}', data[field], CELEBA_SPLITS)
    _one_of('data.celeba_keep', data.celeba_keep, CELEBA_KEEP,
            ' (faces where data.celeba_attribute is true, false, or all faces)')


def flat_names(config: ml_collections.ConfigDict, prefix: str = '') -> set[str]:
  """`{'train.batch_size', ...}`: every leaf field's dotted name."""
  out = set()
  for k, v in config.items():
    if isinstance(v, ml_collections.ConfigDict):
      out |= flat_names(v, f'{prefix}{k}.')
    else:
      out.add(f'{prefix}{k}')
  return out
