r"""A study: none, mixup, cutmix, hmix and gmix x seeds under one protocol.

  python -m train.study --config=configs/study.py:smoke --workdir=/tmp/study_smoke
  python -m train.study --config=configs/study.py:cpu --workdir=/tmp/study_cpu
  python -m train.study --config=configs/study.py:gpu --workdir=/tmp/study_gpu

The cpu and gpu presets read the CIFAR-10 image folder; extract the JPEG copy
once, from the repository root: ``mkdir -p /tmp/cifar10-jpeg && tar -xzf
../shared/data/cifar10-jpeg.tar.gz -C /tmp/cifar10-jpeg`` (elsewhere:
``--config.base.data.data_dir=ROOT``).

``study.methods`` and ``study.seeds`` set the grid; ``base`` is a full training
config (configs/common.py helpers and its ``msda`` block, with a field for
every option of every method, as configs/cifar10.py has) from which run ``(method, seed)``
takes everything but ``msda.method`` and ``seed``.
Override any field from the command line, tuples in quotes:

  python -m train.study --config=configs/study.py:cpu --workdir=/tmp/s \
      --config.study.seeds='(0,1,2)' --config.study.methods='("none","hmix")' \
      --config.base.num_epochs=200

Presets (``:PRESET``; none given: ``cpu``), sized in the functions below and in
docs/study.md:

* ``smoke``: seconds, for tests and CI: synthetic 8x8 images, cnn_small,
  12 steps; none and hmix x seeds 0, 1.
* ``cpu``: about an hour on 2 CPU cores: 1,000 CIFAR-10 training
  images (class-balanced), PreActResNet-18 at width 8, 150 epochs; the 5
  methods x seeds 0, 1, 2.
* ``gpu``: at most 9 minutes on one H100 including compiles: 5,000 CIFAR-10
  training images, PreActResNet-18 (width 64) in bfloat16, batch 512, 60
  epochs; the 5 methods x seeds 0, 1.

Test accuracy of the cpu and gpu presets is measured on the whole
10,000-image test split.
"""

import ml_collections

from configs import common

PRESETS = ('smoke', 'cpu', 'gpu')
METHODS = ('none', 'mixup', 'cutmix', 'hmix', 'gmix')
CIFAR10_FOLDER = '/tmp/cifar10-jpeg'


def _cifar10_folder(num_workers: int,
                    train_examples: int) -> ml_collections.ConfigDict:
  """The CIFAR-10 image folder, a class-balanced subset, crop + flip."""
  data = common.data_config(
      'image_folder', image_size=32, channels=3, augment='crop_flip',
      mean=(125.3, 123.0, 113.9),  # CIFAR-10 statistics, uint8 units.
      std=(63.0, 62.1, 66.7), num_workers=num_workers)
  data.data_dir = CIFAR10_FOLDER
  # Fixed by the data (not the run seed): every run sees the same images.
  data.train_examples = train_examples
  return data


def _smoke() -> ml_collections.ConfigDict:
  """Seconds: 96 synthetic 8x8 images (64 trained on), 3 epochs of 4 steps.

  An evaluation per epoch gives each run a 3-point accuracy curve; the subset
  exercises ``data.train_examples``.
  """
  data = common.data_config(
      'synthetic', image_size=8, channels=3, augment='none',
      mean=(128.0,) * 3, std=(64.0,) * 3, num_workers=0, num_classes=4,
      train_size=96, test_size=48)
  data.train_examples = 64
  base = common.base_config(
      data, common.model_config('cnn_small', width=8), batch_size=16,
      eval_batch_size=16, num_epochs=3, learning_rate=0.05,
      eval_every_epochs=1, checkpoint_every_steps=4, log_every_steps=4)
  base.progress_bar = False
  return base


