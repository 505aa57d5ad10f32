"""Sampling the mixing ratio λ ~ Beta(α, α)."""

import jax
import jax.numpy as jnp

__all__ = ["sample_lam"]


def sample_lam(key: jax.Array, alpha: float) -> jax.Array:
  """Draws one λ ~ Beta(alpha, alpha) as a float32 scalar.

  Beta(1, 1) is the uniform distribution; it is drawn as such, which is exact
  and avoids the rejection loop of the Gamma sampler.

  Args:
    key: a PRNG key.
    alpha: the Beta concentration, > 0 (a Python float, or a traced scalar).

  Returns:
    A float32 scalar in [0, 1].

  Example:
    >>> import jax
    >>> lam = sample_lam(jax.random.key(0), 1.0)
    >>> bool(0.0 <= lam <= 1.0)
    True
  """
  if isinstance(alpha, (int, float)) and alpha == 1.0:
    return jax.random.uniform(key, (), jnp.float32)
  return jax.random.beta(key, alpha, alpha, (), jnp.float32)
