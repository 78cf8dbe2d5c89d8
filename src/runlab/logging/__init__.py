"""Writers: where scalars, figures and text go (CSV always; console, TensorBoard, wandb)."""

from runlab.logging.base import MultiWriter, Writer

__all__ = ["MultiWriter", "Writer"]
