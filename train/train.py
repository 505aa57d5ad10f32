"""The training loop: data, devices, steps, metrics, checkpoints, resume.

`train_and_evaluate` wires one run together: the dataset and its
deterministic batches (train/input_pipeline.py), the mixer from
``config.msda`` (`msda_jax.from_config`), the model, the compiled steps of
train/steps.py laid out for ``config.parallelism`` ('jit': replicated state,
batch sharded P('data'); 'pmap': the same step body under `jax.pmap`),
periodic evaluation, JSON-lines and TensorBoard metrics, and orbax
checkpoints from which a restarted run continues bit for bit.
"""

import dataclasses
import functools
import json
import os
import time
from typing import Any

from absl import logging
import jax
from jax.experimental import multihost_utils
import jax.numpy as jnp
import ml_collections
import msda_jax
import numpy as np
import optax
import tqdm

from train import augment
from train import checkpoint as checkpoint_lib
from train import datasets
from train import decode
from train import device_data
from train import input_pipeline
from train import metric_writers
from train import models
from train import optimizer as optimizer_lib
from train import partitioning
from train import preemption
from train import steps as steps_lib

__all__ = ['MODEL_DTYPES', 'RunParts', 'channel_stats', 'check_model', 'mix_schedule',
           'msda_config', 'run_parts', 'train_and_evaluate']

# Computation dtypes of the models (parameters stay float32).
MODEL_DTYPES = ('float32', 'bfloat16', 'float16')


def channel_stats(config: ml_collections.ConfigDict) -> tuple[Any, Any]:
  """``data.mean`` and ``data.std`` as float32 vectors.

  Raises:
    ValueError: if either has neither 1 nor ``data.channels`` values.
  """
  channels = config.data.channels
  stats = []
  for field in ('mean', 'std'):
    values = np.asarray(config.data[field], np.float32).reshape(-1)
    if len(values) not in (1, channels):
      raise ValueError(
          f'data.{field} has {len(values)} values but data.channels='
          f'{channels}: give 1 value or {channels} (one per channel)')
    stats.append(values)
  return stats[0], stats[1]


def mix_schedule(spec, steps_per_epoch: int, *, base: float = 1.0,
                 name: str = 'msda.prob_schedule'):
  """An optax schedule (of the optimizer step) from a config spec, or None.

  Specs: None (no schedule); ``dict(kind='off_after_epoch', epoch=E)``:
  ``base`` before epoch E, 0 from it on (timm's ``mixup_off_epoch``; for
  ``prob``); ``dict(kind='linear', start=a, end=b, epochs=E)``: a linear
  ramp from a to b over the first E epochs, then b.

  Example:
    >>> s = mix_schedule(dict(kind='off_after_epoch', epoch=2), 10)
    >>> float(s(19)), float(s(20))
    (1.0, 0.0)
  """
  if spec is None:
    return None
  spec = dict(spec)
  kind = spec.pop('kind', None)
  try:
    if kind == 'off_after_epoch':
      (epoch,) = (spec.pop('epoch'),)
      boundary = int(round(float(epoch) * steps_per_epoch))
      schedule = optax.join_schedules(
          [optax.constant_schedule(float(base)), optax.constant_schedule(0.0)],
          [boundary])
    elif kind == 'linear':
      start, end, epochs = spec.pop('start'), spec.pop('end'), spec.pop('epochs')
      schedule = optax.linear_schedule(
          float(start), float(end),
          transition_steps=max(int(round(float(epochs) * steps_per_epoch)), 1))
    else:
      raise KeyError
  except (KeyError, TypeError, ValueError):
    raise ValueError(
        f"{name} must be None, dict(kind='off_after_epoch', epoch=E) or "
        f"dict(kind='linear', start=a, end=b, epochs=E); got kind {kind!r} "
        f'with {spec}') from None
  if spec:
    raise ValueError(f'{name} has unknown fields {sorted(spec)}')
  return schedule


