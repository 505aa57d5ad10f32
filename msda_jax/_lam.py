"""Sampling the mixing ratio λ ~ Beta(α, α) from two uniforms, without loops.

JAX's Beta sampler goes through Gamma rejection sampling, which compiles to
data-dependent while loops (dozens of them in a vmapped mixer). For the
symmetric Beta(α, α) there is an exact, rejection-free construction from two
uniforms, so a sample costs a fixed handful of scalar ops for every α.

Derivation (our own write-up of two classical facts):

1. Bailey's polar method for Student's t (R. W. Bailey, "Polar generation of
   random variates with the t-distribution", Mathematics of Computation
   62(206), 1994, 779-781): if (U, V) is uniform in the unit disk and
   W = U² + V², then ``T = U sqrt(ν (W^(-2/ν) - 1) / W)`` has Student's t
   law with ν degrees of freedom. In polar coordinates the squared radius W
   is Uniform(0, 1) and the angle θ is Uniform(0, 2π), independently, and
   ``U = sqrt(W) cos θ``; so no rejection is needed:
   ``T = cos θ · sqrt(ν (W^(-2/ν) - 1))``.
2. If T ~ t_ν then ``X = (1 + T / sqrt(ν + T²)) / 2 ~ Beta(ν/2, ν/2)``.

With ν = 2α this is Beta(α, α). Only cos θ enters, and cos θ has the same
law for θ ~ Uniform(0, π), so ``beta_from_uniforms`` takes W = 1 - u_radius
(in (0, 1]) and θ = π u_angle. Numerically, with ``c = cos² θ`` and
``q = (1 - c) + c W^(-1/α) = 1 + c (W^(-1/α) - 1)`` one has
``T² / (ν + T²) = 1 - 1/q``, so the smaller of X and 1 - X is

    s = (1 - sqrt(1 - 1/q)) / 2 = u / (2 (1 + sqrt(v))),  u = 1/q, v = 1 - 1/q,

written in the second form to avoid cancellation when u is small, and
X = 1 - s when cos θ > 0 (u_angle < 1/2), else s. We take
``c = sin²(π |u_angle - 1/2|)``: the argument is exact in float32, so c
keeps its relative precision near θ = π/2. The rest is in log space, since
``W^(-1/α)`` overflows float32 for small α: with ``e = -log(W) / α``,
``log(q - 1) = log c + e + log(1 - exp(-e))``, ``log q =
logaddexp(0, log(q - 1))``, ``u = exp(-log q)`` and
``v = exp(log(q - 1) - log q)``. Taking v from ``q - 1`` rather than as
``1 - u`` keeps λ accurate near 1/2, where ``sqrt`` would magnify the
rounding error of ``1 - u``.

Example:
  >>> import jax, jax.numpy as jnp
  >>> from msda_jax._lam import beta_from_uniforms, sample_lam
  >>> float(beta_from_uniforms(0.0, 0.3, 0.8))   # W = 1 gives q = 1: λ = 1/2
  0.5
  >>> lams = jax.vmap(lambda k: sample_lam(k, 0.2))(
  ...     jax.random.split(jax.random.key(0), 10000))
  >>> bool(jnp.all((lams >= 0) & (lams <= 1)))
  True
  >>> # Beta(0.2, 0.2) puts most of its mass near 0 and 1 (exactly 0.582
  >>> # of it within 0.05 of them):
  >>> round(float(jnp.mean(jnp.minimum(lams, 1 - lams) < 0.05)), 2)
  0.59
"""

import numbers

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["sample_lam", "beta_from_uniforms", "as_lam"]


