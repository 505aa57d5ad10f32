"""Learning-rate schedules and optimizers built from the config."""

import optax

__all__ = [
    'OPTIMIZERS', 'SCHEDULES', 'create_optimizer', 'learning_rate_schedule'
]

OPTIMIZERS = ('sgd', 'adamw')
SCHEDULES = ('cosine', 'constant')


def learning_rate_schedule(config, *, total_steps: int,
                           warmup_steps: int = 0) -> optax.Schedule:
  """Linear warm-up from 0, then ``config.lr_schedule`` from the peak.

  Args:
    config: the run config (``learning_rate``, ``lr_schedule``).
    total_steps: optimizer steps of the whole run.
    warmup_steps: steps of linear warm-up.

  Returns:
    step -> learning rate. The cosine reaches 0 at ``total_steps``.

  Raises:
    ValueError: unknown schedule name.
  """
  if config.lr_schedule == 'cosine':
    main = optax.cosine_decay_schedule(config.learning_rate,
                                       max(total_steps - warmup_steps, 1))
  elif config.lr_schedule == 'constant':
    main = optax.constant_schedule(config.learning_rate)
  else:
    raise ValueError(f'unknown lr_schedule {config.lr_schedule!r}: expected '
                     f'one of {SCHEDULES}')
  if warmup_steps <= 0:
    return main
  warmup = optax.linear_schedule(0.0, config.learning_rate, warmup_steps)
  return optax.join_schedules([warmup, main], [warmup_steps])


def create_optimizer(config,
                     schedule: optax.Schedule) -> optax.GradientTransformation:
  """The optimizer named ``config.optimizer``.

  ``sgd`` is PyTorch's SGD as in the CIFAR and ImageNet protocols: weight decay
  added to the gradient of every parameter, then (Nesterov) momentum.
  ``adamw`` is decoupled weight decay Adam.

  Raises:
    ValueError: unknown optimizer name.
  """
  if config.optimizer == 'sgd':
    return optax.chain(
        optax.add_decayed_weights(config.weight_decay),
        optax.sgd(schedule, momentum=config.momentum, nesterov=config.nesterov))
  if config.optimizer == 'adamw':
    return optax.adamw(schedule, weight_decay=config.weight_decay)
  raise ValueError(f'unknown optimizer {config.optimizer!r}: expected one of '
                   f'{OPTIMIZERS}')
