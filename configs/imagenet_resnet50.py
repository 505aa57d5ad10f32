r"""ImageNet, ResNet-50, 300 epochs: the CutMix-paper protocol.

224 px random-resized-crop + horizontal flip (evaluation: centre 87.5% crop),
batch 1024 with the linearly scaled learning rate 0.1 * 1024 / 256 = 0.4,
5 warm-up epochs then cosine, SGD momentum 0.9, weight decay 1e-4, 300
epochs; HMix (alpha 1, r 0.5) on every sample. bfloat16 activations.

From TFDS ArrayRecord files (``imagenet2012`` needs the manually downloaded
archives, then ``tfds build imagenet2012 --file_format=array_record
--data_dir=DIR --manual_dir=...``):

  python -m train.main --config=configs/imagenet_resnet50.py \
      --workdir=/tmp/imagenet --config.data.data_dir=DIR

From an image folder ROOT/{train,val}/{class}/*.JPEG:

  python -m train.main --config=configs/imagenet_resnet50.py \
      --workdir=/tmp/imagenet --config.data.name=image_folder \
      --config.data.data_dir=ROOT --config.data.test_split=val

``configs/imagenet_resnet50.py:smoke`` shrinks it to a few CPU steps.
"""

import ml_collections


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """The ImageNet config; ``arg='smoke'`` shrinks it for CPU tests."""
  config = ml_collections.ConfigDict()
  config.seed = 0

  config.data = ml_collections.ConfigDict(dict(
      name='imagenet2012',  # A TFDS name, or 'image_folder'.
      data_dir='',
      train_split='train',
      test_split='validation',
      image_key='image',
      label_key='label',
      image_size=224,
      channels=3,
      augment='random_resized_crop',
      mean=(123.7, 116.3, 103.5),  # ImageNet pixel statistics, uint8 units.
      std=(58.4, 57.1, 57.4),
      num_workers=32,
  ))

  config.model = ml_collections.ConfigDict(dict(
      name='resnet50', width=64, conv='xla', dtype='bfloat16'))

  config.msda = ml_collections.ConfigDict(dict(
      method='hmix',
      alpha=1.0,
      r=0.5,
      mode='elem',
      prob=1.0,
      partner='flip',
      label_smoothing=0.0,
  ))

  config.batch_size = 1024
  config.eval_batch_size = 1024
  config.num_epochs = 300
  config.total_steps = 0  # > 0 overrides num_epochs.
  config.optimizer = 'sgd'
  config.learning_rate = 0.1 * config.batch_size / 256
  config.momentum = 0.9
  config.nesterov = False
  config.weight_decay = 1e-4
  config.lr_schedule = 'cosine'
  config.warmup_epochs = 5

  config.parallelism = 'jit'  # Or 'pmap'.
  config.log_every_steps = 100
  config.eval_every_epochs = 10
  config.eval_max_examples = 0  # > 0: evaluate that many, evenly spread.
  config.checkpoint_every_steps = 2000
  config.keep_checkpoints = 2
  config.progress_bar = True

  if arg == 'smoke':
    config.data.image_size = 32
    config.data.num_workers = 2
    config.model.width = 4
    config.model.dtype = 'float32'
    config.batch_size = 16
    config.eval_batch_size = 16
    config.learning_rate = 0.1 * config.batch_size / 256
    config.warmup_epochs = 0
    config.total_steps = 2
    config.log_every_steps = 1
    config.checkpoint_every_steps = 1
    config.eval_max_examples = 32
  elif arg:
    raise ValueError(f"unknown config argument {arg!r}: expected 'smoke'")
  return config
