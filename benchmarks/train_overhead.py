r"""Cost of mixing inside the training step: images/second with and without.

Times the jitted train step of train/train.py (PreActResNet-18, batch 128,
32x32x3, 10 classes, mixing per device under shard_map inside the step) with
no mixing and with each method in elem mode (one lambda and mask per sample),
in one process. Methods are timed in interleaved rounds (order rotated each
round) and each ratio is the median over rounds of (method images/s) /
(no-mixing images/s) from the same round, so slow drifts of a shared machine
cancel; quartiles and extremes of the per-round ratios show the noise. It
also times the mixing alone (the same shard_map'd mixer on the same batch,
median of --mix_repeats calls) and reports it as a fraction of the step: a
bound on the overhead that machine noise barely affects.

  GLIBC_TUNABLES=glibc.malloc.hugetlb=1 python benchmarks/train_overhead.py

Options: --conv (im2col, the fast CPU formulation, by default; xla on
accelerators), --dtype (the model's computation dtype, e.g. bfloat16),
--batch_size, --width (64, the real network; smaller for smoke runs),
--rounds, --steps (timed steps per method per round),
--mix_repeats, --device_data (each step takes its batch from a 50,000-image
training set on the devices, gathered and crop+flipped there as the training
loop does, instead of one fixed batch), --out (JSON file).

On a GPU (benchmarks/device_check.py runs this)::

  python benchmarks/train_overhead.py --conv=xla --dtype=bfloat16 \
      --batch_size=512 --device_data --rounds=10 --steps=10
"""

import argparse
import json
import os
import platform
import sys
import time

import jax
import jax.numpy as jnp
import ml_collections
import msda_jax
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from train import device_data  # pylint: disable=g-import-not-at-top
from train import models  # pylint: disable=g-import-not-at-top
from train import optimizer as optimizer_lib  # pylint: disable=g-import-not-at-top,line-too-long
from train import partitioning  # pylint: disable=g-import-not-at-top
from train import steps as steps_lib  # pylint: disable=g-import-not-at-top

__all__ = ['main']

METHODS = ('none', 'mixup', 'cutmix', 'hmix', 'gmix')
_NUM_CLASSES = 10
# Per-channel standardisation of the uint8 images.
_MEAN = np.full(3, 127.5, np.float32)
_STD = np.full(3, 64.0, np.float32)


def _mixers() -> dict[str, msda_jax.Mixer]:
  """One elem-mode mixer per method (HMix and GMix with their default r)."""
  return {
      method: msda_jax.from_config(dict(method=method, alpha=1.0, mode='elem',
                                        num_classes=_NUM_CLASSES))
      for method in METHODS
  }


