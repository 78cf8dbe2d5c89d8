"""Importing this module registers every built-in diagnostic in `runlab.registry.DIAGNOSTICS`."""

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
