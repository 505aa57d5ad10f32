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

from configs import common


def _learning_rate(batch_size: int) -> float:
  """0.1 per 256 images, linearly scaled."""
  return 0.1 * batch_size / 256


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """The ImageNet config; ``arg='smoke'`` shrinks it for CPU tests."""
  config = common.base_config(
      common.data_config(
          'imagenet2012', image_size=224, channels=3,
          augment='random_resized_crop', test_split='validation',
          mean=(123.7, 116.3, 103.5),  # ImageNet statistics, uint8 units.
          std=(58.4, 57.1, 57.4), num_workers=32),
      common.model_config('resnet50', width=64, dtype='bfloat16'),
      batch_size=1024, eval_batch_size=1024, num_epochs=300,
      learning_rate=_learning_rate(1024), nesterov=False, weight_decay=1e-4,
      warmup_epochs=5, eval_every_epochs=10, checkpoint_every_steps=2000)
  # The mixing, read by msda_jax.from_config: a field for every option of
  # every method (configs/common.py; print(config.msda) lists them), each
  # method's own default where it is None. A field the chosen method does not
  # take is ignored, so --config.msda.method=X switches methods alone.
  config.msda = common.msda_config(method='hmix')
  smoke = common.smoke_fields(
      width=4, **{'data.image_size': 32, 'model.dtype': 'float32',
                  'learning_rate': _learning_rate(16), 'warmup_epochs': 0})
  return common.apply_arg(config, arg, smoke)
