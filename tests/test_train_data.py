"""Tests of train/datasets.py, train/augment.py and train/input_pipeline.py."""

import multiprocessing
import os
import pickle
import threading
import time

import ml_collections
import numpy as np
from PIL import Image
import pytest

from train import augment
from train import datasets
from train import input_pipeline
from train import order as order_lib


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
      seen, order_lib.epoch_permutation(3, 0, 50)[:48])
  next_epoch = np.concatenate(
      [batches.batch(step)['images'][:, 0, 0, 0] for step in range(6, 12)])
  assert not np.array_equal(seen, next_epoch)
  other_seed = _batches(seed=4).batch(0)['images']
  assert not np.array_equal(other_seed, batches.batch(0)['images'])


def _grain_children() -> set:
  return {p.pid for p in multiprocessing.active_children()
          if p.name.startswith('grain')}


def _worker_batches(**kwargs):
  # Process 1 of 2 with crop+flip: the in-process reference of worker_run.
  return _batches(transform='crop_flip', process_index=1, process_count=2,
                  **kwargs)


@pytest.fixture(scope='module')
def worker_run():
  """The three tests below read one worker pipeline (each worker process is
  an interpreter start that imports grain and JAX): 14 batches from two
  workers, resumed at step 7 (steps 7..20 cross the epoch boundaries at 12
  and 18), then the iterator closed early while its workers are still
  producing; the grain children while it runs and after the close."""
  batches = _worker_batches(num_workers=2)
  before = _grain_children()
  seen = {}

  def run():
    iterator = batches.iterate(7, 10**6)
    seen['yielded'] = [next(iterator) for _ in range(14)]
    seen['running'] = _grain_children() - before
    iterator.close()
    seen['after_close'] = _grain_children() - before

  start = time.monotonic()
  thread = threading.Thread(target=run, daemon=True)
  thread.start()
  thread.join(timeout=120)
  seen['hung'] = thread.is_alive()
  seen['seconds'] = time.monotonic() - start
  return batches, seen


def test_batches_depend_only_on_the_step_not_on_where_iteration_started(
    worker_run):
  # Catches: positions counted from the resume step instead of step 0, or an
  # augmentation that depends on the worker or on where iteration started.
  uninterrupted = list(_worker_batches().iterate(0, 10))
  _, seen = worker_run
  assert not seen['hung'], 'the worker pipeline hung'
  resumed = seen['yielded'][:3]  # Steps 7, 8, 9, from the workers.
  assert len(resumed) == 3
  for a, b in zip(uninterrupted[7:], resumed):
    np.testing.assert_array_equal(a['images'], b['images'])
    np.testing.assert_array_equal(a['labels'], b['labels'])
  position = _batches().position(13)
  assert position['epoch'] == 2 and position['batch_in_epoch'] == 1
  _batches().check_position(position, 13)
  with pytest.raises(ValueError, match='must not change on resume'):
    _batches(batch=16).check_position(position, 13)


def test_worker_processes_yield_exactly_the_in_process_batches(worker_run):
  # Catches: grain's worker interleave returning batches out of step order
  # (e.g. sequential slices per worker), a position -> (step, row) mapping
  # that is off at epoch boundaries, or per-worker state leaking into the
  # augmentation. Steps 7..20 cross two epoch boundaries (6 steps per epoch).
  batches, seen = worker_run
  assert not seen['hung'], 'the worker pipeline hung'
  yielded = seen['yielded']
  assert len(yielded) == 14
  for step, batch in enumerate(yielded, start=7):
    expected = batches.batch(step)
    assert sorted(batch) == ['bad_examples', 'images', 'labels']
    assert batch['images'].shape == (4, 4, 4, 1)
    assert batch['images'].dtype == np.uint8
    assert batch['labels'].dtype == np.int32
    for key in ('images', 'labels', 'bad_examples'):
      np.testing.assert_array_equal(batch[key], expected[key], err_msg=key)
    assert (batch['bad_examples'] == -1).all()
  # The in-process reference is the documented order: rows 4..7 of each
  # global batch of the seeded permutation (label = index % 3).
  order = order_lib.epoch_permutation(3, 1, 50)
  np.testing.assert_array_equal(yielded[0]['labels'], order[8 + 4:8 + 8] % 3)


