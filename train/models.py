"""Classification networks for the training loop (Flax linen).

Every model takes NHWC float images and ``train`` (batch statistics vs running
averages) and returns float32 logits. Convolutions go through `train.conv.Conv`,
so ``conv='im2col'`` switches the whole network to the matmul formulation that
XLA:CPU differentiates quickly; ``conv='xla'`` (the default) is right for GPU
and TPU. ``width`` scales every channel count, which the smoke configs use to
make the real architectures cheap enough for CPU tests.
"""

import functools
from typing import Any, Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from train import conv as conv_lib

__all__ = [
    'MODEL_NAMES', 'PreActResNet', 'ResNet', 'SmallCNN', 'WideResNet',
    'create_model'
]


def _batch_norm(train: bool, axis_name: str | None, dtype: Any,
                scale_init: Callable = nn.initializers.ones,
                name: str | None = None) -> nn.BatchNorm:
  # PyTorch's defaults (momentum 0.1 there is 0.9 here), which the CIFAR and
  # ImageNet protocols were tuned with.
  return nn.BatchNorm(use_running_average=not train, momentum=0.9,
                      epsilon=1e-5, dtype=dtype, axis_name=axis_name,
                      scale_init=scale_init, name=name)


def _conv_and_norm(module: nn.Module,
                   train: bool) -> tuple[Callable, Callable]:
  """The convolution and batch-norm constructors of a ResNet ``module``."""
  conv = functools.partial(conv_lib.Conv, implementation=module.conv,
                           dtype=module.dtype)
  norm = functools.partial(_batch_norm, train, module.bn_axis_name,
                           module.dtype)
  return conv, norm


def _residual_stages(x: jax.Array, block: Callable,
                     stage_features: Sequence[int], stage_sizes: Sequence[int],
                     conv: Callable, norm: Callable) -> jax.Array:
  """Stacks ``block``s; every stage but the first starts with stride 2."""
  for stage, (features, num_blocks) in enumerate(
      zip(stage_features, stage_sizes)):
    for block_index in range(num_blocks):
      strides = 2 if stage > 0 and block_index == 0 else 1
      x = block(features, strides, conv, norm)(x)
  return x


def _pooled_logits(x: jax.Array, num_classes: int, dtype: Any) -> jax.Array:
  """Global average pooling and the float32 output layer."""
  x = jnp.mean(x, axis=(1, 2))
  return nn.Dense(num_classes, dtype=dtype)(x).astype(jnp.float32)


class SmallCNN(nn.Module):
  """Two 3x3 convolutions, 2x2 average pooling and two dense layers.

  Sized for 8x8 digits; works on any input size.
  """
  num_classes: int
  width: int = 32
  conv: str = 'xla'
  dtype: Any = jnp.float32
  bn_axis_name: str | None = None  # Unused: the model has no batch norm.

  @nn.compact
  def __call__(self, images: jax.Array, train: bool = True) -> jax.Array:
    del train
    conv = functools.partial(conv_lib.Conv, use_bias=True,
                             implementation=self.conv, dtype=self.dtype)
    x = nn.relu(conv(self.width, (3, 3))(images.astype(self.dtype)))
    x = nn.relu(conv(2 * self.width, (3, 3))(x))
    x = nn.avg_pool(x, (2, 2), strides=(2, 2))
    x = x.reshape(x.shape[0], -1)
    x = nn.relu(nn.Dense(4 * self.width, dtype=self.dtype)(x))
    return nn.Dense(self.num_classes, dtype=self.dtype)(x).astype(jnp.float32)


class _ResidualBlock(nn.Module):
  """What `_residual_stages` builds a block from: width, stride and layers."""
  features: int
  strides: int
  conv: Callable
  norm: Callable


class _PreActBlock(_ResidualBlock):
  """BN-ReLU-conv3x3-BN-ReLU-conv3x3 with an identity or 1x1 shortcut."""

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    out = nn.relu(self.norm()(x))
    if self.strides != 1 or x.shape[-1] != self.features:
      shortcut = self.conv(self.features, (1, 1), (self.strides,) * 2,
                           name='shortcut')(out)
    else:
      shortcut = x
    out = self.conv(self.features, (3, 3), (self.strides,) * 2)(out)
    out = self.conv(self.features, (3, 3))(nn.relu(self.norm()(out)))
    return out + shortcut


class _StagedResNet(nn.Module):
  """The fields of a ResNet whose stages double ``width``, stage by stage."""
  num_classes: int
  stage_sizes: Sequence[int] = (2, 2, 2, 2)
  width: int = 64
  conv: str = 'xla'
  dtype: Any = jnp.float32
  bn_axis_name: str | None = None

  def _stages(self, x: jax.Array, block: Callable, conv: Callable,
              norm: Callable) -> jax.Array:
    """`_residual_stages` with ``width * 2**stage`` features per stage."""
    features = [self.width * 2**stage for stage in range(len(self.stage_sizes))]
    return _residual_stages(x, block, features, self.stage_sizes, conv, norm)


