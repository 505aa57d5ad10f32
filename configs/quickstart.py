r"""Quickstart: a small CNN on scikit-learn's 8x8 digits with HMix, on CPU.

The bundled digits (1797 images, 10 classes; a fixed stratified 20% test
split) need no download. About 12 seconds on 2 CPU cores.

  python -m train.main --config=configs/quickstart.py --workdir=/tmp/run

Any field can be overridden, e.g. another method:

  python -m train.main --config=configs/quickstart.py --workdir=/tmp/cutmix \
      --config.msda.method=cutmix --config.msda.alpha=1.0

Fields that start as None take a value the same way, tuples in quotes, e.g.
timm's fixed-range CutMix box: ``--config.msda.minmax='(0.2, 0.8)'``. The
``msda`` block (`common.msda_config`) has every option of every method, e.g.
``--config.msda.method=fmix --config.msda.decay_power=2``.

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
  # The mixing, read by msda_jax.from_config: a field for every option of
  # every method (configs/common.py; print(config.msda) lists them), each
  # method's own default where it is None. A field the chosen method does not
  # take is ignored, so --config.msda.method=X switches methods alone.
  config.msda = common.msda_config(method='hmix')
  return common.apply_arg(config, arg, _SMOKE)
