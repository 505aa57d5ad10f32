"""Random-access image classification datasets as uint8 numpy examples.

A dataset is two `Source`s (train, test) and a class count. A source supports
``len(source)`` and ``source[i] -> (image, label)`` with ``image`` an (H, W, C)
uint8 array. Sources:

* ``digits``: scikit-learn's bundled 8x8 handwritten digits (1797 images, no
  download), with a fixed stratified 20% test split;
* ``synthetic``: class-dependent noise images for tests and benchmarks;
* ``image_folder``: ``ROOT/{train,test}/{class}/*.jpg|png``, decoded by PIL;
* any TFDS name (``cifar10``, ``cifar100``, ``imagenet2012``, ...), read with
  `tfds.data_source` (ArrayRecord files, no TensorFlow needed) from
  ``data.data_dir``.
"""

import dataclasses
import os
from typing import Protocol

import numpy as np
from PIL import Image

__all__ = [
    'ArraySource', 'BUILTIN_DATASETS', 'Dataset', 'FolderSource', 'Source',
    'Subset', 'TfdsSource', 'balanced_subset', 'decode_image', 'describe',
    'load_dataset', 'source_labels'
]

BUILTIN_DATASETS = ('digits', 'synthetic', 'image_folder')
_IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png')


class Source(Protocol):
  """Random access to (uint8 image, int label) examples."""

  def __len__(self) -> int:
    ...

  def __getitem__(self, index: int) -> tuple[np.ndarray, int]:
    ...


@dataclasses.dataclass(frozen=True)
class Dataset:
  """A train and a test source and the number of classes."""
  train: Source
  test: Source
  num_classes: int


class ArraySource:
  """Examples held in memory as one (N, H, W, C) uint8 array."""

  def __init__(self, images: np.ndarray, labels: np.ndarray):
    if images.dtype != np.uint8 or images.ndim != 4:
      raise ValueError(f'images must be (N, H, W, C) uint8, got '
                       f'{images.shape} {images.dtype}')
    self.images = images
    self.labels = np.asarray(labels, np.int32)

  def __len__(self) -> int:
    return len(self.labels)

  def __getitem__(self, index: int) -> tuple[np.ndarray, int]:
    return self.images[index], int(self.labels[index])


def decode_image(path: str, mode: str) -> np.ndarray:
  """The image file at ``path`` as (H, W, C) uint8, converted to PIL ``mode``."""
  with Image.open(path) as image:
    array = np.asarray(image.convert(mode))
  return array[..., None] if array.ndim == 2 else array


class FolderSource:
  """Image files with integer labels, decoded on access."""

  def __init__(self, paths: list[str], labels: list[int], channels: int):
    self.paths = paths
    self.labels = np.asarray(labels, np.int32)
    modes = {1: 'L', 3: 'RGB'}
    if channels not in modes:
      raise ValueError(f'data.channels={channels!r} is not supported for '
                       f'image files: expected one of {tuple(modes)}')
    self.mode = modes[channels]

  def __len__(self) -> int:
    return len(self.paths)

  def __getitem__(self, index: int) -> tuple[np.ndarray, int]:
    return decode_image(self.paths[index], self.mode), int(self.labels[index])


class TfdsSource:
  """A `tfds.data_source` split."""

  def __init__(self, data_source, image_key: str, label_key: str):
    self.data_source = data_source
    self.image_key = image_key
    self.label_key = label_key

  def __len__(self) -> int:
    return len(self.data_source)

  def __getitem__(self, index: int) -> tuple[np.ndarray, int]:
    record = self.data_source[int(index)]
    image = np.asarray(record[self.image_key], np.uint8)
    if image.ndim == 2:
      image = image[..., None]
    return image, int(record[self.label_key])


class Subset:
  """The examples of ``source`` at ``indices``, in that order."""

  def __init__(self, source: Source, indices):
    self.source = source
    self.indices = np.asarray(indices, np.int64)

  def __len__(self) -> int:
    return len(self.indices)

  def __getitem__(self, index: int) -> tuple[np.ndarray, int]:
    return self.source[int(self.indices[index])]


