"""Decoding a whole split once into uint8 arrays, cached for image folders.

The device data path (train/device_data.py) needs the training set as one
``(N, H, W, C)`` uint8 array. `decode_split` builds it from any `Source`:
in-memory sources are used as they are, TFDS records are read once, and the
files of an image folder are decoded by worker processes and stored in a
cache file (``.npz``, under a cache directory of the user's choosing, never
inside the data folder unless asked), keyed by the file list, sizes and
modification times, so that a second run starts in seconds.

Unreadable files never surface as a bare traceback in the middle of a run:
every file is tried, then all failures are listed in one error before
training starts (or, up to ``max_bad_examples``, dropped with a warning).
"""

import concurrent.futures
import hashlib
import multiprocessing
import os
import tempfile

from absl import logging
import numpy as np

from train import datasets

__all__ = ['DecodeError', 'decode_split', 'default_cache_dir']

# Version of the cache file's contents (part of its key).
_CACHE_FORMAT = 2
# Files per task handed to a decoding worker process.
_CHUNK = 512


class DecodeError(ValueError):
  """Some images could not be decoded; the message lists every one."""


def default_cache_dir() -> str:
  """``$XDG_CACHE_HOME/msda_jax`` (``~/.cache/msda_jax`` by default)."""
  base = os.environ.get('XDG_CACHE_HOME') or os.path.expanduser('~/.cache')
  return os.path.join(base, 'msda_jax')


def _decode_files(paths: list[str], mode: str) -> tuple[list, list]:
  """Decodes ``paths``; returns (images or None, error messages or None)."""
  images, errors = [], []
  for path in paths:
    try:
      image = datasets.decode_image(path, mode)
    except Exception as error:  # pylint: disable=broad-except
      images.append(None)
      errors.append(f'{type(error).__name__}: {error}')
    else:
      images.append(image)
      errors.append(None)
  return images, errors


def _decode_folder(source: datasets.FolderSource,
                   num_workers: int) -> tuple[list, list]:
  chunks = [source.paths[i:i + _CHUNK]
            for i in range(0, len(source.paths), _CHUNK)]
  images, errors = [], []
  if num_workers > 0 and len(chunks) > 1:
    try:
      # 'spawn': the workers import only PIL and NumPy, never this process's
      # JAX runtime (forking a process that runs XLA threads is unsafe).
      with concurrent.futures.ProcessPoolExecutor(
          num_workers,
          mp_context=multiprocessing.get_context('spawn')) as pool:
        results = list(pool.map(_decode_files, chunks,
                                [source.mode] * len(chunks)))
    except concurrent.futures.process.BrokenProcessPool:
      # Spawned workers re-import the calling script: one without an
      # ``if __name__ == '__main__':`` guard breaks the pool.
      logging.warning(
          'Decoding worker processes failed to start (does the calling '
          "script lack an `if __name__ == '__main__':` guard?); decoding in "
          'this process instead.')
    else:
      for chunk_images, chunk_errors in results:
        images += chunk_images
        errors += chunk_errors
      return images, errors
  for chunk in chunks:
    chunk_images, chunk_errors = _decode_files(chunk, source.mode)
    images += chunk_images
    errors += chunk_errors
  return images, errors


def _read_all(source: datasets.Source) -> tuple[list, list, np.ndarray]:
  """Reads every example once: images (None if unreadable), errors, labels."""
  images, errors, labels = [], [], []
  for index in range(len(source)):
    try:
      image, label = source[index]
    except Exception as error:  # pylint: disable=broad-except
      images.append(None)
      errors.append(f'{type(error).__name__}: {error}')
      labels.append(-1)
    else:
      images.append(image)
      errors.append(None)
      labels.append(label)
  return images, errors, np.asarray(labels, np.int32)


def _cache_key(source: datasets.FolderSource) -> str:
  digest = hashlib.sha256(f'{_CACHE_FORMAT}\0{source.mode}'.encode())
  for path in source.paths:
    try:
      stat = os.stat(path)
      size, mtime = stat.st_size, stat.st_mtime_ns
    except OSError:  # Gone or unreadable: the decode will list it.
      size = mtime = -1
    digest.update(f'{os.path.abspath(path)}\0{size}\0{mtime}\n'.encode())
  digest.update(np.asarray(source.labels, np.int32).tobytes())
  return digest.hexdigest()[:24]


