"""The compiled pieces of training: state, train step, eval step, init.

One batch's path through `train_step`: uint8 images -> float32 standardised
on device -> ``mix(fold_in(key, step), images, labels)`` (per device: under
jit `msda_jax.shard_mixer`, under pmap `msda_jax.per_device`; no all-gather)
-> model -> ``optax.softmax_cross_entropy`` against the mixed soft labels ->
gradients (averaged over the global batch by XLA under jit, by ``pmean``
under pmap) -> optimizer update. Both parallel modes run this one body.
"""

import functools
from typing import Any, Callable

import flax.struct
import jax
import jax.numpy as jnp
import msda_jax
import optax

from train import partitioning

__all__ = [
    'ECE_BINS', 'MixFn', 'TrainState', 'create_train_state', 'eval_step',
    'init_train_state', 'make_jit_train_step', 'make_pmap_train_step',
    'mixed_accuracy', 'normalize_images', 'train_step'
]

MixFn = Callable[[jax.Array, jax.Array, jax.Array], msda_jax.MixResult]


class TrainState(flax.struct.PyTreeNode):
  """Everything a step changes; a pure pytree of arrays (checkpointed as is).

  Attributes:
    step: int32 scalar, optimizer steps taken.
    params: model parameters.
    batch_stats: batch-norm running statistics ({} for models without BN).
    opt_state: optax state.
    rng: uint32 key data of the mixing key; step ``s`` mixes with
      ``fold_in(rng, s)``.
  """
  step: jax.Array
  params: Any
  batch_stats: Any
  opt_state: Any
  rng: jax.Array


def create_train_state(key: jax.Array, model, tx: optax.GradientTransformation,
                       image_shape: tuple[int, int, int]) -> TrainState:
  """Initialises parameters from ``key`` (params and mixing keys split from it).

  Pure; `init_train_state` runs it compiled.
  """
  init_key, mix_key = jax.random.split(key)
  variables = model.init(init_key, jnp.zeros((1, *image_shape), jnp.float32),
                         train=False)
  params = variables['params']
  return TrainState(
      step=jnp.zeros((), jnp.int32), params=params,
      batch_stats=variables.get('batch_stats', {}),
      opt_state=tx.init(params), rng=jax.random.key_data(mix_key))


def init_train_state(key: jax.Array, model, tx: optax.GradientTransformation,
                     image_shape: tuple[int, int, int]) -> TrainState:
  """`create_train_state`, compiled once; on CPU without backend optimisation.

  Run eagerly, every initializer op compiles on its own (seconds). Compiled
  as one program it is fast, and without XLA:CPU's backend optimisation (the
  program, a threefry stream per parameter, runs once in milliseconds) it
  compiles ~3x faster still.
  """
  init_fn = functools.partial(create_train_state, model=model, tx=tx,
                              image_shape=image_shape)
  lowered = jax.jit(init_fn).lower(key)
  options = ({'xla_backend_optimization_level': 0}
             if jax.default_backend() == 'cpu' else None)
  return lowered.compile(options)(key)


def normalize_images(images: jax.Array, mean: jax.Array,
                     std: jax.Array) -> jax.Array:
  """uint8 (B, H, W, C) -> float32 standardised per channel."""
  return (images.astype(jnp.float32) - mean) / std


def mixed_accuracy(predicted: jax.Array, labels: jax.Array, lam: jax.Array,
                   partner_index: jax.Array, *,
                   axis_name: str | None = None) -> jax.Array:
  """Accuracy against both labels of a mix, weighted by λ (batch mean).

  Per sample ``λ [pred == y] + (1 - λ) [pred == y_partner]``, the metric
  FMix (Harris et al., 2020) reports for mixed training batches. A sample
  left unmixed (λ = 1, its own partner) counts as plain accuracy.

  ``partner_index`` is a global batch index (what `msda_jax.shard_mixer` and
  `msda_jax.per_device` report): under jit ``labels`` is the global batch
  and is indexed directly; under pmap (``axis_name`` given) the per-device
  ``labels`` are gathered over the axis first (``B`` ints), so partners on
  other devices are found too. The per-device mean it returns is averaged
  over devices by the caller.

  Example:
    >>> import jax.numpy as jnp
    >>> mixed_accuracy(jnp.array([0, 0]), jnp.array([0, 2]),
    ...                jnp.array([0.75, 0.25]), jnp.array([1, 0]))
    Array(0.75, dtype=float32)
  """
  if axis_name is not None:
    labels_all = jax.lax.all_gather(labels, axis_name, tiled=True)
  else:
    labels_all = labels
  partner_labels = labels_all[partner_index]
  lam = lam.astype(jnp.float32)
  return jnp.mean(lam * (predicted == labels)
                  + (1.0 - lam) * (predicted == partner_labels))


