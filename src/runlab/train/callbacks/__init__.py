"""Built-in callbacks (importing this package registers them)."""

from runlab.train.callbacks.early_stopping import EarlyStopping

__all__ = ["EarlyStopping"]
