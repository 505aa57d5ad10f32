r"""CIFAR-100 under the CIFAR-10 protocol of configs/cifar10.py.

PreActResNet-18, 200 epochs, SGD + cosine, crop + flip, HMix on every sample;
only the dataset and its pixel statistics differ from CIFAR-10.

From TFDS ArrayRecord files (prepared once with
``tfds build cifar100 --file_format=array_record --data_dir=DIR``):

  python -m train.main --config=configs/cifar100.py --workdir=/tmp/cifar100 \
      --config.data.data_dir=DIR

From an image folder ROOT/{train,test}/{class}/*.jpg|png:

  python -m train.main --config=configs/cifar100.py --workdir=/tmp/cifar100 \
      --config.data.name=image_folder --config.data.data_dir=ROOT

Other methods: ``--config.msda.method=cutmix`` (or mixup, gmix, none, or
choice: timm's CutMix-or-Mixup, ``msda.choices`` and ``msda.probs``).
``configs/cifar100.py:smoke`` shrinks the model and runs 2 steps (CPU tests).
"""

import ml_collections

from configs import cifar10


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """The CIFAR-100 config; ``arg='smoke'`` shrinks it for CPU tests.

  The CIFAR-10 protocol on CIFAR-100: only the dataset and its statistics
  differ.
  """
  config = cifar10.get_config(arg)
  config.data.name = 'cifar100'
  config.data.mean = (129.3, 124.1, 112.4)  # CIFAR-100 statistics, uint8.
  config.data.std = (68.2, 65.4, 70.4)
  return config  # The mixing (config.msda) is CIFAR-10's.
