"""Deterministic, resumable uint8 batches for one process, loaded with grain.

Order. A pure function of (seed, step), the device path's order too
(train/order.py): epoch ``e`` visits the training set in the permutation
``order.epoch_permutation(seed, e, N)``, global batch ``p`` of the epoch takes
positions ``[p * B, (p + 1) * B)`` of it (the remainder is dropped), and
process ``i`` of ``n`` loads rows ``[i * B / n, (i + 1) * B / n)`` of every
global batch.

Augmentation. The example at position ``j`` of global batch ``step`` reads row
``j`` of ``default_rng([seed, 1, step]).random((B, k))`` (``k`` uniforms per
example). It depends on (seed, step, j) only: not on the number of processes
or worker processes, nor on where a run resumed. (The block is drawn once per
step and costs about as much as one generator per example would.)

Unreadable examples. Reading example ``order[q]`` (position ``q`` of the
epoch's order) may raise (a corrupt or missing image file): the slot then
takes the first readable example at positions ``q + 1, q + 2, ...`` (modulo
``N``) of the same epoch order, keeping the slot's augmentation row, and the
source indices that failed are reported in the batch field ``bad_examples``,
int32 ``(b, MAX_CONSECUTIVE_BAD)``: row ``r`` lists, in order, the examples
skipped to fill row ``r``, padded with -1 (so batches stay stackable and split
over devices like the images). More than ``MAX_CONSECUTIVE_BAD`` unreadable
examples in a row raise ValueError in the loader. The rule depends only on
the order and on which files are readable, so batches stay a pure function of
the step. `TrainBatches.record_bad` counts the distinct bad examples this
process has met and raises ValueError naming them once there are more than
``max_bad_examples``. Errors of the transform (an image of the wrong size or
channel count) are configuration errors and are raised, not skipped.

Workers. `TrainBatches.iterate` is a grain pipeline: a ``MapDataset`` over
the steps, each mapped to this process's batch (every row located: epoch,
position in the epoch order, augmentation row; then loaded, decoded,
augmented and stacked, in one call: per-example grain records cost ~7% more
CPU per image), then ``mp_prefetch`` over ``num_workers`` worker processes
(worker ``i`` computes steps ``start + i, start + i + num_workers, ...``;
grain interleaves them back in step order), then a thread of this process
that keeps ``prefetch`` batches ready. ``num_workers=0`` computes the batches
in that thread. Workers are started with ``spawn`` at the first ``next``: they
import numpy, PIL, grain (which imports, but never initialises, JAX) and this
module, plus the main module unless it runs as ``python -m pkg.__main__`` or
is pytest. They send batches back pickled (not in shared memory) and stop
when the iterator is closed, finishes, or is garbage-collected.
"""

from typing import Any, Callable, Iterator

from absl import flags
import grain
import numpy as np

from train import augment
from train import datasets
from train import order as order_lib

__all__ = [
    'MAX_CONSECUTIVE_BAD', 'TrainBatches', 'eval_batches'
]

# Width of the ``bad_examples`` field: the most unreadable examples tolerated
# in a row of the epoch order before the loader gives up.
MAX_CONSECUTIVE_BAD = 8

# Bad examples named in full in the ValueError of `TrainBatches.record_bad`.
_NAMED_BAD_EXAMPLES = 10

# grain's ``min_shm_size`` that keeps every array out of shared memory.
_NO_SHARED_MEMORY = 1 << 62


def _read_error(source: datasets.Source, index: int) -> str:
  """Why example ``index`` fails to load, found by reading it again here."""
  try:
    source[int(index)]
  except Exception as error:  # pylint: disable=broad-except
    return f'{type(error).__name__}: {error}'
  return 'failed in the loader, reads fine on retry'


