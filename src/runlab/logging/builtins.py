"""The writers a config can ask for, registered in `runlab.registry.WRITERS`.

    logging:
      tensorboard: true                       # shorthand for writers: [{name: tensorboard}]
      wandb: {enabled: true, project: vae}    # shorthand for writers: [{name: wandb, ...}]
      writers:
        - {name: mlflow, experiment: vae-beta}
        - {name: my_writer, every: 10}        # a plugin's own: @WRITERS.register("my_writer")

A writer factory takes the `WriterContext` (run folder, config, run.json) as `context`
and its config parameters as keywords, and returns a `Writer`. This module imports no
writer's package: each factory imports its own when a run asks for it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from runlab.logging.base import Writer, WriterContext
from runlab.registry import WRITERS


@WRITERS.register("tensorboard", description="TensorBoard event files in <run>/tensorboard "
                                              "(scalars, figures, hparams, config text).")
def tensorboard(context: WriterContext) -> Writer:
    from runlab.logging.tensorboard import TensorBoardWriter

    return TensorBoardWriter(context.run_dir / "tensorboard", config=context.config)


@WRITERS.register("wandb", description="Weights & Biases, offline unless logged in; seeds of a "
                                       "sweep setting or ensemble share a group.")
def wandb(
    context: WriterContext,
    project: str | None = "runlab",
    entity: str | None = None,
    mode: str | None = None,
    tags: list | None = None,
    group: str | None = None,
    job_type: str | None = None,
) -> Writer:
    from runlab.logging.wandb import WandbWriter

    prev = (context.info.get("wandb") or {}).get("id")
    writer = WandbWriter(context.run_dir, context.config, context.run_name, run_id=prev,
                         project=project or "runlab", entity=entity, mode=mode, tags=tags or (),
                         resume=context.resume and prev is not None,
                         group=group or context.group, job_type=job_type or context.job_type)
    context.record(wandb={"id": writer.run_id, "mode": writer.mode})
    return writer


@WRITERS.register("mlflow", description="MLflow tracking (params, metrics, images, artifacts); "
                                        "pip install 'runlab[mlflow]'.")
def mlflow(
    context: WriterContext,
    tracking_uri: str | None = None,
    experiment: str = "runlab",
    tags: dict | None = None,
) -> Writer:
    from runlab.logging.mlflow import MLflowWriter

    return MLflowWriter(context, tracking_uri=tracking_uri, experiment=experiment, tags=tags)


def writer_specs(logging_cfg: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Every writer a config's `logging` section asks for, as `{name, **params}` entries:
    the `tensorboard` and `wandb` shorthands first, then `writers`."""
    specs: list[dict[str, Any]] = []
    if logging_cfg.get("tensorboard"):
        specs.append({"name": "tensorboard"})
    wb = logging_cfg.get("wandb")
    if isinstance(wb, Mapping) and wb.get("enabled"):
        specs.append({"name": "wandb", **{k: v for k, v in wb.items() if k != "enabled"}})
    specs += [dict(s) for s in logging_cfg.get("writers") or []]
    return specs


def build_writers(logging_cfg: Mapping[str, Any], context: WriterContext) -> list[Writer]:
    """The configured writers (`validate_logging` has checked them)."""
    out = []
    for spec in writer_specs(logging_cfg):
        params = {k: v for k, v in spec.items() if k != "name"}
        out.append(WRITERS.get(spec["name"]).obj(context, **params))
    return out


def validate_logging(logging_cfg: Any) -> list[str]:
    """Problems of `logging.writers`: unknown writers and parameters (with did-you-mean).
    The other logging keys (`tensorboard`, `wandb.*`) are typed in `runlab.schema`."""
    from runlab.validate import check_list

    if not isinstance(logging_cfg, Mapping):
        return []  # the section's own shape is checked with the other sections
    return check_list(logging_cfg.get("writers") or [], "logging.writers", WRITERS, ("name",))
