"""The linter (ruff, configured in pyproject.toml) passes on the whole tree.

Run as a test so that the README's one test command (and CI) checks it too.
"""

import os
import subprocess
import sys

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_ruff_finds_nothing():
  # Catches unused imports and names, undefined names, f-strings without
  # placeholders, over-long lines and mutable defaults anywhere in the tree.
  result = subprocess.run([sys.executable, '-m', 'ruff', 'check', '--no-cache',
                           '--output-format', 'concise', _ROOT],
                          capture_output=True, text=True, cwd=_ROOT)
  assert result.returncode == 0, result.stdout + result.stderr
