"""Pieces shared by the configs: data and training fields, smoke variants.

Each config file builds its ConfigDict from these helpers and keeps its own
protocol values, so ``--config.<field>=<value>`` overrides work as before.
The mixing block (``config.msda``) is built here once, from the methods'
signatures (`msda_config`), so every option of every method is a field that
``--config.msda.<option>=<value>`` can set; a config file passes only the
values it changes.
"""

from typing import Any

import ml_collections

import msda_jax

__all__ = [
    'apply_arg', 'base_config', 'data_config', 'model_config', 'msda_config',
    'smoke_fields'
]


def msda_config(**values: Any) -> ml_collections.ConfigDict:
  """The ``config.msda`` block: every field `msda_jax.from_config` reads.

  One field per option of every built-in method (`msda_jax.config_fields`:
  ``alpha``, ``mode``, ``prob``, ``partner``, ``label_smoothing``,
  ``num_classes``, CutMix's ``minmax``, FMix's ``decay_power``, PuzzleMix's
  ``block_num``, ``beta``, ...), so ``--config.msda.method=fmix
  --config.msda.decay_power=2`` works from any config. A field no method
  takes is an error of `from_config`; a field the chosen method does not
  take is ignored, so ``--config.msda.method=X`` switches methods alone.
  A None field (a typed placeholder, settable from the command line) means
  the method's own default: ``alpha`` (GridMix U(0.1, 0.9), the others
  Beta(1, 1)), ``num_classes`` (filled in from the dataset by
  train/train.py). ``choices`` and ``probs`` (read by ``method='choice'``)
  default to timm's recipe: CutMix (α 1) or Mixup (α 0.8), equal odds.

  Args:
    **values: the fields this config sets, e.g. ``method='hmix'``.

  Returns:
    The ``msda`` ConfigDict (``print`` it to see every field).

  Raises:
    ValueError: a value for a field that no method takes.
  """
  fields = msda_jax.config_fields()
  unknown = sorted(set(values) - set(fields))
  if unknown:
    raise ValueError(f'msda_config: unknown field(s) {unknown}; the fields '
                     f'are {sorted(fields)}')
  block = {
      name: (ml_collections.config_dict.placeholder(kind) if default is None
             else default)
      for name, (default, kind) in fields.items()
  }
  block.update(choices=(dict(method='cutmix', alpha=1.0),
                        dict(method='mixup', alpha=0.8)),
               probs=(0.5, 0.5))
  config = ml_collections.ConfigDict(block)
  config.update(values)
  return config


def data_config(name: str, *, image_size: int, channels: int, augment: str,
                mean: tuple[float, ...], std: tuple[float, ...],
                num_workers: int, test_split: str = 'test',
                **extra: Any) -> ml_collections.ConfigDict:
  """The ``config.data`` fields.

  ``data_dir`` starts empty; set it on the command line to the TFDS data_dir,
  or to the image folder ROOT with ``name='image_folder'``.

  Args:
    name: a TFDS name, or 'image_folder' (or 'digits', 'synthetic').
    image_size: side of the (square) training images.
    channels: number of image channels.
    augment: 'none', 'crop_flip' or 'random_resized_crop'.
    mean: per-channel pixel mean, in uint8 units.
    std: per-channel pixel standard deviation, in uint8 units.
    num_workers: worker processes that decode and augment on the host path
      (and decode an image folder once for the device path).
    test_split: the split evaluated on.
    **extra: dataset-specific fields (e.g. ``test_fraction``).

  Returns:
    The data sub-config.
  """
  return ml_collections.ConfigDict(dict(
      name=name, data_dir='', train_split='train', test_split=test_split,
      image_key='image', label_key='label', **extra, image_size=image_size,
      channels=channels, augment=augment, mean=mean, std=std,
      num_workers=num_workers,
      # 0: all training examples; n > 0: a class-balanced subset of n.
      train_examples=0,
      # 'device': the decoded training set on every device, batches gathered
      # and augmented there; 'host': streamed by worker processes; 'auto':
      # 'device' when the set fits device_memory_gb and the augmentation runs
      # on device.
      placement='auto', device_memory_gb=4.0,
      # Where image folders are decoded to once ('': ~/.cache/msda_jax).
      cache_dir='',
      # Unreadable images tolerated (skipped and counted) before stopping.
      max_bad_examples=0))


