"""runlab: config-driven training and analysis of PyTorch models.

`runlab.load_run(path)` brings a trained run back (model with its weights, config,
metrics); it is imported on first use, so `import runlab` stays free.
"""

from runlab.lazy import lazy_exports

__version__ = "0.1.0"
__all__ = ["load_run"]
__getattr__ = lazy_exports(__name__, {"load_run": "saved", "SavedRun": "saved"})
