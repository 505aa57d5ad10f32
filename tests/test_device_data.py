"""Tests of the device data path: train/device_data.py, train/decode.py,
class-balanced subsets (train/datasets.py) and the calibration metric."""

import os

import jax
import ml_collections
import numpy as np
from PIL import Image
import pytest

from train import augment
from train import datasets
from train import decode
from train import device_data
from train import order
from train import partitioning
from train import steps


def _images(count=200, size=8, seed=0):
  rng = np.random.default_rng(seed)
  return (rng.integers(0, 256, (count, size, size, 3), dtype=np.uint8),
          rng.integers(0, 10, count).astype(np.int32))


def _device_batches(images, labels, devices=None, **kwargs):
  options = dict(global_batch_size=32, seed=5, augment='crop_flip')
  options.update(kwargs)
  return device_data.DeviceBatches(
      images, labels, mesh=partitioning.make_data_mesh(devices), **options)


def test_device_batches_follow_the_host_order_exactly():
  # Catches a wrong permutation, batch offset or per-device row slice: with
  # no augmentation a device batch is exactly the host order's examples.
  images, labels = _images()
  batches = _device_batches(images, labels, augment='none')
  host_order = order.EpochOrder(200, global_batch_size=32, seed=5,
                                augmentation='host')
  assert batches.steps_per_epoch == 6
  for step in (0, 5, 6, 13):  # Across epoch boundaries.
    batch = batches.batch(step)
    assert batch['images'].sharding.spec == jax.P('data')
    indices = host_order.indices(step)
    np.testing.assert_array_equal(batch['images'], images[indices])
    np.testing.assert_array_equal(batch['labels'], labels[indices])
  # Same order, other augmentation stream: a host checkpoint cannot resume
  # on the device path (it would not continue bit for bit).
  batches.check_position(batches.position(13), 13)
  with pytest.raises(ValueError, match='data.placement must not change'):
    batches.check_position(host_order.position(13), 13)


def test_device_crop_flip_is_the_host_rule_applied_per_sample():
  # Catches an off-by-one offset, a vertical instead of horizontal flip or
  # one offset shared by the batch: the device op must equal the host's
  # crop_flip for every sample and the same uniforms.
  images, _ = _images(count=64)
  uniforms = np.random.default_rng(1).random((64, 3)).astype(np.float32)
  uniforms[:4] = [[0, 0, 0.1], [0.999, 0.999, 0.9], [0.5, 0.2, 0.4],
                  [0.2, 0.7, 0.6]]  # The corners of the offset range.
  device = np.asarray(jax.jit(
      lambda x, u: device_data.crop_flip(x, u, padding=4))(images, uniforms))
  for image, u, out in zip(images, uniforms, device):
    np.testing.assert_array_equal(out, augment.crop_flip(image, u))


def test_device_batches_do_not_depend_on_the_device_count():
  # Catches augmentation uniforms drawn per device (or rows mis-assigned):
  # the global batch of a step must be the same on 1 and on 8 devices.
  images, labels = _images()
  on_eight = _device_batches(images, labels).batch(7)
  on_one = _device_batches(images, labels, jax.devices()[:1]).batch(7)
  np.testing.assert_array_equal(on_eight['images'], on_one['images'])
  np.testing.assert_array_equal(on_eight['labels'], on_one['labels'])
  other_step = _device_batches(images, labels).batch(8)
  assert not np.array_equal(on_eight['images'], other_step['images'])
  with pytest.raises(ValueError, match='batch_size=36 is not divisible'):
    _device_batches(images, labels, global_batch_size=36)


def test_device_augmentation_varies_per_sample_and_step():
  # Catches a key not folded with the step (same crops every step) or a
  # flip that is all-or-nothing: offsets and flips are spread over samples.
  images = np.tile(np.arange(64, dtype=np.uint8).reshape(1, 8, 8, 1),
                   (32, 1, 1, 3))  # Identical images, so only the augment differs.
  labels = np.zeros(32, np.int32)
  batches = _device_batches(images, labels)
  first, second = (np.asarray(batches.batch(s)['images']) for s in (0, 1))
  assert len({view.tobytes() for view in first}) > 10
  assert not np.array_equal(first, second)


