r"""Runs one training job: ``python -m train.main --config=... --workdir=...``.

  python -m train.main --config=configs/quickstart.py --workdir=/tmp/run
  python -m train.main --config=configs/cifar10.py \
      --config.data.data_dir=/data/tfds --workdir=/tmp/cifar10_hmix

Flags ``--config.<field>=<value>`` override any config field. Rerunning with
the same ``--workdir`` resumes from the latest checkpoint there. On several
hosts (or several processes of one), start the same command in every process:
with ``--jax_distributed`` where JAX detects the cluster (SLURM, Cloud TPU,
...), or by hand::

  python -m train.main --config=configs/quickstart.py --workdir=/shared/run \
      --jax_coordinator=HOST0:1234 --jax_num_processes=2 --jax_process_id=I

Each process loads its own slice of every batch (or, with the training set
on the devices, builds its devices' rows there); all use the same workdir.

SIGTERM (a preemption notice) or Ctrl-C stops every process at the same
step, after writing a checkpoint there, and exits 0; the same command then
continues the run.
"""


from absl import app
from absl import flags
from absl import logging
import jax
from ml_collections import config_flags

from train import checkpoint
from train import train

__all__ = ['main']

_CONFIG = config_flags.DEFINE_config_file(
    'config', None, 'Path to a config file (configs/*.py), optionally with '
    '":arg" passed to its get_config().', lock_config=True)
_WORKDIR = flags.DEFINE_string(
    'workdir', None, 'Directory for checkpoints, metrics and summaries.')
_JAX_DISTRIBUTED = flags.DEFINE_bool(
    'jax_distributed', False,
    'Call jax.distributed.initialize() first, with the settings the cluster '
    'provides (SLURM, Cloud TPU, Kubernetes, ...).')
_JAX_COORDINATOR = flags.DEFINE_string(
    'jax_coordinator', None,
    'HOST:PORT of process 0: join a multi-process run by hand (with '
    '--jax_num_processes and --jax_process_id).')
_JAX_NUM_PROCESSES = flags.DEFINE_integer(
    'jax_num_processes', None, 'Number of processes, with --jax_coordinator.')
_JAX_PROCESS_ID = flags.DEFINE_integer(
    'jax_process_id', None,
    'This process, 0 .. N-1, with --jax_coordinator.')

flags.mark_flags_as_required(['config', 'workdir'])


def _initialize_distributed() -> None:
  """Joins the processes of a multi-process run, as the flags say.

  Raises:
    app.UsageError: an incomplete or contradictory set of flags.
  """
  manual = {'--jax_coordinator': _JAX_COORDINATOR.value,
            '--jax_num_processes': _JAX_NUM_PROCESSES.value,
            '--jax_process_id': _JAX_PROCESS_ID.value}
  given = [name for name, value in manual.items() if value is not None]
  if given and _JAX_DISTRIBUTED.value:
    raise app.UsageError(f'--jax_distributed takes its settings from the '
                         f'cluster; drop {given} or drop --jax_distributed')
  if given and len(given) < len(manual):
    missing = sorted(set(manual) - set(given))
    raise app.UsageError(f'{given} also need {missing}')
  if given:
    num_processes, process_id = (_JAX_NUM_PROCESSES.value,
                                 _JAX_PROCESS_ID.value)
    if not 0 <= process_id < num_processes:
      raise app.UsageError(
          f'--jax_process_id={process_id} must be in [0, '
          f'--jax_num_processes={num_processes})')
    jax.distributed.initialize(coordinator_address=_JAX_COORDINATOR.value,
                               num_processes=num_processes,
                               process_id=process_id)
  elif _JAX_DISTRIBUTED.value:
    jax.distributed.initialize()


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  logging.get_absl_handler().addFilter(checkpoint.QuietOrbaxInfo())
  _initialize_distributed()
  logging.info('JAX process %d of %d, %d local / %d global devices (%s).',
               jax.process_index(), jax.process_count(),
               jax.local_device_count(), jax.device_count(),
               jax.default_backend())
  result = train.train_and_evaluate(_CONFIG.value, _WORKDIR.value)
  if 'stopped_by' in result:
    # A preemption notice or Ctrl-C: the checkpoint is written; exit 0.
    if jax.process_index() == 0:
      print(f"stopped: {result['stopped_by']} at step {result['step']}; "
            'run the same command to continue', flush=True)
    return
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
