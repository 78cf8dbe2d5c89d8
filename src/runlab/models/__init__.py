"""Built-in models (importing this package registers them).

Every model is built as `Model(meta=DatasetMeta, **params)`: shapes come from the
dataset, sizes from the config. See docs/INTERNALS.md for the optional methods
(`encode`, `decode`, `features`, `sample`) that diagnostics use.
"""

from runlab.models import autoencoders, classifiers, ecosystem, recurrent, resnet  # noqa: F401  (registers the built-ins)
