"""Test setup: 8 fake CPU devices, so sharded code paths run without accelerators.

XLA reads the flag when the backend starts, so it is set here, before any test
module imports jax.

Compiled programs are shared within one test run, never across runs: the
first process that loads this file (pytest itself, or xdist's controller)
makes an empty compilation cache directory and names it in the environment,
so that xdist's workers and the ``python -m train.main`` subprocesses the
tests start (tests/launch.py) all read and write the same one, and it is
removed when the run ends. Every run therefore pays a fresh machine's
compilation cost once per distinct program.
"""

import os
import shutil
import tempfile

_flags = os.environ.get("XLA_FLAGS", "")
if "xla_force_host_platform_device_count" not in _flags:
  os.environ["XLA_FLAGS"] = (
      _flags + " --xla_force_host_platform_device_count=8").strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")

_OWNS_CACHE = "JAX_COMPILATION_CACHE_DIR" not in os.environ
if _OWNS_CACHE:
  os.environ["JAX_COMPILATION_CACHE_DIR"] = tempfile.mkdtemp(prefix="msda_jax_test_cache_")
# Every program, however quick to compile: most of this suite's time is
# compilation of small programs that several tests and processes share.
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")

import jax  # noqa: E402,F401  (must come after the flags)


def pytest_collection_modifyitems(config, items):
  """Tests marked ``long`` first (a stable sort): with ``-n auto`` a long test
  started last would keep one worker busy after the other has finished."""
  del config
  items.sort(key=lambda item: item.get_closest_marker("long") is None)


def pytest_unconfigure(config):
  del config
  if _OWNS_CACHE:
    shutil.rmtree(os.environ["JAX_COMPILATION_CACHE_DIR"], ignore_errors=True)
