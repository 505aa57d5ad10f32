r"""Images/second of the two training-data paths on an image folder.

- ``device``: the training set decoded once (through the decode cache) and
  copied to the device; each step gathers its batch there and crop+flips it
  (train/device_data.py). Timed over ``--steps`` steps after a warm-up, with
  the device work waited for.
- ``host``: `input_pipeline.TrainBatches.iterate` (decode + crop+flip per
  example in grain worker processes) with 0, 1 and 2 workers, with the cores
  the pipeline and other processes used meanwhile (worker scaling means
  nothing if other processes compete for the cores).

  GLIBC_TUNABLES=glibc.malloc.hugetlb=1 python benchmarks/input_pipeline.py \
      --data_dir=/tmp/cifar10-jpeg --out=out/input_pipeline.json

writes and prints ``{"device": img_s, "host": {"0": .., "1": .., "2": ..}}``
(and the settings under ``"settings"``). ``--data_dir=synthetic`` times the
device path on 50,000 random 32x32 images instead (no folder needed; the
host figures are then skipped).
"""

import argparse
import json
import multiprocessing
import os
import sys
import tempfile
import time

import jax
import ml_collections
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from train import augment  # pylint: disable=g-import-not-at-top
from train import datasets  # pylint: disable=g-import-not-at-top
from train import decode  # pylint: disable=g-import-not-at-top
from train import device_data  # pylint: disable=g-import-not-at-top
from train import input_pipeline  # pylint: disable=g-import-not-at-top
from train import partitioning  # pylint: disable=g-import-not-at-top

__all__ = ['device_images_per_second', 'host_measure', 'main']


def _folder_train_source(data_dir: str) -> datasets.Source:
  """The ``train`` split of the image folder ``data_dir`` (listed once)."""
  config = ml_collections.ConfigDict(dict(
      name='image_folder', data_dir=data_dir, train_split='train',
      test_split='test', channels=3))
  return datasets.load_dataset(config).train


def _decoded(source: datasets.Source, cache_dir: str) -> datasets.ArraySource:
  start = time.perf_counter()
  decoded = decode.decode_split(source, cache_dir=cache_dir,
                                num_workers=os.cpu_count() or 1)
  print(f'decoded {len(decoded)} training images in '
        f'{time.perf_counter() - start:.1f} s (cache: {cache_dir})', flush=True)
  return decoded


def device_images_per_second(train_set: datasets.ArraySource, *,
                             batch_size: int, steps: int) -> float:
  """Images per second of `DeviceBatches.iterate` with crop+flip.

  Args:
    train_set: the decoded training set.
    batch_size: global batch size.
    steps: timed steps (after 5 warm-up steps, which compile).

  Returns:
    Images per second, all device work included.
  """
  batches = device_data.DeviceBatches(
      train_set.images, train_set.labels,
      mesh=partitioning.make_data_mesh(), global_batch_size=batch_size,
      seed=0, augment='crop_flip')
  jax.block_until_ready(list(batches.iterate(0, 5)))
  start = time.perf_counter()
  last = None
  for last in batches.iterate(5, 5 + steps):
    pass
  jax.block_until_ready(last)
  return steps * batch_size / (time.perf_counter() - start)


def _cpu_seconds() -> tuple[float, float] | None:
  """(CPU seconds busy on the whole machine, used by us and our workers)."""
  try:
    with open('/proc/stat') as f:
      fields = [int(x) for x in f.readline().split()[1:]]
    ticks = os.sysconf('SC_CLK_TCK')
    busy = sum(fields) - fields[3] - fields[4]  # All but idle and iowait.
    ours = 0
    pids = [os.getpid()] + [p.pid for p in multiprocessing.active_children()]
    for pid in pids:
      with open(f'/proc/{pid}/stat') as f:
        stat = f.read().rsplit(')', 1)[1].split()
      ours += int(stat[11]) + int(stat[12])  # utime + stime.
    return busy / ticks, ours / ticks
  except (OSError, ValueError, IndexError):
    return None


