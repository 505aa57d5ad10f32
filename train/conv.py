"""A 2-D convolution layer with a switchable implementation.

XLA:CPU computes the weight gradient of a convolution far more slowly than the
same contraction written as a matrix product. `Conv` keeps the parameter layout
of `flax.linen.Conv` (``kernel`` of shape (kh, kw, in, out), optional ``bias``)
and offers two implementations of the same function:

* ``'xla'``: `jax.lax.conv_general_dilated`, the right choice on GPU and TPU;
* ``'im2col'``: gather the kh * kw shifted views of the padded input into one
  (B, H', W', kh * kw * in) tensor and multiply by the reshaped kernel. Its
  backward pass is two matrix products, which XLA:CPU runs fast.

Both give the same outputs up to float32 rounding, so parameters trained with
one can be evaluated with the other.
"""

from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

__all__ = ['CONV_IMPLEMENTATIONS', 'Conv', 'im2col_conv', 'same_padding']

CONV_IMPLEMENTATIONS = ('xla', 'im2col')

Padding = str | Sequence[tuple[int, int]]


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
  """Returns the (low, high) padding XLA uses for 'SAME' along one axis."""
  out = -(-size // stride)
  total = max((out - 1) * stride + kernel - size, 0)
  return total // 2, total - total // 2


def _explicit_padding(padding: Padding, spatial: Sequence[int],
                      kernel: Sequence[int],
                      strides: Sequence[int]) -> list[tuple[int, int]]:
  if isinstance(padding, str):
    if padding == 'SAME':
      return [same_padding(n, k, s)
              for n, k, s in zip(spatial, kernel, strides)]
    if padding == 'VALID':
      return [(0, 0)] * len(spatial)
    raise ValueError(
        f"padding must be 'SAME', 'VALID' or pairs, got {padding!r}")
  return [tuple(p) for p in padding]


def im2col_conv(inputs: jax.Array, kernel: jax.Array,
                strides: Sequence[int] = (1, 1),
                padding: Padding = 'SAME') -> jax.Array:
  """NHWC convolution as one matrix product over gathered patches.

  Args:
    inputs: (B, H, W, C_in) array.
    kernel: (kh, kw, C_in, C_out) array, the `flax.linen.Conv` layout.
    strides: (sh, sw).
    padding: 'SAME', 'VALID' or ((top, bottom), (left, right)).

  Returns:
    (B, H', W', C_out), equal to `lax.conv_general_dilated` with NHWC/HWIO
    dimension numbers up to float rounding.
  """
  kh, kw, c_in, c_out = kernel.shape
  sh, sw = strides
  (top, bottom), (left, right) = _explicit_padding(
      padding, inputs.shape[1:3], (kh, kw), strides)
  padded = jnp.pad(inputs, ((0, 0), (top, bottom), (left, right), (0, 0)))
  out_h = (padded.shape[1] - kh) // sh + 1
  out_w = (padded.shape[2] - kw) // sw + 1
  # Patch order (i, j, c) matches kernel.reshape(kh * kw * c_in, c_out).
  views = [
      padded[:, i:i + (out_h - 1) * sh + 1:sh, j:j + (out_w - 1) * sw + 1:sw, :]
      for i in range(kh) for j in range(kw)
  ]
  columns = views[0] if len(views) == 1 else jnp.concatenate(views, axis=-1)
  return jnp.dot(columns, kernel.reshape(kh * kw * c_in, c_out))


class Conv(nn.Module):
  """2-D NHWC convolution with an ``implementation`` switch.

  Attributes:
    features: number of output channels.
    kernel_size: (kh, kw).
    strides: (sh, sw).
    padding: 'SAME', 'VALID' or explicit ((top, bottom), (left, right)).
    use_bias: whether to add a learned bias.
    implementation: 'xla' (lax.conv_general_dilated) or 'im2col' (matmul).
    dtype: computation dtype (None: that of the inputs); parameters stay
      float32.
    kernel_init: initializer of the (kh, kw, in, out) kernel.
  """
  features: int
  kernel_size: Sequence[int] = (3, 3)
  strides: Sequence[int] = (1, 1)
  padding: Padding = 'SAME'
  use_bias: bool = False
  implementation: str = 'xla'
  dtype: Any = None
  kernel_init: Any = nn.initializers.variance_scaling(2.0, 'fan_out', 'normal')

  @nn.compact
  def __call__(self, inputs: jax.Array) -> jax.Array:
    if self.implementation not in CONV_IMPLEMENTATIONS:
      raise ValueError(
          f'unknown conv implementation {self.implementation!r}: expected one '
          f'of {CONV_IMPLEMENTATIONS}')
    kernel_shape = (*self.kernel_size, inputs.shape[-1], self.features)
    kernel = self.param('kernel', self.kernel_init, kernel_shape, jnp.float32)
    dtype = self.dtype or inputs.dtype
    inputs = inputs.astype(dtype)
    kernel = kernel.astype(dtype)
    strides = tuple(self.strides)
    if self.implementation == 'xla':
      padding = (self.padding if isinstance(self.padding, str)
                 else [tuple(p) for p in self.padding])
      outputs = jax.lax.conv_general_dilated(
          inputs, kernel, window_strides=strides, padding=padding,
          dimension_numbers=('NHWC', 'HWIO', 'NHWC'))
    else:
      outputs = im2col_conv(inputs, kernel, strides, self.padding)
    if self.use_bias:
      bias = self.param('bias', nn.initializers.zeros, (self.features,),
                        jnp.float32)
      outputs = outputs + bias.astype(dtype)
    return outputs
