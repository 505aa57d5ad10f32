"""Tests of train/datasets.py, train/augment.py and train/input_pipeline.py."""

import os

import ml_collections
import numpy as np
from PIL import Image
import pytest

from train import augment
from train import datasets
from train import input_pipeline


def _data_config(**overrides) -> ml_collections.ConfigDict:
  config = dict(name='digits', data_dir='', train_split='train',
                test_split='test', image_key='image', label_key='label',
                test_fraction=0.2, image_size=8, channels=3, num_classes=4,
                train_size=40, test_size=12)
  config.update(overrides)
  return ml_collections.ConfigDict(config)


def test_digits_split_is_fixed_stratified_and_uint8():
  first = datasets.load_dataset(_data_config())
  second = datasets.load_dataset(_data_config())
  assert (len(first.train), len(first.test), first.num_classes) == (1437, 360,
                                                                     10)
  assert first.train.images.shape == (1437, 8, 8, 1)
  assert first.train.images.dtype == np.uint8
  assert first.train.images.max() == 255
  np.testing.assert_array_equal(first.test.images, second.test.images)
  np.testing.assert_array_equal(first.test.labels, second.test.labels)
  counts = np.bincount(first.test.labels, minlength=10)
  assert counts.min() >= 35 and counts.max() <= 37  # 20% of ~180 per class.


def _write_folder(root, split, counts, size=6):
  rng = np.random.default_rng(len(split))
  written = {}
  for name, count in counts.items():
    os.makedirs(os.path.join(root, split, name))
    for i in range(count):
      pixels = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
      extension = 'png' if i % 2 else 'jpg'
      path = os.path.join(root, split, name, f'{i:03d}.{extension}')
      Image.fromarray(pixels).save(path)
      written[path] = pixels
  return written


def test_image_folder_reads_classes_in_sorted_order(tmp_path):
  root = str(tmp_path)
  pixels = _write_folder(root, 'train', {'dog': 3, 'cat': 2, 'ant': 1})
  _write_folder(root, 'test', {'cat': 1, 'dog': 2})
  dataset = datasets.load_dataset(_data_config(name='image_folder',
                                               data_dir=root))
  assert dataset.num_classes == 3
  assert len(dataset.train) == 6 and len(dataset.test) == 3
  # Classes are indexed in sorted order: ant=0, cat=1, dog=2.
  assert list(dataset.train.labels) == [0, 1, 1, 2, 2, 2]
  assert list(dataset.test.labels) == [1, 2, 2]
  for index, path in enumerate(dataset.train.paths):
    image, label = dataset.train[index]
    assert image.shape == (6, 6, 3) and image.dtype == np.uint8
    if path.endswith('.png'):  # Lossless: the exact pixels come back.
      np.testing.assert_array_equal(image, pixels[path])


def test_image_folder_errors_name_the_problem(tmp_path):
  with pytest.raises(ValueError, match='does not exist'):
    datasets.load_dataset(_data_config(name='image_folder',
                                       data_dir=str(tmp_path / 'nope')))
  with pytest.raises(ValueError, match='data_dir must be set'):
    datasets.load_dataset(_data_config(name='image_folder'))
  _write_folder(str(tmp_path), 'train', {'a': 1})
  with pytest.raises(ValueError, match='test'):
    datasets.load_dataset(_data_config(name='image_folder',
                                       data_dir=str(tmp_path)))
  _write_folder(str(tmp_path), 'test', {'b': 1})
  with pytest.raises(ValueError, match=r"classes \['b'\]"):
    datasets.load_dataset(_data_config(name='image_folder',
                                       data_dir=str(tmp_path)))
  with pytest.raises(ValueError, match=r'data\.channels=2 .*\(1, 3\)'):
    datasets.load_dataset(_data_config(name='image_folder',
                                       data_dir=str(tmp_path), channels=2))


def test_tfds_names_are_checked_and_read_without_tensorflow(tmp_path):
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  with pytest.raises(ValueError, match="unknown dataset 'cifar1O'"):
    datasets.load_dataset(_data_config(name='cifar1O'))
  with pytest.raises(ValueError, match='does not exist'):
    datasets.load_dataset(_data_config(name='cifar10',
                                       data_dir=str(tmp_path / 'nope')))
  with pytest.raises(ValueError, match='could not be opened'):
    datasets.load_dataset(_data_config(name='cifar10', data_dir=str(tmp_path)))
  with tfds.testing.mock_data(num_examples=6):
    dataset = datasets.load_dataset(_data_config(name='cifar100'))
  assert dataset.num_classes == 100 and len(dataset.train) == 6
  image, label = dataset.train[5]
  assert image.shape == (32, 32, 3) and image.dtype == np.uint8
  assert 0 <= label < 100


class _IndexImages:
  """Example i is an image filled with i (so batches reveal their indices)."""

  def __init__(self, size: int):
    self.size = size

  def __len__(self):
    return self.size

  def __getitem__(self, index):
    return np.full((4, 4, 1), index, np.uint8), index % 3


