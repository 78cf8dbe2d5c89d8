"""Built-in callbacks (importing this package registers them)."""

from runlab.train.callbacks.early_stopping import EarlyStopping
from runlab.train.callbacks.ema import EMA
from runlab.train.callbacks.keep_checkpoints import KeepCheckpoints

__all__ = ["EMA", "EarlyStopping", "KeepCheckpoints"]
