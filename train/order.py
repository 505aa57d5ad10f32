"""The order of training examples: a pure function of (seed, step).

Epoch ``e`` visits the ``size`` training examples in the permutation
``default_rng([seed, 0, e]).permutation(size)``; global batch ``p`` of the
epoch takes positions ``[p * B, (p + 1) * B)`` of it (the remainder is
dropped). The host and the device data paths share this order (without
augmentation they train on the same batches; their augmentation streams
differ), and the position a checkpoint stores is just the step with the
constants that define the order and the augmentation stream.
"""

import numpy as np

__all__ = ['EpochOrder', 'epoch_permutation']


def epoch_permutation(seed: int, epoch: int, size: int) -> np.ndarray:
  """The order in which epoch ``epoch`` visits ``size`` examples."""
  return np.random.default_rng([seed, 0, epoch]).permutation(size)


class EpochOrder:
  """Which examples global batch ``step`` holds.

  Attributes:
    size: number of training examples.
    global_batch_size: examples per step over all processes.
    seed: seed of the order.
    steps_per_epoch: full global batches per pass over the examples.
  """

  def __init__(self, size: int, *, global_batch_size: int, seed: int,
               augmentation: str):
    """Raises ValueError if the batch is larger than the training set.

    ``augmentation`` names the augmentation stream ('host' or 'device'): it
    is part of the position, so a run cannot resume on the other path.
    """
    self.size = size
    self.global_batch_size = global_batch_size
    self.seed = seed
    self.augmentation = augmentation
    self.steps_per_epoch = size // global_batch_size
    if self.steps_per_epoch == 0:
      raise ValueError(f'batch_size={global_batch_size} exceeds the '
                       f'{size} training examples')
    self._cached = None  # (epoch, permutation)

  def __getstate__(self) -> dict:
    # Shipped to loader worker processes without the cached permutation.
    return dict(self.__dict__, _cached=None)

  def permutation(self, epoch: int) -> np.ndarray:
    """`epoch_permutation` of ``epoch`` (the last one is kept)."""
    cached = self._cached  # One read and one write: safe across threads.
    if cached is None or cached[0] != epoch:
      cached = (epoch, epoch_permutation(self.seed, epoch, self.size))
      self._cached = cached
    return cached[1]

  def indices(self, step: int) -> np.ndarray:
    """The example indices of global batch ``step``, (global_batch_size,)."""
    epoch, batch_in_epoch = divmod(step, self.steps_per_epoch)
    start = batch_in_epoch * self.global_batch_size
    return self.permutation(epoch)[start:start + self.global_batch_size]

  def position(self, step: int) -> dict:
    """The data position reached after ``step`` steps, for checkpoints."""
    epoch, batch_in_epoch = divmod(step, self.steps_per_epoch)
    return dict(step=step, epoch=epoch, batch_in_epoch=batch_in_epoch,
                seed=self.seed, global_batch_size=self.global_batch_size,
                steps_per_epoch=self.steps_per_epoch,
                augmentation=self.augmentation)

  def check_position(self, saved: dict, step: int) -> None:
    """Raises ValueError if a saved position disagrees with this order."""
    expected = self.position(step)
    if saved != expected:
      raise ValueError(
          f'checkpointed data position {saved} does not match this run '
          f'{expected}: seed, batch size, dataset and data.placement must not '
          'change on resume')
