"""TPU slices by name: topology or accelerator type -> chips, devices, HBM.

Two spellings name a slice:

* a JAX/libtpu topology name ``GEN:DIMS``: ``v5e:2x4``, ``v6e:2x2`` (v5e and
  v6e: 2-D, one chip per grid point), ``v4:2x2x1``, ``v5p:2x2x1`` (3-D);
* a Cloud TPU accelerator type ``NAME-N``: ``v5litepod-N`` (alias ``v5e-N``)
  and ``v6e-N`` count chips, ``v4-N`` and ``v5p-N`` count TensorCores, two
  per chip. N must be a power of two (v4/v5p: at least 8). The chips are laid
  out the way Cloud TPU lays out its standard slices: start from ``1x1``
  (v5e, v6e) or ``2x2x1`` (v4, v5p) and double the smallest axis, the last
  one on ties, until the chip count is reached: v5litepod-8 -> ``v5e:2x4``,
  v5litepod-256 -> ``v5e:16x16``, v4-8 -> ``v4:2x2x1``, v4-1024 ->
  ``v4:8x8x8``.

JAX sees one device per chip on all four generations: v4 and v5p run their
two TensorCores as one "megacore" device (``chip_config_name='megacore'``),
v5e and v6e have one TensorCore per chip. So a slice's device count is its
chip count, and each device has the chip's HBM (`HBM_GIB`).

`compile_devices` turns a `Slice` into devices to compile for: libtpu's
compile-only TPU devices (no TPU needed, but the ``libtpu`` package), or, for
tests, as many local CPU devices.

Example:
  >>> s = parse_slice('v5litepod-8')
  >>> s.topology, s.num_devices, s.hbm_gib
  ('v5e:2x4', 8, 16)
  >>> parse_slice('v4-8').topology
  'v4:2x2x1'
"""

import dataclasses
import importlib.util
import os
import re

__all__ = [
    'ACCEPTED_FORMS', 'GENERATIONS', 'HBM_GIB', 'LIBTPU_INSTALL', 'PLATFORMS',
    'Slice', 'compile_devices', 'parse_slice'
]

# HBM per chip (= per JAX device), GiB.
HBM_GIB = {'v4': 32, 'v5e': 16, 'v5p': 95, 'v6e': 32}
GENERATIONS = tuple(HBM_GIB)
# Cloud accelerator-type prefix -> (generation, TensorCores counted per chip).
_ACCELERATOR_TYPES = {'v4': ('v4', 2), 'v5p': ('v5p', 2),
                      'v5litepod': ('v5e', 1), 'v5e': ('v5e', 1),
                      'v6e': ('v6e', 1)}
_RANK = {'v4': 3, 'v5p': 3, 'v5e': 2, 'v6e': 2}
_MEGACORE = ('v4', 'v5p')
PLATFORMS = ('tpu', 'cpu')
LIBTPU_INSTALL = ('pip install libtpu (or pip install -e ".[tpu]"; about '
                  '700 MB unpacked)')
ACCEPTED_FORMS = (
    'a topology GEN:DIMS with GEN one of v4, v5p (3-D, e.g. v4:2x2x1, '
    'v5p:2x2x2) or v5e, v6e (2-D, e.g. v5e:2x4, v6e:2x2); or a Cloud TPU '
    'accelerator type v5litepod-N / v5e-N / v6e-N (N chips, a power of two: '
    'v5litepod-8) or v4-N / v5p-N (N TensorCores, 2 per chip, a power of two '
    '>= 8: v4-8)')


@dataclasses.dataclass(frozen=True)
class Slice:
  """A TPU slice: generation and chip grid.

  Attributes:
    generation: 'v4', 'v5e', 'v5p' or 'v6e'.
    dims: the chip grid, e.g. (2, 4) or (2, 2, 1).
    name: the name it was given (topology or accelerator type).
  """
  generation: str
  dims: tuple[int, ...]
  name: str

  @property
  def topology(self) -> str:
    """The libtpu topology name, e.g. 'v5e:2x4'."""
    return f"{self.generation}:{'x'.join(map(str, self.dims))}"

  @property
  def num_devices(self) -> int:
    """Chips = JAX devices (one per chip, megacore on v4/v5p)."""
    count = 1
    for d in self.dims:
      count *= d
    return count

  @property
  def hbm_gib(self) -> int:
    """HBM per device, GiB."""
    return HBM_GIB[self.generation]

  @property
  def hbm_bytes(self) -> int:
    """HBM per device, bytes."""
    return self.hbm_gib * 2**30

  @property
  def accelerator_type(self) -> str:
    """The Cloud TPU accelerator type of this many chips, e.g. 'v5litepod-8'."""
    if self.generation in _MEGACORE:
      return f'{self.generation}-{2 * self.num_devices}'
    prefix = 'v5litepod' if self.generation == 'v5e' else self.generation
    return f'{prefix}-{self.num_devices}'


