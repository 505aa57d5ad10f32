r"""Quickstart: a small CNN on scikit-learn's 8x8 digits with HMix, on CPU.

The bundled digits (1797 images, 10 classes; a fixed stratified 20% test
split) need no download. About 20 seconds on 2 CPU cores.

  python -m train.main --config=configs/quickstart.py --workdir=/tmp/run

Any field can be overridden, e.g. another method:

  python -m train.main --config=configs/quickstart.py --workdir=/tmp/cutmix \
      --config.msda.method=cutmix --config.msda.alpha=1.0

``configs/quickstart.py:smoke`` runs a few steps (for tests).
"""

import ml_collections


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """The quickstart config; ``arg='smoke'`` shrinks it to a few steps."""
  config = ml_collections.ConfigDict()
  config.seed = 0

  config.data = ml_collections.ConfigDict(dict(
      name='digits',
      data_dir='',
      train_split='train',
      test_split='test',
      image_key='image',
      label_key='label',
      test_fraction=0.2,
      image_size=8,
      channels=1,
      augment='none',
      mean=(77.9,),  # Pixel statistics of the digits, in uint8 units.
      std=(95.9,),
      num_workers=0,
  ))

  config.model = ml_collections.ConfigDict(dict(
      name='cnn_small', width=32, conv='xla', dtype='float32'))

  # Consumed by msda_jax.from_config (num_classes comes from the dataset).
  config.msda = ml_collections.ConfigDict(dict(
      method='hmix',
      alpha=1.0,
      r=0.5,
      mode='elem',
      prob=1.0,
      partner='flip',
      label_smoothing=0.0,
  ))

  config.batch_size = 64
  config.eval_batch_size = 128
  config.num_epochs = 40
  config.total_steps = 0  # > 0 overrides num_epochs.
  config.optimizer = 'sgd'
  config.learning_rate = 0.05
  config.momentum = 0.9
  config.nesterov = True
  config.weight_decay = 5e-4
  config.lr_schedule = 'cosine'
  config.warmup_epochs = 0

  config.parallelism = 'jit'  # Or 'pmap'.
  config.log_every_steps = 50
  config.eval_every_epochs = 10
  config.eval_max_examples = 0  # > 0: evaluate that many, evenly spread.
  config.checkpoint_every_steps = 220  # 0: once per epoch.
  config.keep_checkpoints = 2
  config.progress_bar = True

  if arg == 'smoke':
    config.num_epochs = 1
    config.total_steps = 4
    config.batch_size = 16
    config.eval_batch_size = 64
    config.eval_every_epochs = 1
    config.log_every_steps = 2
    config.checkpoint_every_steps = 2
    config.eval_max_examples = 64
  elif arg:
    raise ValueError(f"unknown config argument {arg!r}: expected 'smoke'")
  return config
