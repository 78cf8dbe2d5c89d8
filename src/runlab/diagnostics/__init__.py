"""Diagnostics: looks at a model during training (latent spaces, reconstructions,
Jacobians, ...) driven by the `diagnostics:` config list, and end-of-run plots.

The package itself is light (the end-of-run plots import it in a drawing process
without torch); `runlab.diagnostics.builtins` registers the built-ins, and the
registry imports it on first lookup.
"""

from __future__ import annotations

from runlab.lazy import lazy_exports

_EXPORTS = {
    "Diagnostic": "base",
    "DiagnosticContext": "base",
    "DiagnosticResult": "base",
    "Drawing": "base",
    "DiagnosticError": "runner",
    "DiagnosticsCallback": "runner",
    "build_diagnostics": "runner",
    "run_diagnostic": "runner",
    "validate_diagnostics": "runner",
    "plot_metrics": "plots",
}

__all__ = sorted(_EXPORTS)
__getattr__ = lazy_exports(__name__, _EXPORTS)