def _compiled_steps(args, mesh, mixers):
  """One compiled train step per method, all sharing the model and optimizer."""
  config = ml_collections.ConfigDict(dict(
      learning_rate=0.1, lr_schedule='cosine', optimizer='sgd', momentum=0.9,
      nesterov=True, weight_decay=5e-4))
  schedule = optimizer_lib.learning_rate_schedule(config, total_steps=100_000)
  tx = optimizer_lib.create_optimizer(config, schedule)
  model = models.create_model('preact_resnet18', num_classes=_NUM_CLASSES,
                              conv=args.conv, width=args.width,
                              dtype=jnp.dtype(args.dtype))
  steps = {
      method: steps_lib.make_jit_train_step(
          mesh, model=model, tx=tx, mixer=mixers[method], schedule=schedule,
          mean=_MEAN, std=_STD) for method in METHODS
  }
  state = steps_lib.init_train_state(jax.random.key(0), model, tx,
                                     (32, 32, 3))
  # On the host: each method gets its own device copy (steps donate it).
  return steps, jax.device_get(state)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--conv', default='im2col', choices=('xla', 'im2col'))
  parser.add_argument('--batch_size', type=int, default=128)
  parser.add_argument('--rounds', type=int, default=20)
  parser.add_argument('--steps', type=int, default=1)
  parser.add_argument('--mix_repeats', type=int, default=50)
  parser.add_argument('--dtype', default='float32',
                      choices=('float32', 'bfloat16', 'float16'))
  parser.add_argument('--device_data', action='store_true')
  parser.add_argument('--width', type=int, default=64,
                      help='channels of the first stage (64: ResNet-18)')
  parser.add_argument('--out', default='out/train_overhead.json')
  args = parser.parse_args()

  mesh = partitioning.make_data_mesh()
  partitioning.check_batch_size(args.batch_size, jax.device_count())
  mixers = _mixers()
  steps, initial_state = _compiled_steps(args, mesh, mixers)
  rng = np.random.default_rng(0)
  batch = partitioning.shard_batch(mesh, dict(
      images=rng.integers(0, 256, (args.batch_size, 32, 32, 3), np.uint8),
      labels=rng.integers(0, _NUM_CLASSES, args.batch_size).astype(np.int32)))
  next_batch = lambda: batch  # pylint: disable=unnecessary-lambda-assignment
  if args.device_data:
    size = 50_000
    train_set = device_data.DeviceBatches(
        rng.integers(0, 256, (size, 32, 32, 3), np.uint8),
        rng.integers(0, _NUM_CLASSES, size).astype(np.int32), mesh=mesh,
        global_batch_size=args.batch_size, seed=0, augment='crop_flip')
    stream = train_set.iterate(0, 10**9)
    next_batch = lambda: next(stream)  # pylint: disable=unnecessary-lambda-assignment

  states = {}
  compile_seconds = {}
  for method, step in steps.items():
    start = time.perf_counter()
    state = partitioning.replicated(mesh, initial_state)
    for _ in range(2):  # Compile, then one warm step.
      state, metrics = step(state, batch)
    jax.block_until_ready(metrics)
    states[method] = state
    compile_seconds[method] = time.perf_counter() - start
    print(f'{method}: compiled and warmed up in '
          f'{compile_seconds[method]:.1f} s', flush=True)

  per_round = {method: [] for method in METHODS}
  for round_index in range(args.rounds):
    # Rotate the order so that no method always runs first (or last).
    shift = round_index % len(METHODS)
    for method in METHODS[shift:] + METHODS[:shift]:
      state = states[method]
      start = time.perf_counter()
      for _ in range(args.steps):
        state, metrics = steps[method](state, next_batch())
      jax.block_until_ready((state, metrics))
      elapsed = time.perf_counter() - start
      states[method] = state
      per_round[method].append(args.steps * args.batch_size / elapsed)
    print(f'round {round_index + 1}/{args.rounds}: ' + ', '.join(
        f'{m} {per_round[m][-1]:.1f}' for m in METHODS) + ' images/s',
          flush=True)

  # The mixing alone, as the step runs it (shard_map over the mesh) on the
  # standardised batch: milliseconds, timed precisely even on a busy machine.
  images = jax.jit(steps_lib.normalize_images)(batch['images'], _MEAN, _STD)
  mix_seconds = {}
  for method in METHODS:
    mix = jax.jit(msda_jax.shard_mixer(mixers[method], mesh))
    key = jax.random.key(1)
    jax.block_until_ready(mix(key, images, batch['labels']))
    times = []
    for repeat in range(args.mix_repeats):
      start = time.perf_counter()
      jax.block_until_ready(mix(jax.random.fold_in(key, repeat), images,
                                batch['labels']))
      times.append(time.perf_counter() - start)
    mix_seconds[method] = float(np.median(times))

  baseline = np.asarray(per_round['none'])
  step_seconds_none = float(np.median(args.batch_size / baseline))
  results = {}
  for method in METHODS:
    rates = np.asarray(per_round[method])
    results[method] = dict(
        images_per_second_median=float(np.median(rates)),
        images_per_second_per_round=[float(r) for r in rates],
        ratio_to_none_median=float(np.median(rates / baseline)),
        ratio_to_none_quartiles=[
            float(q) for q in np.percentile(rates / baseline, [25, 75])],
        ratio_to_none_min=float(np.min(rates / baseline)),
        ratio_to_none_max=float(np.max(rates / baseline)),
        mix_milliseconds_median=1e3 * mix_seconds[method],
        mix_fraction_of_step=mix_seconds[method] / step_seconds_none)
  report = dict(
      command=' '.join([os.path.basename(sys.executable)] + sys.argv),
      model='preact_resnet18', width=args.width, conv=args.conv,
      dtype=args.dtype,
      device_data=args.device_data, batch_size=args.batch_size,
      image_shape=[32, 32, 3], mode='elem', rounds=args.rounds,
      steps_per_round=args.steps, devices=[str(d) for d in jax.devices()],
      backend=jax.default_backend(), cpu_count=os.cpu_count(),
      machine=platform.machine(), jax_version=jax.__version__,
      compile_and_warmup_seconds=compile_seconds, results=results)

  print(f'\nPreActResNet-18 ({args.conv} conv, {args.dtype}), batch '
        f'{args.batch_size}, 32x32, elem mode, '
        f'{"device data" if args.device_data else "fixed batch"}, '
        f'{jax.device_count()} {jax.default_backend()} device(s); median of '
        f'{args.rounds} interleaved rounds:')
  print(f"{'method':8s} {'images/s':>9s} {'ratio to none':>14s} "
        f"{'quartiles':>14s} {'min..max':>14s} {'mix ms':>8s} "
        f"{'mix/step':>9s}")
  for method in METHODS:
    r = results[method]
    low, high = r['ratio_to_none_quartiles']
    print(f"{method:8s} {r['images_per_second_median']:9.1f} "
          f"{r['ratio_to_none_median']:14.3f} {low:6.3f}..{high:.3f} "
          f"{r['ratio_to_none_min']:6.3f}..{r['ratio_to_none_max']:.3f} "
          f"{r['mix_milliseconds_median']:8.2f} "
          f"{100 * r['mix_fraction_of_step']:8.2f}%")
  os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
  with open(args.out, 'w') as f:
    json.dump(report, f, indent=2)
  print(f'wrote {args.out}')


if __name__ == '__main__':
  main()