def _local_rows(global_batch_size: int, process_index: int,
                process_count: int) -> slice:
  if global_batch_size % process_count:
    raise ValueError(
        f'batch_size={global_batch_size} is not divisible by the number of '
        f'processes ({process_count})')
  local = global_batch_size // process_count
  return slice(process_index * local, (process_index + 1) * local)


class _Loader:
  """Computes examples and batches of one process; shipped to the workers.

  Picklable (cloudpickle) as long as the source and transform are: the caches
  are dropped on pickling and rebuilt in each worker.
  """

  def __init__(self, source: datasets.Source,
               transform: augment.RandomTransform, *,
               order: order_lib.EpochOrder, rows: slice):
    self.source = source
    self.transform = transform
    self.order = order
    self.seed = order.seed
    self.global_batch_size = order.global_batch_size
    self.steps_per_epoch = order.steps_per_epoch
    self.rows = rows
    self.local_batch_size = rows.stop - rows.start
    self._uniforms_cache = None

  def __getstate__(self) -> dict:
    state = dict(self.__dict__)
    state['_uniforms_cache'] = None
    return state

  def uniforms(self, step: int) -> np.ndarray:
    """The (B, k) augmentation block of global batch ``step``."""
    cached = self._uniforms_cache
    if cached is None or cached[0] != step:
      block = np.random.default_rng([self.seed, 1, step]).random(
          (self.global_batch_size, self.transform.num_uniforms))
      cached = (step, block)
      self._uniforms_cache = cached
    return cached[1]

  def locate(self, position: int) -> tuple[int, int, np.ndarray]:
    """Example ``position`` of this process -> (epoch, place in order, row).

    ``position = step * b + r`` for row ``r`` of this process's batch ``step``.
    """
    step, row = divmod(int(position), self.local_batch_size)
    epoch, batch_in_epoch = divmod(step, self.steps_per_epoch)
    j = self.rows.start + row  # Position in the global batch.
    return (epoch, batch_in_epoch * self.global_batch_size + j,
            self.uniforms(step)[j])

  def load(self, located: tuple[int, int, np.ndarray]) -> dict:
    """Reads, decodes and augments one located example (skipping bad ones)."""
    epoch, place, uniforms = located
    order = self.order.permutation(epoch)
    bad = np.full(MAX_CONSECUTIVE_BAD, -1, np.int32)
    for skipped in range(MAX_CONSECUTIVE_BAD + 1):
      index = int(order[(place + skipped) % len(order)])
      try:
        image, label = self.source[index]
      except Exception as error:  # pylint: disable=broad-except
        if skipped == MAX_CONSECUTIVE_BAD:
          names = [datasets.describe(self.source, i) for i in bad] + [
              datasets.describe(self.source, index)]
          raise ValueError(
              f'{MAX_CONSECUTIVE_BAD + 1} unreadable training examples in a '
              f'row of the order of epoch {epoch} (from position {place}): '
              f'{", ".join(names)}; the last one: {type(error).__name__}: '
              f'{error}') from error
        bad[skipped] = index
        continue
      return dict(images=self.transform(image, uniforms),
                  labels=np.int32(label), bad_examples=bad)
    raise AssertionError('unreachable')

  def example(self, position: int) -> dict:
    return self.load(self.locate(position))

  def batch(self, step: int) -> dict:
    """This process's rows of global batch ``step``, computed here."""
    start = step * self.local_batch_size
    examples = [self.example(position)
                for position in range(start, start + self.local_batch_size)]
    return {key: np.stack([example[key] for example in examples])
            for key in examples[0]}


def _make_grain_flags_readable() -> None:
  """Lets grain 0.2.18 start workers in programs that never parse absl flags.

  grain reads ``--grain_enable_multiprocess_worker_profiling`` when it starts
  a worker; absl refuses reads before parsing (pytest, scripts without
  ``absl.app``). Marking that one flag present keeps its default value
  (False) and touches no other flag (grain google/grain#1355, fixed after
  0.2.18).
  """
  name = 'grain_enable_multiprocess_worker_profiling'
  if not flags.FLAGS.is_parsed() and name in flags.FLAGS:
    flags.FLAGS[name].present = max(flags.FLAGS[name].present, 1)


