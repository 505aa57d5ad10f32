"""Throughput of every msda_jax method x mode against a memory-traffic floor.

A jitted mixing step should cost about what reading two images and writing
one costs. This script times, in one process on the default JAX backend (CPU
on the VMs we use), ``jax.jit(mixer)`` returning only the mixed images and
labels, for Mixup, CutMix, HMix (r=0.5) and GMix in the modes 'batch', 'pair'
and 'elem' (optionally at several α, and timm's recipe ``timm``: CutMix with
α = 1 or Mixup with α = 0.8, picked per draw with probability 1/2 each), and
on request (``--methods``) FMix, GridMix, SmoothMix and ResizeMix with their
defaults (``--alpha`` is λ ~ Beta(α, α) for every method but ResizeMix,
which has no α and is timed once; GridMix's own default is λ ~ U(0.1, 0.9)),
next to plain jitted floor blends of the same batch:

- ``floor``: ``a * x + b * x[::-1]`` with scalars ``a``, ``b = 1 - a`` drawn
  from the key (the issue's floor: two reads and one write per pixel);
- ``inverse``: the same traffic written the way the mixer writes it, a
  per-sample weight and its complement, ``w * x + (1 - w) * x[::-1]`` with
  ``w`` of shape ``(B, 1, 1, 1)`` drawn from the key (the fairer floor for
  per-sample modes: one weight per image, broadcast in the fused loop).

Next to each timing it prints counts from the function's optimised HLO
(``hlo_stats``): kernels, threefry loops, YNNPACK reductions, materialised
``(B, H, W)`` mask buffers and gathers, the usual suspects when a method is
slower than the floor, and the FFTs, sorts and matmuls (FMix's spectrum,
ResizeMix's resize).

Measurements are interleaved: each round calls every function of a group (the
floors and the three modes of one method) once, in a rotating order, so that
noise from other processes hits all of them alike; we report medians over
rounds after a warm-up, and the ratio ``method / floor`` as the median of the
per-round ratios. Every call is followed by ``block_until_ready``.

Run (the env var makes glibc back large allocations with huge pages; without
it fresh output buffers page-fault and the timings on our VMs are dominated
by the kernel, not by the blend)::

  GLIBC_TUNABLES=glibc.malloc.hugetlb=1 python benchmarks/mix_throughput.py

Options: ``--out`` (JSON, default benchmarks/results/mix_throughput.json),
``--sizes 256x32x32x3,64x224x224x3``, ``--methods``, ``--modes``,
``--partner`` (default 'flip', the floor's pairing), ``--alpha`` (default 1,
the factories' default; a comma-separated list such as ``1,0.8,0.2`` times
every method at each α, one group per α), ``--seconds`` (time budget per
group: one method at one α and one size),
``--min-rounds``, ``--hlo-dir`` (also write the optimised HLO of every
function there). Results and how to read them: docs/benchmarks.md.

Example (a quick smoke run)::

  python benchmarks/mix_throughput.py --sizes 8x16x16x3 --methods mixup \\
      --modes batch --seconds 0.1 --min-rounds 5 --out /tmp/mix.json

α ≠ 1 and timm's recipe at 256x32x32x3 (the README's α rows)::

  GLIBC_TUNABLES=glibc.malloc.hugetlb=1 python benchmarks/mix_throughput.py \\
      --sizes 256x32x32x3 --modes batch,elem --alpha 1,0.8,0.2 \\
      --methods mixup,cutmix,hmix,gmix,timm --seconds 6

The methods of issue 8 (docs/benchmarks.md, "New methods (issue 8)")::

  GLIBC_TUNABLES=glibc.malloc.hugetlb=1 python benchmarks/mix_throughput.py \\
      --sizes 256x32x32x3,64x224x224x3 --modes batch,pair,elem \\
      --methods fmix,gridmix,smoothmix,resizemix --seconds 5
"""

import argparse
import datetime
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import msda_jax  # noqa: E402  pylint: disable=g-import-not-at-top

__all__ = ["floor_fns", "mixer_fn", "hlo_stats", "time_group", "run", "main"]



def _timm(*, alpha, **kw):
  """timm's default recipe: CutMix (α = 1) or Mixup (α = 0.8), 1/2 each."""
  del alpha  # the recipe fixes its own α per method
  return msda_jax.choice([msda_jax.cutmix(alpha=1.0, **kw),
                          msda_jax.mixup(alpha=0.8, **kw)])


def _resizemix(*, alpha, **kw):
  """ResizeMix with its defaults; it has no α (the box side is τ ~ U(0.1, 0.8))."""
  del alpha  # resizemix takes no alpha
  return msda_jax.resizemix(**kw)


