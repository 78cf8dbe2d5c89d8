"""A plugin's own writer: every scalar as one JSON line, and how the run ended."""

import json

from runlab.logging.base import Writer
from runlab.registry import WRITERS


@WRITERS.register("jsonl", description="Scalars as JSON lines (a test plugin).")
class JsonlWriter(Writer):
    def __init__(self, context, filename: str = "scalars.jsonl"):
        self.file = open(context.run_dir / filename, "a")
        self.group = context.group

    def write_scalars(self, step, scalars, epoch=0):
        self.file.write(json.dumps({"step": step, **scalars}) + "\n")

    def write_hparams(self, hparams, metrics=None):
        self.file.write(json.dumps({"hparams": len(hparams), "final": metrics}) + "\n")

    def finish(self, status, exit_code=0):
        self.file.write(json.dumps({"status": status, "exit_code": exit_code}) + "\n")

    def close(self):
        self.file.close()