def test_processes_load_disjoint_slices_of_the_same_global_batch():
  whole = _batches(transform='crop_flip').batch(5)
  parts = [_batches(transform='crop_flip', process_index=i,
                    process_count=4).batch(5) for i in range(4)]
  for key in ('images', 'labels'):
    np.testing.assert_array_equal(
        np.concatenate([part[key] for part in parts]), whole[key])
  with pytest.raises(ValueError, match='not divisible by the number of proc'):
    _batches(process_count=3)


def _corrupt_folder(root):
  """12 training images (6 per class) of which two JPEGs cannot be decoded."""
  _write_folder(root, 'train', {'a': 6, 'b': 6})
  _write_folder(root, 'test', {'a': 1, 'b': 1})
  garbage = os.path.join(root, 'train', 'a', '002.jpg')
  with open(garbage, 'wb') as f:
    f.write(b'\xff\xd8 not a jpeg')
  truncated = os.path.join(root, 'train', 'b', '004.jpg')
  with open(truncated, 'rb') as f:
    data = f.read()
  with open(truncated, 'wb') as f:
    f.write(data[:len(data) // 2])
  source = datasets.load_dataset(
      _data_config(name='image_folder', data_dir=root)).train
  bad = {source.paths.index(garbage), source.paths.index(truncated)}
  return source, bad, garbage, truncated


def test_unreadable_images_are_replaced_deterministically_and_counted(
    tmp_path):
  # Catches: a corrupt file crashing the loader, a replacement that is not
  # the next readable example of the epoch order (off by one, no wrap-around,
  # two bad files in a row, dependent on workers), a bad file not reported in
  # `bad_examples`, and a count of occurrences instead of distinct files (3
  # epochs meet each bad file 3 times; the limit is 2). With seed 2, epoch 2
  # puts the bad files last, at positions 10 and 11 of its order.
  source, bad, _, _ = _corrupt_folder(str(tmp_path))
  batches = input_pipeline.TrainBatches(
      source, global_batch_size=4, seed=2, num_workers=2,
      transform=augment.train_transform('none', 6, 3), max_bad_examples=2)
  assert batches.steps_per_epoch == 3  # Every epoch visits both bad files.
  yielded = list(batches.iterate(0, 9))
  width = input_pipeline.MAX_CONSECUTIVE_BAD
  skipped, met = 0, set()
  for step, batch in enumerate(yielded):
    epoch, batch_in_epoch = divmod(step, 3)
    order = order_lib.epoch_permutation(2, epoch, 12)
    expected_bad = np.full((4, width), -1)
    for row in range(4):
      # Reference rule: walk the epoch order from the slot's own position.
      place = batch_in_epoch * 4 + row
      walked = 0
      while order[(place + walked) % 12] in bad:
        expected_bad[row, walked] = order[(place + walked) % 12]
        walked += 1
      index = order[(place + walked) % 12]
      image, label = source[index]
      np.testing.assert_array_equal(batch['images'][row], image)
      assert batch['labels'][row] == label
      skipped += walked
    np.testing.assert_array_equal(batch['bad_examples'], expected_bad)
    expected = batches.batch(step)  # In-process: the same batch.
    for key in ('images', 'labels', 'bad_examples'):
      np.testing.assert_array_equal(batch[key], expected[key])
    met.update(int(i) for i in expected_bad.ravel() if i >= 0)
    assert batches.record_bad(batch) == len(met)  # Distinct files so far.
    assert 'bad_examples' not in batch  # Left for the device: images, labels.
  # Each bad file once per epoch, plus position 10 of epoch 2 walking past
  # both bad files (10, 11) and wrapping around to position 0.
  assert skipped == 7
  assert list(yielded[8]['labels'][2:]) == [
      source[order_lib.epoch_permutation(2, 2, 12)[0]][1]] * 2
  assert batches.num_bad_examples == 2


def test_more_bad_images_than_allowed_raise_naming_the_files(tmp_path):
  # Catches: an off-by-one limit (raising at the limit rather than past it),
  # and an error that does not say which files are broken or why.
  source, bad, garbage, truncated = _corrupt_folder(str(tmp_path))
  assert datasets.describe(source, min(bad)) == source.paths[min(bad)]
  assert datasets.describe(_IndexImages(3), 2) == 'example 2'

  def run(limit):
    batches = input_pipeline.TrainBatches(
        source, global_batch_size=4, seed=0, max_bad_examples=limit,
        transform=augment.train_transform('none', 6, 3))
    for batch in batches.iterate(0, 3):
      batches.record_bad(batch)
    return batches.num_bad_examples

  assert run(2) == 2
  with pytest.raises(ValueError, match='more than max_bad_examples=1') as error:
    run(1)
  message = str(error.value)
  assert garbage in message and truncated in message
  assert 'cannot identify image file' in message  # Why, read again in-process.
  with pytest.raises(ValueError, match='max_bad_examples=0: [^;]*002.jpg|'
                     'max_bad_examples=0: [^;]*004.jpg'):
    run(0)  # The default: stop at the first one.


class _Unreadable(_IndexImages):

  def __init__(self, size: int):
    super().__init__(size)
    self.reads = 0

  def __getitem__(self, index):
    self.reads += 1
    raise OSError(f'cannot read {index}')


def test_a_run_of_unreadable_examples_raises_instead_of_looping():
  # Catches: an unbounded search for a readable example (a hang, or O(N) reads
  # per slot) when the data are unreadable, e.g. an unmounted directory.
  source = _Unreadable(50)
  batches = input_pipeline.TrainBatches(
      source, global_batch_size=8, seed=0,
      transform=augment.train_transform('none', 4))
  limit = input_pipeline.MAX_CONSECUTIVE_BAD + 1
  with pytest.raises(ValueError, match=f'{limit} unreadable training examples '
                     'in a row'):
    batches.batch(0)
  assert source.reads == limit


class _OddImage(_IndexImages):

  def __getitem__(self, index):
    image, label = super().__getitem__(index)
    return (np.repeat(image, 3, axis=2) if index == 7 else image), label


def test_abandoned_worker_iterators_stop_their_processes(worker_run):
  # Catches: worker processes left running after the training loop stops
  # early (generator closed after a batch: worker_run; exception raised in
  # the loop body or in a worker while the traceback is kept: below), and a
  # close that blocks (e.g. a producer stuck on a full queue).
  batches = _batches(num_workers=2, transform='crop_flip')
  # Example 7 has 3 channels: the transform raises in the one worker that
  # loads it, while the other one keeps running.
  failing = input_pipeline.TrainBatches(
      _OddImage(50), global_batch_size=8, seed=0, num_workers=2,
      transform=augment.train_transform('none', 4, channels=1))
  before = _grain_children()
  seen = {}

  def abandon():
    try:
      for step, _ in enumerate(batches.iterate(0, 10**6)):
        if step == 2:
          raise RuntimeError('train step failed')
    except RuntimeError as error:
      seen['error'] = error  # Keeps the traceback (and its frames) alive.
      seen['after_error'] = _grain_children() - before
    try:
      for _ in failing.iterate(0, 10**6):
        pass
    except ValueError as error:
      seen['worker_error'] = error  # Its traceback holds the generator.
      seen['after_worker_error'] = _grain_children() - before

  start = time.monotonic()
  thread = threading.Thread(target=abandon, daemon=True)
  thread.start()
  thread.join(timeout=120)
  assert not thread.is_alive(), 'closing a worker iterator hung'
  _, closed = worker_run
  assert not closed['hung'], 'closing a worker iterator hung'
  assert len(closed['running']) == 2
  assert closed['after_close'] == set() and seen['after_error'] == set()
  assert 'data.channels=1' in str(seen['worker_error'])
  assert seen['after_worker_error'] == set()
  assert time.monotonic() - start < 60 and closed['seconds'] < 60


def test_sources_pickle_for_worker_processes(tmp_path):
  # Catches: a source holding something unpicklable (an open file, a lock),
  # which would only fail once num_workers > 0 ships it to the workers.
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  _write_folder(str(tmp_path), 'train', {'a': 2, 'b': 1})
  _write_folder(str(tmp_path), 'test', {'a': 1})
  with tfds.testing.mock_data(num_examples=4):
    tfds_source = datasets.load_dataset(_data_config(name='cifar10')).train
  sources = [
      datasets.load_dataset(_data_config()).train,  # ArraySource.
      datasets.load_dataset(_data_config(name='image_folder',
                                         data_dir=str(tmp_path))).train,
      tfds_source,
  ]
  for source in sources:
    copy = pickle.loads(pickle.dumps(source))
    assert len(copy) == len(source)
    for index in (0, len(source) - 1):
      np.testing.assert_array_equal(copy[index][0], source[index][0])
      assert copy[index][1] == source[index][1]


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
