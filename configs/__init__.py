"""Training configs for ``python -m train.main --config=configs/<name>.py``."""

__all__ = []
