"""msda_jax: mixed-sample data augmentation as pure, jit-compiled JAX functions.

One mask engine serves every method: a method is a mask generator
``(key, shape, lam) -> mask``, and ``mask_mixer`` turns any such generator
(yours too) into a mixer; one kernel blends ``M x + (1 - M) x_partner``;
labels mix by the realised mask mean. Reference: Park, Yun & Chun, "A Unified
Analysis of Mixed Sample Data Augmentation: A Loss Function Perspective",
NeurIPS 2022.

Example:
  >>> import jax, jax.numpy as jnp, msda_jax
  >>> mixer = msda_jax.hmix(alpha=1.0, r=0.5, num_classes=10)
  >>> out = jax.jit(mixer)(jax.random.key(0), jnp.zeros((8, 32, 32, 3)),
  ...                      jnp.arange(8))
  >>> out.images.shape, out.labels.shape, out.lam.shape
  ((8, 32, 32, 3), (8, 10), (8,))
"""

from msda_jax._compose import choice
from msda_jax._config import config_fields, from_config
from msda_jax._dense import mix_maps, partner_maps, shard_mix_maps
from msda_jax._engine import guided_mask_mixer, mask_mixer, uniform_mask
from msda_jax._fmix import fmix, fmix_mask
from msda_jax._gridmix import gridmix, gridmix_mask
from msda_jax._hidden import mix_hidden, partner_hidden, shard_mix_hidden
from msda_jax._lam import sample_lam
from msda_jax._masks import cutmix_mask, gmix_mask, hmix_mask, mixup_mask
from msda_jax._methods import cutmix, gmix, hmix, mixup, none
from msda_jax._mixer import Mixer
from msda_jax._mixing import blend, mix_labels, soft_labels
from msda_jax._modes import MODES
from msda_jax._pair_weights import PairWeights, pair_weights
from msda_jax._pairing import PARTNERS
from msda_jax._puzzle import puzzlemix_mask
from msda_jax._puzzlemix import puzzlemix, puzzlemix_guide
from msda_jax._resizemix import resizemix, resizemix_mask
from msda_jax._saliency import gradient_saliency, spectral_residual_saliency
from msda_jax._saliencymix import saliencymix, saliencymix_mask
from msda_jax._sharding import data_mesh, per_device, shard_mixer
from msda_jax._smoothmix import smoothmix, smoothmix_mask
from msda_jax._transmix import transmix_labels
from msda_jax._types import BlockMoves, MaskFn, MaskSampler, MixResult, PasteBox

__version__ = "0.1.0"

__all__ = [
    # Mask generators: (key, shape, lam, *, options) -> mask of the spatial shape.
    "mixup_mask", "cutmix_mask", "hmix_mask", "gmix_mask", "fmix_mask",
    "gridmix_mask", "smoothmix_mask", "resizemix_mask",
    # Guided mask generators: (key, shape, lam, guide, partner_guide) -> mask.
    "saliencymix_mask", "puzzlemix_mask",
    # Mixer factories, the extension point and combinators.
    "mixup", "cutmix", "hmix", "gmix", "fmix", "gridmix", "smoothmix",
    "resizemix", "saliencymix", "puzzlemix", "none",
    "mask_mixer", "guided_mask_mixer", "uniform_mask", "choice", "from_config",
    "config_fields",
    # Dense targets (segmentation maps) mixed with the images' masks.
    "mix_maps", "partner_maps", "shard_mix_maps",
    # What the model sees: hidden features mixed with the images' masks
    # (Manifold Mixup), labels re-weighted by attention (TransMix).
    "mix_hidden", "partner_hidden", "shard_mix_hidden", "transmix_labels",
    # Guides: per-sample saliency, batched (B, *spatial, C) -> (B, *spatial).
    "spectral_residual_saliency", "gradient_saliency", "puzzlemix_guide",
    # The paper's regulariser: E[(1 - M_k)(1 - M_l)] by pixel offset.
    "pair_weights", "PairWeights",
    # Devices.
    "per_device", "shard_mixer", "data_mesh",
    # Building blocks.
    "blend", "mix_labels", "soft_labels", "sample_lam",
    # Types and constants.
    "Mixer", "MixResult", "MaskFn", "MaskSampler", "PasteBox", "BlockMoves",
    "MODES",
    "PARTNERS",
]
