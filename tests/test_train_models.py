"""Tests of train/conv.py and train/models.py."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from train import conv as conv_lib
from train import models


@pytest.mark.parametrize('kernel,strides,padding', [
    ((3, 3), (1, 1), 'SAME'),
    ((3, 3), (2, 2), 'SAME'),
    ((1, 1), (2, 2), 'SAME'),
    ((7, 7), (2, 2), ((3, 3), (3, 3))),
    ((3, 2), (1, 2), 'VALID'),
])
def test_im2col_matches_xla_conv_and_its_weight_gradient(kernel, strides,
                                                         padding):
  # Drawn on the host: jax.random.normal would compile one sampler per shape.
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.standard_normal((2, 9, 10, 3), np.float32))
  w = jnp.asarray(rng.standard_normal((*kernel, 3, 5), np.float32))
  pad = padding if isinstance(padding, str) else list(padding)

  def xla(w):
    return jax.lax.conv_general_dilated(
        x, w, strides, pad, dimension_numbers=('NHWC', 'HWIO', 'NHWC'))

  def im2col(w):
    return conv_lib.im2col_conv(x, w, strides, padding)

  grad = lambda f: jax.grad(lambda w: jnp.sum(f(w) ** 2))
  # Both convolutions and both gradients in one jit (eager dispatch would
  # compile every op of the im2col patches one by one).
  out_im2col, out_xla, grad_im2col, grad_xla = jax.jit(lambda w: (
      im2col(w), xla(w), grad(im2col)(w), grad(xla)(w)))(w)
  np.testing.assert_allclose(out_im2col, out_xla, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(grad_im2col, grad_xla, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize('name', ['cnn_small', 'preact_resnet18'])
def test_both_conv_implementations_share_params_and_outputs(name):
  create = functools.partial(models.create_model, name, num_classes=7,
                             width=4)
  images = jnp.asarray(
      np.random.default_rng(0).standard_normal((2, 8, 8, 3), np.float32))
  xla_model, im2col_model = create(conv='xla'), create(conv='im2col')
  init = lambda model: functools.partial(model.init, train=False)
  # Compiling is most of this test's time: the structure of the im2col
  # model's variables needs no compiled init (eval_shape traces it). The xla
  # model's init (its random initialisers: 3/4 of the compile time at XLA's
  # default LLVM -O3) is compiled at -O0: it only supplies the variables that
  # both applies take; the two applies under test are compiled as before, in
  # one jit.
  im2col_variables = jax.eval_shape(init(im2col_model), jax.random.key(1), images)
  variables = jax.jit(init(xla_model)).lower(jax.random.key(1), images).compile(
      {'xla_backend_optimization_level': 0})(jax.random.key(1), images)

  @jax.jit
  def run(variables, images):
    apply = lambda model: model.apply(variables, images, train=False)
    return apply(xla_model), apply(im2col_model)

  out_xla, out_im2col = run(variables, images)
  assert jax.tree.structure(variables) == jax.tree.structure(im2col_variables)
  # The same shapes and dtypes, leaf by leaf.
  assert jax.tree.map(lambda v: (v.shape, v.dtype), variables) == jax.tree.map(
      lambda v: (v.shape, v.dtype), im2col_variables)
  assert out_xla.shape == (2, 7) and out_xla.dtype == jnp.float32
  np.testing.assert_allclose(out_im2col, out_xla, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize('name,num_classes,size,expected', [
    # Published counts: torchvision ResNet-50; WRN-28-10 of Zagoruyko &
    # Komodakis; PreActResNet-18 of the MSDA CIFAR code (11,171,146) plus the
    # final BN (2 x 512) of the pre-activation design.
    ('resnet50', 1000, 224, 25_557_032),
    ('wide_resnet28_10', 10, 32, 36_479_194),
    ('preact_resnet18', 10, 32, 11_172_170),
])
def test_architectures_have_the_published_parameter_counts(
    name, num_classes, size, expected):
  model = models.create_model(name, num_classes=num_classes)
  variables = jax.eval_shape(lambda: model.init(
      jax.random.key(0), jnp.zeros((1, size, size, 3)), train=False))
  count = sum(int(np.prod(p.shape)) for p in jax.tree.leaves(
      variables['params']))
  assert count == expected
  logits = jax.eval_shape(
      lambda v: model.apply(v, jnp.zeros((2, size, size, 3)), train=False),
      variables)
  assert logits.shape == (2, num_classes)


def test_unknown_model_and_conv_are_rejected():
  with pytest.raises(ValueError, match="unknown model 'resnet51'"):
    models.create_model('resnet51', num_classes=10)
  with pytest.raises(ValueError, match="unknown model.conv 'winograd'"):
    models.create_model('resnet50', num_classes=10, conv='winograd')