def beta_from_uniforms(u_radius, u_angle, alpha) -> jax.Array:
  """λ ~ Beta(alpha, alpha) from two independent Uniform[0, 1) variables.

  Exact and rejection-free (Bailey's polar t construction, see the module
  docstring): ``W = 1 - u_radius`` in (0, 1] is the squared radius and
  ``θ = π u_angle`` the angle. Elementwise, so the inputs may be arrays of
  one shape; finite and in [0, 1] for every input in [0, 1) and every
  ``alpha > 0`` (values within float32 resolution of 0 or 1 round to them).

  Args:
    u_radius: uniform(s) in [0, 1).
    u_angle: uniform(s) in [0, 1), independent of ``u_radius``.
    alpha: the Beta concentration, > 0 (a Python float or a traced scalar).

  Returns:
    float32 λ with the broadcast shape of the inputs.

  Example:
    >>> float(beta_from_uniforms(0.0, 0.1, 0.5))   # W = 1: λ = 1/2
    0.5
  """
  u_radius = jnp.asarray(u_radius, jnp.float32)
  u_angle = jnp.asarray(u_angle, jnp.float32)
  # α below 1e-30 (where float32 λ is already a fair coin between 0 and 1)
  # is raised to it, so that e below stays finite: an α that flushes to zero
  # would give 0/0 = NaN at W = 1.
  alpha = jnp.maximum(jnp.asarray(alpha, jnp.float32), 1e-30)
  # e = -log(W) / α >= 0, so that W^(-1/α) = exp(e).
  e = -jnp.log1p(-u_radius) / alpha
  # c = cos² θ = sin²(π g) with g = |u_angle - 1/2| in [0, 1/2], which is
  # exact in float32: c keeps full relative precision near θ = π/2, where
  # cos(π u_angle) would not. The side of 1/2 is the sign of cos θ.
  log_c = 2.0 * jnp.log(jnp.sin(jnp.pi * jnp.abs(u_angle - 0.5)))
  # q - 1 = c (exp(e) - 1) in log space; log(exp(e) - 1) = e + log(1 - exp(-e))
  # is exact for small e and cannot overflow for large e (-inf at e = 0).
  log_qm1 = log_c + e + jnp.log(-jnp.expm1(-e))
  log_q = jnp.logaddexp(0.0, log_qm1)            # q = 1 + (q - 1) >= 1
  u = jnp.exp(-log_q)                            # 1/q in (0, 1]
  v = jnp.exp(log_qm1 - log_q)                   # 1 - 1/q, accurate near 0
  small = u / (2.0 * (1.0 + jnp.sqrt(v)))        # min(λ, 1 - λ) in [0, 1/2]
  return jnp.where(u_angle < 0.5, 1.0 - small, small)


def sample_lam(key: jax.Array, alpha: float) -> jax.Array:
  """Draws one λ ~ Beta(alpha, alpha) as a float32 scalar.

  Beta(1, 1) is the uniform distribution; for a Python ``alpha == 1`` it is
  drawn as ``jax.random.uniform(key, ())``. Any other ``alpha`` (or a traced
  one, even if it equals 1) draws ``u = jax.random.uniform(key, (2,))`` and
  returns ``beta_from_uniforms(u[0], u[1], alpha)``: exact, one threefry
  call, no rejection loop.

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
    >>> lam = sample_lam(jax.random.key(0), 0.8)
    >>> bool(0.0 <= lam <= 1.0)
    True
  """
  if isinstance(alpha, (int, float)) and alpha == 1.0:
    return jax.random.uniform(key, (), jnp.float32)
  u = jax.random.uniform(key, (2,), jnp.float32)
  return beta_from_uniforms(u[0], u[1], alpha)


def as_lam(lam) -> jax.Array:
  """λ as float32; a host scalar outside [0, 1] is an error, a traced one is clipped.

  Example:
    >>> float(as_lam(0.25))
    0.25
  """
  if isinstance(lam, (numbers.Real, np.number)) and not 0.0 <= lam <= 1.0:
    raise ValueError(f"lam must be in [0, 1]; got {lam!r}")
  return jnp.clip(jnp.asarray(lam, jnp.float32), 0.0, 1.0)
