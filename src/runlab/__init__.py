"""runlab: config-driven training and analysis of PyTorch models."""

__version__ = "0.1.0"