METHODS = {
    "mixup": msda_jax.mixup,
    "cutmix": msda_jax.cutmix,
    "hmix": lambda **kw: msda_jax.hmix(r=0.5, **kw),
    "gmix": msda_jax.gmix,
    "timm": _timm,
    # The methods of issue 8, with their defaults except α: every method but
    # resizemix gets --alpha as λ ~ Beta(α, α), gridmix included (its own
    # default is λ ~ U(0.1, 0.9); at α = 1 it is timed with λ ~ U(0, 1), which
    # costs the same: one uniform, mapped affinely).
    "fmix": msda_jax.fmix,
    "gridmix": msda_jax.gridmix,
    "smoothmix": msda_jax.smoothmix,
    "resizemix": _resizemix,
}
# Methods whose α is part of the recipe (or that have none): timed once,
# whatever --alpha says.
FIXED_ALPHA = ("timm", "resizemix")
DEFAULT_METHODS = "mixup,cutmix,hmix,gmix"
DEFAULT_SIZES = "256x32x32x3,64x224x224x3"


def floor_fns() -> dict[str, Callable]:
  """The floor blends, ``fn(key, images, labels) -> images``, unjitted."""

  def floor(key, images, labels):
    del labels
    a = jax.random.uniform(key, (), images.dtype)
    return a * images + (1.0 - a) * images[::-1]

  def inverse(key, images, labels):
    del labels
    w = jax.random.uniform(key, (images.shape[0], 1, 1, 1), images.dtype)
    return w * images + (1.0 - w) * images[::-1]

  return {"floor": floor, "inverse": inverse}


def mixer_fn(method: str, mode: str, num_classes: int, partner: str,
             alpha: float = 1.0) -> Callable:
  """``fn(key, images, labels) -> (images, labels)`` for one method and mode."""
  mixer = METHODS[method](mode=mode, num_classes=num_classes, partner=partner,
                          alpha=alpha)

  def fn(key, images, labels):
    out = mixer(key, images, labels)
    return out.images, out.labels

  return fn


def hlo_stats(hlo: str, batch: int, height: int, width: int) -> dict:
  """Counts in the entry computation of an optimised HLO module.

  ``fusions``: kernels launched; ``loops``: while loops and out-of-line calls
  (on CPU every threefry call is a rolled 5-iteration loop); ``custom``:
  library-call fusions (YNNPACK reductions); ``mask_buffers``: materialised
  float32 ``(B, H, W)`` arrays (a mask that did not fuse into the blend);
  ``gathers``: gather ops (a partner read that is not a static reverse/roll).
  In the whole module (fused computations included): ``ffts``, ``sorts`` and
  ``dots`` (matrix products; ResizeMix's resize is two batched ones, and its
  ``(B, H, H)`` / ``(B, W, W)`` weights count as mask buffers when H = W).
  """
  entry = hlo[hlo.index("\nENTRY"):]
  return {
      "fusions": len(re.findall(r" fusion\(", entry)),
      "loops": len(re.findall(r" (?:while|call)\(", entry)),
      "custom": entry.count("kind=kCustom"),
      "mask_buffers": len(re.findall(
          rf"= f32\[{batch},{height},{width}\]\{{", entry)),
      "gathers": len(re.findall(r" gather\(", entry)),
      "ffts": len(re.findall(r" fft\(", hlo)),
      "sorts": len(re.findall(r" sort\(", hlo)),
      "dots": len(re.findall(r" dot\(", hlo)),
  }


def time_group(fns: dict[str, Callable], args_list, *, seconds: float,
               min_rounds: int, warmup: int = 3) -> dict[str, list[float]]:
  """Times jitted ``fns`` interleaved; returns seconds per call per round.

  Each round calls every function once (order rotated by one each round) with
  the round's arguments ``args_list[round % len(args_list)]``.
  """
  names = list(fns)
  for name in names:  # compile and warm up
    for i in range(warmup):
      jax.block_until_ready(fns[name](*args_list[i % len(args_list)]))
  # Rough cost of one round, to fit the budget.
  start = time.perf_counter()
  for name in names:
    jax.block_until_ready(fns[name](*args_list[0]))
  per_round = max(time.perf_counter() - start, 1e-6)
  rounds = max(min_rounds, int(seconds / per_round))
  times = {name: [] for name in names}
  for r in range(rounds):
    args = args_list[r % len(args_list)]
    shift = r % len(names)
    for name in names[shift:] + names[:shift]:
      fn = fns[name]
      t0 = time.perf_counter()
      out = fn(*args)
      jax.block_until_ready(out)
      times[name].append(time.perf_counter() - t0)
      del out
  return times


