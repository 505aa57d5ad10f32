r"""CIFAR-10, PreActResNet-18, 200 epochs: the CIFAR protocol of MSDA papers.

SGD (momentum 0.9, Nesterov), lr 0.1, weight decay 5e-4, cosine schedule,
batch 128, random crop (padding 4) + horizontal flip, HMix (alpha 1, r 0.5)
on every sample.

From TFDS ArrayRecord files (prepared once with
``tfds build cifar10 --file_format=array_record --data_dir=DIR``):

  python -m train.main --config=configs/cifar10.py --workdir=/tmp/cifar10 \
      --config.data.data_dir=DIR

From an image folder ROOT/{train,test}/{class}/*.jpg|png (e.g. the JPEG copy
in ../shared/data/cifar10-jpeg.tar.gz, extracted to /tmp/cifar10-jpeg), on
CPU with the im2col convolution:

  python -m train.main --config=configs/cifar10.py --workdir=/tmp/cifar10 \
      --config.data.name=image_folder --config.data.data_dir=/tmp/cifar10-jpeg \
      --config.model.conv=im2col

Other methods: ``--config.msda.method=cutmix`` (or mixup, gmix, none, or
choice: timm's CutMix-or-Mixup, ``msda.choices`` and ``msda.probs``).
``configs/cifar10.py:smoke`` shrinks the model and runs 2 steps (CPU tests).
"""

import ml_collections

from configs import common


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """The CIFAR-10 config; ``arg='smoke'`` shrinks it for CPU tests."""
  config = common.base_config(
      common.data_config(
          'cifar10', image_size=32, channels=3, augment='crop_flip',
          mean=(125.3, 123.0, 113.9),  # CIFAR-10 statistics, uint8 units.
          std=(63.0, 62.1, 66.7), num_workers=8),
      common.model_config('preact_resnet18', width=64),
      batch_size=128, eval_batch_size=512, num_epochs=200, learning_rate=0.1,
      eval_every_epochs=5)
  # The mixing, read by msda_jax.from_config: a field for every option of
  # every method (configs/common.py; print(config.msda) lists them), each
  # method's own default where it is None. A field the chosen method does not
  # take is ignored, so --config.msda.method=X switches methods alone.
  config.msda = common.msda_config(method='hmix')
  return common.apply_arg(config, arg, common.smoke_fields(width=8))