def _batches(size=50, batch=8, seed=3, transform='none', **kwargs):
  return input_pipeline.TrainBatches(
      _IndexImages(size), global_batch_size=batch, seed=seed,
      transform=augment.train_transform(transform, 4), **kwargs)


def test_each_epoch_is_a_seeded_permutation_without_repeats():
  batches = _batches()
  assert batches.steps_per_epoch == 6  # 50 // 8, the remainder dropped.
  epoch = [batches.batch(step)['images'][:, 0, 0, 0] for step in range(6)]
  seen = np.concatenate(epoch)
  assert len(set(seen.tolist())) == 48
  np.testing.assert_array_equal(
      seen, input_pipeline.epoch_permutation(3, 0, 50)[:48])
  next_epoch = np.concatenate(
      [batches.batch(step)['images'][:, 0, 0, 0] for step in range(6, 12)])
  assert not np.array_equal(seen, next_epoch)
  other_seed = _batches(seed=4).batch(0)['images']
  assert not np.array_equal(other_seed, batches.batch(0)['images'])


def test_batches_depend_only_on_the_step_not_on_where_iteration_started():
  uninterrupted = list(_batches(transform='crop_flip').iterate(0, 10))
  resumed = list(_batches(transform='crop_flip', num_workers=3).iterate(7, 10))
  for a, b in zip(uninterrupted[7:], resumed):
    np.testing.assert_array_equal(a['images'], b['images'])
    np.testing.assert_array_equal(a['labels'], b['labels'])
  position = _batches().position(13)
  assert position['epoch'] == 2 and position['batch_in_epoch'] == 1
  _batches().check_position(position, 13)
  with pytest.raises(ValueError, match='must not change on resume'):
    _batches(batch=16).check_position(position, 13)


def test_processes_load_disjoint_slices_of_the_same_global_batch():
  whole = _batches(transform='crop_flip').batch(5)
  parts = [_batches(transform='crop_flip', process_index=i,
                    process_count=4).batch(5) for i in range(4)]
  for key in ('images', 'labels'):
    np.testing.assert_array_equal(
        np.concatenate([part[key] for part in parts]), whole[key])
  with pytest.raises(ValueError, match='not divisible by the number of proc'):
    _batches(process_count=3)


def test_eval_batches_cover_the_test_set_once_with_padding_masked():
  source = _IndexImages(21)
  seen = []
  for batch in input_pipeline.eval_batches(
      source, global_batch_size=8, transform=lambda image: image):
    assert batch['images'].shape == (8, 4, 4, 1)
    seen += batch['images'][batch['mask'] > 0, 0, 0, 0].tolist()
  assert seen == list(range(21))


def test_crop_flip_shifts_and_mirrors_within_the_padding():
  image = np.arange(32 * 32 * 3, dtype=np.int64).reshape(32, 32, 3)
  image = (image % 251).astype(np.uint8)
  # uniforms: top offset 8 of 9 -> shift up by 4; left offset 0; flip.
  out = augment.crop_flip(image, np.array([0.99, 0.0, 0.1]))
  assert out.shape == image.shape
  np.testing.assert_array_equal(out[:, ::-1][:28, 4:], image[4:, :28])
  np.testing.assert_array_equal(out[:, ::-1][:, :4], 0)
  np.testing.assert_array_equal(out[28:], 0)
  unchanged = augment.crop_flip(image, np.array([4 / 9 + 0.01, 4 / 9 + 0.01,
                                                 0.9]))
  np.testing.assert_array_equal(unchanged, image)


def test_random_resized_crop_and_eval_view_have_the_target_size():
  rng = np.random.default_rng(0)
  transform = augment.train_transform('random_resized_crop', 16)
  for shape in [(40, 23, 3), (17, 50, 3), (5, 5, 1)]:
    image = rng.integers(0, 256, shape, dtype=np.uint8)
    out = transform(image, rng.random(transform.num_uniforms))
    assert out.shape == (16, 16, shape[2]) and out.dtype == np.uint8
    view = augment.eval_transform('random_resized_crop', 16)(image)
    assert view.shape == (16, 16, shape[2])
  with pytest.raises(ValueError, match='does not match data.image_size'):
    augment.train_transform('crop_flip', 32)(np.zeros((28, 28, 3), np.uint8),
                                             np.zeros(3))
  with pytest.raises(ValueError, match='unknown data.augment'):
    augment.train_transform('autoaugment', 32)


def test_transforms_reject_images_with_other_channel_counts():
  gray = np.zeros((16, 16, 1), np.uint8)
  for name in ['none', 'flip', 'crop_flip', 'random_resized_crop']:
    transform = augment.train_transform(name, 16, channels=3)
    with pytest.raises(ValueError, match=r'data\.channels=3'):
      transform(gray, np.zeros(transform.num_uniforms))
    with pytest.raises(ValueError, match=r'data\.channels=3'):
      augment.eval_transform(name, 16, channels=3)(gray)