def _data_config(**overrides):
  config = dict(placement='auto', image_size=8, channels=3,
                augment='crop_flip', device_memory_gb=1.0)
  config.update(overrides)
  return ml_collections.ConfigDict(config)


def test_auto_placement_chooses_the_device_only_where_it_works():
  # Catches 'auto' sending unsupported augmentations, pmap, stored sizes
  # other than the training size or over-budget sets to the device.
  source = datasets.ArraySource(*_images())  # 200 x 192 bytes.
  choose = device_data.choose_placement
  assert choose(_data_config(), source, parallelism='jit') == 'device'
  assert choose(_data_config(placement='host'), source,
                parallelism='jit') == 'host'
  for config, parallelism in [
      (_data_config(augment='random_resized_crop'), 'jit'),
      (_data_config(), 'pmap'),
      (_data_config(image_size=16), 'jit'),
      (_data_config(device_memory_gb=38400 / 2**30 * 0.99), 'jit')]:
    assert choose(config, source, parallelism=parallelism) == 'host'
    config.placement = 'device'
    with pytest.raises(ValueError, match="placement='device' cannot"):
      choose(config, source, parallelism=parallelism)
  with pytest.raises(ValueError, match='data.placement.*auto'):
    choose(_data_config(placement='gpu'), source, parallelism='jit')


def _write_folder(root, count=24, size=8):
  rng = np.random.default_rng(0)
  paths = []
  for i in range(count):
    directory = os.path.join(root, f'class{i % 3}')
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, f'{i:03d}.png')
    # Uncompressed: equal-sized images make equal-sized files.
    Image.fromarray(rng.integers(0, 256, (size, size, 3),
                                 dtype=np.uint8)).save(path, compress_level=0)
    paths.append(path)
  return sorted(paths)


def _folder_source(root):
  paths = sorted(os.path.join(d, f) for d, _, files in os.walk(root)
                 for f in files)
  labels = [int(os.path.basename(os.path.dirname(p))[-1]) for p in paths]
  return datasets.FolderSource(paths, labels, channels=3)


def test_folder_is_decoded_once_into_the_cache_and_reused(tmp_path,
                                                          monkeypatch):
  # Catches a cache that is never hit (second run decodes again), written
  # inside the data folder, or stale after a file changes.
  root, cache = str(tmp_path / 'data'), str(tmp_path / 'cache')
  _write_folder(root)
  source = _folder_source(root)
  decoded = decode.decode_split(source, cache_dir=cache, num_workers=2)
  assert decoded.images.shape == (24, 8, 8, 3)
  for index in (0, 13):
    image, label = source[index]
    np.testing.assert_array_equal(decoded.images[index], image)
    assert decoded.labels[index] == label
  assert len(os.listdir(cache)) == 1
  assert sorted(os.listdir(root)) == ['class0', 'class1', 'class2']

  def no_decoding(*args):
    raise AssertionError('decoded again instead of reading the cache')

  monkeypatch.setattr(decode, '_decode_folder', no_decoding)
  again = decode.decode_split(_folder_source(root), cache_dir=cache)
  np.testing.assert_array_equal(again.images, decoded.images)
  monkeypatch.undo()
  changed = source.paths[5]
  size = os.path.getsize(changed)
  Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(changed,
                                                      compress_level=0)
  assert os.path.getsize(changed) == size  # Only the time tells the change.
  os.utime(changed, ns=(1, 1))
  fresh = decode.decode_split(_folder_source(root), cache_dir=cache)
  assert fresh.images[5].max() == 0


