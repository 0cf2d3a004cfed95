"""ce_jax: Context Encoder image inpainting in JAX/Flax."""

__version__ = '0.1.0'
