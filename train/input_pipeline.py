"""Deterministic, resumable uint8 batches for one process.

The order is a pure function of (seed, step): epoch ``e`` visits the training
set in the permutation ``default_rng([seed, 0, e])``, global batch ``p`` of
the epoch takes positions ``[p * B, (p + 1) * B)`` of it (the remainder is
dropped), and the augmentation of global batch position ``j`` at step ``s``
reads row ``j`` of ``default_rng([seed, 1, s]).random((B, k))``. Process ``i``
of ``n`` loads rows ``[i * B / n, (i + 1) * B / n)`` of every global batch.
Restarting at any step therefore reproduces the same batches bit for bit, on
any number of processes; the position saved in checkpoints is just the step
with the constants that define the order.
"""

import collections
import concurrent.futures
from typing import Callable, Iterator

import numpy as np

from train import augment
from train import datasets

__all__ = ['TrainBatches', 'epoch_permutation', 'eval_batches']


def epoch_permutation(seed: int, epoch: int, size: int) -> np.ndarray:
  """The order in which epoch ``epoch`` visits ``size`` examples."""
  return np.random.default_rng([seed, 0, epoch]).permutation(size)


def _local_rows(global_batch_size: int, process_index: int,
                process_count: int) -> slice:
  if global_batch_size % process_count:
    raise ValueError(
        f'batch_size={global_batch_size} is not divisible by the number of '
        f'processes ({process_count})')
  local = global_batch_size // process_count
  return slice(process_index * local, (process_index + 1) * local)


def _map(pool: concurrent.futures.Executor | None, fn: Callable, *iterables):
  return list(pool.map(fn, *iterables) if pool else map(fn, *iterables))


class TrainBatches:
  """This process's share of the global training batches, addressed by step.

  Attributes:
    steps_per_epoch: full global batches per pass over the training set.
  """

  def __init__(self, source: datasets.Source, *, global_batch_size: int,
               seed: int, transform: augment.RandomTransform,
               process_index: int = 0, process_count: int = 1,
               num_workers: int = 0):
    """Creates the batch sequence.

    Args:
      source: the training examples.
      global_batch_size: examples per step over all processes.
      seed: seed of the order and of the augmentation.
      transform: per-example training transform.
      process_index: this process (`jax.process_index()`).
      process_count: number of processes (`jax.process_count()`).
      num_workers: threads that load and transform examples (0: inline).

    Raises:
      ValueError: the batch does not split over processes, or is larger than
        the training set.
    """
    self.source = source
    self.global_batch_size = global_batch_size
    self.seed = seed
    self.transform = transform
    self.rows = _local_rows(global_batch_size, process_index, process_count)
    self.steps_per_epoch = len(source) // global_batch_size
    if self.steps_per_epoch == 0:
      raise ValueError(f'batch_size={global_batch_size} exceeds the '
                       f'{len(source)} training examples')
    self.num_workers = num_workers
    self._cached_epoch = None
    self._cached_order = None

  def position(self, step: int) -> dict:
    """The data position reached after ``step`` steps, for checkpoints."""
    epoch, batch_in_epoch = divmod(step, self.steps_per_epoch)
    return dict(step=step, epoch=epoch, batch_in_epoch=batch_in_epoch,
                seed=self.seed, global_batch_size=self.global_batch_size,
                steps_per_epoch=self.steps_per_epoch)

  def check_position(self, saved: dict, step: int) -> None:
    """Raises ValueError if a saved position disagrees with this order."""
    expected = self.position(step)
    if saved != expected:
      raise ValueError(
          f'checkpointed data position {saved} does not match this run '
          f'{expected}: seed, batch size and dataset must not change on resume')

  def _order(self, epoch: int) -> np.ndarray:
    if epoch != self._cached_epoch:
      self._cached_order = epoch_permutation(self.seed, epoch, len(self.source))
      self._cached_epoch = epoch
    return self._cached_order

  def _example(self, index: int,
               uniforms: np.ndarray) -> tuple[np.ndarray, int]:
    image, label = self.source[int(index)]
    return self.transform(image, uniforms), label

  def batch(self, step: int,
            pool: concurrent.futures.Executor | None = None) -> dict:
    """This process's rows of global batch ``step``.

    Returns:
      ``images`` uint8 (b, H, W, C) and ``labels`` int32 (b,).
    """
    epoch, batch_in_epoch = divmod(step, self.steps_per_epoch)
    start = batch_in_epoch * self.global_batch_size
    indices = self._order(epoch)[start:start + self.global_batch_size]
    uniforms = np.random.default_rng([self.seed, 1, step]).random(
        (self.global_batch_size, self.transform.num_uniforms))
    examples = _map(pool, self._example, indices[self.rows],
                    uniforms[self.rows])
    return dict(images=np.stack([image for image, _ in examples]),
                labels=np.asarray([label for _, label in examples], np.int32))

  def iterate(self, start_step: int, stop_step: int,
              prefetch: int = 2) -> Iterator[dict]:
    """Yields the batches of steps [start_step, stop_step), loaded ahead."""
    workers = (concurrent.futures.ThreadPoolExecutor(self.num_workers)
               if self.num_workers else None)
    loader = concurrent.futures.ThreadPoolExecutor(1)
    pending = collections.deque()
    try:
      next_step = start_step
      while next_step < stop_step or pending:
        while next_step < stop_step and len(pending) <= prefetch:
          pending.append(loader.submit(self.batch, next_step, workers))
          next_step += 1
        yield pending.popleft().result()
    finally:
      for future in pending:
        future.cancel()
      loader.shutdown(wait=True)
      if workers:
        workers.shutdown(wait=True)


def eval_batches(source: datasets.Source, *, global_batch_size: int,
                 transform: Callable[[np.ndarray], np.ndarray],
                 process_index: int = 0, process_count: int = 1,
                 num_workers: int = 0) -> Iterator[dict]:
  """The whole test set in order, padded to full global batches.

  Yields this process's rows: uint8 ``images``, int32 ``labels`` and float32
  ``mask`` (0 for padding), so every process runs the same number of steps.
  """
  rows = _local_rows(global_batch_size, process_index, process_count)
  size = len(source)

  def example(index: int) -> tuple[np.ndarray, int]:
    image, label = source[int(index) % size]
    return transform(image), label

  workers = (concurrent.futures.ThreadPoolExecutor(num_workers)
             if num_workers else None)
  try:
    for start in range(0, size, global_batch_size):
      positions = np.arange(start, start + global_batch_size)[rows]
      examples = _map(workers, example, positions)
      yield dict(
          images=np.stack([image for image, _ in examples]),
          labels=np.asarray([label for _, label in examples], np.int32),
          mask=(positions < size).astype(np.float32))
  finally:
    if workers:
      workers.shutdown(wait=True)
