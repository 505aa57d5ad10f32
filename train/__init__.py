"""A data-parallel Flax training loop that mixes batches on device."""

__all__ = []