def describe(source: Source, index: int) -> str:
  """A human-readable name of example ``index`` of ``source``.

  ``source.name_of(index)`` if the source has it, the file path for a
  `FolderSource` (also through a `Subset`), else ``'example <index>'``.
  """
  index = int(index)
  if isinstance(source, Subset):
    return describe(source.source, source.indices[index])
  if hasattr(source, 'name_of'):
    return str(source.name_of(index))
  if isinstance(source, FolderSource):
    return source.paths[index]
  return f'example {index}'


def source_labels(source: Source) -> np.ndarray:
  """All labels of ``source`` (read from its ``labels`` if it keeps them)."""
  if isinstance(source, Subset):
    return source_labels(source.source)[source.indices]
  labels = getattr(source, 'labels', None)
  if labels is None:
    labels = [source[i][1] for i in range(len(source))]
  return np.asarray(labels, np.int32)


def balanced_subset(source: Source, size: int, num_classes: int,
                    seed: int = 0) -> Subset:
  """``size`` examples of ``source``, as equal a number per class as possible.

  Each class contributes ``size // num_classes`` examples (the first
  ``size % num_classes`` classes one more), drawn without replacement by
  ``seed``: the subset is fixed by the data, not by the training run's seed.

  Raises:
    ValueError: ``size`` is not in [1, len(source)], or a class has fewer
      examples than its share.
  """
  if not 0 < size <= len(source):
    raise ValueError(f'data.train_examples={size} must be in [1, '
                     f'{len(source)}] (the training set size), or 0 for all')
  labels = source_labels(source)
  rng = np.random.default_rng([seed, 2])
  chosen = []
  for label in range(num_classes):
    share = size // num_classes + (label < size % num_classes)
    members = np.flatnonzero(labels == label)
    if len(members) < share:
      raise ValueError(
          f'data.train_examples={size} needs {share} examples of class '
          f'{label}, which has only {len(members)}')
    chosen.append(rng.choice(members, share, replace=False))
  return Subset(source, np.sort(np.concatenate(chosen)))


def _digits(test_fraction: float) -> Dataset:
  # Imported here: only the digits dataset needs scikit-learn.
  from sklearn import datasets as sk_datasets  # pylint: disable=g-import-not-at-top,line-too-long
  from sklearn import model_selection  # pylint: disable=g-import-not-at-top
  digits = sk_datasets.load_digits()
  # Pixel values are counts 0..16; stretch them to 0..255.
  images = np.round(digits.images * (255 / 16)).astype(np.uint8)[..., None]
  train_x, test_x, train_y, test_y = model_selection.train_test_split(
      images, digits.target, test_size=test_fraction, random_state=0,
      stratify=digits.target)
  return Dataset(ArraySource(train_x, train_y), ArraySource(test_x, test_y),
                 num_classes=10)


def _synthetic(config) -> Dataset:
  # Any config can switch to synthetic data: the sizes have defaults.
  num_classes = config.get('num_classes', 10)
  rng = np.random.default_rng(0)
  shape = (config.image_size, config.image_size, config.channels)
  patterns = rng.choice([-1.0, 1.0], size=(num_classes, *shape))

  def make(size: int) -> ArraySource:
    labels = rng.integers(0, num_classes, size)
    noise = rng.normal(size=(size, *shape))
    images = np.clip(128 + 48 * patterns[labels] + 32 * noise, 0, 255)
    return ArraySource(images.astype(np.uint8), labels)

  return Dataset(make(config.get('train_size', 1024)),
                 make(config.get('test_size', 256)), num_classes)


def _require_dir(path: str | None, what: str) -> str:
  if not path:
    raise ValueError(f'{what}: data.data_dir must be set')
  path = os.path.expanduser(path)
  if not os.path.isdir(path):
    raise ValueError(f'{what}: data directory {path!r} does not exist')
  return path


