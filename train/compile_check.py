r"""Compiles a run's train and eval steps for a TPU slice, without a TPU.

  python -m train.compile_check --config=configs/cifar10.py --topology=v5e:2x4
  python -m train.compile_check --config=configs/imagenet_resnet50.py \
      --topology=v4-8 --methods=none,mixup,cutmix,hmix,gmix \
      --out=/tmp/imagenet_v4-8.json

What compiles is the step the run would run: the model
(`models.create_model`), optimizer and schedule (`train/optimizer.py`), the
mixer of ``config.msda`` under ``shard_map`` (`steps.make_jit_train_step`)
and the eval step (`steps.eval_step`), with the replicated train state and
the configured global batch sharded P('data') over the slice's devices
(`partitioning.make_data_mesh`). No data is loaded: the image shape comes
from ``config.data``, the class count from the dataset name (`CLASS_COUNTS`),
``msda.num_classes`` or ``--num_classes``.

For every step the report gives, per device: argument, output, temporary and
total bytes (`jax.stages.Compiled.memory_analysis`) against the chip's HBM,
FLOPs and bytes accessed (`cost_analysis`; XLA's ``optimal_seconds`` is not
a time and is left out), the collectives of the compiled program, and for
each mixing method the difference from no mixing. ``--config.x=y`` overrides
any config field. A batch that does not divide over the devices, or a step
that does not fit in HBM, ends the command with a message and exit status 1
(the report is printed, and written by ``--out``, first).

Compiling for TPU needs ``libtpu`` (``pip install libtpu``), not a TPU;
``--platform=cpu`` compiles the same steps for as many local CPU devices
instead (tests; memory figures of XLA:CPU, not of the TPU).
"""

import copy
import functools
import json
import os
import re
import subprocess
import sys
import time
from typing import Any, Sequence

from absl import app
from absl import flags
from absl import logging
import jax
import jax.numpy as jnp
from jax.sharding import NamedSharding, PartitionSpec
import ml_collections
from ml_collections import config_flags
import numpy as np

from train import partitioning
from train import steps as steps_lib
from train import tpu_topology
# The loop's own builder (`run_parts`), so that the steps compiled here are
# the ones the run builds.
from train import train as train_lib

__all__ = [
    'CLASS_COUNTS', 'COLLECTIVES', 'build_run', 'check',
    'collective_ops', 'count_collectives', 'dataset_facts', 'format_report',
    'judge_fit', 'main', 'require_fit', 'training_config'
]

# Classes and training-set size of the datasets the configs name, so that
# nothing has to be opened to build the model and schedules.
CLASS_COUNTS = {'digits': (10, 1437), 'cifar10': (10, 50_000),
                'cifar100': (100, 50_000), 'imagenet2012': (1000, 1_281_167)}
COLLECTIVES = ('all-reduce', 'all-gather', 'collective-permute', 'all-to-all',
               'reduce-scatter')
# An HLO instruction's opcode is followed by '('; its name (%all-reduce.3)
# by a space, ',' or '.'. Async pairs count once, at '-start'.
_COLLECTIVE_RE = re.compile(
    '(' + '|'.join(COLLECTIVES) + r')(?:-start)?\(')
_ARRAY_RE = re.compile(r'\b([a-z]+[0-9]*[a-z0-9]*)\[([0-9,]*)\]')
_DTYPE_BYTES = {'pred': 1, 's8': 1, 'u8': 1, 's16': 2, 'u16': 2, 'f16': 2,
                'bf16': 2, 's32': 4, 'u32': 4, 'f32': 4, 's64': 8, 'u64': 8,
                'f64': 8, 'c64': 8, 'c128': 16}
_OOM_MARKERS = ('RESOURCE_EXHAUSTED', 'Ran out of memory', 'out of memory')


def training_config(config: ml_collections.ConfigDict
                    ) -> ml_collections.ConfigDict:
  """The training config: ``config.base`` of a study config, else ``config``."""
  if 'study' in config and 'base' in config:
    return config.base
  return config