def msda_config(config: ml_collections.ConfigDict, num_classes: int,
                 steps_per_epoch: int | None = None) -> dict:
  """``config.msda`` for `msda_jax.from_config`, with the dataset's classes.

  ``msda.num_classes`` None (the configs' default) takes the dataset's class
  count; an explicit count must equal it (a smaller one would one-hot the
  larger labels to zeros without an error). ``msda.prob_schedule`` /
  ``msda.alpha_schedule`` (optional, see `mix_schedule`) become optax
  schedules of the optimizer step in place of ``prob`` / ``alpha``.
  """
  msda = config.msda.to_dict()
  for field, target in (('prob_schedule', 'prob'),
                        ('alpha_schedule', 'alpha')):
    spec = msda.pop(field, None)
    if spec is None:
      continue
    if steps_per_epoch is None:
      raise ValueError(f'msda.{field} needs the steps per epoch')
    if msda.get('method') == 'choice':
      raise ValueError(
          f'msda.{field} applies to one method; with method=choice schedule '
          'the choices in code (msda_jax.choice(..., probs=schedule))')
    base = msda.get(target, 1.0)
    base = 1.0 if base is None or isinstance(base, (list, tuple)) else base
    msda[target] = mix_schedule(spec, steps_per_epoch, base=base,
                                name=f'msda.{field}')
  given = msda.get('num_classes')
  if given is None:
    msda['num_classes'] = num_classes
  elif isinstance(given, int) and given != num_classes:
    raise ValueError(
        f'msda.num_classes={given} but the dataset has {num_classes} classes: '
        f'set msda.num_classes={num_classes} or leave it None (the dataset\'s '
        'count)')
  return msda


def check_model(config: ml_collections.ConfigDict) -> None:
  """Raises a ValueError naming ``model.name`` or ``model.dtype`` if unknown."""
  if config.model.name not in models.MODEL_NAMES:
    raise ValueError(f'unknown model {config.model.name!r}: expected one of '
                     f'{models.MODEL_NAMES}')
  if config.model.dtype not in MODEL_DTYPES:
    raise ValueError(f'unknown model.dtype {config.model.dtype!r}: expected '
                     f'one of {MODEL_DTYPES}')


@dataclasses.dataclass(frozen=True)
class RunParts:
  """What a run builds from its config before any data: model to mixer.

  Attributes:
    model_fn: ``model_fn(bn_axis_name) -> flax Module``.
    tx: the optimizer.
    schedule: the learning-rate schedule.
    mixer: the mixer of ``config.msda``.
    mean: per-channel mean, uint8 units.
    std: per-channel standard deviation.
    image_shape: (H, W, C) of a training image.
    num_classes: classes of the dataset.
    steps_per_epoch: training steps per epoch (schedules count in epochs).
    total_steps: ``config.total_steps``, or ``num_epochs`` epochs.
  """
  model_fn: Any
  tx: Any
  schedule: Any
  mixer: msda_jax.Mixer
  mean: np.ndarray
  std: np.ndarray
  image_shape: tuple[int, int, int]
  num_classes: int
  steps_per_epoch: int
  total_steps: int


def run_parts(config: ml_collections.ConfigDict, num_classes: int,
              steps_per_epoch: int) -> RunParts:
  """The model, optimizer, schedule and mixer that ``config`` trains with.

  `train_and_evaluate` and `train.compile_check` build their steps from
  these, so that the program checked for a TPU is the one the run compiles.

  Raises:
    ValueError: an unknown method, optimizer or schedule, or channel
      statistics that do not match ``data.channels``.
  """
  def model_fn(bn_axis_name: str | None):
    return models.create_model(
        config.model.name, num_classes=num_classes, conv=config.model.conv,
        width=config.model.width, dtype=jnp.dtype(config.model.dtype),
        bn_axis_name=bn_axis_name)

  mixer = msda_jax.from_config(
      msda_config(config, num_classes, steps_per_epoch))
  total_steps = config.total_steps or int(config.num_epochs * steps_per_epoch)
  schedule = optimizer_lib.learning_rate_schedule(
      config, total_steps=total_steps,
      warmup_steps=int(config.warmup_epochs * steps_per_epoch))
  tx = optimizer_lib.create_optimizer(config, schedule)
  mean, std = channel_stats(config)
  image_shape = (config.data.image_size, config.data.image_size,
                 config.data.channels)
  return RunParts(model_fn, tx, schedule, mixer, mean, std, image_shape,
                  num_classes, steps_per_epoch, total_steps)


