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
  # The mixing, read by msda_jax.from_config. A field the chosen method does
  # not take is ignored, so --config.msda.method=X switches methods alone.
  config.msda = ml_collections.ConfigDict(dict(
      method='hmix',  # Any msda_jax method name (cutmix, fmix, ...) or 'choice'.
      alpha=1.0,  # lambda ~ Beta(alpha, alpha).
      r=0.5,  # HMix: the box takes r (1 - lambda) of the image.
      # CutMix: None, or timm's box side range, e.g. '(0.2, 0.8)'.
      minmax=ml_collections.config_dict.placeholder(tuple),
      exact_box=False,  # CutMix/HMix: True for timm 1.0.31's box rounding.
      mode='elem',  # One lambda and mask per sample (or 'pair', 'batch').
      prob=1.0,  # Probability that a sample is mixed at all.
      partner='flip',  # Sample i mixes with B-1-i (or 'roll', 'permute').
      label_smoothing=0.0,  # Applied to the one-hot labels before mixing.
      # None: the dataset's number of classes (train/train.py fills it in).
      num_classes=ml_collections.config_dict.placeholder(int),
      # method='choice' only: timm's recipe, CutMix (alpha 1) or Mixup
      # (alpha 0.8) with equal probability, per sample.
      choices=(dict(method='cutmix', alpha=1.0),
               dict(method='mixup', alpha=0.8)),
      probs=(0.5, 0.5)))
  return config