def train_step(state: TrainState, batch: dict, *, model, tx, mix: MixFn,
               schedule: optax.Schedule, mean: jax.Array, std: jax.Array,
               axis_name: str | None = None,
               stepped: bool = False) -> tuple[TrainState, dict]:
  """One optimizer step on a batch of uint8 images and int labels.

  Args:
    state: the current state.
    batch: ``images`` uint8 (B, H, W, C), ``labels`` int32 (B,).
    model: a module from `models.create_model`.
    tx: the optimizer.
    mix: ``mix(key, images, labels) -> MixResult``; `msda_jax.shard_mixer`
      under jit, `msda_jax.per_device` under pmap.
    schedule: the learning-rate schedule (for logging).
    mean: per-channel mean in uint8 units.
    std: per-channel standard deviation in uint8 units.
    stepped: call ``mix(key, images, labels, step=state.step)`` (a mixer
      with schedules, `msda_jax.Mixer.scheduled`).
    axis_name: the pmap axis to average gradients and metrics over; None
      under jit, where the batch is global and XLA inserts the reductions.

  Returns:
    (new state, metrics): train_loss, train_accuracy (against the dominant
    label, the argmax of the soft labels), train_mixed_accuracy (against
    both labels weighted by λ, `mixed_accuracy`), learning_rate.
  """
  key = jax.random.fold_in(jax.random.wrap_key_data(state.rng), state.step)
  images = normalize_images(batch['images'], mean, std)
  if stepped:  # Schedules read the optimizer step inside the trace.
    mixed = mix(key, images, batch['labels'], step=state.step)
  else:
    mixed = mix(key, images, batch['labels'])

  def loss_fn(params):
    logits, updates = model.apply(
        {'params': params, 'batch_stats': state.batch_stats}, mixed.images,
        train=True, mutable=['batch_stats'])
    loss = optax.softmax_cross_entropy(logits, mixed.labels).mean()
    return loss, (logits, updates.get('batch_stats', state.batch_stats))

  (loss, (logits, batch_stats)), grads = jax.value_and_grad(
      loss_fn, has_aux=True)(state.params)
  predicted = jnp.argmax(logits, -1)
  accuracy = jnp.mean(predicted == jnp.argmax(mixed.labels, -1))
  metrics = dict(train_loss=loss, train_accuracy=accuracy,
                 train_mixed_accuracy=mixed_accuracy(
                     predicted, batch['labels'], mixed.lam,
                     mixed.partner_index, axis_name=axis_name))
  if axis_name is not None:
    grads = jax.lax.pmean(grads, axis_name)
    metrics = jax.lax.pmean(metrics, axis_name)
  updates, opt_state = tx.update(grads, state.opt_state, state.params)
  new_state = state.replace(
      step=state.step + 1, params=optax.apply_updates(state.params, updates),
      batch_stats=batch_stats, opt_state=opt_state)
  metrics['learning_rate'] = schedule(state.step)
  return new_state, metrics


def make_jit_train_step(mesh: jax.sharding.Mesh, *, model, tx, mixer,
                        schedule: optax.Schedule, mean: jax.Array,
                        std: jax.Array, across_devices: bool = False
                        ) -> Callable:
  """`train_step` compiled for a replicated state and a P('data') batch.

  The mixer runs per device under `msda_jax.shard_mixer` inside the step
  (partners from the previous device's shard with ``across_devices``).
  The returned ``step(state, batch)`` donates ``state``.
  """
  mix = msda_jax.shard_mixer(mixer, mesh, axis_name=partitioning.DATA_AXIS,
                             across_devices=across_devices)
  replicated = jax.sharding.NamedSharding(mesh, jax.P())
  return jax.jit(
      functools.partial(train_step, model=model, tx=tx, mix=mix,
                        schedule=schedule, mean=mean, std=std,
                        stepped=mixer.scheduled),
      out_shardings=replicated, donate_argnums=0)


def make_pmap_train_step(*, model, tx, mixer, schedule: optax.Schedule,
                         mean: jax.Array, std: jax.Array,
                         across_devices: bool = False) -> Callable:
  """`train_step` under `jax.pmap` over the local devices (axis 'data').

  The state carries a leading device axis, batches are (devices, per-device,
  ...); the mixer runs per device (`msda_jax.per_device`), gradients and
  metrics are ``pmean``-ed. The returned ``step(state, batch)`` donates
  ``state``.
  """
  mix = msda_jax.per_device(mixer, axis_name=partitioning.DATA_AXIS,
                            across_devices=across_devices)
  return jax.pmap(
      functools.partial(train_step, model=model, tx=tx, mix=mix,
                        schedule=schedule, mean=mean, std=std,
                        axis_name=partitioning.DATA_AXIS,
                        stepped=mixer.scheduled),
      axis_name=partitioning.DATA_AXIS, donate_argnums=0)


# Equal-width confidence bins of the expected calibration error.
ECE_BINS = 15


def eval_step(state: TrainState, batch: dict, *, model, mean: jax.Array,
              std: jax.Array) -> dict:
  """Sums over the unpadded rows of ``batch``, to be added over batches.

  ``count``, ``loss``, ``top1`` and ``top5`` hits, and ``calibration``: per
  confidence bin ``[k / 15, (k + 1) / 15)`` the sum of (hit - confidence),
  where confidence is the top softmax probability; the expected calibration
  error (Guo et al., ICML 2017) is ``sum(|calibration|) / count``.
  """
  logits = model.apply({'params': state.params,
                        'batch_stats': state.batch_stats},
                       normalize_images(batch['images'], mean, std),
                       train=False)
  labels, mask = batch['labels'], batch['mask']
  loss = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
  top5 = jax.lax.top_k(logits, min(5, logits.shape[-1]))[1]
  hits = (jnp.argmax(logits, -1) == labels) * mask
  confidence = jax.nn.softmax(logits.astype(jnp.float32)).max(-1)
  bins = jnp.minimum((confidence * ECE_BINS).astype(jnp.int32), ECE_BINS - 1)
  calibration = jnp.zeros(ECE_BINS, jnp.float32).at[bins].add(
      hits - confidence * mask)
  return dict(
      count=mask.sum(),
      loss=(loss * mask).sum(),
      top1=hits.sum(),
      top5=((top5 == labels[:, None]).any(-1) * mask).sum(),
      calibration=calibration)
