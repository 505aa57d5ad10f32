r"""Quickstart: a small CNN on scikit-learn's 8x8 digits with HMix, on CPU.

The bundled digits (1797 images, 10 classes; a fixed stratified 20% test
split) need no download. About 12 seconds on 2 CPU cores.

  python -m train.main --config=configs/quickstart.py --workdir=/tmp/run

Any field can be overridden, e.g. another method:

  python -m train.main --config=configs/quickstart.py --workdir=/tmp/cutmix \
      --config.msda.method=cutmix --config.msda.alpha=1.0

Fields that start as None take a value the same way, tuples in quotes, e.g.
timm's fixed-range CutMix box: ``--config.msda.minmax='(0.2, 0.8)'``. The
``msda`` block in `get_config` lists every mixing field.

``configs/quickstart.py:smoke`` runs a few steps (for tests).
"""

import ml_collections

from configs import common

# The shared smoke fields, with the quickstart's width and in-process loading
# kept, run for 4 steps with 2 logs, checkpoints and an evaluation.
_SMOKE = common.smoke_fields(
    width=32, num_epochs=1, total_steps=4, eval_batch_size=64,
    eval_every_epochs=1, log_every_steps=2, checkpoint_every_steps=2,
    eval_max_examples=64, **{'data.num_workers': 0})


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """The quickstart config; ``arg='smoke'`` shrinks it to a few steps."""
  config = common.base_config(
      common.data_config(
          'digits', test_fraction=0.2, image_size=8, channels=1,
          augment='none',
          mean=(77.9,),  # Pixel statistics of the digits, in uint8 units.
          std=(95.9,), num_workers=0),
      common.model_config('cnn_small', width=32),
      batch_size=64, eval_batch_size=128, num_epochs=40, learning_rate=0.05,
      log_every_steps=50, eval_every_epochs=10, checkpoint_every_steps=220)
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
  return common.apply_arg(config, arg, _SMOKE)
