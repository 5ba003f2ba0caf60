"""ltcmh_jax: long-tail cross-modal hashing in JAX / Flax NNX.

Subpackages are imported on first use so that `import ltcmh_jax.data` does not pay for jax.
"""

import importlib

__version__ = "0.1.0"

_SUBMODULES = ("classical", "data", "losses", "metrics", "index", "models", "plots", "train")


def __getattr__(name):
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
