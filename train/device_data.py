"""The training set on the devices: each step gathers and augments its batch there.

When the decoded uint8 training set fits a memory budget (CIFAR-10 is 150 MB),
it is copied once to every device, and a jitted companion of the train step
builds each batch on device: the rows of global batch ``step`` are gathered
from the copy, cropped (with zero padding) and flipped per sample, and come
out sharded ``P('data')``, ready for the train step. The host does no
per-example work: per step it passes the step number, per epoch the order.

The order is the host path's: epoch ``e`` visits
`order.epoch_permutation` ``(seed, e, N)``, global batch ``p`` of the
epoch takes positions ``[p * B, (p + 1) * B)``. Sample ``j`` of step ``s`` is
augmented with row ``j`` of ``uniform(fold_in(augment_key(seed), s), (B,
3))``, so batches are a pure function of ``(seed, step)``: resume is exact,
and any number of devices or processes sees the same global batch (each
device builds its own rows; no collective).
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec

from train import order as order_lib
from train import partitioning

__all__ = ['DEVICE_AUGMENTATIONS', 'PLACEMENTS', 'DeviceBatches',
           'augment_key', 'choose_placement', 'crop_flip']

# Where the training set lives: chosen, on device, or streamed by the host.
PLACEMENTS = ('auto', 'device', 'host')

# The training augmentations that run on device (the others need resizing).
DEVICE_AUGMENTATIONS = ('none', 'flip', 'crop_flip')

# Uniforms per sample: crop top, crop left, flip.
_NUM_UNIFORMS = 3
# Tag of the augmentation stream in the key derived from the seed.
_AUGMENT_STREAM = 0x617567


def choose_placement(data_config, train_source, *, parallelism: str) -> str:
  """'device' or 'host', as ``data_config.placement`` asks or allows.

  'auto' chooses 'device' when the augmentation runs on device, the step is
  jitted (not pmapped), the images are stored at the training size, and the
  decoded training set fits ``data_config.device_memory_gb`` (per device:
  every device holds a copy).

  Args:
    data_config: the ``config.data`` block.
    train_source: the training examples (one is read to learn the size).
    parallelism: ``config.parallelism``.

  Returns:
    'device' or 'host'.

  Raises:
    ValueError: an unknown placement, or 'device' where it cannot work (the
      message says why).
  """
  placement = data_config.placement
  if placement not in PLACEMENTS:
    raise ValueError(f'unknown data.placement {placement!r}: expected one of '
                     f'{PLACEMENTS}')
  if placement == 'host':
    return 'host'
  size = data_config.image_size
  expected = (size, size, data_config.channels)
  shape = _first_readable_shape(train_source)
  gigabytes = len(train_source) * int(np.prod(shape)) / 2**30
  reasons = []
  if data_config.augment not in DEVICE_AUGMENTATIONS:
    reasons.append(f'data.augment={data_config.augment!r} is not one of '
                   f'{DEVICE_AUGMENTATIONS}')
  if parallelism != 'jit':
    reasons.append(f"parallelism={parallelism!r} is not 'jit'")
  if shape != expected:
    reasons.append(f'the images are stored at {shape}, not at the training '
                   f'size {expected}')
  if gigabytes > data_config.device_memory_gb:
    reasons.append(f'the decoded training set ({gigabytes:.2f} GiB) exceeds '
                   f'data.device_memory_gb={data_config.device_memory_gb}')
  if not reasons:
    return 'device'
  if placement == 'device':
    raise ValueError("data.placement='device' cannot be used: " +
                     '; '.join(reasons))
  return 'host'


def _first_readable_shape(source) -> tuple[int, ...]:
  """The stored shape of the first example that reads (a bad file is left
  to the decode, which lists every one)."""
  for index in range(min(len(source), 64)):
    try:
      return tuple(np.shape(source[index][0]))
    except Exception:  # pylint: disable=broad-except
      continue
  raise ValueError(f'none of the first {min(len(source), 64)} training '
                   'examples could be read; check data.data_dir')


def augment_key(seed: int) -> jax.Array:
  """The key whose ``fold_in(., step)`` augments the batch of ``step``."""
  return jax.random.fold_in(jax.random.key(seed), _AUGMENT_STREAM)


def crop_flip(images: jax.Array, uniforms: jax.Array, *, padding: int,
              flip: bool = True) -> jax.Array:
  """Per-sample random crop of the zero-padded images, then horizontal flip.

  The CIFAR protocol (``RandomCrop(32, padding=4)`` then
  ``RandomHorizontalFlip``), the same rule as the host's `augment.crop_flip`:
  offsets ``floor(u * (2 * padding + 1))`` and a flip when ``u < 0.5``.

  Args:
    images: (B, H, W, C), any dtype.
    uniforms: (B, 3) in [0, 1): top offset, left offset, flip.
    padding: zero border added before cropping back to (H, W); 0 disables
      the crop.
    flip: whether to flip.

  Returns:
    (B, H, W, C), the dtype of ``images``.
  """
  batch, height, width, channels = images.shape
  if padding:
    offsets = jnp.floor(uniforms[:, :2] * (2 * padding + 1)).astype(jnp.int32)
    padded = jnp.pad(images,
                     ((0, 0), (padding, padding), (padding, padding), (0, 0)))
    images = jax.vmap(lambda image, top, left: jax.lax.dynamic_slice(
        image, (top, left, 0), (height, width, channels)))(
            padded, offsets[:, 0], offsets[:, 1])
  if flip:
    flips = (uniforms[:, 2] < 0.5).reshape(batch, 1, 1, 1)
    images = jnp.where(flips, images[:, :, ::-1], images)
  return images


class DeviceBatches:
  """The training batches, built on device from a copy of the whole set.

  Has the interface of `input_pipeline.TrainBatches` that the training loop
  uses (``steps_per_epoch``, ``position``, ``check_position``, ``iterate``),
  but ``iterate`` yields global ``jax.Array`` batches sharded ``P('data')``.
  """

  def __init__(self, images: np.ndarray, labels: np.ndarray, *,
               mesh: jax.sharding.Mesh, global_batch_size: int, seed: int,
               augment: str, padding: int = 4, axis_name: str = 'data'):
    """Copies the set to every device of ``mesh``.

    Args:
      images: (N, H, W, C) uint8, the same on every process.
      labels: (N,) int.
      mesh: the data mesh.
      global_batch_size: examples per step over all devices.
      seed: seed of the order and the augmentation.
      augment: one of `DEVICE_AUGMENTATIONS`.
      padding: crop padding of 'crop_flip'.
      axis_name: the batch axis of ``mesh``.

    Raises:
      ValueError: unknown augmentation, a batch that does not split over the
        devices or exceeds the set.
    """
    if augment not in DEVICE_AUGMENTATIONS:
      raise ValueError(
          f'data.augment={augment!r} does not run on device (expected one of '
          f"{DEVICE_AUGMENTATIONS}); use data.placement='host'")
    partitioning.check_batch_size(global_batch_size, mesh.shape[axis_name])
    self.size = len(labels)
    self.global_batch_size = global_batch_size
    self.seed = seed
    self._order = order_lib.EpochOrder(
        self.size, global_batch_size=global_batch_size, seed=seed,
        augmentation='device')
    self.steps_per_epoch = self._order.steps_per_epoch
    replicated = NamedSharding(mesh, PartitionSpec())
    self._replicated = replicated
    self._images = _put_replicated(np.asarray(images, np.uint8), replicated)
    self._labels = _put_replicated(np.asarray(labels, np.int32), replicated)
    self._key = np.asarray(jax.random.key_data(augment_key(seed)))
    padding = padding if augment == 'crop_flip' else 0
    local = functools.partial(
        _local_batch, global_batch_size=global_batch_size, padding=padding,
        flip=augment != 'none', axis_name=axis_name)
    batch = PartitionSpec(axis_name)
    self._build = jax.jit(jax.shard_map(
        local, mesh=mesh, in_specs=(PartitionSpec(),) * 6,
        out_specs=dict(images=batch, labels=batch)))
    self._epoch = None
    self._permutation = None

  def position(self, step: int) -> dict:
    """The data position after ``step`` steps (the host path's)."""
    return self._order.position(step)

  def check_position(self, saved: dict, step: int) -> None:
    """Raises ValueError if a saved position disagrees with this order."""
    self._order.check_position(saved, step)

  def batch(self, step: int) -> dict:
    """Global batch ``step``: ``images`` uint8, ``labels`` int32, P('data')."""
    epoch, batch_in_epoch = divmod(step, self.steps_per_epoch)
    if epoch != self._epoch:
      self._permutation = _put_replicated(
          self._order.permutation(epoch).astype(np.int32), self._replicated)
      self._epoch = epoch
    return self._build(self._images, self._labels, self._permutation,
                       np.int32(batch_in_epoch), np.int32(step), self._key)

  def iterate(self, start_step: int, stop_step: int):
    """Yields the batches of steps [start_step, stop_step)."""
    for step in range(start_step, stop_step):
      yield self.batch(step)


def _put_replicated(array: np.ndarray, sharding: NamedSharding) -> jax.Array:
  # Every process holds the same array; each fills its own devices.
  return jax.make_array_from_callback(array.shape, sharding,
                                      lambda index: array[index])


def _local_batch(images, labels, permutation, batch_in_epoch, step, key_data,
                 *, global_batch_size, padding, flip, axis_name):
  """This device's rows of global batch ``step`` (inside shard_map)."""
  local = global_batch_size // jax.lax.axis_size(axis_name)
  rows = jax.lax.axis_index(axis_name) * local + jnp.arange(local)
  indices = jax.lax.dynamic_slice(
      permutation, (batch_in_epoch * global_batch_size,),
      (global_batch_size,))[rows]
  key = jax.random.fold_in(jax.random.wrap_key_data(key_data), step)
  uniforms = jax.random.uniform(key, (global_batch_size, _NUM_UNIFORMS))[rows]
  batch = crop_flip(images[indices], uniforms, padding=padding, flip=flip)
  return dict(images=batch, labels=labels[indices])
