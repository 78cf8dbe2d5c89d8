"""TensorBoard event files in the run folder (`logging.tensorboard: true`)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from runlab.errors import ConfigError
from runlab.logging.base import Writer

_HPARAM_TYPES = (bool, int, float, str)


class TensorBoardWriter(Writer):
    """Writes everything a run logs to `log_dir` through torch's SummaryWriter, plus an
    `epoch` scalar, the config as text, and (at the end, `write_hparams`) the HPARAMS
    entry with the run's final metrics.

    Example:
        >>> writer = TensorBoardWriter(run_dir / "tensorboard")
        >>> writer.write_scalars(10, {"train/loss": 0.41})
        >>> writer.close()       # then: tensorboard --logdir runs/
    """

    def __init__(self, log_dir: str | Path, config: Mapping[str, Any] | None = None):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as e:
            raise ConfigError(
                "logging.tensorboard is enabled but the 'tensorboard' package is not "
                "installed: pip install 'runlab[tensorboard]'"
            ) from e
        self.log_dir = Path(log_dir)
        self._writer = SummaryWriter(log_dir=str(self.log_dir))
        if config is not None:  # the TEXT tab shows the resolved config (markdown code block)
            import yaml

            text = yaml.safe_dump(dict(config), sort_keys=False, default_flow_style=None)
            self._writer.add_text("config", "    " + text.replace("\n", "\n    "), 0)

    def write_scalars(self, step: int, scalars: Mapping[str, float], epoch: int = 0) -> None:
        for name, value in scalars.items():
            self._writer.add_scalar(name, value, global_step=step)
        self._writer.add_scalar("epoch", epoch, global_step=step)  # step -> epoch lookup

    def write_figure(self, step: int, name: str, figure: Any) -> None:
        self._writer.add_figure(name, figure, global_step=step, close=False)

    def write_image(self, step: int, name: str, image: Any) -> None:
        self._writer.add_image(name, image, global_step=step, dataformats="HWC")

    def write_histogram(self, step: int, name: str, values: Any) -> None:
        self._writer.add_histogram(name, values, global_step=step)

    def write_hparams(
        self, hparams: Mapping[str, Any], metrics: Mapping[str, float] | None = None
    ) -> None:
        """Adds the run to TensorBoard's HPARAMS tab.

        Unlike `SummaryWriter.add_hparams`, this writes into the run's own event file
        (no timestamped sub-run), so the metrics named here link to the scalars the
        run already logged under the same tags.
        """
        from torch.utils.tensorboard.summary import hparams as hparams_summary

        clean = {k: v if isinstance(v, _HPARAM_TYPES) else str(v) for k, v in hparams.items()}
        experiment, session_start, session_end = hparams_summary(clean, dict(metrics or {}))
        for summary in (experiment, session_start, session_end):
            self._writer.file_writer.add_summary(summary)

    def write_text(self, step: int, name: str, text: str) -> None:
        self._writer.add_text(name, text, global_step=step)

    def flush(self) -> None:
        self._writer.flush()

    def close(self) -> None:
        self._writer.close()