def _image_folder(config) -> Dataset:
  root = _require_dir(config.data_dir, 'image_folder')
  splits = {}
  classes = None
  for split in (config.train_split, config.test_split):
    split_dir = os.path.join(root, split)
    if not os.path.isdir(split_dir):
      raise ValueError(
          f'image_folder: missing {split_dir!r}; expected the layout '
          'ROOT/{train,test}/{class}/*.jpg|png')
    split_classes = sorted(
        d for d in os.listdir(split_dir)
        if os.path.isdir(os.path.join(split_dir, d)))
    if classes is None:
      classes = split_classes
    unknown = sorted(set(split_classes) - set(classes))
    if unknown:
      raise ValueError(f'image_folder: classes {unknown} in {split_dir!r} '
                       f'are not among the training classes')
    paths, labels = [], []
    for label, name in enumerate(classes):
      class_dir = os.path.join(split_dir, name)
      if not os.path.isdir(class_dir):
        continue
      files = sorted(f for f in os.listdir(class_dir)
                     if f.lower().endswith(_IMAGE_EXTENSIONS))
      paths += [os.path.join(class_dir, f) for f in files]
      labels += [label] * len(files)
    if not paths:
      raise ValueError(f'image_folder: no .jpg/.png images under {split_dir!r}')
    splits[split] = FolderSource(paths, labels, config.channels)
  return Dataset(splits[config.train_split], splits[config.test_split],
                 num_classes=len(classes))


def _tfds(config) -> Dataset:
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  try:
    tfds.builder_cls(config.name)
  except tfds.core.registered.DatasetNotFoundError:
    raise ValueError(
        f'unknown dataset {config.name!r}: expected one of {BUILTIN_DATASETS} '
        'or a TFDS dataset name such as cifar10, cifar100, imagenet2012'
    ) from None
  data_dir = None
  if config.data_dir:
    data_dir = _require_dir(config.data_dir, f'TFDS dataset {config.name!r}')
  sources = {}
  for split in (config.train_split, config.test_split):
    try:
      # download=False: never reach for the network from a training job.
      sources[split] = tfds.data_source(config.name, split=split,
                                        data_dir=data_dir, download=False)
    except Exception as error:  # pylint: disable=broad-except
      raise ValueError(
          f'TFDS dataset {config.name!r} split {split!r} could not be opened '
          f'from data_dir={data_dir!r} ({error}). tfds.data_source reads '
          'ArrayRecord files: prepare them once with `tfds build '
          f'{config.name} --file_format=array_record --data_dir=...`.'
      ) from error
  features = sources[config.train_split].dataset_info.features
  num_classes = features[config.label_key].num_classes
  return Dataset(
      TfdsSource(sources[config.train_split], config.image_key,
                 config.label_key),
      TfdsSource(sources[config.test_split], config.image_key,
                 config.label_key), num_classes)


def load_dataset(config) -> Dataset:
  """Opens the dataset described by ``config`` (the ``config.data`` block).

  Args:
    config: ConfigDict with ``name`` and, as the dataset needs them,
      ``data_dir``, ``train_split``, ``test_split``, ``image_key``,
      ``label_key``, ``channels``, ``test_fraction`` (digits),
      ``image_size``/``num_classes``/``train_size``/``test_size`` (synthetic),
      and ``train_examples`` (> 0: a class-balanced subset of that many
      training examples, see `balanced_subset`).

  Returns:
    A `Dataset`.

  Raises:
    ValueError: unknown dataset name, missing or malformed data directory.
  """
  if config.name == 'digits':
    dataset = _digits(config.get('test_fraction', 0.2))
  elif config.name == 'synthetic':
    dataset = _synthetic(config)
  elif config.name == 'image_folder':
    dataset = _image_folder(config)
  else:
    dataset = _tfds(config)
  if config.get('train_examples'):
    dataset = dataclasses.replace(dataset, train=balanced_subset(
        dataset.train, config.train_examples, dataset.num_classes))
  return dataset