def _check_config(config: ml_collections.ConfigDict) -> None:
  if config.parallelism not in partitioning.PARALLELISMS:
    raise ValueError(f'unknown parallelism {config.parallelism!r}: expected '
                     f'one of {partitioning.PARALLELISMS}')
  check_model(config)
  if config.keep_checkpoints < 2:
    raise ValueError(
        f'keep_checkpoints={config.keep_checkpoints}: keep at least 2, so '
        'that an unreadable newest checkpoint falls back to the one before')
  if config.get('checkpoint_every_minutes', 0.0) < 0:
    raise ValueError(f'checkpoint_every_minutes='
                     f'{config.checkpoint_every_minutes} must be >= 0 (0: '
                     'off)')
  partitioning.check_batch_size(config.batch_size, jax.device_count())
  partitioning.check_batch_size(config.eval_batch_size, jax.device_count(),
                                'eval_batch_size')


def _summarise(step_metrics: list[dict]) -> dict:
  """Averages per-step metrics (scalars, or pmap's equal per-device copies)."""
  fetched = jax.device_get(step_metrics)
  return {name: float(np.mean([m[name] for m in fetched]))
          for name in fetched[0]}


def _pack_metrics(step_metrics: list[dict]) -> list[dict]:
  """Per-step metrics as JSON (values and dtypes; float32 round-trips)."""
  return [{name: [np.asarray(value).tolist(), str(np.asarray(value).dtype)]
           for name, value in metrics.items()}
          for metrics in jax.device_get(step_metrics)]


def _unpack_metrics(packed: list[dict]) -> list[dict]:
  """The inverse of `_pack_metrics`: numpy values, bit for bit."""
  return [{name: np.asarray(value, dtype) for name, (value, dtype)
           in metrics.items()} for metrics in packed]


def _minutes_passed(minutes: float, since: float) -> bool:
  """Whether ``minutes`` (> 0) have passed since ``since``: process 0's
  clock decides, so that all processes save at the same step."""
  if minutes <= 0:
    return False
  passed = time.time() - since >= 60 * minutes
  if jax.process_count() > 1:
    passed = bool(multihost_utils.broadcast_one_to_all(np.bool_(passed)))
  return passed


