"""Host-side image transforms on uint8 numpy arrays.

Each transform maps one (H, W, C) uint8 image to an (S, S, C) uint8 image.
Random transforms read their randomness from a row of uniforms in [0, 1)
that the input pipeline draws per global batch from a seeded generator, so an
example's augmentation depends only on (seed, step, position in the global
batch): not on the number of processes, threads, or where a run resumed.
"""

import math
from typing import Callable

import numpy as np
from PIL import Image

__all__ = [
    'AUGMENTATIONS', 'RandomTransform', 'center_crop_resize', 'crop_flip',
    'eval_transform', 'flip', 'random_resized_crop_flip', 'train_transform'
]

AUGMENTATIONS = ('none', 'flip', 'crop_flip', 'random_resized_crop')

# Attempts at an in-bounds box before random-resized-crop falls back to a
# centre crop (torchvision's rule).
_RRC_ATTEMPTS = 10


class RandomTransform:
  """A per-example transform with the number of uniforms it consumes.

  Attributes:
    fn: ``fn(image, uniforms) -> image``.
    num_uniforms: length of the uniforms row ``fn`` reads.
  """

  def __init__(self, fn: Callable[[np.ndarray, np.ndarray], np.ndarray],
               num_uniforms: int):
    self.fn = fn
    self.num_uniforms = num_uniforms

  def __call__(self, image: np.ndarray, uniforms: np.ndarray) -> np.ndarray:
    return self.fn(image, uniforms)


def _check_channels(image: np.ndarray, channels: int | None) -> np.ndarray:
  if channels is not None and image.shape[2] != channels:
    raise ValueError(
        f'image of shape {image.shape} has {image.shape[2]} channels but '
        f'data.channels={channels}; set data.channels to the stored count')
  return image


def _check_size(image: np.ndarray, size: int,
                channels: int | None) -> np.ndarray:
  _check_channels(image, channels)
  if image.shape[0] != size or image.shape[1] != size:
    raise ValueError(
        f'image of shape {image.shape} does not match data.image_size={size}; '
        "use data.augment='random_resized_crop' (train) which resizes, or set "
        'data.image_size to the stored size')
  return image


def _resize(image: np.ndarray, height: int, width: int) -> np.ndarray:
  if image.shape[:2] == (height, width):
    return image
  channels = image.shape[2]
  pil = Image.fromarray(image[..., 0] if channels == 1 else image)
  out = np.asarray(pil.resize((width, height), Image.BILINEAR))
  return out.reshape(height, width, channels)


def flip(image: np.ndarray, uniforms: np.ndarray) -> np.ndarray:
  """Horizontal flip with probability 1/2 (reads 1 uniform)."""
  return image[:, ::-1] if uniforms[0] < 0.5 else image


def crop_flip(image: np.ndarray, uniforms: np.ndarray,
              padding: int = 4) -> np.ndarray:
  """Zero-pad by ``padding``, crop back at a random offset, flip (3 uniforms).

  The CIFAR protocol (``RandomCrop(32, padding=4)`` + ``RandomHorizontalFlip``).
  """
  height, width = image.shape[:2]
  top = int(uniforms[0] * (2 * padding + 1))
  left = int(uniforms[1] * (2 * padding + 1))
  padded = np.pad(image, ((padding, padding), (padding, padding), (0, 0)))
  return flip(padded[top:top + height, left:left + width], uniforms[2:])


def random_resized_crop_flip(image: np.ndarray, uniforms: np.ndarray,
                             size: int, scale=(0.08, 1.0),
                             ratio=(3 / 4, 4 / 3)) -> np.ndarray:
  """Inception-style crop resized to ``size`` x ``size``, then flip.

  Area fraction uniform in ``scale``, log aspect ratio uniform in ``ratio``,
  position uniform; up to 10 attempts, then the largest centred crop within
  ``ratio``. Reads ``4 * 10 + 1`` uniforms.
  """
  height, width = image.shape[:2]
  area = height * width
  log_lo, log_hi = math.log(ratio[0]), math.log(ratio[1])
  box = None
  for attempt in range(_RRC_ATTEMPTS):
    u = uniforms[4 * attempt:4 * attempt + 4]
    target_area = area * (scale[0] + u[0] * (scale[1] - scale[0]))
    aspect = math.exp(log_lo + u[1] * (log_hi - log_lo))
    crop_w = int(round(math.sqrt(target_area * aspect)))
    crop_h = int(round(math.sqrt(target_area / aspect)))
    if 0 < crop_w <= width and 0 < crop_h <= height:
      top = int(u[2] * (height - crop_h + 1))
      left = int(u[3] * (width - crop_w + 1))
      box = (top, left, crop_h, crop_w)
      break
  if box is None:
    aspect = width / height
    if aspect < ratio[0]:
      crop_w, crop_h = width, int(round(width / ratio[0]))
    elif aspect > ratio[1]:
      crop_h, crop_w = height, int(round(height * ratio[1]))
    else:
      crop_h, crop_w = height, width
    box = ((height - crop_h) // 2, (width - crop_w) // 2, crop_h, crop_w)
  top, left, crop_h, crop_w = box
  crop = image[top:top + crop_h, left:left + crop_w]
  return flip(_resize(crop, size, size), uniforms[4 * _RRC_ATTEMPTS:])


def center_crop_resize(image: np.ndarray, size: int,
                       crop_fraction: float = 0.875) -> np.ndarray:
  """The evaluation view: centre crop of ``crop_fraction`` of the short side,
  resized to ``size`` x ``size`` (ImageNet's 224 / 256 rule)."""
  height, width = image.shape[:2]
  crop = int(round(min(height, width) * crop_fraction))
  top, left = (height - crop) // 2, (width - crop) // 2
  return _resize(image[top:top + crop, left:left + crop], size, size)


def train_transform(name: str, image_size: int,
                    channels: int | None = None) -> RandomTransform:
  """The training transform called ``name`` (one of `AUGMENTATIONS`).

  Args:
    name: one of `AUGMENTATIONS`.
    image_size: side of the (square) output images.
    channels: the channel count images must have (``data.channels``); None
      accepts any.

  Returns:
    The transform; it raises ValueError on an image of another size (unless
    it resizes) or channel count.
  """

  def checked(image):
    return _check_size(image, image_size, channels)

  if name == 'none':
    return RandomTransform(lambda image, u: checked(image), 0)
  if name == 'flip':
    return RandomTransform(lambda image, u: flip(checked(image), u), 1)
  if name == 'crop_flip':
    return RandomTransform(lambda image, u: crop_flip(checked(image), u), 3)
  if name == 'random_resized_crop':
    return RandomTransform(
        lambda image, u: random_resized_crop_flip(
            _check_channels(image, channels), u, image_size),
        4 * _RRC_ATTEMPTS + 1)
  raise ValueError(
      f'unknown data.augment {name!r}: expected one of {AUGMENTATIONS}')


def eval_transform(
    name: str, image_size: int,
    channels: int | None = None) -> Callable[[np.ndarray], np.ndarray]:
  """The deterministic evaluation view matching training transform ``name``.

  Takes the arguments of `train_transform` and, like it, raises ValueError on
  an image of another size (unless it resizes) or channel count.
  """
  if name == 'random_resized_crop':
    return lambda image: center_crop_resize(_check_channels(image, channels),
                                            image_size)
  if name in AUGMENTATIONS:
    return lambda image: _check_size(image, image_size, channels)
  raise ValueError(
      f'unknown data.augment {name!r}: expected one of {AUGMENTATIONS}')
