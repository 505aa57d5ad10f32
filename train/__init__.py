"""Data-parallel Flax training loop that mixes batches with msda_jax on device."""

__all__ = []