def _cpu() -> ml_collections.ConfigDict:
  """About one hour for the 15 runs on the 2 CPU cores of this project.

  Long training of a small model on little data, the regime where mixing
  pays (Mixup and CutMix need ~100-200 epochs before they beat no mixing):
  1,000 training images (100 per class), batch 64 (15 steps per epoch),
  150 epochs = 2,250 steps, PreActResNet-18 at width 8 (176k parameters)
  with the 'xla' convolution, SGD lr 0.05 (0.1 x 64/128), cosine;
  evaluation on all 10,000 test images every 15 epochs (10 points a run).

  Measured on the project's 2 shared cores (docs/study.md has the commands
  and tables): one complete run of this protocol at 120 epochs (hmix, 1,800
  steps, 10 evaluations; load average 2.6-4.4 from other jobs) took 235 s:
  0.077-0.132 s per step (mean 0.105), ~46 s of start-up, compiling and
  evaluations. At 150 epochs: 2,250 x 0.105 s + 46 s = 280 s a run, 47
  minutes for 10 runs; at load average 5 (0.19 s/step, 8 s evaluations in
  short probes) up to ~85 minutes. The first full study on a quiet machine
  (no other jobs) took ~3 minutes a run (results.jsonl has each run's wall
  time), so the preset runs 3 seeds: 15 runs, about an hour. Rejected: width 16 (2.2x the step time
  with the 'xla' convolution, 6x with 'im2col'), cnn_small width 32 (2x),
  batch 128 (slower per image here), more images (fewer epochs).
  """
  base = common.base_config(
      _cifar10_folder(num_workers=2, train_examples=1000),
      common.model_config('preact_resnet18', width=8),
      batch_size=64, eval_batch_size=512, num_epochs=150, learning_rate=0.05,
      eval_every_epochs=15, checkpoint_every_steps=750, log_every_steps=75)
  base.progress_bar = False
  return base


def _gpu() -> ml_collections.ConfigDict:
  """At most 9 minutes for 10 runs on one H100, compiles included.

  Not measured (no GPU here); sized from public figures: PreActResNet-18 on
  32x32 images (0.56 G multiply-adds per image forward, ~1.7 G forward +
  backward) trains at tens of thousands of images/s in bfloat16 on one H100.
  Budget at a cautious 20,000 images/s: 5,000 training images
  (class-balanced), batch 512 (9 steps per epoch), 60 epochs = 540 steps =
  276k images = 14 s a run, 140 s for 10 runs (230 s at 12,000 images/s).
  Compiles, assumed ~40 s per train step, one per method (the second seed
  finds it in the persistent cache that the command line enables; the
  evaluation step is shared): ~225 s. Data decoding (once, then cached),
  start-up, 6 evaluations of 10,000 images and one checkpoint a run: ~60 s.
  Total about 425 s (515 s at 12,000 images/s). lr 0.4 (0.1 x 512/128) after
  5 warm-up epochs, cosine. The training set lives on the device
  (``data.placement='auto'``), so the host does no per-step work.
  """
  base = common.base_config(
      _cifar10_folder(num_workers=16, train_examples=5000),
      common.model_config('preact_resnet18', width=64, dtype='bfloat16'),
      batch_size=512, eval_batch_size=1024, num_epochs=60, learning_rate=0.4,
      eval_every_epochs=10, warmup_epochs=5,
      checkpoint_every_steps=1000,  # More than 540: only the final save.
      log_every_steps=50)
  base.progress_bar = False
  return base


_PRESETS = {'smoke': _smoke, 'cpu': _cpu, 'gpu': _gpu}


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """The study config of preset ``arg`` (smoke, cpu or gpu; default cpu).

  Raises:
    ValueError: an unknown preset (the message lists the accepted ones).
  """
  preset = arg or 'cpu'
  if preset not in _PRESETS:
    raise ValueError(f'unknown study preset {preset!r}: expected one of '
                     f'{PRESETS}')
  config = ml_collections.ConfigDict()
  config.preset = preset
  config.study = ml_collections.ConfigDict(dict(
      methods=('none', 'hmix') if preset == 'smoke' else METHODS,
      # The cpu preset's 15 runs take about an hour on 2 quiet cores.
      seeds=(0, 1, 2) if preset == 'cpu' else (0, 1)))
  config.base = _PRESETS[preset]()
  # The mixing of every run, read by msda_jax.from_config: a field for every
  # option of every method (configs/common.py; print(config.base.msda) lists
  # them); run (method, seed) sets msda.method to its method, and a field
  # that method does not take is ignored.
  config.base.msda = common.msda_config(method='hmix')
  return config