def model_config(name: str, width: int,
                 dtype: str = 'float32') -> ml_collections.ConfigDict:
  """The ``config.model`` fields (see `train.models.create_model`)."""
  return ml_collections.ConfigDict(dict(
      name=name, width=width, conv='xla', dtype=dtype))


def base_config(data: ml_collections.ConfigDict,
                model: ml_collections.ConfigDict, *, batch_size: int,
                eval_batch_size: int, num_epochs: int, learning_rate: float,
                eval_every_epochs: int, checkpoint_every_steps: int = 0,
                log_every_steps: int = 100, nesterov: bool = True,
                weight_decay: float = 5e-4, warmup_epochs: int = 0
                ) -> ml_collections.ConfigDict:
  """A training config but ``msda``: SGD (momentum 0.9), cosine schedule, jit.

  The config file adds ``config.msda`` (the fields `msda_jax.from_config`
  reads), written out in place.

  Args:
    data: from `data_config`.
    model: from `model_config`.
    batch_size: global training batch size.
    eval_batch_size: global evaluation batch size.
    num_epochs: length of training (``total_steps > 0`` overrides it).
    learning_rate: peak learning rate.
    eval_every_epochs: evaluation period.
    checkpoint_every_steps: checkpoint period; 0: once per epoch.
    log_every_steps: training-metrics period.
    nesterov: Nesterov momentum.
    weight_decay: L2 weight decay.
    warmup_epochs: linear warm-up before the cosine decay.

  Returns:
    The config, with ``seed``, ``data``, ``model`` and the optimizer,
    schedule, logging and checkpoint fields.
  """
  config = ml_collections.ConfigDict()
  config.seed = 0
  config.data = data
  config.model = model

  config.batch_size = batch_size
  config.eval_batch_size = eval_batch_size
  config.num_epochs = num_epochs
  config.total_steps = 0  # > 0 overrides num_epochs.
  config.optimizer = 'sgd'
  config.learning_rate = learning_rate
  config.momentum = 0.9
  config.nesterov = nesterov
  config.weight_decay = weight_decay
  config.lr_schedule = 'cosine'
  config.warmup_epochs = warmup_epochs

  config.parallelism = 'jit'  # Or 'pmap'.
  # True: mixing partners come from the previous device's shard (a ppermute
  # ring; msda.mode 'elem' or 'batch'), not from the device's own shard.
  config.mix_across_devices = False
  config.log_every_steps = log_every_steps
  config.eval_every_epochs = eval_every_epochs
  config.eval_max_examples = 0  # > 0: evaluate that many, evenly spread.
  config.checkpoint_every_steps = checkpoint_every_steps
  # > 0: also save when that many minutes have passed since the last save
  # (checked at log steps, so that every process decides at the same step).
  config.checkpoint_every_minutes = 0.0
  # At least 2: an unreadable newest checkpoint falls back to the one before.
  config.keep_checkpoints = 2
  config.progress_bar = True
  return config


def smoke_fields(width: int, **more: Any) -> dict[str, Any]:
  """The smoke overrides of the CIFAR and ImageNet configs: 2 CPU steps.

  Args:
    width: the shrunk ``model.width``.
    **more: further overrides, by dotted field name (e.g. ``'data.image_size'``
      via ``**{'data.image_size': 32}``).

  Returns:
    Dotted field names and values, for `apply_arg`.
  """
  return {
      'model.width': width,
      'batch_size': 16,
      'eval_batch_size': 16,
      'total_steps': 2,
      'log_every_steps': 1,
      'checkpoint_every_steps': 1,
      'eval_max_examples': 32,
      'data.num_workers': 2,
      **more,
  }


def apply_arg(config: ml_collections.ConfigDict, arg: str | None,
              smoke: dict[str, Any]) -> ml_collections.ConfigDict:
  """Applies a config file's ``get_config`` argument.

  Args:
    config: the full config, changed in place.
    arg: None or '' (the full config), or 'smoke'.
    smoke: dotted field names and values set for ``arg='smoke'``.

  Returns:
    ``config``.

  Raises:
    ValueError: for any other argument.
  """
  if arg == 'smoke':
    config.update_from_flattened_dict(smoke)
  elif arg:
    raise ValueError(f"unknown config argument {arg!r}: expected 'smoke'")
  return config