def _parse_size(text: str) -> tuple[int, int, int, int]:
  dims = tuple(int(v) for v in text.lower().split("x"))
  if len(dims) != 4 or min(dims) < 1:
    raise argparse.ArgumentTypeError(f"size must be BxHxWxC; got {text!r}")
  return dims


def _groups(methods, alphas):
  """(method, alpha, group name) for every timed group, in order."""
  groups = []
  for method in methods:
    if method in FIXED_ALPHA:
      groups.append((method, None, method))
      continue
    for alpha in alphas:
      name = method if len(alphas) == 1 else f"{method} α={alpha:g}"
      groups.append((method, alpha, name))
  return groups


def run(sizes, methods, modes, *, partner: str, seconds: float,
        min_rounds: int, alpha=1.0, dtype: str = "float32", hlo_dir=None,
        log=print) -> list[dict]:
  """Runs the benchmark; returns one record per (size, function).

  ``alpha`` is a float or a sequence of floats: every method not in
  ``FIXED_ALPHA`` is timed at each, as its own group.
  """
  alphas = [float(alpha)] if isinstance(alpha, (int, float)) else [
      float(a) for a in alpha]
  records = []
  for size in sizes:
    batch, height, width, channels = size
    num_classes = 10 if height * width <= 64 * 64 else 1000
    data_key = jax.random.key(1234)
    images = jax.random.uniform(data_key, size, jnp.float32).astype(dtype)
    labels = jnp.arange(batch, dtype=jnp.int32) % num_classes
    keys = jax.random.split(jax.random.key(0), 16)
    args_list = [(k, images, labels) for k in keys]
    tag = "x".join(map(str, size))
    log(f"\n== {tag} {dtype}, num_classes={num_classes}, partner={partner!r}, "
        f"alpha={','.join(f'{a:g}' for a in alphas)}")
    for method, group_alpha, group in _groups(methods, alphas):
      fns = {n: jax.jit(f) for n, f in floor_fns().items()}
      for mode in modes:
        fns[mode] = jax.jit(
            mixer_fn(method, mode, num_classes, partner, group_alpha))
      if hlo_dir:
        os.makedirs(hlo_dir, exist_ok=True)
      stats = {}
      for name, fn in fns.items():
        hlo = fn.lower(*args_list[0]).compile().as_text()
        stats[name] = hlo_stats(hlo, batch, height, width)
        if hlo_dir:
          fname = (f"{tag}_{re.sub(r'[^A-Za-z0-9.]+', '_', group)}_"
                   f"{name if name in modes else 'floor_' + name}.hlo.txt")
          with open(os.path.join(hlo_dir, fname), "w") as f:
            f.write(hlo)
      times = time_group(fns, args_list, seconds=seconds,
                         min_rounds=min_rounds)
      floor_t = times["floor"]
      for name in fns:
        t = times[name]
        med = statistics.median(t)
        rec = {
            "size": tag, "dtype": dtype, "method": "floor" if name not in modes else method,
            "mode": name if name in modes else None,
            "fn": name if name not in modes else f"{method}/{name}",
            "group": group, "alpha": group_alpha, "rounds": len(t),
            "median_s": med, "p10_s": float(np.percentile(t, 10)),
            "p90_s": float(np.percentile(t, 90)),
            "images_per_s": batch / med,
            "ratio_floor": statistics.median(
                [a / b for a, b in zip(t, floor_t)]),
            "ratio_inverse": statistics.median(
                [a / b for a, b in zip(t, times["inverse"])]),
            "hlo": stats[name],
        }
        if name in modes and "batch" in times:
          rec["ratio_batch"] = statistics.median(
              [a / b for a, b in zip(t, times["batch"])])
        records.append(rec)
        log(f"  {group + '/' + name if name in modes else name:<22} "
            f"{med * 1e3:9.3f} ms  "
            f"{rec['images_per_s']:11,.0f} img/s  "
            f"x{rec['ratio_floor']:.2f} floor  x{rec['ratio_inverse']:.2f} inverse"
            + (f"  x{rec['ratio_batch']:.2f} batch" if "ratio_batch" in rec
               else "") + f"  ({len(t)} rounds; hlo "
            + " ".join(f"{k}={v}" for k, v in stats[name].items()) + ")")
  return records


def _table(records, modes) -> str:
  """A Markdown table: one row per size x method, a column group per mode."""
  head = ["size", "method", "floor ms"]
  for mode in modes:
    head += [f"{mode} ms", f"{mode} img/s", f"{mode} /floor"]
  head += [f"{m} /batch" for m in modes if m != "batch" and "batch" in modes]
  lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
  by = {(r["size"], r["group"], r["fn"].split("/")[-1]): r for r in records}
  for size, group in dict.fromkeys((r["size"], r["group"]) for r in records):
    floor = by[(size, group, "floor")]
    row = [size, group, f"{floor['median_s'] * 1e3:.3f}"]
    for mode in modes:
      r = by[(size, group, mode)]
      row += [f"{r['median_s'] * 1e3:.3f}", f"{r['images_per_s']:,.0f}",
              f"{r['ratio_floor']:.2f}"]
    row += [f"{by[(size, group, m)]['ratio_batch']:.2f}" for m in modes
            if m != "batch" and "batch" in modes]
    lines.append("| " + " | ".join(row) + " |")
  return "\n".join(lines)