def _unknown(name: str, why: str = '') -> ValueError:
  why = f' ({why})' if why else ''
  return ValueError(f'--topology={name!r} is not a TPU slice name{why}; '
                    f'expected {ACCEPTED_FORMS}')


def _standard_dims(generation: str, chips: int) -> tuple[int, ...]:
  """Cloud TPU's standard grid of ``chips`` chips (see the module doc)."""
  dims = [1, 1] if _RANK[generation] == 2 else [2, 2, 1]
  while _product(dims) < chips:
    smallest = min(dims)
    last = max(i for i, d in enumerate(dims) if d == smallest)
    dims[last] *= 2
  return tuple(dims)


def _product(dims) -> int:
  count = 1
  for d in dims:
    count *= d
  return count


def parse_slice(name: str) -> Slice:
  """A `Slice` from a topology name or a Cloud TPU accelerator type.

  Args:
    name: e.g. 'v5e:2x4', 'v4:2x2x1', 'v5litepod-8', 'v4-8', 'v6e-256'.

  Returns:
    The slice.

  Raises:
    ValueError: any other name; the message lists the accepted forms.

  Example:
    >>> parse_slice('v5p-16').topology
    'v5p:2x2x2'
  """
  text = str(name).strip().lower()
  match = re.fullmatch(r'([a-z0-9]+):(\d+(?:x\d+)*)', text)
  if match:
    generation = match.group(1)
    if generation not in GENERATIONS:
      raise _unknown(name, f'unknown generation {generation!r}')
    dims = tuple(int(d) for d in match.group(2).split('x'))
    if len(dims) != _RANK[generation]:
      raise _unknown(name, f'{generation} topologies have '
                     f'{_RANK[generation]} dimensions')
    if min(dims) < 1:
      raise _unknown(name, 'dimensions must be positive')
    return Slice(generation, dims, str(name))
  match = re.fullmatch(r'([a-z0-9]+)-(\d+)', text)
  if match and match.group(1) in _ACCELERATOR_TYPES:
    generation, cores_per_chip = _ACCELERATOR_TYPES[match.group(1)]
    count = int(match.group(2))
    if count < 1 or count & (count - 1):
      raise _unknown(name, f'{count} is not a power of two')
    if count % cores_per_chip or count // cores_per_chip < (
        4 if generation in _MEGACORE else 1):
      raise _unknown(name, f'{match.group(1)}-N counts TensorCores, 2 per '
                     'chip, from 8')
    chips = count // cores_per_chip
    return Slice(generation, _standard_dims(generation, chips), str(name))
  raise _unknown(name)


def compile_devices(target: Slice, platform: str = 'tpu') -> list:
  """Devices to compile for: ``target``'s TPU devices, or local CPU ones.

  Args:
    target: the slice.
    platform: 'tpu': libtpu's compile-only devices of ``target.topology``
      (no TPU needed; the ``libtpu`` package is); 'cpu': the first
      ``target.num_devices`` local CPU devices, a stand-in for tests (set
      ``--xla_force_host_platform_device_count`` to have enough).

  Returns:
    ``target.num_devices`` devices.

  Raises:
    ValueError: unknown platform, too few CPU devices, libtpu missing or
      refusing the topology.
  """
  import jax  # pylint: disable=g-import-not-at-top
  if platform == 'cpu':
    devices = jax.devices('cpu')
    if len(devices) < target.num_devices:
      raise ValueError(
          f'--platform=cpu: {target.topology} has {target.num_devices} '
          f'devices but this process has {len(devices)} CPU devices; set '
          'XLA_FLAGS=--xla_force_host_platform_device_count='
          f'{target.num_devices} before JAX starts')
    return devices[:target.num_devices]
  if platform != 'tpu':
    raise ValueError(f'--platform={platform!r}: expected one of {PLATFORMS}')
  if importlib.util.find_spec('libtpu') is None:
    raise ValueError(f'compiling for {target.topology} needs the libtpu '
                     f'package, which is not installed: {LIBTPU_INSTALL}')
  # Compile-only: no chip is opened, so other processes that loaded libtpu
  # are no reason to stop.
  os.environ.setdefault('ALLOW_MULTIPLE_LIBTPU_LOAD', '1')
  from jax.experimental import topologies  # pylint: disable=g-import-not-at-top
  options = {}
  if target.generation in _MEGACORE:
    options['chip_config_name'] = 'megacore'
  try:
    description = topologies.get_topology_desc(
        topology_name=target.topology, platform='tpu', **options)
  except Exception as error:  # pylint: disable=broad-except
    raise ValueError(f'libtpu refused topology {target.topology!r} (from '
                     f'--topology={target.name!r}): {error}') from error
  devices = list(description.devices)
  if len(devices) != target.num_devices:
    raise ValueError(
        f'libtpu gave {len(devices)} devices for {target.topology}, '
        f'expected {target.num_devices} (one per chip)')
  return devices