def host_measure(source: datasets.Source, num_workers: int, *,
                 seconds: float, batch_size: int = 256,
                 image_size: int = 32) -> dict[str, float]:
  """Images/s of the host path (`TrainBatches.iterate`), and the CPU it got.

  Args:
    source: the training examples (e.g. an image folder's train split).
    num_workers: worker processes (0: a loader thread in this process).
    seconds: length of the timed window, after a warm-up that starts the
      workers and drains the batches they had buffered.
    batch_size: examples per batch.
    image_size: side of the stored images (crop_flip keeps it).

  Returns:
    ``images_per_second``; ``our_cores`` and ``other_cores``: the average
    number of cores busy with this process and its workers, and with anything
    else on the machine, over the timed window (Linux only; other processes
    competing for the cores make worker scaling meaningless).
  """
  batches = input_pipeline.TrainBatches(
      source, global_batch_size=batch_size, seed=0,
      transform=augment.train_transform('crop_flip', image_size, 3),
      num_workers=num_workers)
  prefetch = 2
  iterator = batches.iterate(0, 10**9, prefetch=prefetch)
  try:
    # Warm-up: the first batch waits for the workers to start; the next ones
    # come out of the buffers (prefetch thread + 2 per worker) until they are
    # drained and every batch has to be computed.
    for _ in range(1 + prefetch + 2 * max(num_workers, 1) + 2):
      next(iterator)
    cpu_start = _cpu_seconds()
    start = time.perf_counter()
    images = 0
    while time.perf_counter() - start < seconds:
      images += len(next(iterator)['labels'])
    elapsed = time.perf_counter() - start
    cpu_end = _cpu_seconds()
  finally:
    iterator.close()
  result = dict(images_per_second=images / elapsed)
  if cpu_start and cpu_end:
    busy, ours = (end - begin for begin, end in zip(cpu_start, cpu_end))
    result.update(our_cores=ours / elapsed,
                  other_cores=max(busy - ours, 0.0) / elapsed)
  return result


def main(argv=None) -> dict:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--data_dir', required=True,
                      help="an image folder ROOT/train/CLASS/*.jpg, or "
                      "'synthetic'")
  parser.add_argument('--out', default='out/input_pipeline.json')
  parser.add_argument('--batch_size', type=int, default=256)
  parser.add_argument('--steps', type=int, default=2000,
                      help='timed steps of the device path')
  parser.add_argument('--seconds', type=float, default=20.0,
                      help='timed window of each host measurement')
  parser.add_argument('--workers', default='0,1,2',
                      help='host worker-process counts to time')
  parser.add_argument('--cache_dir', default='',
                      help='decode cache (default: a temporary directory)')
  args = parser.parse_args(argv)

  source = None
  if args.data_dir == 'synthetic':
    rng = np.random.default_rng(0)
    train_set = datasets.ArraySource(
        rng.integers(0, 256, (50_000, 32, 32, 3), np.uint8),
        rng.integers(0, 10, 50_000))
  else:
    source = _folder_train_source(args.data_dir)
    with tempfile.TemporaryDirectory(prefix='msda_decode_') as temporary:
      # A fresh cache by default: the decode time printed is a cold one.
      train_set = _decoded(source, args.cache_dir or temporary)
  device = device_images_per_second(train_set, batch_size=args.batch_size,
                                    steps=args.steps)
  print(f'device path: {device:,.0f} images/s', flush=True)
  host, cores = {}, {}
  if source is not None:
    for workers in (int(w) for w in args.workers.split(',')):
      measured = host_measure(source, workers, seconds=args.seconds,
                              batch_size=args.batch_size)
      host[str(workers)] = measured['images_per_second']
      # Worker scaling means nothing if other processes took the cores.
      cores[str(workers)] = {k: measured[k] for k in ('our_cores',
                                                      'other_cores')
                             if k in measured}
      print(f'host path, {workers} worker processes: '
            f'{host[str(workers)]:,.0f} images/s, cores {cores[str(workers)]}',
            flush=True)
  report = dict(device=device, host=host, settings=dict(
      data_dir=args.data_dir, batch_size=args.batch_size,
      device_steps=args.steps, host_seconds=args.seconds, host_cores=cores,
      image_shape=list(train_set.images.shape[1:]),
      devices=[str(d) for d in jax.devices()], cpu_count=os.cpu_count(),
      command=' '.join([os.path.basename(sys.executable)] + sys.argv)))
  os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
  with open(args.out, 'w') as f:
    json.dump(report, f, indent=2)
  print(json.dumps(dict(device=device, host=host)))
  return report


if __name__ == '__main__':
  main()
