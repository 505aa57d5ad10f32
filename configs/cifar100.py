r"""CIFAR-100, PreActResNet-18, 200 epochs: the CIFAR protocol of MSDA papers.

SGD (momentum 0.9, Nesterov), lr 0.1, weight decay 5e-4, cosine schedule,
batch 128, random crop (padding 4) + horizontal flip, HMix (alpha 1, r 0.5)
on every sample.

From TFDS ArrayRecord files (prepared once with
``tfds build cifar100 --file_format=array_record --data_dir=DIR``):

  python -m train.main --config=configs/cifar100.py --workdir=/tmp/cifar100 \
      --config.data.data_dir=DIR

From an image folder ROOT/{train,test}/{class}/*.jpg|png:

  python -m train.main --config=configs/cifar100.py --workdir=/tmp/cifar100 \
      --config.data.name=image_folder --config.data.data_dir=ROOT

Other methods: ``--config.msda.method=cutmix`` (or mixup, gmix, none).
``configs/cifar100.py:smoke`` shrinks the model and runs 2 steps (CPU tests).
"""

import ml_collections


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """The CIFAR-100 config; ``arg='smoke'`` shrinks it for CPU tests."""
  config = ml_collections.ConfigDict()
  config.seed = 0

  config.data = ml_collections.ConfigDict(dict(
      name='cifar100',  # A TFDS name, or 'image_folder'.
      data_dir='',  # TFDS data_dir, or the image folder ROOT.
      train_split='train',
      test_split='test',
      image_key='image',
      label_key='label',
      image_size=32,
      channels=3,
      augment='crop_flip',
      mean=(129.3, 124.1, 112.4),  # CIFAR-100 pixel statistics, uint8 units.
      std=(68.2, 65.4, 70.4),
      num_workers=8,
  ))

  config.model = ml_collections.ConfigDict(dict(
      name='preact_resnet18', width=64, conv='xla', dtype='float32'))

  config.msda = ml_collections.ConfigDict(dict(
      method='hmix',
      alpha=1.0,
      r=0.5,
      mode='elem',
      prob=1.0,
      partner='flip',
      label_smoothing=0.0,
  ))

  config.batch_size = 128
  config.eval_batch_size = 512
  config.num_epochs = 200
  config.total_steps = 0  # > 0 overrides num_epochs.
  config.optimizer = 'sgd'
  config.learning_rate = 0.1
  config.momentum = 0.9
  config.nesterov = True
  config.weight_decay = 5e-4
  config.lr_schedule = 'cosine'
  config.warmup_epochs = 0

  config.parallelism = 'jit'  # Or 'pmap'.
  config.log_every_steps = 100
  config.eval_every_epochs = 5
  config.eval_max_examples = 0  # > 0: evaluate that many, evenly spread.
  config.checkpoint_every_steps = 0  # 0: once per epoch.
  config.keep_checkpoints = 2
  config.progress_bar = True

  if arg == 'smoke':
    config.model.width = 8
    config.batch_size = 16
    config.eval_batch_size = 16
    config.total_steps = 2
    config.log_every_steps = 1
    config.checkpoint_every_steps = 1
    config.eval_max_examples = 32
    config.data.num_workers = 2
  elif arg:
    raise ValueError(f"unknown config argument {arg!r}: expected 'smoke'")
  return config