class PreActResNet(_StagedResNet):
  """Pre-activation ResNet for 32x32 inputs (He et al. 2016), 18 layers."""

  @nn.compact
  def __call__(self, images: jax.Array, train: bool = True) -> jax.Array:
    conv, norm = _conv_and_norm(self, train)
    x = conv(self.width, (3, 3))(images.astype(self.dtype))
    x = self._stages(x, _PreActBlock, conv, norm)
    x = nn.relu(norm()(x))
    return _pooled_logits(x, self.num_classes, self.dtype)


class WideResNet(nn.Module):
  """Wide ResNet (Zagoruyko & Komodakis 2016), WRN-28-10 by default."""
  num_classes: int
  depth: int = 28
  width: int = 10  # The widening factor k.
  conv: str = 'xla'
  dtype: Any = jnp.float32
  bn_axis_name: str | None = None

  @nn.compact
  def __call__(self, images: jax.Array, train: bool = True) -> jax.Array:
    if (self.depth - 4) % 6:
      raise ValueError(f'WideResNet depth must be 6n + 4, got {self.depth}')
    blocks_per_group = (self.depth - 4) // 6
    conv, norm = _conv_and_norm(self, train)
    x = conv(16, (3, 3))(images.astype(self.dtype))
    x = _residual_stages(x, _PreActBlock,
                         [base * self.width for base in (16, 32, 64)],
                         [blocks_per_group] * 3, conv, norm)
    x = nn.relu(norm()(x))
    return _pooled_logits(x, self.num_classes, self.dtype)


class _Bottleneck(_ResidualBlock):
  """ResNet v1.5 bottleneck: 1x1, 3x3 (strided), 1x1 x4, post-activation."""

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    out = nn.relu(self.norm()(self.conv(self.features, (1, 1))(x)))
    out = self.conv(self.features, (3, 3), (self.strides,) * 2)(out)
    out = nn.relu(self.norm()(out))
    out = self.conv(4 * self.features, (1, 1))(out)
    # Zero-initialised last scale: each block starts as the identity.
    out = self.norm(scale_init=nn.initializers.zeros)(out)
    if self.strides != 1 or x.shape[-1] != 4 * self.features:
      x = self.conv(4 * self.features, (1, 1), (self.strides,) * 2,
                    name='shortcut_conv')(x)
      x = self.norm(name='shortcut_norm')(x)
    return nn.relu(out + x)


class ResNet(_StagedResNet):
  """ImageNet ResNet with bottleneck blocks (v1.5); ResNet-50 by default."""
  stage_sizes: Sequence[int] = (3, 4, 6, 3)

  @nn.compact
  def __call__(self, images: jax.Array, train: bool = True) -> jax.Array:
    conv, norm = _conv_and_norm(self, train)
    x = conv(self.width, (7, 7), (2, 2), padding=((3, 3), (3, 3)))(
        images.astype(self.dtype))
    x = nn.relu(norm()(x))
    x = nn.max_pool(x, (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)))
    x = self._stages(x, _Bottleneck, conv, norm)
    return _pooled_logits(x, self.num_classes, self.dtype)


_MODELS = {
    'cnn_small': SmallCNN,
    'preact_resnet18': PreActResNet,
    'wide_resnet28_10': WideResNet,
    'resnet50': ResNet,
}
MODEL_NAMES = tuple(_MODELS)


def create_model(name: str, *, num_classes: int, conv: str = 'xla',
                 width: int | None = None, dtype: Any = jnp.float32,
                 bn_axis_name: str | None = None) -> nn.Module:
  """Builds a model by name.

  Args:
    name: one of `MODEL_NAMES`.
    num_classes: size of the output layer.
    conv: convolution implementation, 'xla' or 'im2col'.
    width: channel scale (None: the architecture's standard width).
    dtype: computation dtype, e.g. jnp.bfloat16 on accelerators.
    bn_axis_name: mapped axis over which batch norm averages its statistics
      (set under pmap so that it sees the global batch, as under jit).

  Returns:
    An unbound flax.linen Module.

  Raises:
    ValueError: for an unknown name or conv implementation.
  """
  if name not in _MODELS:
    raise ValueError(f'unknown model {name!r}: expected one of {MODEL_NAMES}')
  if conv not in conv_lib.CONV_IMPLEMENTATIONS:
    raise ValueError(f'unknown model.conv {conv!r}: expected one of '
                     f'{conv_lib.CONV_IMPLEMENTATIONS}')
  kwargs = dict(num_classes=num_classes, conv=conv, dtype=dtype,
                bn_axis_name=bn_axis_name)
  if width is not None:
    kwargs['width'] = width
  return _MODELS[name](**kwargs)