def dataset_facts(data: ml_collections.ConfigDict,
                  num_classes: int | None = None,
                  msda_num_classes: int | None = None) -> tuple[int, int | None]:
  """(classes, training examples or None) of ``config.data``, unopened.

  The class count is ``num_classes`` if given, else ``msda_num_classes``,
  else the dataset's (`CLASS_COUNTS`, ``data.num_classes`` of synthetic data,
  the class folders of an image folder that exists here).

  Raises:
    ValueError: the count is unknown; the message names ``--num_classes``.

  Example:
    >>> import ml_collections
    >>> dataset_facts(ml_collections.ConfigDict(dict(name='cifar100')))
    (100, 50000)
  """
  name = data.name
  known, size = CLASS_COUNTS.get(name, (None, None))
  if name == 'synthetic':
    known, size = data.get('num_classes', 10), data.get('train_size', 1024)
  elif name == 'image_folder' and data.get('data_dir'):
    split_dir = os.path.join(os.path.expanduser(data.data_dir),
                             data.get('train_split', 'train'))
    if os.path.isdir(split_dir):
      known = sum(os.path.isdir(os.path.join(split_dir, d))
                  for d in os.listdir(split_dir)) or None
  if data.get('train_examples'):
    size = data.train_examples
  classes = num_classes or msda_num_classes or known
  if not classes:
    raise ValueError(
        f'the class count of data.name={name!r} is not known without opening '
        f'it: pass --num_classes=K (or --config.msda.num_classes=K); known '
        f'datasets: {sorted(CLASS_COUNTS)}, synthetic')
  return int(classes), size


def build_run(config: ml_collections.ConfigDict,
              num_classes: int | None = None) -> train_lib.RunParts:
  """The model, optimizer, schedule and mixer ``config`` trains with.

  `train.train.run_parts`, the loop's own builder, with the dataset's class
  count and size from `dataset_facts` instead of the dataset.

  Raises:
    ValueError: unknown model, model dtype, method, optimizer or class count.
  """
  train_lib.check_model(config)
  classes, train_size = dataset_facts(config.data, num_classes,
                                      config.msda.get('num_classes'))
  steps_per_epoch = max((train_size or 1000 * config.batch_size)
                        // config.batch_size, 1)
  return train_lib.run_parts(config, classes, steps_per_epoch)


def collective_ops(hlo_text: str) -> list[dict]:
  """The collective instructions of HLO text: kind, result shape and bytes.

  Async collectives (``all-gather-start`` ... ``-done``) count once, at the
  start; its bytes are those of the result (for all-gather and
  collective-permute starts, whose shape also holds the operand, the largest
  array).

  Example:
    >>> collective_ops('%g = s32[64]{0} all-gather(s32[8]{0} %x)')
    [{'kind': 'all-gather', 'shape': 's32[64]{0}', 'bytes': 256}]
  """
  ops = []
  for line in hlo_text.splitlines():
    match = _COLLECTIVE_RE.search(line)
    if not match or '=' not in line[:match.start()]:
      continue
    shape = line[line.index('=', 0, match.start()) + 1:match.start()].strip()
    sizes = [int(np.prod([int(d) for d in dims.split(',') if d] or [1]))
             * _DTYPE_BYTES[dtype]
             for dtype, dims in _ARRAY_RE.findall(shape)
             if dtype in _DTYPE_BYTES]
    start = line[match.end() - 7:match.end() - 1] == '-start'
    nbytes = (max(sizes, default=0)
              if start and match.group(1) != 'all-reduce' else sum(sizes))
    ops.append(dict(kind=match.group(1), shape=shape[:200], bytes=nbytes))
  return ops


def count_collectives(hlo_text: str) -> dict[str, int]:
  """Collective instructions in HLO text, by kind (`COLLECTIVES`).

  Async collectives (``all-reduce-start`` ... ``-done``) count once.

  Example:
    >>> count_collectives('%all-reduce.1 = f32[] all-reduce(f32[] %x)')['all-reduce']
    1
  """
  counts = dict.fromkeys(COLLECTIVES, 0)
  for op in collective_ops(hlo_text):
    counts[op['kind']] += 1
  return counts


def _tree_bytes(tree) -> int:
  return int(sum(np.prod(x.shape) * np.dtype(x.dtype).itemsize
                 for x in jax.tree.leaves(tree)))


def _abstract(tree, sharding) -> Any:
  return jax.tree.map(
      lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding),
      tree)


