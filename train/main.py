r"""Runs one training job: ``python -m train.main --config=... --workdir=...``.

  python -m train.main --config=configs/quickstart.py --workdir=/tmp/run
  python -m train.main --config=configs/cifar10.py \
      --config.data.data_dir=/data/tfds --workdir=/tmp/cifar10_hmix

Flags ``--config.<field>=<value>`` override any config field. Rerunning with
the same ``--workdir`` resumes from the latest checkpoint there. On several
hosts, start the same command on every host after `jax.distributed` is set up
by the launcher (e.g. with ``--jax_distributed``); each process loads its own
slice of every batch.
"""

import logging as std_logging

from absl import app
from absl import flags
from absl import logging
import jax
from ml_collections import config_flags

from train import train

__all__ = ['main']

_CONFIG = config_flags.DEFINE_config_file(
    'config', None, 'Path to a config file (configs/*.py), optionally with '
    '":arg" passed to its get_config().', lock_config=True)
_WORKDIR = flags.DEFINE_string(
    'workdir', None, 'Directory for checkpoints, metrics and summaries.')
_JAX_DISTRIBUTED = flags.DEFINE_bool(
    'jax_distributed', False,
    'Call jax.distributed.initialize() first (multi-host runs).')

flags.mark_flags_as_required(['config', 'workdir'])


class _QuietCheckpointInfo(std_logging.Filter):
  """Drops orbax's INFO chatter (a dozen lines per save); keeps its warnings."""

  def filter(self, record: std_logging.LogRecord) -> bool:
    return (record.levelno >= std_logging.WARNING
            or '/orbax/' not in record.pathname)


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  logging.get_absl_handler().addFilter(_QuietCheckpointInfo())
  if _JAX_DISTRIBUTED.value:
    jax.distributed.initialize()
  logging.info('JAX process %d of %d, %d local / %d global devices (%s).',
               jax.process_index(), jax.process_count(),
               jax.local_device_count(), jax.device_count(),
               jax.default_backend())
  result = train.train_and_evaluate(_CONFIG.value, _WORKDIR.value)
  if jax.process_index() == 0:
    top5 = ''
    if 'test_top5_accuracy' in result:
      top5 = f", test top-5 {result['test_top5_accuracy']:.4f}"
    print(f"final: step {result['step']}, test accuracy "
          f"{result['test_accuracy']:.4f}{top5}, test loss "
          f"{result['test_loss']:.4f}, {result['wall_seconds']:.1f} s",
          flush=True)


if __name__ == '__main__':
  app.run(main)
