"""Cost of cross-device partners against per-device pairing (issue 9).

Times ``jax.jit(shard_mixer(mixer, mesh, across_devices=...))`` returning the
mixed images and labels on a batch sharded over all devices (8 fake CPU
devices unless ``--real-devices``), next to ``shift``: the ``ppermute`` of one
image shard alone (the transfer that cross-device pairing adds). Rounds are
interleaved (every function once per round, rotating order) after a warm-up;
we report medians and the median per-round ratio ``cross / per_device``. The
goal: ``cross - per_device`` at most about ``shift``.

Run::

  GLIBC_TUNABLES=glibc.malloc.hugetlb=1 python benchmarks/cross_device.py \\
      --sizes 256x32x32x3,64x224x224x3 --methods mixup,cutmix --rounds 40

Writes JSON (default benchmarks/results/cross_device.json).
"""

import argparse
import os
import sys

if "--real-devices" not in sys.argv:  # Before jax is imported.
  os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                             " --xla_force_host_platform_device_count=8").strip()

import json  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
from jax.sharding import NamedSharding, PartitionSpec  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import msda_jax  # noqa: E402  pylint: disable=g-import-not-at-top

__all__ = ["functions", "time_rounds", "main"]


def functions(method: str, mesh) -> dict:
  """The timed functions ``fn(key, images, labels)`` of one method."""
  mixer = getattr(msda_jax, method)(num_classes=10, partner="flip")
  fns = {}
  for name, across in (("per_device", False), ("cross", True)):
    mix = msda_jax.shard_mixer(mixer, mesh, across_devices=across)
    fns[name] = jax.jit(lambda k, x, y, mix=mix: mix(k, x, y)[:2])
  n = mesh.devices.size
  ring = [(d, (d + 1) % n) for d in range(n)]
  shift = jax.shard_map(lambda x: jax.lax.ppermute(x, "data", ring), mesh=mesh,
                        in_specs=PartitionSpec("data"),
                        out_specs=PartitionSpec("data"))
  fns["shift"] = jax.jit(lambda k, x, y: shift(x))
  return fns


def time_rounds(fns: dict, args: tuple, rounds: int, warmup: int = 3) -> dict:
  """Median seconds per function and the median per-round cross/per ratio."""
  names = list(fns)
  times = {name: [] for name in names}
  for r in range(warmup + rounds):
    order = names[r % len(names):] + names[:r % len(names)]
    for name in order:
      start = time.perf_counter()
      jax.block_until_ready(fns[name](*args))
      if r >= warmup:
        times[name].append(time.perf_counter() - start)
  ratios = [c / p for c, p in zip(times["cross"], times["per_device"])]
  out = {name: statistics.median(t) for name, t in times.items()}
  out["ratio_cross_per_device"] = statistics.median(ratios)
  return out


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--sizes", default="256x32x32x3")
  parser.add_argument("--methods", default="mixup,cutmix")
  parser.add_argument("--rounds", type=int, default=30)
  parser.add_argument("--real-devices", action="store_true")
  parser.add_argument("--out", default=os.path.join(
      os.path.dirname(os.path.abspath(__file__)), "results", "cross_device.json"))
  args = parser.parse_args(argv)
  mesh = msda_jax.data_mesh()
  sharding = NamedSharding(mesh, PartitionSpec("data"))
  records = []
  for size in args.sizes.split(","):
    shape = tuple(int(s) for s in size.split("x"))
    images = jax.device_put(
        jax.random.uniform(jax.random.key(0), shape, jnp.float32), sharding)
    labels = jax.device_put(jnp.arange(shape[0]) % 10, sharding)
    for method in args.methods.split(","):
      result = time_rounds(functions(method, mesh),
                           (jax.random.key(1), images, labels), args.rounds)
      record = {"size": size, "method": method, **result}
      records.append(record)
      print(f"{size:>14} {method:>8}  per_device {result['per_device']*1e3:8.3f} ms"
            f"  cross {result['cross']*1e3:8.3f} ms  shift "
            f"{result['shift']*1e3:7.3f} ms  cross/per "
            f"{result['ratio_cross_per_device']:.3f}", flush=True)
  env = {"jax": jax.__version__, "backend": jax.default_backend(),
         "devices": len(jax.devices()), "device_kind": jax.devices()[0].device_kind,
         "cpu_count": os.cpu_count(), "python": platform.python_version(),
         "rounds": args.rounds}
  os.makedirs(os.path.dirname(args.out), exist_ok=True)
  with open(args.out, "w") as f:
    json.dump({"env": env, "records": records}, f, indent=1)
  return 0


if __name__ == "__main__":
  sys.exit(main())