class _Runner:
  """The compiled steps and the data layout of one parallelism mode.

  Keeps the loop free of jit/pmap branches: it calls `place_state`,
  `to_device`, `train`, `host_copy` and `evaluate`.
  """

  def __init__(self, config, model_fn, tx, mixer, schedule, mean, std):
    self.parallelism = config.parallelism
    self.mesh = partitioning.make_data_mesh()
    common = dict(tx=tx, mixer=mixer, schedule=schedule, mean=mean, std=std,
                  across_devices=config.get('mix_across_devices', False))
    if self.parallelism == 'jit':
      self.model = model_fn(None)
      self._train = steps_lib.make_jit_train_step(self.mesh, model=self.model,
                                                  **common)
    else:
      # Under pmap, BN averages its statistics over the devices so that it
      # sees the global batch, as it does under jit.
      self.model = model_fn(partitioning.DATA_AXIS)
      self._train = steps_lib.make_pmap_train_step(model=self.model, **common)
    self._eval = jax.jit(
        functools.partial(steps_lib.eval_step, model=model_fn(None), mean=mean,
                          std=std))

  def to_device(self, local_batch: dict) -> dict:
    if isinstance(local_batch['images'], jax.Array):
      return local_batch  # Built on device (device_data.DeviceBatches).
    if self.parallelism == 'jit':
      return partitioning.shard_batch(self.mesh, local_batch)
    return partitioning.split_for_pmap(local_batch, jax.local_device_count())

  def place_state(self, state: steps_lib.TrainState) -> steps_lib.TrainState:
    """A freshly initialised (or restored) single-copy state -> step layout."""
    if self.parallelism == 'jit':
      return partitioning.replicated(self.mesh, state)
    return partitioning.replicate_for_pmap(state)

  def train(self, state: steps_lib.TrainState,
            batch: dict) -> tuple[steps_lib.TrainState, dict]:
    """One step; under pmap the metrics have a (pmean-equal) device axis."""
    return self._train(state, batch)

  def single_copy(self, state: steps_lib.TrainState) -> steps_lib.TrainState:
    """The state as one logical copy (what eval takes); numpy under pmap."""
    if self.parallelism == 'jit':
      return state
    return partitioning.unreplicate_from_pmap(state)

  def host_copy(self, state: steps_lib.TrainState) -> steps_lib.TrainState:
    """The state as numpy arrays (what checkpoints store).

    Saving host arrays spares orbax one small slicing program per array
    shape and device for replicated arrays, which costs seconds on CPU.
    """
    return jax.device_get(self.single_copy(state))

  def evaluate(self, state: steps_lib.TrainState, batches) -> dict:
    state = partitioning.replicated(self.mesh, self.single_copy(state))
    totals = None
    for local_batch in batches:
      sums = self._eval(state, partitioning.shard_batch(self.mesh, local_batch))
      totals = sums if totals is None else jax.tree.map(jnp.add, totals, sums)
    totals = jax.device_get(totals)
    count = float(totals['count'])
    return dict(test_loss=float(totals['loss']) / count,
                test_accuracy=float(totals['top1']) / count,
                test_top5_accuracy=float(totals['top5']) / count,
                test_ece=float(np.abs(totals['calibration']).sum()) / count)


def _write_config(config: ml_collections.ConfigDict, workdir: str) -> None:
  with open(os.path.join(workdir, 'config.json'), 'w') as f:
    f.write(config.to_json_best_effort(indent=2, sort_keys=True))


