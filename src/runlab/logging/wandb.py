"""Weights & Biases logging (`logging.wandb.enabled: true`), offline unless you are logged in."""

from __future__ import annotations

import html
import netrc
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from runlab.errors import ConfigError
from runlab.logging.base import Writer, figure_pixels

MODES = ("online", "offline", "disabled")
STEP_KEY = "trainer/step"
EPOCH_KEY = "trainer/epoch"


def default_mode() -> str:
    """`$WANDB_MODE` if set, else "online" when an API key is available, else "offline".

    The key counts as available when `WANDB_API_KEY` is set or the netrc file
    (`$NETRC` or `~/.netrc`) holds a login for the W&B host (`$WANDB_BASE_URL`).
    """
    if os.environ.get("WANDB_MODE"):
        return os.environ["WANDB_MODE"]
    if os.environ.get("WANDB_API_KEY"):
        return "online"
    host = urlparse(os.environ.get("WANDB_BASE_URL") or "https://api.wandb.ai").hostname
    try:
        login = netrc.netrc(os.environ.get("NETRC")).authenticators(host or "")
    except (OSError, netrc.NetrcParseError):
        login = None
    return "online" if login else "offline"


class WandbWriter(Writer):
    """Logs a run to W&B; its files go to `<run_dir>/wandb/`.

    Every row carries `trainer/step` (the global step), which W&B uses as the x
    axis: a resumed run may log a step again without W&B dropping the row. Store
    `writer.run_id` in run.json and pass it back with `resume=True` to continue
    the same W&B run. `group` puts the seeds of a sweep setting (or an ensemble)
    together. Figures are sent as pixels (no pyplot needed). At the end the run's
    stdout.log is uploaded with it, the exit code says how it ended (`finish`), and
    an offline run prints the `wandb sync` command that uploads it.

    Example:
        >>> writer = WandbWriter(run_dir, config, run_name="vae-b1.0", project="vae")
        >>> writer.write_scalars(50, {"train/loss": 0.41}, epoch=1)
        >>> writer.close()    # offline runs: wandb sync <run_dir>/wandb/offline-run-*
    """

    def __init__(
        self,
        run_dir: str | Path,
        config: Mapping[str, Any],
        run_name: str,
        run_id: str | None = None,
        project: str | None = "runlab",
        entity: str | None = None,
        mode: str | None = None,
        tags: Sequence[str] = (),
        resume: bool = False,
        group: str | None = None,
        job_type: str | None = None,
    ):
        try:
            import wandb
        except ImportError as e:
            raise ConfigError(
                "logging.wandb.enabled is true but the 'wandb' package is not installed: "
                "pip install 'runlab[wandb]'"
            ) from e
        mode = mode or default_mode()
        if mode not in MODES:
            raise ConfigError(
                f"logging.wandb.mode: got {mode!r}, allowed: {', '.join(MODES)} "
                "(or leave it out: offline unless you are logged in)"
            )
        self._wandb = wandb
        self.mode = mode
        self.run_dir = Path(run_dir)
        self._exit_code = 0
        self.run = wandb.init(
            dir=str(run_dir),
            config=dict(config),
            name=run_name,
            id=run_id,
            project=project,
            entity=entity,
            mode=mode,
            tags=list(tags),
            group=group,
            job_type=job_type,
            resume="allow" if resume else None,
            # several runs (a seed ensemble) may log from one process at once
            reinit="create_new",
            # keep stdout.log readable: no banners; the console is stdout.log, sent at the end
            settings=wandb.Settings(silent=True, console="off", show_info=False),
        )
        self.run.define_metric(STEP_KEY)
        self.run.define_metric("*", step_metric=STEP_KEY, step_sync=True)

    @property
    def run_id(self) -> str:
        """The W&B run id, to keep in run.json for resuming."""
        return self.run.id

    def write_scalars(self, step: int, scalars: Mapping[str, float], epoch: int = 0) -> None:
        self._log(step, {**scalars, EPOCH_KEY: epoch})

    def write_figure(self, step: int, name: str, figure: Any) -> None:
        # wandb.Image(Figure) goes through pyplot (missing in a run that never imports it)
        self._log(step, {name: self._wandb.Image(figure_pixels(figure))})

    def write_image(self, step: int, name: str, image: Any) -> None:
        self._log(step, {name: self._wandb.Image(image)})

    def write_histogram(self, step: int, name: str, values: Any) -> None:
        self._log(step, {name: self._wandb.Histogram(values)})

    def write_hparams(
        self, hparams: Mapping[str, Any], metrics: Mapping[str, float] | None = None
    ) -> None:
        """Puts `metrics` in the run summary; the config already went to W&B at init,
        nested, so the flattened `hparams` would only duplicate it."""
        if metrics:
            self.run.summary.update(dict(metrics))

    def write_text(self, step: int, name: str, text: str) -> None:
        self._log(step, {name: self._wandb.Html(f"<pre>{html.escape(text)}</pre>")})

    def finish(self, status: str, exit_code: int = 0) -> None:
        """W&B marks the run failed for a non-zero exit code; an interrupted run is also
        marked preempting (it will be resumed)."""
        self._exit_code = exit_code
        if status == "interrupted" and self.mode == "online":
            self.run.mark_preempting()

    def close(self) -> None:
        log = self.run_dir / "stdout.log"
        if log.is_file() and self.mode != "disabled":
            self.run.save(str(log), base_path=str(self.run_dir), policy="now")
        offline = self.mode == "offline"
        folder = Path(self.run.dir).parent if offline else None
        self.run.finish(exit_code=self._exit_code)
        if offline:
            print(f"wandb: offline run saved; upload it with: wandb sync {folder}", flush=True)

    def _log(self, step: int, data: Mapping[str, Any]) -> None:
        self.run.log({**data, STEP_KEY: step})
