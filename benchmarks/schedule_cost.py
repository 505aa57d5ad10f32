"""Cost of a scheduled mixer against the same mixer with fixed α and prob.

A schedule (``step -> value``) is evaluated inside the jitted call, so a
scheduled mixer should cost what a fixed one costs. For each method this
times, in one process, ``jax.jit(mixer)`` with ``alpha=0.8, prob=0.5`` fixed
and the same values as schedules of a traced step, in interleaved rounds
(rotating order, medians, ratio = median of per-round ratios), and writes
the figures to JSON.

Run::

  GLIBC_TUNABLES=glibc.malloc.hugetlb=1 python benchmarks/schedule_cost.py

Options: ``--size 256x32x32x3``, ``--methods cutmix,mixup,hmix,gmix``,
``--rounds 40``, ``--calls 20`` (calls per round), ``--out`` (default
benchmarks/results/schedule_cost.json).

Example (a quick smoke run)::

  python benchmarks/schedule_cost.py --size 8x8x8x3 --methods mixup \\
      --rounds 2 --calls 2 --out /tmp/schedule_cost.json
"""

import argparse
import json
import os
import statistics
import time

import jax
import jax.numpy as jnp

import msda_jax


def _fns(method: str, images: jax.Array, labels: jax.Array) -> dict:
  factory = getattr(msda_jax, method)
  fixed = factory(alpha=0.8, prob=0.5, num_classes=10)
  scheduled = factory(alpha=lambda step: 0.8 + 0.0 * step,
                      prob=lambda step: jnp.where(step < 10**9, 0.5, 0.0),
                      num_classes=10)
  return {
      "fixed": jax.jit(lambda key, step: fixed(key, images, labels).images),
      "scheduled": jax.jit(
          lambda key, step: scheduled(key, images, labels, step=step).images),
  }


def _time(fn, calls: int, step: int) -> float:
  key = jax.random.key(step)
  start = time.perf_counter()
  for i in range(calls):
    out = fn(key, jnp.asarray(step + i))
  jax.block_until_ready(out)
  return (time.perf_counter() - start) / calls


def run(size, methods, rounds: int, calls: int) -> dict:
  images = jax.random.uniform(jax.random.key(0), size)
  labels = jnp.arange(size[0]) % 10
  results = {}
  for method in methods:
    fns = _fns(method, images, labels)
    for fn in fns.values():  # compile and warm up
      jax.block_until_ready(fn(jax.random.key(0), jnp.asarray(0)))
    times = {name: [] for name in fns}
    names = list(fns)
    for r in range(rounds):
      for name in names[r % 2:] + names[:r % 2]:
        times[name].append(_time(fns[name], calls, r * calls))
    ratios = [s / f for s, f in zip(times["scheduled"], times["fixed"])]
    results[method] = {
        "fixed_ms": 1e3 * statistics.median(times["fixed"]),
        "scheduled_ms": 1e3 * statistics.median(times["scheduled"]),
        "ratio": statistics.median(ratios),
    }
    r = results[method]
    print(f"{method}: fixed {r['fixed_ms']:.3f} ms, scheduled "
          f"{r['scheduled_ms']:.3f} ms, scheduled/fixed {r['ratio']:.3f}")
  return results


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--size", default="256x32x32x3")
  parser.add_argument("--methods", default="cutmix,mixup,hmix,gmix")
  parser.add_argument("--rounds", type=int, default=40)
  parser.add_argument("--calls", type=int, default=20)
  parser.add_argument("--out", default=os.path.join(
      os.path.dirname(__file__), "results", "schedule_cost.json"))
  args = parser.parse_args(argv)
  try:
    size = tuple(int(s) for s in args.size.split("x"))
  except ValueError:
    parser.error(f"--size must look like 256x32x32x3; got {args.size!r}")
  methods = args.methods.split(",")
  for m in methods:
    if not callable(getattr(msda_jax, m, None)) or m in ("none", "resizemix"):
      parser.error(f"--methods: {m!r} is not a method with alpha and prob")
  if args.rounds < 1 or args.calls < 1:
    parser.error("--rounds and --calls must be >= 1")
  results = run(size, methods, args.rounds, args.calls)
  os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
  with open(args.out, "w") as f:
    json.dump({"size": size, "device": str(jax.devices()[0]),
               "jax": jax.__version__, "results": results}, f, indent=2)
  print(f"wrote {args.out}")


if __name__ == "__main__":
  main()
