r"""The accelerator check: every figure we want from a lent GPU, in one command.

Runs, one after another and each in its own process (so one stage's
failure or timeout leaves the others' figures), within a total time budget:

Each stage has its own time limit (the seconds in `stages`), so one that
hangs cannot take the others' time.

1. ``mix``: mixing time vs the floor blend for every method, 'batch' and
   'elem' modes, at 256x32x32x3 and 64x224x224x3, in float32 and bfloat16
   (benchmarks/mix_throughput.py);
2. ``train``: train-step images/s of PreActResNet-18 (bfloat16, batch 512,
   XLA convolutions, batches gathered and augmented on device) with no
   mixing and with each method: the overhead ratio, goal >= 0.99
   (benchmarks/train_overhead.py);
3. ``input``: images/s of the device data path (benchmarks/input_pipeline.py
   on 50,000 synthetic 32x32 images, or on ``--data_dir``);
4. ``study``: the ``gpu`` preset of configs/study.py, if ``--data_dir`` names
   the CIFAR-10 image folder and enough of the budget is left.

Each stage writes its own JSON under ``--out_dir``; ``device_check.json``
there collects them with each stage's exit code and wall time, and a
summary is printed. Prepared to run in <= 8 minutes on one H100::

  python benchmarks/device_check.py --out_dir=$OUT --budget_s=470 \
      [--data_dir=/path/to/cifar10-jpeg | --cifar_tar=data/cifar10-jpeg.tar.gz]

The device machine sees only the repository: to give it CIFAR-10, copy
``../shared/data/cifar10-jpeg.tar.gz`` to ``data/`` (ignored by git), pass
``carry=['data']`` to the device tool and ``--cifar_tar`` here, which
extracts it to a temporary folder first.

``--smoke`` shrinks every stage to seconds, to check the script on CPU.
"""

import argparse
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import time

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

__all__ = ['main', 'stages']


def stages(out_dir: str, *, smoke: bool, data_dir: str | None) -> list[dict]:
  """The stages: name, command, the seconds they need, their output JSON."""
  python = sys.executable
  bench = os.path.join(_ROOT, 'benchmarks')
  mix_sizes = '8x16x16x3' if smoke else '256x32x32x3,64x224x224x3'
  mix_seconds = '0.05' if smoke else '4'
  result = []
  for dtype in ('float32', 'bfloat16'):
    out = os.path.join(out_dir, f'mix_{dtype}.json')
    result.append(dict(
        name=f'mix_{dtype}', out=out, seconds=20 if smoke else 100,
        command=[python, os.path.join(bench, 'mix_throughput.py'),
                 f'--sizes={mix_sizes}', '--modes=batch,elem',
                 f'--dtype={dtype}', f'--seconds={mix_seconds}',
                 '--min-rounds=3' if smoke else '--min-rounds=20',
                 f'--out={out}']))
  out = os.path.join(out_dir, 'train_overhead.json')
  result.append(dict(
      name='train', out=out, seconds=60 if smoke else 220,
      command=[python, os.path.join(bench, 'train_overhead.py'),
               '--conv=xla', '--dtype=bfloat16', '--device_data',
               f'--batch_size={16 if smoke else 512}',
               f'--width={4 if smoke else 64}',
               f'--rounds={1 if smoke else 10}',
               f'--steps={1 if smoke else 10}',
               f'--mix_repeats={2 if smoke else 50}', f'--out={out}']))
  out = os.path.join(out_dir, 'input_pipeline.json')
  result.append(dict(
      name='input', out=out, seconds=30 if smoke else 40,
      command=[python, os.path.join(bench, 'input_pipeline.py'),
               f'--data_dir={data_dir or "synthetic"}', '--workers=0',
               f'--batch_size={16 if smoke else 512}',
               f'--steps={20 if smoke else 2000}',
               f'--seconds={0.5 if smoke else 5}', f'--out={out}']))
  if data_dir:
    preset = 'smoke' if smoke else 'gpu'
    workdir = os.path.join(out_dir, 'study')
    result.append(dict(
        name='study', out=os.path.join(workdir, 'results.jsonl'),
        seconds=60 if smoke else 540,
        command=[python, '-m', 'train.study',
                 f'--config=configs/study.py:{preset}', f'--workdir={workdir}',
                 f'--config.base.data.data_dir={data_dir}']))
  return result


def _load(path: str):
  if not os.path.exists(path):
    return None
  with open(path) as f:
    if path.endswith('.jsonl'):
      return [json.loads(line) for line in f if line.strip()]
    return json.load(f)


def main(argv=None) -> dict:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--out_dir', default='out/device_check')
  parser.add_argument('--budget_s', type=float, default=470.0,
                      help='total seconds for all stages')
  parser.add_argument('--data_dir', default=None,
                      help='CIFAR-10 image folder (enables the study stage)')
  parser.add_argument('--cifar_tar', default=None,
                      help='a .tar.gz of the CIFAR-10 image folder, extracted '
                      'to a temporary folder and used as --data_dir')
  parser.add_argument('--smoke', action='store_true')
  args = parser.parse_args(argv)
  os.makedirs(args.out_dir, exist_ok=True)
  if args.cifar_tar:
    args.data_dir = tempfile.mkdtemp(prefix='cifar10_')
    with tarfile.open(args.cifar_tar) as archive:
      archive.extractall(args.data_dir, filter='data')
    print(f'extracted {args.cifar_tar} to {args.data_dir}', flush=True)
  deadline = time.time() + args.budget_s
  report = {}
  for stage in stages(args.out_dir, smoke=args.smoke, data_dir=args.data_dir):
    left = deadline - time.time()
    if stage['name'] == 'study' and left < stage['seconds']:
      report['study'] = dict(skipped=f'{left:.0f} s left of the budget, the '
                             f"study needs {stage['seconds']} s")
      continue
    if left < 10:
      report[stage['name']] = dict(skipped='budget spent')
      continue
    print(f"== {stage['name']}: {' '.join(stage['command'][1:])}", flush=True)
    start = time.time()
    try:
      done = subprocess.run(stage['command'], cwd=_ROOT,
                            timeout=min(left, stage['seconds']),
                            capture_output=True, text=True, check=False)
      returncode, output = done.returncode, done.stdout + done.stderr
    except subprocess.TimeoutExpired as error:
      returncode = 'timeout'
      output = (error.stdout or b'').decode() + (error.stderr or b'').decode()
    tail = output[-3000:]
    print(tail, flush=True)
    report[stage['name']] = dict(
        returncode=returncode, seconds=round(time.time() - start, 1),
        result=_load(stage['out']), output_tail=tail if returncode else None)
  with open(os.path.join(args.out_dir, 'device_check.json'), 'w') as f:
    json.dump(report, f, indent=2)
  print('== summary')
  for name, entry in report.items():
    print(f"{name}: {entry.get('skipped') or entry['returncode']} "
          f"({entry.get('seconds', 0)} s)")
  return report


if __name__ == '__main__':
  main()