def _compile(name: str, jitted, *args) -> tuple[Any, float]:
  start = time.time()
  try:
    return jitted.lower(*args).compile(), time.time() - start
  except Exception as error:  # pylint: disable=broad-except
    text = str(error)
    if any(marker in text for marker in _OOM_MARKERS):
      summary = next((line for line in text.splitlines()
                      if 'memory' in line.lower()), text.splitlines()[0])
      raise ValueError(f'{name} does not fit in device memory: the compiler '
                       f'ran out of HBM ({summary.strip()}); lower '
                       '--config.batch_size (--config.eval_batch_size) or use '
                       'more devices') from error
    raise


def _step_record(compiled, compile_seconds: float) -> dict:
  """Per-device memory, cost and collectives of one compiled step."""
  memory = compiled.memory_analysis()
  record = dict(
      argument_bytes=int(memory.argument_size_in_bytes),
      output_bytes=int(memory.output_size_in_bytes),
      alias_bytes=int(memory.alias_size_in_bytes),
      temp_bytes=int(memory.temp_size_in_bytes),
      generated_code_bytes=int(memory.generated_code_size_in_bytes))
  # Donated arguments alias outputs: count those bytes once.
  record['total_bytes'] = (record['argument_bytes'] + record['output_bytes']
                           - record['alias_bytes'] + record['temp_bytes']
                           + record['generated_code_bytes'])
  cost = compiled.cost_analysis()
  if isinstance(cost, (list, tuple)):  # Older JAX: one dict per program.
    cost = cost[0] if cost else {}
  cost = cost or {}
  # 'optimal_seconds' is deliberately not read: it is no time (negative).
  record['flops'] = float(cost.get('flops', 0.0))
  record['bytes_accessed'] = float(cost.get('bytes accessed', 0.0))
  ops = collective_ops(compiled.as_text())
  record['collectives'] = dict.fromkeys(COLLECTIVES, 0)
  for op in ops:
    record['collectives'][op['kind']] += 1
  record['collective_ops'] = ops
  record['compile_seconds'] = round(compile_seconds, 2)
  return record


def _methods_to_compile(config, methods: Sequence[str] | None,
                        baseline: str | None) -> list[str]:
  wanted = list(methods) if methods else [config.msda.method]
  if baseline is not None and baseline not in wanted:
    wanted.append(baseline)  # The reference of the differences.
  return list(dict.fromkeys(wanted))


def _steps(report: dict) -> list[tuple[str, dict]]:
  steps = [(f'train step ({method})', record)
           for method, record in report['train'].items()]
  if 'eval' in report:
    steps.append(('eval step', report['eval']))
  return steps


def judge_fit(report: dict, hbm_bytes: int) -> dict:
  """Sets ``hbm_bytes_per_device`` and each step's ``hbm_fraction``, ``fits``.

  A step fits when its ``total_bytes`` per device are at most ``hbm_bytes``.
  Returns ``report`` (changed in place).
  """
  report['hbm_bytes_per_device'] = int(hbm_bytes)
  for _, record in _steps(report):
    record['hbm_fraction'] = record['total_bytes'] / hbm_bytes
    record['fits'] = record['total_bytes'] <= hbm_bytes
  return report


def _with_method(config: ml_collections.ConfigDict,
                 method: str) -> ml_collections.ConfigDict:
  config = copy.deepcopy(config)
  with config.unlocked():
    config.msda.method = method
  return config


