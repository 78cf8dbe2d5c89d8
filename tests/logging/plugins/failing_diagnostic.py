"""Test-only plugin for tests/logging/test_run_logging.py: a diagnostic that always raises.

Named in a config's `plugins:`, it shows what a broken user diagnostic does to a real run:
a warning naming it (the run goes on), or with `strict: true` a failed run.
"""

from runlab.diagnostics.base import Diagnostic, DiagnosticContext, DiagnosticResult
from runlab.registry import DIAGNOSTICS

MESSAGE = "always_fails broke on purpose"


@DIAGNOSTICS.register("always_fails", description="Raises on every call (a broken diagnostic).")
class AlwaysFails(Diagnostic):
    """Needs nothing from the model, so it runs with any config, and raises."""

    def run(self, ctx: DiagnosticContext) -> DiagnosticResult:
        raise ValueError(f"{MESSAGE} at step {ctx.step}")