def _git_commit():
  """The repository's HEAD (with '+dirty' if msda_jax/ has local edits)."""
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  try:
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root,
                          capture_output=True, text=True, check=True)
    dirty = subprocess.run(["git", "status", "--porcelain", "msda_jax"],
                           cwd=root, capture_output=True, text=True, check=True)
  except (OSError, subprocess.CalledProcessError):
    return None
  return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(
      description="images/s of every msda_jax method x mode vs a floor blend")
  parser.add_argument("--sizes", default=DEFAULT_SIZES,
                      help=f"comma-separated BxHxWxC (default {DEFAULT_SIZES})")
  parser.add_argument("--methods", default=DEFAULT_METHODS,
                      help=f"comma-separated, from {list(METHODS)} (default "
                      f"{DEFAULT_METHODS}; 'timm' is CutMix α=1 or Mixup "
                      "α=0.8, 1/2 each, and 'resizemix' has no α: both are "
                      "timed once, whatever --alpha says)")
  parser.add_argument("--modes", default=",".join(msda_jax.MODES))
  parser.add_argument("--partner", default="flip", choices=msda_jax.PARTNERS)
  parser.add_argument("--alpha", default="1.0",
                      help="Beta(α, α) of every mixer, or a comma-separated "
                      "list to time each method at each α (default 1.0, "
                      "the factories' default)")
  parser.add_argument("--seconds", type=float, default=20.0,
                      help="time budget per group (a method at one α) and "
                      "size (default 20)")
  parser.add_argument("--min-rounds", type=int, default=30)
  parser.add_argument("--dtype", default="float32",
                      choices=("float32", "bfloat16"),
                      help="dtype of the images (the floors use the same)")
  parser.add_argument("--hlo-dir", default=None,
                      help="write each function's optimised HLO here")
  parser.add_argument("--out", default=os.path.join(
      os.path.dirname(os.path.abspath(__file__)), "results",
      "mix_throughput.json"))
  args = parser.parse_args(argv)
  sizes = [_parse_size(s) for s in args.sizes.split(",")]
  methods = args.methods.split(",")
  modes = args.modes.split(",")
  for m in methods:
    if m not in METHODS:
      parser.error(f"unknown method {m!r}; choose from {list(METHODS)}")
  for m in modes:
    if m not in msda_jax.MODES:
      parser.error(f"unknown mode {m!r}; choose from {msda_jax.MODES}")
  try:
    alphas = [float(a) for a in args.alpha.split(",")]
  except ValueError:
    parser.error(f"--alpha must be floats; got {args.alpha!r}")
  if not all(a > 0 for a in alphas):
    parser.error(f"--alpha must be > 0; got {args.alpha!r}")

  env = {
      "date": datetime.datetime.now().isoformat(timespec="seconds"),
      "jax": jax.__version__, "backend": jax.default_backend(),
      "devices": [str(d) for d in jax.devices()],
      "cpu_count": os.cpu_count(), "python": platform.python_version(),
      "machine": platform.machine(),
      "GLIBC_TUNABLES": os.environ.get("GLIBC_TUNABLES"),
      "XLA_FLAGS": os.environ.get("XLA_FLAGS"),
      "argv": sys.argv, "msda_jax_commit": _git_commit(),
  }
  print(f"jax {env['jax']} on {env['backend']} ({os.cpu_count()} CPUs), "
        f"GLIBC_TUNABLES={env['GLIBC_TUNABLES']}, msda_jax "
        f"{env['msda_jax_commit']}")
  if env["GLIBC_TUNABLES"] is None:
    print("warning: GLIBC_TUNABLES=glibc.malloc.hugetlb=1 is not set; fresh "
          "buffers will page-fault and skew the timings")
  records = run(sizes, methods, modes, partner=args.partner,
                seconds=args.seconds, min_rounds=args.min_rounds,
                alpha=alphas, dtype=args.dtype, hlo_dir=args.hlo_dir)
  print("\n" + _table(records, modes))
  os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
  with open(args.out, "w") as f:
    json.dump({"env": env, "records": records}, f, indent=1)
  print(f"\nwrote {args.out}")
  return 0


if __name__ == "__main__":
  raise SystemExit(main())