def _training_data(config: ml_collections.ConfigDict,
                   dataset: datasets.Dataset) -> tuple[str, Any, Any]:
  """The placement, the training batches and the test source.

  On the device, both splits are decoded once (image folders through the
  decode cache) and the batches are built there; on the host, worker
  processes stream them.
  """
  placement = device_data.choose_placement(
      config.data, dataset.train, parallelism=config.parallelism)
  if placement == 'device':
    decode_options = dict(cache_dir=config.data.cache_dir,
                          num_workers=config.data.num_workers,
                          max_bad_examples=config.data.max_bad_examples)
    train_set = decode.decode_split(dataset.train, **decode_options)
    batches = device_data.DeviceBatches(
        train_set.images, train_set.labels,
        mesh=partitioning.make_data_mesh(),
        global_batch_size=config.batch_size, seed=config.seed,
        augment=config.data.augment)
    # The test set is evaluated whole, as on the host path: no bad image
    # is tolerated there.
    return placement, batches, decode.decode_split(
        dataset.test, **dict(decode_options, max_bad_examples=0))
  batches = input_pipeline.TrainBatches(
      dataset.train, global_batch_size=config.batch_size, seed=config.seed,
      transform=augment.train_transform(config.data.augment,
                                        config.data.image_size,
                                        config.data.channels),
      process_index=jax.process_index(), process_count=jax.process_count(),
      num_workers=config.data.num_workers,
      max_bad_examples=config.data.max_bad_examples)
  return placement, batches, dataset.test


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str, *,
                       halt_at_step: int | None = None) -> dict:
  """Trains and evaluates as ``config`` says, resuming from ``workdir``.

  Writes WORKDIR/metrics.jsonl (one JSON object per logged step),
  WORKDIR/tensorboard/ (the same scalars), WORKDIR/checkpoints/<step>/ and
  WORKDIR/config.json. Restarting with the same workdir continues from the
  newest readable checkpoint and ends with exactly the parameters and the
  metrics of an uninterrupted run (all but the timing, images_per_second).

  SIGTERM (a preemption notice) or SIGINT (Ctrl-C) stops the run after the
  step in flight: it writes a checkpoint at that step, waits until it is on
  disk, logs where it stopped and returns (``stopped_by`` names the
  signal); with several processes all stop at the same step.

  Args:
    config: a config from ``configs/`` (see configs/quickstart.py).
    workdir: output directory (created if missing).
    halt_at_step: stop, after saving a checkpoint, once this step is reached,
      as a preempted job would; the learning-rate schedule still spans the
      whole run. None runs to the end.

  Returns:
    The last evaluation: step, test_loss, test_accuracy, test_ece (expected
    calibration error, 15 bins), test_top5_accuracy
    (when there are more than 10 classes), and wall_seconds of this call;
    ``stopped_by`` ('SIGTERM' / 'SIGINT') when a signal stopped it.

  Raises:
    ValueError: unknown dataset, model, model dtype, method, parallelism,
      optimizer or augmentation; data.mean or data.std not of length 1 or
      data.channels; images whose channels differ from data.channels; a
      batch size not divisible by the device count; a missing data
      directory; keep_checkpoints < 2 or checkpoint_every_minutes < 0.
  """
  start_time = time.time()
  _check_config(config)
  is_main = jax.process_index() == 0
  workdir = os.path.abspath(os.path.expanduser(workdir))
  os.makedirs(workdir, exist_ok=True)

  dataset = datasets.load_dataset(config.data)
  test_transform = augment.eval_transform(
      config.data.augment, config.data.image_size, config.data.channels)
  placement, batches, test_source = _training_data(config, dataset)
  steps_per_epoch = batches.steps_per_epoch
  parts = run_parts(config, dataset.num_classes, steps_per_epoch)
  mixer, schedule, tx = parts.mixer, parts.schedule, parts.tx
  total_steps = parts.total_steps
  stop_step = total_steps if halt_at_step is None else min(halt_at_step,
                                                           total_steps)
  checkpoint_every = config.checkpoint_every_steps or steps_per_epoch
  eval_every = max(int(config.eval_every_epochs * steps_per_epoch), 1)

  runner = _Runner(config, parts.model_fn, tx, mixer, schedule, parts.mean,
                   parts.std)
  state = steps_lib.init_train_state(jax.random.key(config.seed),
                                     runner.model, tx, parts.image_shape)
  checkpointer = checkpoint_lib.Checkpointer(
      os.path.join(workdir, 'checkpoints'),
      max_to_keep=config.keep_checkpoints)
  start_step, loop_state = 0, {}
  restored = checkpointer.restore_latest(jax.device_get(state))
  if restored:
    start_step, state, position, loop_state = restored
    batches.check_position(position, start_step)
    logging.info('Resumed from step %d (%s).', start_step, position)
  state = runner.place_state(state)
  if is_main:
    _write_config(config, workdir)
    logging.info('Mixer %s; %d steps (%d per epoch), global batch %d on %d '
                 'devices, %s, training data on the %s.', mixer.name,
                 total_steps, steps_per_epoch, config.batch_size,
                 jax.device_count(), config.parallelism, placement)

  # Records past the checkpoint (from a run that crashed after logging) are
  # dropped: the resumed run writes them again.
  writer = metric_writers.MetricWriter(workdir, enabled=is_main,
                                       resume_step=start_step)
  eval_kwargs = dict(
      global_batch_size=config.eval_batch_size, transform=test_transform,
      process_index=jax.process_index(), process_count=jax.process_count())

  if config.eval_max_examples:
    # Evenly spread rather than the first ones: test sets are often stored
    # sorted by class.
    test_source = datasets.Subset(test_source, np.linspace(
        0, len(test_source) - 1,
        min(config.eval_max_examples, len(test_source))).round())

  def evaluate(state: steps_lib.TrainState, step: int) -> dict:
    results = runner.evaluate(
        state, input_pipeline.eval_batches(test_source, **eval_kwargs))
    if dataset.num_classes <= 10:
      results.pop('test_top5_accuracy')
    writer.write(step, results)
    return results

  results = {}
  progress = None
  # The metrics of the steps since the last log; a checkpoint carries them,
  # so a resumed run logs the same averages as an uninterrupted one.
  pending_metrics = _unpack_metrics(loop_state.get('pending_metrics', []))
  timed_steps, window_start = 0, None
  last_save_time = time.time()
  step = start_step
  stopped_by = None
  with preemption.StopSignal() as stop_signal:
    try:
      for local_batch in batches.iterate(start_step, stop_step):
        if placement == 'host':
          # Skipped unreadable images: counted, and past the limit an error
          # naming them. (The device path listed them before training.) With
          # several processes the counts are summed at each log step, so
          # that all processes stop together.
          bad_examples = batches.record_bad(local_batch,
                                            check=jax.process_count() == 1)
        state, metrics = runner.train(state, runner.to_device(local_batch))
        step += 1
        pending_metrics.append(metrics)
        if window_start is None:
          # The throughput clock and the progress bar's ETA start after the
          # first (compiling) step.
          jax.block_until_ready(metrics)
          window_start = time.time()
          progress = tqdm.tqdm(
              total=stop_step, initial=step, desc='train', unit='step',
              mininterval=0.5, dynamic_ncols=True,
              disable=not (is_main and config.progress_bar))
        else:
          timed_steps += 1
          progress.update()
        stop = stop_signal.requested(step)
        log_now = step % config.log_every_steps == 0 or step == total_steps
        if log_now:
          summary = _summarise(pending_metrics)
          if timed_steps:
            summary['images_per_second'] = (
                timed_steps * config.batch_size / (time.time() - window_start))
          if placement == 'host':
            if jax.process_count() > 1:
              bad_examples = int(np.sum(multihost_utils.process_allgather(
                  np.int32(bad_examples))))
              batches.check_bad(bad_examples)
            summary['bad_examples'] = bad_examples
          writer.write(step, summary)
          progress.set_postfix(loss=f"{summary['train_loss']:.3f}",
                               acc=f"{summary['train_accuracy']:.3f}")
          pending_metrics, timed_steps = [], 0
          window_start = time.time()
        if step % eval_every == 0 or step == total_steps:
          # Keep evaluation time out of the training throughput: finish the
          # pending steps first, then shift the window by the time it took.
          jax.block_until_ready(state)
          eval_start = time.time()
          results = evaluate(state, step)
          window_start += time.time() - eval_start
        save = (stop or step % checkpoint_every == 0 or step == stop_step
                or (log_now and _minutes_passed(
                    config.get('checkpoint_every_minutes', 0.0), last_save_time)))
        if save:
          checkpointer.save(
              step, runner.host_copy(state), batches.position(step),
              dict(pending_metrics=_pack_metrics(pending_metrics)))
          last_save_time = time.time()
        if stop:
          stopped_by = stop_signal.signal_name
          checkpointer.wait()
          logging.warning(
              '%s: stopped at step %d of %d; its checkpoint is on disk in %s. '
              'Run the same command again (same --workdir) to continue.',
              stopped_by, step, total_steps,
              os.path.join(workdir, 'checkpoints', str(step)))
          break
      if start_step == total_steps:
        # A finished run started again: report its result.
        results = evaluate(state, step)
    finally:
      if progress is not None:
        progress.close()
      checkpointer.close()
      writer.close()
  results = dict(step=step, **results,
                 wall_seconds=time.time() - start_time)
  if stopped_by:
    results['stopped_by'] = stopped_by
  if is_main:
    logging.info('Done: %s', json.dumps(results))
  return results

