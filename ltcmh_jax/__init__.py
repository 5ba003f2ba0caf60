"""ltcmh_jax: long-tail cross-modal hashing in JAX / Flax NNX.

    import ltcmh_jax
    result = ltcmh_jax.fit(image, text, labels, method="ltcmh", bits=32)

Subpackages and the names below are imported on first use, so that `import ltcmh_jax.data` does
not pay for jax.
"""

import importlib as _importlib

__version__ = "0.1.0"

# Public name -> the module that defines it (a module maps to itself).
_HOMES = {
    "api": "ltcmh_jax.api",
    "classical": "ltcmh_jax.classical",
    "data": "ltcmh_jax.data",
    "index": "ltcmh_jax.index",
    "losses": "ltcmh_jax.losses",
    "metrics": "ltcmh_jax.metrics",
    "models": "ltcmh_jax.models",
    "plots": "ltcmh_jax.plots",
    "train": "ltcmh_jax.train",
    "fit": "ltcmh_jax.api",
    "Result": "ltcmh_jax.api",
    "suggest_longtail_split": "ltcmh_jax.api",
    "TrainConfig": "ltcmh_jax.train",
    "train_and_evaluate": "ltcmh_jax.train",
    "MultiModalDataset": "ltcmh_jax.data",
}

__all__ = ["__version__", *_HOMES]


def __getattr__(name):
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module = _importlib.import_module(home)
    return module if home.endswith(f".{name}") else getattr(module, name)


def __dir__():
    return sorted(__all__)
