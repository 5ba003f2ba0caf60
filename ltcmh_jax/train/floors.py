"""The closed-form floors (`--method=scm|scm_orth|cca_itq|linear`) as runs: fitted on the same
training rows as the deep methods, evaluated on the same query / database split, and returned in
the same codes dict, so `train_and_evaluate` writes the same `results.json` and `codes.npz`."""

from __future__ import annotations

import time

import numpy as np

from ltcmh_jax import classical
from ltcmh_jax.train.config import TrainConfig

# Rows encoded per call: a floor's encoder is one matrix product, but the views can be wide.
ENCODE_CHUNK = 8192


def fit_floor(config: TrainConfig, dataset, train_rows: np.ndarray) -> classical.LinearHashing:
    """The floor `config.method` fitted on the training rows (at `config.bits`, `config.seed`)."""
    image = np.asarray(dataset.image[train_rows], np.float64).reshape(len(train_rows), -1)
    text = np.asarray(dataset.text[train_rows], np.float64)
    labels = np.asarray(dataset.labels[train_rows], np.float64)
    bits, seed = config.bits, config.seed
    if config.method in ("scm", "scm_orth"):
        variant = "seq" if config.method == "scm" else "orth"
        return classical.fit_scm(image, text, labels, bits=bits, variant=variant, seed=seed)
    if config.method == "cca_itq":
        return classical.fit_cca_itq(image, text, bits=bits, seed=seed)
    if config.method == "linear":
        return classical.fit_linear_floor(image, text, labels, bits=bits, seed=seed)
    raise ValueError(f"--method: {config.method!r} is not a closed-form floor")


def floor_codes(hashing: classical.LinearHashing, dataset, rows: np.ndarray) -> dict:
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
