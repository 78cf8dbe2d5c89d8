"""MLflow tracking (`logging.writers: [{name: mlflow, ...}]`), through `MlflowClient`: no
global active run, so the K runs of a seed ensemble log side by side from one process.

Tracking URI: `tracking_uri`, else $MLFLOW_TRACKING_URI, else the file store `./mlruns`
(MLflow >= 3 asks for MLFLOW_ALLOW_FILE_STORE=true to use a file store; naming one is
taken as that request). Params are the flattened config; metrics keep runlab's names and steps; figures and images
are PNG artifacts under `<name>/step-<N>.png`; at the end config.yaml, metrics.csv,
stdout.log and diagnostics/ are uploaded and the MLflow run is set FINISHED, FAILED or
KILLED (interrupted). The MLflow run id is kept in run.json, so a resumed run continues it.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from runlab.errors import ConfigError
from runlab.logging.base import Writer, WriterContext, figure_pixels

MAX_PARAM_CHARS = 6000  # MLflow's limit on a param value
BATCH = 1000  # MLflow's limit on metrics per log_batch call
END_STATES = {"completed": "FINISHED", "failed": "FAILED", "interrupted": "KILLED"}
ARTIFACTS = ("config.yaml", "metrics.csv", "stdout.log", "run.json")


class MLflowWriter(Writer):
    """Logs a run to an MLflow tracking store (a `file:` folder, a database or a server).

    Example:
        >>> writer = MLflowWriter(context, tracking_uri="file:./mlruns", experiment="vae")
        >>> writer.write_scalars(10, {"train/loss": 0.41})
        >>> writer.finish("completed"); writer.close()   # then: mlflow ui
    """

    def __init__(self, context: WriterContext, tracking_uri: str | None = None,
                 experiment: str = "runlab", tags: Mapping[str, str] | None = None):
        try:
            from mlflow.entities import Param
            from mlflow.tracking import MlflowClient
        except ImportError as e:
            raise ConfigError(
                "logging.writers names mlflow but the 'mlflow' package is not installed: "
                "pip install 'runlab[mlflow]'") from e
        from runlab.config import flatten

        self.context = context
        uri = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or \
            Path("mlruns").resolve().as_uri()
        if uri.startswith("file:") or "://" not in uri:
            # MLflow >= 3 keeps its file store only on request; naming one is the request
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        self.client = MlflowClient(tracking_uri=uri)
        previous = (context.info.get("mlflow") or {}).get("run_id")
        if previous is not None and context.resume:
            self.run_id = previous
            self.client.update_run(previous, status="RUNNING")
        else:
            found = self.client.get_experiment_by_name(experiment)
            experiment_id = found.experiment_id if found else self.client.create_experiment(
                experiment)
            run_tags = {"runlab.run_id": context.run_id, "runlab.job_type": context.job_type,
                        **({"runlab.group": context.group} if context.group else {}),
                        **{str(k): str(v) for k, v in (tags or {}).items()}}
            run = self.client.create_run(experiment_id, run_name=context.run_name,
                                         tags=run_tags)
            self.run_id = run.info.run_id
            params = [Param(k, str(v)[:MAX_PARAM_CHARS])
                      for k, v in flatten(dict(context.config)).items()]
            for i in range(0, len(params), 100):  # MLflow takes at most 100 params per batch
                self.client.log_batch(self.run_id, params=params[i:i + 100])
        context.record(mlflow={"run_id": self.run_id,
                               "tracking_uri": self.client.tracking_uri})
        self._metrics: list[Any] = []
        self._status = "FINISHED"

    def write_scalars(self, step: int, scalars: Mapping[str, float], epoch: int = 0) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        for name, value in {**scalars, "epoch": epoch}.items():
            v = float(value)
            if math.isfinite(v):  # MLflow stores no NaN/inf
                self._metrics.append(Metric(name, v, now, step))

    def write_figure(self, step: int, name: str, figure: Any) -> None:
        self.write_image(step, name, figure_pixels(figure))

    def write_image(self, step: int, name: str, image: Any) -> None:
        self.client.log_image(self.run_id, image, artifact_file=f"{name}/step-{step}.png")

    def write_text(self, step: int, name: str, text: str) -> None:
        self.client.log_text(self.run_id, text, f"{name}/step-{step}.txt")

    def write_hparams(self, hparams: Mapping[str, Any],
                      metrics: Mapping[str, float] | None = None) -> None:
        """The params went in at the start; the final metrics are in the history already."""

    def flush(self) -> None:
        for i in range(0, len(self._metrics), BATCH):
            self.client.log_batch(self.run_id, metrics=self._metrics[i:i + BATCH])
        self._metrics.clear()

    def finish(self, status: str, exit_code: int = 0) -> None:
        self._status = END_STATES.get(status, "FAILED")

    def close(self) -> None:
        self.flush()
        run_dir = self.context.run_dir
        for name in ARTIFACTS:
            if (run_dir / name).is_file():
                self.client.log_artifact(self.run_id, str(run_dir / name))
        if (run_dir / "diagnostics").is_dir():
            self.client.log_artifacts(self.run_id, str(run_dir / "diagnostics"), "diagnostics")
        self.client.set_terminated(self.run_id, status=self._status)
