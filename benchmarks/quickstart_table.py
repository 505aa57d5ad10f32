r"""Test accuracy of every method on digits with the quickstart config, 3 seeds.

Runs configs/quickstart.py unchanged except for ``msda.method`` (none,
mixup, cutmix, hmix, gmix) and ``seed`` (0, 1, 2; the seed sets the
initialisation, the data order and the mixing keys; the test split is fixed),
each in a fresh temporary workdir, then prints a Markdown table of mean ±
sample standard deviation and writes every run's result as JSON.

  GLIBC_TUNABLES=glibc.malloc.hugetlb=1 python benchmarks/quickstart_table.py

Options: --methods, --seeds, --out (JSON file). About 5 minutes on 2 CPU cores.
"""

import argparse
import json
import os
import sys
import tempfile
import time

from absl import logging
import jax
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from configs import quickstart  # pylint: disable=g-import-not-at-top
from train import train  # pylint: disable=g-import-not-at-top

__all__ = ['main']


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--methods', default='none,mixup,cutmix,hmix,gmix')
  parser.add_argument('--seeds', default='0,1,2')
  parser.add_argument('--out', default='out/quickstart_table.json')
  args = parser.parse_args()
  methods = args.methods.split(',')
  seeds = [int(s) for s in args.seeds.split(',')]
  logging.set_verbosity(logging.WARNING)

  runs = []
  with tempfile.TemporaryDirectory() as root:
    # Seeds change only arguments of the compiled programs, so a cache lets
    # the runs of one method share a compilation.
    jax.config.update('jax_compilation_cache_dir', os.path.join(root, 'cache'))
    jax.config.update('jax_persistent_cache_min_compile_time_secs', 0.1)
    for method in methods:
      for seed in seeds:
        config = quickstart.get_config()
        config.msda.method = method
        config.seed = seed
        config.progress_bar = False
        start = time.time()
        result = train.train_and_evaluate(
            config, os.path.join(root, f'{method}_{seed}'))
        runs.append(dict(method=method, seed=seed,
                         test_accuracy=result['test_accuracy'],
                         test_loss=result['test_loss'],
                         seconds=time.time() - start))
        print(f"{method:7s} seed {seed}: test accuracy "
              f"{result['test_accuracy']:.4f} ({runs[-1]['seconds']:.0f} s)",
              flush=True)

  lines = ['| method | test accuracy (%), mean ± std over seeds '
           f"{', '.join(map(str, seeds))} | per seed |", '|---|---|---|']
  for method in methods:
    accuracies = np.asarray([100 * r['test_accuracy'] for r in runs
                             if r['method'] == method])
    std = accuracies.std(ddof=1) if len(accuracies) > 1 else 0.0
    lines.append(f'| {method} | {accuracies.mean():.2f} ± {std:.2f} | '
                 + ', '.join(f'{a:.2f}' for a in accuracies) + ' |')
  table = '\n'.join(lines)
  print('\n' + table)
  os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
  with open(args.out, 'w') as f:
    json.dump(dict(command=' '.join(['python'] + sys.argv), runs=runs,
                   table=table, devices=[str(d) for d in jax.devices()]),
              f, indent=2)
  print(f'wrote {args.out}')


if __name__ == '__main__':
  main()
