"""The closed-form floors (`--method=scm|scm_orth|cca_itq|linear`) as runs: fitted on the same
training rows as the deep methods, evaluated on the same query / database split, and returned in
the same codes dict, so `train_and_evaluate` writes the same `results.json` and `codes.npz`."""

from __future__ import annotations

import functools
import time

import numpy as np

from ltcmh_jax import classical
from ltcmh_jax.train.config import TrainConfig

# Rows encoded per call: a floor's encoder is one matrix product, but the views can be wide.
ENCODE_CHUNK = 8192


def fit_floor(config: TrainConfig, dataset, train_rows: np.ndarray):
    """The floor `config.method` fitted on the training rows (at `config.bits`, `config.seed`):
    a `classical.LinearHashing`, or a `classical.KernelHashing` with `--floor_anchors`."""
    image = np.asarray(dataset.image[train_rows], np.float64).reshape(len(train_rows), -1)
    text = np.asarray(dataset.text[train_rows], np.float64)
    labels = np.asarray(dataset.labels[train_rows], np.float64)
    if config.method in ("scm", "scm_orth"):
        variant = "seq" if config.method == "scm" else "orth"
        fit, args = functools.partial(classical.fit_scm, variant=variant), (labels,)
    elif config.method == "cca_itq":
        fit, args = classical.fit_cca_itq, ()
    elif config.method == "linear":
        fit, args = classical.fit_linear_floor, (labels,)
    else:
        raise ValueError(f"--method: {config.method!r} is not a closed-form floor")
    if config.floor_anchors:
        return classical.fit_on_rbf_features(
            fit,
            image,
            text,
            *args,
            bits=config.bits,
            anchors=config.floor_anchors,
            seed=config.seed,
        )
    try:
        return fit(image, text, *args, bits=config.bits, seed=config.seed)
    except classical.TooManyBitsError as error:
        raise classical.TooManyBitsError(
            f"--{error}; a floor is linear in each view, so "
            f"--floor_anchors={classical.SUGGESTED_ANCHORS} (Gaussian-kernel features) is what "
            "gives it more bits than a view has columns"
        ) from error


def floor_codes(hashing, dataset, rows: np.ndarray) -> dict:
    """`{"image": [n, k], "text": [n, k]}` int8 codes of dataset rows."""
    image, text = [], []
    for start in range(0, len(rows), ENCODE_CHUNK):
        block = rows[start : start + ENCODE_CHUNK]
        image.append(hashing.encode_image(np.asarray(dataset.image[block]).reshape(len(block), -1)))
        text.append(hashing.encode_text(np.asarray(dataset.text[block])))
    return {"image": np.concatenate(image), "text": np.concatenate(text)}


def run_floor(config: TrainConfig, dataset, split) -> tuple[dict, float]:
    """`(codes, fit_seconds)`: the floor fitted on `split.train` and the query / database codes
    in `Trainer.evaluate`'s layout (before the label and index arrays are added)."""
    started = time.monotonic()
    hashing = fit_floor(config, dataset, np.asarray(split.train))
    seconds = time.monotonic() - started
    query = floor_codes(hashing, dataset, np.asarray(split.query))
    database = floor_codes(hashing, dataset, np.asarray(split.database))
    codes = {f"query_{name}_codes": query[name] for name in ("image", "text")}
    codes.update({f"db_{name}_codes": database[name] for name in ("image", "text")})
    return codes, seconds