def check(config: ml_collections.ConfigDict, target: tpu_topology.Slice, *,
          devices: Sequence[Any], methods: Sequence[str] | None = None,
          hbm_bytes: int | None = None, num_classes: int | None = None,
          eval_step: bool = True, baseline: str | None = 'none') -> dict:
  """Compiles the train step per method (and the eval step) for ``devices``.

  Args:
    config: a training config (or a study config: its ``base``).
    target: the slice compiled for (names and HBM in the report).
    devices: `tpu_topology.compile_devices` of ``target``.
    methods: mixing methods to compile the train step with (each replaces
      ``msda.method``); None: the config's.
    hbm_bytes: device memory to compare with; None: the chip's HBM.
    num_classes: the dataset's class count, where `dataset_facts` cannot
      tell it.
    eval_step: also compile the eval step.
    baseline: the method every other one is compared with (added to
      ``methods``; its own ``vs_none`` differences are zeros); None: no
      comparison.

  Returns:
    The report: the slice and batch, state sizes, and under ``train`` one
    record per method (``argument_bytes``, ``output_bytes``,
    ``alias_bytes``, ``temp_bytes``, ``total_bytes``, ``hbm_fraction``,
    ``fits``, ``flops``, ``bytes_accessed``, ``collectives`` (counts by
    kind), ``collective_ops`` (kind, shape and bytes of each), and
    ``vs_none``: the differences from ``baseline``), ``eval`` likewise.

  Raises:
    ValueError: a batch size that does not divide over the devices, a
      parallelism other than 'jit', a bad config field, or a step the
      compiler could not fit in HBM.
  """
  config = training_config(config)
  devices = list(devices)
  if config.parallelism != 'jit':
    raise ValueError(
        f'parallelism={config.parallelism!r}: compile_check compiles the '
        "'jit' step (pmap runs the same step body); pass "
        '--config.parallelism=jit')
  partitioning.check_batch_size(config.batch_size, len(devices))
  if eval_step:
    partitioning.check_batch_size(config.eval_batch_size, len(devices),
                                  'eval_batch_size')
  hbm = int(hbm_bytes or target.hbm_bytes)
  across = bool(config.get('mix_across_devices', False))
  mesh = partitioning.make_data_mesh(devices)
  replicated = NamedSharding(mesh, PartitionSpec())
  sharded = NamedSharding(mesh, PartitionSpec(partitioning.DATA_AXIS))

  report = dict(
      topology=target.topology, accelerator_type=target.accelerator_type,
      name=target.name, platform=devices[0].platform,
      device_kind=devices[0].device_kind, num_devices=len(devices),
      model=config.model.name,
      model_dtype=config.model.dtype, batch_size=config.batch_size,
      per_device_batch=config.batch_size // len(devices),
      eval_batch_size=config.eval_batch_size,
      mix_across_devices=across, train={})
  records = report['train']
  parts = None
  for method in _methods_to_compile(config, methods, baseline):
    parts = build_run(_with_method(config, method), num_classes)
    model = parts.model_fn(None)
    state = jax.eval_shape(functools.partial(
        steps_lib.create_train_state, model=model, tx=parts.tx,
        image_shape=parts.image_shape), jax.random.key(config.seed))
    step = steps_lib.make_jit_train_step(
        mesh, model=model, tx=parts.tx, mixer=parts.mixer,
        schedule=parts.schedule, mean=parts.mean, std=parts.std,
        across_devices=across)
    batch = dict(
        images=jax.ShapeDtypeStruct((config.batch_size, *parts.image_shape),
                                    jnp.uint8, sharding=sharded),
        labels=jax.ShapeDtypeStruct((config.batch_size,), jnp.int32,
                                    sharding=sharded))
    compiled, seconds = _compile(
        f'the train step ({method}, batch_size={config.batch_size}, '
        f'{config.batch_size // len(devices)} per device)', step,
                                 _abstract(state, replicated), batch)
    records[method] = dict(mixer=parts.mixer.name,
                           **_step_record(compiled, seconds))
    logging.info('Compiled the train step (%s) for %s in %.1f s.', method,
                 target.topology, seconds)
  report.update(
      num_classes=parts.num_classes, image_shape=list(parts.image_shape),
      steps_per_epoch=parts.steps_per_epoch,
      params_bytes=_tree_bytes(state.params),
      batch_stats_bytes=_tree_bytes(state.batch_stats),
      opt_state_bytes=_tree_bytes(state.opt_state),
      state_bytes=_tree_bytes(state),
      batch_bytes_per_device=_tree_bytes(batch) // len(devices))
  for method, record in records.items():
    if baseline is not None:
      record['vs_none'] = {
          key: record[key] - records[baseline][key]
          for key in ('argument_bytes', 'temp_bytes', 'total_bytes', 'flops',
                      'bytes_accessed')}
  if eval_step:
    evaluate = jax.jit(functools.partial(
        steps_lib.eval_step, model=parts.model_fn(None), mean=parts.mean,
        std=parts.std))
    size = config.eval_batch_size
    eval_batch = dict(
        images=jax.ShapeDtypeStruct((size, *parts.image_shape), jnp.uint8,
                                    sharding=sharded),
        labels=jax.ShapeDtypeStruct((size,), jnp.int32, sharding=sharded),
        mask=jax.ShapeDtypeStruct((size,), jnp.float32, sharding=sharded))
    compiled, seconds = _compile(
        f'the eval step (eval_batch_size={size}, {size // len(devices)} per '
        'device)', evaluate,
                                 _abstract(state, replicated), eval_batch)
    report['eval'] = _step_record(compiled, seconds)
  return judge_fit(report, hbm)


def require_fit(report: dict) -> None:
  """Raises ValueError naming every step of ``report`` that exceeds HBM."""
  too_big = [f'{name}: {_gib(r["total_bytes"])} GiB'
             for name, r in _steps(report) if not r['fits']]
  if too_big:
    raise ValueError(
        f'does not fit: per device {"; ".join(too_big)} > '
        f'{_gib(report["hbm_bytes_per_device"])} GiB HBM of a '
        f'{report["topology"]} device (batch_size={report["batch_size"]}, '
        f'{report["per_device_batch"]} per device); lower '
        '--config.batch_size / --config.eval_batch_size or use more devices')


def _gib(nbytes: float) -> str:
  return f'{nbytes / 2**30:.3f}'


def format_report(report: dict) -> str:
  """The report as a text table (bytes in MiB, per device)."""
  mib = lambda n: f'{n / 2**20:,.1f}'  # pylint: disable=unnecessary-lambda-assignment
  lines = [
      f"{report['model']} ({report['model_dtype']}), {report['num_classes']} "
      f"classes, images {tuple(report['image_shape'])}; global batch "
      f"{report['batch_size']} = {report['per_device_batch']} x "
      f"{report['num_devices']} {report['device_kind']} devices "
      f"({report['topology']}, {report['accelerator_type']}, "
      f"platform {report['platform']}); HBM {_gib(report['hbm_bytes_per_device'])}"
      f" GiB per device",
      f"state {mib(report['state_bytes'])} MiB (params "
      f"{mib(report['params_bytes'])}, optimizer "
      f"{mib(report['opt_state_bytes'])}, batch stats "
      f"{mib(report['batch_stats_bytes'])}); batch "
      f"{mib(report['batch_bytes_per_device'])} MiB per device",
      '',
      'per device (MiB) | arguments | outputs | temp | total | % HBM | '
      'GFLOP | GB accessed | collectives | vs none: total MiB, MFLOP']
  rows = [(f"train[{m}]", r) for m, r in report['train'].items()]
  if 'eval' in report:
    rows.append(('eval', report['eval']))
  for name, r in rows:
    collectives = _collective_summary(r['collective_ops'])
    diff = r.get('vs_none')
    diff = (f"{diff['total_bytes'] / 2**20:+,.2f}, "
            f"{diff['flops'] / 1e6:+,.2f}") if diff else ''
    lines.append(
        f"{name} | {mib(r['argument_bytes'])} | {mib(r['output_bytes'])} | "
        f"{mib(r['temp_bytes'])} | {mib(r['total_bytes'])} | "
        f"{100 * r['hbm_fraction']:.2f} | {r['flops'] / 1e9:,.3f} | "
        f"{r['bytes_accessed'] / 1e9:,.3f} | {collectives} | {diff}")
  return '\n'.join(lines)


def _collective_summary(ops: list[dict]) -> str:
  """E.g. 'all-reduce 1 (1.2 MB), all-gather 1 (256 B)'; 'none'."""
  parts = []
  for kind in COLLECTIVES:
    mine = [op['bytes'] for op in ops if op['kind'] == kind]
    if mine:
      total = sum(mine)
      size = f'{total / 1e6:.1f} MB' if total >= 1e5 else f'{total} B'
      parts.append(f'{kind} {len(mine)} ({size})')
  return ', '.join(parts) or 'none'


def _provenance() -> dict:
  info = dict(jax_version=jax.__version__, command=' '.join(sys.argv))
  try:
    import importlib.metadata  # pylint: disable=g-import-not-at-top
    info['libtpu_version'] = importlib.metadata.version('libtpu')
  except Exception:  # pylint: disable=broad-except
    info['libtpu_version'] = None
  try:
    info['commit'] = subprocess.run(
        ['git', 'rev-parse', '--short', 'HEAD'], capture_output=True,
        text=True, check=True,
        cwd=os.path.dirname(os.path.abspath(__file__))).stdout.strip()
  except Exception:  # pylint: disable=broad-except
    info['commit'] = None
  return info


_FLAGS = {}


def _define_flags() -> None:
  """The command-line flags (only when run as a program, so that importing
  this module next to train.main does not define --config twice)."""
  _FLAGS['config'] = config_flags.DEFINE_config_file(
      'config', None, 'Path to a config file (configs/*.py), optionally with '
      '":arg" passed to its get_config().', lock_config=True)
  _FLAGS['topology'] = flags.DEFINE_string(
      'topology', None, f'The TPU slice: {tpu_topology.ACCEPTED_FORMS}.')
  _FLAGS['platform'] = flags.DEFINE_enum(
      'platform', 'tpu', tpu_topology.PLATFORMS,
      "'tpu': compile for the slice with libtpu; 'cpu': compile the same "
      'steps for as many local CPU devices (a stand-in, for tests).')
  _FLAGS['methods'] = flags.DEFINE_list(
      'methods', None, 'Mixing methods to compile the train step with (e.g. '
      "none,mixup,cutmix,hmix,gmix); default: the config's, and none.")
  _FLAGS['hbm_gib'] = flags.DEFINE_float(
      'hbm_gib', None, 'Device memory to check against, GiB; default: the '
      f"chip's HBM {tpu_topology.HBM_GIB}.")
  _FLAGS['num_classes'] = flags.DEFINE_integer(
      'num_classes', None, 'Class count of a dataset the tool cannot tell '
      'unopened (an image folder not on this machine, other TFDS names).')
  _FLAGS['eval'] = flags.DEFINE_bool('eval', True,
                                     'Also compile the eval step.')
  _FLAGS['out'] = flags.DEFINE_string('out', None,
                                      'Write the report as JSON here.')
  flags.mark_flags_as_required(['config', 'topology'])


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  opts = {name: flag.value for name, flag in _FLAGS.items()}
  try:
    target = tpu_topology.parse_slice(opts['topology'])
    if opts['platform'] == 'cpu':
      # Read when the CPU backend starts, which nothing has done yet.
      os.environ['XLA_FLAGS'] = (
          os.environ.get('XLA_FLAGS', '') +
          f' --xla_force_host_platform_device_count={target.num_devices}')
    # The local backend stays CPU: the TPU is only compiled for.
    jax.config.update('jax_platforms', 'cpu')
    devices = tpu_topology.compile_devices(target, opts['platform'])
    hbm = None if opts['hbm_gib'] is None else int(opts['hbm_gib'] * 2**30)
    report = check(opts['config'], target, devices=devices,
                   methods=opts['methods'], hbm_bytes=hbm,
                   num_classes=opts['num_classes'], eval_step=opts['eval'])
  except ValueError as error:
    sys.exit(f'compile_check: {error}')
  report.update(_provenance(), label='compiled, not run')
  print(format_report(report), flush=True)
  if opts['out']:
    os.makedirs(os.path.dirname(os.path.abspath(opts['out'])), exist_ok=True)
    with open(opts['out'], 'w') as f:
      json.dump(report, f, indent=2, sort_keys=True)
  try:
    require_fit(report)
  except ValueError as error:
    sys.exit(f'compile_check: {error}')


if __name__ == '__main__':
  _define_flags()
  app.run(main)