def _stack(images: list,
           errors: list) -> tuple[np.ndarray, np.ndarray, list[int]]:
  """Stacks the images of the most common shape (the stored size).

  Returns the array, the indices kept, and the indices of the others
  (unreadable, or of another shape: their ``errors`` entries say which).
  """
  shapes = [image.shape for image in images if image is not None]
  shape = None
  if shapes:
    values, counts = np.unique(np.asarray(shapes), axis=0, return_counts=True)
    shape = tuple(int(v) for v in values[np.argmax(counts)])
  for index, image in enumerate(images):
    if image is not None and image.shape != shape:
      errors[index] = (f'shape {image.shape} differs from the other images '
                       f'{shape}')
  keep = np.asarray([i for i, error in enumerate(errors) if error is None],
                    np.int64)
  bad = [i for i, error in enumerate(errors) if error is not None]
  stacked = (np.stack([images[i] for i in keep]) if len(keep) else
             np.zeros((0, 1, 1, 1), np.uint8))
  return stacked, keep, bad


def _check_bad(report: list[str], total: int, max_bad_examples: int) -> None:
  """Raises DecodeError listing ``report`` past the limit; else warns."""
  listing = '\n  '.join(report)
  if len(report) > max_bad_examples or len(report) == total:
    raise DecodeError(
        f'{len(report)} of {total} images could not be used (limit '
        f'data.max_bad_examples={max_bad_examples}):\n  {listing}')
  if report:
    logging.warning('Skipping %d unusable images:\n  %s', len(report),
                    listing)


def _decode(source: datasets.Source, cache_dir: str | None,
            num_workers: int) -> tuple[np.ndarray, np.ndarray, np.ndarray,
                                       list[str]]:
  """(images, labels, kept source indices, report of the others).

  Image folders go through the cache, which stores the report too, so that
  every run checks the bad files against its own limit.
  """
  cache_path = None
  if isinstance(source, datasets.FolderSource):
    cache_dir = os.path.expanduser(cache_dir or default_cache_dir())
    cache_path = os.path.join(cache_dir, f'folder-{_cache_key(source)}.npz')
    if os.path.exists(cache_path):
      with np.load(cache_path) as cached:
        logging.info('Decoded images from the cache %s.', cache_path)
        return (cached['images'], cached['labels'], cached['kept'],
                [str(line) for line in cached['report']])
    images, errors = _decode_folder(source, num_workers)
    labels = datasets.source_labels(source)
  else:
    images, errors, labels = _read_all(source)
  stacked, kept, bad = _stack(images, errors)
  report = [f'{datasets.describe(source, i)}: {errors[i]}' for i in bad]
  labels = labels[kept]
  if cache_path is not None:
    os.makedirs(cache_dir, exist_ok=True)
    # Written under a temporary name and renamed: concurrent processes and
    # interrupted runs never leave a half-written cache file behind.
    handle, temporary = tempfile.mkstemp(dir=cache_dir, suffix='.npz.tmp')
    try:
      with os.fdopen(handle, 'wb') as f:
        np.savez(f, images=stacked, labels=labels, kept=kept,
                 report=np.asarray(report, dtype=str))
      os.replace(temporary, cache_path)
    except BaseException:
      os.unlink(temporary)
      raise
    logging.info('Decoded %d images once; cached in %s.', len(labels),
                 cache_path)
  return stacked, labels, kept, report


def decode_split(source: datasets.Source, *, cache_dir: str | None = None,
                 num_workers: int = 0,
                 max_bad_examples: int = 0) -> datasets.ArraySource:
  """All of ``source`` as one in-memory `ArraySource`.

  Args:
    source: any source; a `Subset` is decoded through its parent's cache
      (and its unusable members are dropped).
    cache_dir: where image-folder decodes are cached ('' or None: the
      `default_cache_dir`).
    num_workers: decoding worker processes for image folders (0: inline).
    max_bad_examples: unusable images tolerated (and dropped).

  Returns:
    The decoded examples, in the order of ``source`` (less dropped ones).

  Raises:
    DecodeError: more than ``max_bad_examples`` images (or all of them) are
      unreadable or have a shape unlike the others; the message names every
      one. Checked on every call, also when the decode comes from the cache.
  """
  if isinstance(source, datasets.ArraySource):
    return source
  parent = source.source if isinstance(source, datasets.Subset) else source
  images, labels, kept, report = _decode(parent, cache_dir, num_workers)
  if isinstance(source, datasets.Subset):
    # Positions of the subset's members among the kept examples.
    positions = np.searchsorted(kept, source.indices)
    found = (positions < len(kept)) & (
        kept[np.minimum(positions, len(kept) - 1)] == source.indices)
    reasons = dict(zip(np.setdiff1d(np.arange(len(parent)), kept).tolist(),
                       report))
    report = [reasons[int(i)] for i in source.indices[~found]]
    _check_bad(report, len(source), max_bad_examples)
    return datasets.ArraySource(images[positions[found]],
                                labels[positions[found]])
  _check_bad(report, len(source), max_bad_examples)
  return datasets.ArraySource(images, labels)