class TrainBatches:
  """This process's share of the global training batches, addressed by step.

  Attributes:
    steps_per_epoch: full global batches per pass over the training set.
    global_batch_size: examples per step over all processes.
    seed: seed of the order and of the augmentation.
    max_bad_examples: distinct unreadable examples tolerated (see
      `record_bad`).
  """

  def __init__(self, source: datasets.Source, *, global_batch_size: int,
               seed: int, transform: augment.RandomTransform,
               process_index: int = 0, process_count: int = 1,
               num_workers: int = 0, max_bad_examples: int = 0):
    """Creates the batch sequence.

    Args:
      source: the training examples (picklable when ``num_workers > 0``).
      global_batch_size: examples per step over all processes.
      seed: seed of the order and of the augmentation.
      transform: per-example training transform.
      process_index: this process (`jax.process_index()`).
      process_count: number of processes (`jax.process_count()`).
      num_workers: worker processes that load, decode and augment batches
        (0: one thread of this process does it).
      max_bad_examples: how many distinct unreadable examples `record_bad`
        accepts before it raises (0: stop at the first).

    Raises:
      ValueError: the batch does not split over processes, or is larger than
        the training set, or a count is negative.
    """
    if num_workers < 0 or max_bad_examples < 0:
      raise ValueError(f'num_workers={num_workers} and max_bad_examples='
                       f'{max_bad_examples} must be >= 0')
    self.source = source
    self.global_batch_size = global_batch_size
    self.seed = seed
    self.transform = transform
    self.rows = _local_rows(global_batch_size, process_index, process_count)
    self._order = order_lib.EpochOrder(
        len(source), global_batch_size=global_batch_size, seed=seed,
        augmentation='host')
    self.steps_per_epoch = self._order.steps_per_epoch
    self.num_workers = num_workers
    self.max_bad_examples = max_bad_examples
    self._loader = _Loader(source, transform, order=self._order,
                           rows=self.rows)
    self._bad = {}  # Source index -> None, in the order first met.

  def position(self, step: int) -> dict:
    """The data position reached after ``step`` steps, for checkpoints."""
    return self._order.position(step)

  def check_position(self, saved: dict, step: int) -> None:
    """Raises ValueError if a saved position disagrees with this order."""
    self._order.check_position(saved, step)

  def batch(self, step: int) -> dict:
    """This process's rows of global batch ``step``, computed in-process.

    Returns:
      ``images`` uint8 (b, H, W, C), ``labels`` int32 (b,) and
      ``bad_examples`` int32 (b, MAX_CONSECUTIVE_BAD) (see the module doc).
    """
    return self._loader.batch(step)

  def dataset(self, start_step: int, stop_step: int,
              prefetch: int = 2) -> grain.IterDataset:
    """The grain pipeline behind `iterate` (steps [start_step, stop_step))."""
    # One element per step: each map call locates, loads, decodes and
    # augments a whole local batch (one grain record per example cost ~7%
    # more CPU per image on CIFAR JPEGs).
    ds = grain.MapDataset.range(start_step, stop_step).map(self._loader.batch)
    # No reader threads: the parallelism is the worker processes.
    ds = ds.to_iter_dataset(grain.ReadOptions(num_threads=0,
                                              prefetch_buffer_size=0))
    if self.num_workers:
      _make_grain_flags_readable()
      # Batches come back pickled through the worker's queue, not in shared
      # memory: with grain 0.2.18 on Python 3.11 the shared-memory handover
      # frees the last batches' segments asynchronously, so runs ended with
      # resource_tracker "leaked shared_memory" warnings. Unpickling costs
      # this process ~1 ms of CPU per MB (0.8 MB per CIFAR batch of 256).
      ds = grain.experimental.WithOptionsIterDataset(
          ds, grain.experimental.DatasetOptions(min_shm_size=_NO_SHARED_MEMORY))
      ds = ds.mp_prefetch(
          grain.MultiprocessingOptions(num_workers=self.num_workers))
    return grain.experimental.ThreadPrefetchIterDataset(
        ds, prefetch_buffer_size=prefetch)

  def iterate(self, start_step: int, stop_step: int,
              prefetch: int = 2) -> Iterator[dict]:
    """Yields the batches of steps [start_step, stop_step), loaded ahead.

    Each batch is `batch(step)`: ``images``, ``labels``, ``bad_examples``.
    Worker processes start at the first ``next`` and stop when the generator
    finishes, is closed, or is garbage-collected.
    """
    if stop_step <= start_step:
      return
    iterator = iter(self.dataset(start_step, stop_step, prefetch))
    try:
      yield from iterator
    finally:
      iterator.close()

  @property
  def num_bad_examples(self) -> int:
    """Distinct unreadable examples `record_bad` has seen in this process."""
    return len(self._bad)

  def record_bad(self, batch: dict, *, check: bool = True) -> int:
    """Counts a batch's unreadable examples; call once per yielded batch.

    Removes the ``bad_examples`` field from ``batch`` (so what is left is what
    the device step takes) and adds its indices to the distinct bad examples
    met by this process.

    Args:
      batch: a batch from `iterate`.
      check: raise past the limit now (one process); with several
        processes the training loop sums the counts and calls `check_bad`
        in all of them at once instead.

    Returns:
      `num_bad_examples`, for metrics.

    Raises:
      ValueError: naming the bad examples, once there are more than
        ``max_bad_examples`` of them (with ``check``).
    """
    bad = batch.pop('bad_examples', None)
    if bad is not None:
      for index in np.asarray(bad).ravel().tolist():
        if index >= 0:
          self._bad.setdefault(index, None)
    if check:
      self.check_bad(len(self._bad))
    return len(self._bad)

  def check_bad(self, total: int) -> None:
    """Raises ValueError if ``total`` bad examples pass the limit.

    Args:
      total: the count to check: this process's, or the sum over processes.

    Raises:
      ValueError: naming the bad examples this process met.
    """
    if total <= self.max_bad_examples:
      return
    named = list(self._bad)[:_NAMED_BAD_EXAMPLES]
    details = '; '.join(f'{datasets.describe(self.source, i)} '
                        f'({_read_error(self.source, i)})' for i in named)
    more = len(self._bad) - len(named)
    where = ''
    if total != len(self._bad):
      where = (f' over all processes ({len(self._bad)} met by this one'
               f'{"; see the other processes" if not named else ""})')
    raise ValueError(
        f'{total} unreadable training examples{where}, more than '
        f'max_bad_examples={self.max_bad_examples}'
        + (f': {details}' if details else '')
        + (f'; and {more} more' if more else ''))


def eval_batches(source: datasets.Source, *, global_batch_size: int,
                 transform: Callable[[np.ndarray], np.ndarray],
                 process_index: int = 0,
                 process_count: int = 1) -> Iterator[dict[str, Any]]:
  """The whole test set in order, padded to full global batches.

  Yields this process's rows: uint8 ``images``, int32 ``labels`` and float32
  ``mask`` (0 for padding), so every process runs the same number of steps.
  Examples are loaded inline. Unreadable test examples raise.
  """
  rows = _local_rows(global_batch_size, process_index, process_count)
  size = len(source)
  for start in range(0, size, global_batch_size):
    positions = np.arange(start, start + global_batch_size)[rows]
    images, labels = [], []
    for position in positions:
      image, label = source[int(position) % size]
      images.append(transform(image))
      labels.append(label)
    yield dict(images=np.stack(images), labels=np.asarray(labels, np.int32),
               mask=(positions < size).astype(np.float32))
