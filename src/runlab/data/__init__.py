"""Built-in datasets (importing this package registers them) and the data path."""

from runlab.data import ecosystem, files, synthetic  # noqa: F401  (registers the built-ins)
from runlab.data.base import DatasetMeta, RawData, Splits, TorchData

__all__ = ["DatasetMeta", "RawData", "Splits", "TorchData"]
