"""Pure loss functions (keyword-only arguments): reconstruction, perceptual and adversarial.

Discriminator logits may have any shape `[B, ...]` (one per image, or one per
patch for SN-PatchGAN); every loss averages over all of them.
"""

from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import optax

from ce_jax import perceptual

RECONSTRUCTION = ('l2', 'l1', 'log_l2')
LOG_L2_EPS = 1e-4
GAN = ('bce', 'hinge')


def reconstruction_loss(*, target: jax.Array, prediction: jax.Array, weight: jax.Array,
                        kind: str = 'l2') -> jax.Array:
  """Weighted masked L2 (or L1): Σ W ⊙ (x − G)² / (Σ W · C), |x − G| for 'l1'.

  `weight` is the mask times the overlap-band weights (`masks.Masks.weight`):
  0 outside the hole and its band, so the gradient vanishes there. Dividing by
  the total weight makes the value independent of batch size and hole size.

  'log_l2' is the batch mean of log(each image's weighted L2 + ε), ε =
  `LOG_L2_EPS`: minimising it maximises the mean of per-image PSNRs, so an
  image whose fill is already close (a flat sky) counts as much as a hard
  one, where plain L2 lets the hard images' large errors drown its small ones.

  Args:
    target: `[B, H, W, C]` float32 in [-1, 1].
    prediction: `[B, H, W, C]` float32 in [-1, 1].
    weight: `[B, H, W, 1]` float32 ≥ 0.
    kind: 'l2' (the Context Encoder's; GLCIC's MSE), 'l1' (DeepFill's) or 'log_l2'.
  Returns:
    Scalar float32.
  """
  if kind not in RECONSTRUCTION:
    raise ValueError(f'kind={kind!r}: expected one of {RECONSTRUCTION}.')
  channels = target.shape[-1]
  diff = target.astype(jnp.float32) - prediction.astype(jnp.float32)
  err = jnp.abs(diff) if kind == 'l1' else jnp.square(diff)
  axes = tuple(range(1, target.ndim))
  errors, weights = jnp.sum(weight * err, axis=axes), jnp.sum(weight, axis=axes) * channels
  if kind == 'log_l2':
    return jnp.mean(jnp.log(errors / jnp.maximum(weights, 1e-8) + LOG_L2_EPS))
  return jnp.sum(errors) / jnp.maximum(jnp.sum(weights), 1e-8)


def perceptual_loss(*, features: Callable[[jax.Array], Sequence[jax.Array]], target: jax.Array,
                    prediction: jax.Array) -> jax.Array:
  """Feature distance: Σ_layers mean over positions of ‖n(φ_l(x)) − n(φ_l(G))‖², batch mean.

  `perceptual.distance` without weights: n scales each position's feature
  vector to unit length (as LPIPS does, but with every channel weighted
  alike), so each layer adds at most 4 and the loss does not depend on the
  features' scale. The target's features carry no gradient.

  Args:
    features: image `[B, H, W, 3]` in [-1, 1] → feature maps `[B, h, w, C]`,
      e.g. `functools.partial(perceptual.features, vgg16_params)` (frozen).
    target: `[B, H, W, 3]` float32 in [-1, 1].
    prediction: same shape and range.
  Returns:
    Scalar float32.
  """
  real = [jax.lax.stop_gradient(f) for f in features(target.astype(jnp.float32))]
  fake = features(prediction.astype(jnp.float32))
  return jnp.mean(perceptual.distance(real, fake))


def _check_gan(kind: str) -> None:
  if kind not in GAN:
    raise ValueError(f'kind={kind!r}: expected one of {GAN}.')


def discriminator_loss(*, real_logit: jax.Array, fake_logit: jax.Array,
                       kind: str = 'bce') -> jax.Array:
  """D's loss on float32 logits `[B, ...]`, each term averaged over all logits.

  'bce': binary cross-entropy, real → 1, fake → 0.
  'hinge': mean(relu(1 − real)) + mean(relu(1 + fake)) (SN-PatchGAN, DeepFill v2).
  """
  _check_gan(kind)
  if kind == 'hinge':
    return jnp.mean(jax.nn.relu(1.0 - real_logit)) + jnp.mean(jax.nn.relu(1.0 + fake_logit))
  real = optax.sigmoid_binary_cross_entropy(real_logit, jnp.ones_like(real_logit))
  fake = optax.sigmoid_binary_cross_entropy(fake_logit, jnp.zeros_like(fake_logit))
  return jnp.mean(real) + jnp.mean(fake)


def generator_adversarial_loss(*, fake_logit: jax.Array, kind: str = 'bce') -> jax.Array:
  """G's adversarial loss on D's logits `[B, ...]` for its completions.

  'bce': non-saturating, BCE of the fake logits against 1. 'hinge': −mean(fake).
  """
  _check_gan(kind)
  if kind == 'hinge':
    return -jnp.mean(fake_logit)
  return jnp.mean(optax.sigmoid_binary_cross_entropy(fake_logit, jnp.ones_like(fake_logit)))


def joint_loss(*, rec: jax.Array, adv: jax.Array, rec_weight: float,
               adv_weight: float) -> jax.Array:
  """L = λ_rec·L_rec + λ_adv·L_adv."""
  return rec_weight * rec + adv_weight * adv