def test_every_unreadable_image_is_listed_before_training(tmp_path):
  # Catches stopping at the first bad file (the user fixes one per run), a
  # bare PIL traceback, and odd-sized images slipping into the array.
  root = str(tmp_path / 'data')
  paths = _write_folder(root)
  for path in paths[:2]:
    with open(path, 'wb') as f:
      f.write(b'not an image')
  Image.fromarray(np.zeros((9, 9, 3), np.uint8)).save(paths[2])
  source = _folder_source(root)
  with pytest.raises(decode.DecodeError) as error:
    decode.decode_split(source, cache_dir=str(tmp_path / 'cache'))
  message = str(error.value)
  assert '3 of 24 images' in message
  for path in paths[:3]:
    assert path in message
  assert '(9, 9, 3)' in message
  cache = str(tmp_path / 'cache')
  kept = decode.decode_split(source, cache_dir=cache, max_bad_examples=3)
  assert len(kept) == 21
  np.testing.assert_array_equal(kept.images[0], source[3][0])
  # The cache keeps the verdicts: a stricter run still fails, naming them.
  with pytest.raises(decode.DecodeError, match='3 of 24') as error:
    decode.decode_split(source, cache_dir=cache, max_bad_examples=2)
  assert paths[0] in str(error.value)
  # A subset drops its unusable members (under the same limit).
  subset = datasets.Subset(source, [1, 2, 5, 9])
  with pytest.raises(decode.DecodeError, match='2 of 4') as error:
    decode.decode_split(subset, cache_dir=cache, max_bad_examples=1)
  assert paths[1] in str(error.value) and paths[2] in str(error.value)
  decoded = decode.decode_split(subset, cache_dir=cache, max_bad_examples=2)
  np.testing.assert_array_equal(decoded.images,
                                np.stack([source[5][0], source[9][0]]))
  np.testing.assert_array_equal(decoded.labels, [source[5][1], source[9][1]])


def test_balanced_subset_is_class_balanced_and_fixed_by_the_data():
  # Catches an unbalanced draw, a subset that changes between runs, or one
  # that depends on the training seed.
  images, labels = _images(count=600)
  source = datasets.ArraySource(images, labels)
  subset = datasets.balanced_subset(source, 95, num_classes=10)
  counts = np.bincount(datasets.source_labels(subset), minlength=10)
  assert counts.tolist() == [10] * 5 + [9] * 5
  assert len(set(subset.indices.tolist())) == 95
  again = datasets.balanced_subset(source, 95, num_classes=10)
  np.testing.assert_array_equal(subset.indices, again.indices)
  image, label = subset[3]
  np.testing.assert_array_equal(image, images[subset.indices[3]])
  with pytest.raises(ValueError, match='train_examples=601'):
    datasets.balanced_subset(source, 601, num_classes=10)


def test_calibration_sums_give_the_expected_calibration_error():
  # Catches a wrong bin edge, padding rows counted, or |.| taken per batch
  # instead of per bin: compare with a direct NumPy ECE over two batches.
  rng = np.random.default_rng(0)
  logits = rng.normal(size=(2, 40, 5)).astype(np.float32) * 3
  labels = rng.integers(0, 5, (2, 40))
  mask = np.ones((2, 40), np.float32)
  mask[1, 30:] = 0

  class Model:
    def apply(self, variables, images, train):
      del variables, train
      return images

  state = steps.TrainState(step=0, params={}, batch_stats={}, opt_state={},
                           rng=None)
  totals = [steps.eval_step(state, dict(images=logits[i], labels=labels[i],
                                        mask=mask[i]), model=Model(),
                            mean=0.0, std=1.0) for i in range(2)]
  calibration = totals[0]['calibration'] + totals[1]['calibration']
  ece = float(np.abs(calibration).sum() / (totals[0]['count'] +
                                           totals[1]['count']))
  flat = logits.reshape(-1, 5)[mask.reshape(-1) > 0]
  truth = labels.reshape(-1)[mask.reshape(-1) > 0]
  probs = np.exp(flat) / np.exp(flat).sum(-1, keepdims=True)
  confidence, hits = probs.max(-1), probs.argmax(-1) == truth
  bins = np.minimum((confidence * 15).astype(int), 14)
  expected = sum(abs(hits[bins == b].sum() - confidence[bins == b].sum())
                 for b in range(15)) / len(truth)
  assert ece == pytest.approx(expected, abs=1e-5)
  assert ece > 0.05  # Random logits are badly calibrated.
