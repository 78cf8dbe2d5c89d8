"""Diagnostics: looks at a model during training (latent spaces, reconstructions,
Jacobians, ...) driven by the `diagnostics:` config list, and end-of-run plots.

Importing this package registers the built-ins in `runlab.registry.DIAGNOSTICS`.
"""

from runlab.diagnostics import (  # noqa: F401  (imported to register the built-ins)
    activation_stats,
    confusion_matrix,
    jacobian,
    latent_space,
    latent_traversal,
    reconstructions,
    samples,
    weights_and_grads,
)
from runlab.diagnostics.base import Diagnostic, DiagnosticContext, DiagnosticResult
from runlab.diagnostics.plots import plot_metrics
from runlab.diagnostics.runner import (
    DiagnosticError,
    DiagnosticsCallback,
    build_diagnostics,
    run_diagnostic,
    validate_diagnostics,
)

__all__ = [
    "Diagnostic",
    "DiagnosticContext",
    "DiagnosticError",
    "DiagnosticResult",
    "DiagnosticsCallback",
    "build_diagnostics",
    "plot_metrics",
    "run_diagnostic",
    "validate_diagnostics",
]
