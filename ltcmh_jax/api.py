"""`fit`: train LtCMH (or a baseline) on in-memory arrays, and `Result`, the trained hasher.

The command line (`experiments/main.py`) and `fit` share one path: both build a `TrainConfig` and
call `ltcmh_jax.train.train_and_evaluate`; `fit` hands it a `MultiModalDataset` of the arrays.

    result = ltcmh_jax.fit(image, text, labels, method="ltcmh", bits=32, epochs=50)
    result.scores["map_i2t"]; codes = result.encode_image(new_images)   # int8 [n, 32]
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import logging
import math
import os
import tempfile
import types

import numpy as np

from ltcmh_jax import data as data_lib
from ltcmh_jax import metrics
from ltcmh_jax import sharding as sharding_lib
from ltcmh_jax.checkpoint import Checkpointer
from ltcmh_jax.train import inputs, report
from ltcmh_jax.train.config import TrainConfig
from ltcmh_jax.train.evaluation import retrieval_scores
from ltcmh_jax.train.loop import train_and_evaluate
from ltcmh_jax.train.state import merge_model
from ltcmh_jax.train.trainer import Trainer

__all__ = ["ARRAYS_SOURCE", "Result", "fit", "suggest_longtail_split"]

# `TrainConfig.data_path` of a run on arrays: it names the source in messages; the data's
# fingerprint, not this path, is what tells runs on other arrays apart.
ARRAYS_SOURCE = "<arrays>"
# Imbalance factor of the paper's Table 1, suggested when the data allows it.
PAPER_IMBALANCE_FACTOR = 50.0
# Share of each label's database samples a suggested Zipf target may ask for: the sampler needs
# room, since multi-label rows make exact counts impossible.
SUGGESTED_SHARE = 0.5


def suggest_longtail_split(labels: np.ndarray, *, num_query: int) -> dict[str, float]:
    """`{"z1", "imbalance_factor", "num_query"}` for a long-tail split of `labels` `[n, c]`.

    The paper's imbalance factor 50 (lowered when the head label has fewer than 50 samples to
    spare), and the largest z1 whose Zipf targets `z1 * a^-mu` (rank a, `mu = ln IF / ln c`) ask
    at most half of each label's expected database count `count_a * (n - num_query) / n`.
    """
    labels = np.asarray(labels)
    num_samples, num_labels = labels.shape
    counts = np.sort(labels.astype(bool).sum(axis=0))[::-1].astype(np.float64)
    database_counts = counts * (num_samples - num_query) / num_samples
    ranks = np.arange(1, num_labels + 1, dtype=np.float64)
    imbalance = PAPER_IMBALANCE_FACTOR if num_labels > 1 else 1.0
    for _ in range(2):
        exponent = math.log(imbalance) / math.log(num_labels) if num_labels > 1 else 0.0
        z1 = int(np.floor(np.min(SUGGESTED_SHARE * database_counts * ranks**exponent)))
        imbalance = float(min(imbalance, max(z1, 1))) if num_labels > 1 else 1.0
    return {"z1": max(z1, 1), "imbalance_factor": imbalance, "num_query": int(num_query)}


@dataclasses.dataclass(frozen=True)
class Result:
    """A trained run: its scores, settings, directory, and the model to hash new data with.

    Attributes:
      scores: what `results.json` holds (MAP per direction, head / tail, chance level, timings).
      config: the run's `TrainConfig`, with the split sizes filled in.
      workdir: the run's directory (results.json, codes.npz, metrics.jsonl, plots, checkpoints).
      trainer: the `Trainer` of the run (its data, split and compiled updates).
      state: the trained `TrainState`.
    """

    scores: dict
    config: TrainConfig
    workdir: str
    trainer: Trainer
    state: object

    @property
    def model(self):
        """The trained `models.HashingModel` (an `nnx.Module`)."""
        return merge_model(self.trainer.graphdef, self.state)

    @property
    def codes(self) -> dict[str, np.ndarray]:
        """`codes.npz`: query / database codes int8 `[n, k]`, their labels and dataset rows."""
        with np.load(os.path.join(self.workdir, "codes.npz")) as stored:
            return {name: stored[name] for name in stored.files}

    @property
    def history(self) -> list[dict]:
        """`metrics.jsonl`: one dict per epoch (mean loss terms, MAP where evaluated)."""
        import json

        with open(os.path.join(self.workdir, "metrics.jsonl")) as stream:
            return [json.loads(line) for line in stream if line.strip()]

    def _encode(self, modality: str, array) -> np.ndarray:
        if modality not in self.trainer.modalities:
            raise ValueError(f"encode_{modality}: this run trained {self.trainer.modalities} only")
        array = np.asarray(array, np.float32)
        expected = self.trainer.dataset.image.shape[1:]
        if modality == "text":
            expected = self.trainer.dataset.text.shape[1:]
        if array.ndim < 2 or array.shape[1:] != tuple(expected):
            raise ValueError(
                f"encode_{modality}: expected [n, {', '.join(map(str, expected))}], "
                f"got shape {array.shape}"
            )
        # The trainer encodes rows of its data set; a shallow copy over the new arrays reuses its
        # normalisation, padding and compiled forward pass.
        view = copy.copy(self.trainer)
        view.dataset = types.SimpleNamespace(image=array, text=array)
        meta = view.encode(self.state, modality, np.arange(array.shape[0]))[1]
        return np.where(meta >= 0, 1, -1).astype(np.int8)

    def encode_image(self, image) -> np.ndarray:
        """Hash codes sign(M^x) `[n, k]` int8 of image features `[n, d_x]`."""
        return self._encode("image", image)

    def encode_text(self, text) -> np.ndarray:
        """Hash codes sign(M^y) `[n, k]` int8 of text features `[n, d_t]`."""
        return self._encode("text", text)

    def retrieval_maps(self, rows: str = "test") -> dict[str, float]:
        """MAP in every direction the run's modalities allow, within a modality included:
        `{"i2i", "i2t", "t2i", "t2t"}` (an image-only run: `{"i2i"}`).

        `rows` "test": the query split against the database split, so "i2t" and "t2i" are the
        run's `map_i2t` and `map_t2i`; "train": the training rows against themselves (each row is
        also in the database and finds itself first). Held-out MAP far below the training rows'
        is overfitting; both low is a model that did not fit what it was trained on
        (`benchmarks/fit_gap.py`).

        Raises:
          ValueError: one line naming `rows` for anything but "test" or "train".
        """
        split = self.trainer.split
        if rows == "test":
            queries, database = split.query, split.database
        elif rows == "train":
            queries = database = split.train
        else:
            raise ValueError(f"retrieval_maps: rows must be 'test' or 'train', got {rows!r}")
        query_codes = self.trainer.codes(self.state, queries)
        # The training rows are their own database: encoded once.
        db_codes = query_codes if rows == "train" else self.trainer.codes(self.state, database)
        labels = np.asarray(self.trainer.dataset.labels)
        return metrics.direction_maps(query_codes, db_codes, labels[queries], labels[database])

    def evaluate(
        self, image, text, labels, *, database: dict | None = None, head_labels=None
    ) -> dict[str, float]:
        """MAP of new queries (`image` `[q, d_x]`, `text` `[q, d_t]`, `labels` `[q, c]`) against
        `database` (codes as `codes.npz` names them: `db_image_codes`, `db_text_codes`,
        `db_labels`; default: the run's database split).

        `text` may be None for an image-only run. Returns `map_i2t`, `map_t2i` (or `map_i2i`),
        with `_head` / `_tail` when `head_labels` are given.
        """
        database = database if database is not None else self.codes
        codes = {"query_image_codes": self.encode_image(image)}
        if "text" in self.trainer.modalities:
            codes["query_text_codes"] = self.encode_text(text)
        for name in self.trainer.modalities:
            codes[f"db_{name}_codes"] = np.asarray(database[f"db_{name}_codes"])
        codes.update(query_labels=np.asarray(labels), db_labels=np.asarray(database["db_labels"]))
        return retrieval_scores(codes, head_labels=head_labels)


def fit(
    image,
    text,
    labels,
    *,
    method: str = "ltcmh",
    bits: int = 64,
    split: str = "longtail",
    epochs: int = 50,
    workdir: str | None = None,
    label_names: tuple[str, ...] = (),
    log_epochs: bool = True,
    **settings,
) -> Result:
    """Trains `method` on paired arrays and evaluates it on a query / database split of them.

    Args:
      image: `[n, d_x]` image feature vectors.
      text: `[n, d_t]` text features (bag of words or embeddings).
      labels: `[n, c]` multi-hot labels.
      method: "ltcmh", "dcmh" or "metacmh".
      bits: code length k.
      split: "longtail" (split sizes suggested from the label counts by `suggest_longtail_split`
        unless given) or "balanced".
      epochs: training epochs, raised by the step budget (`min_steps`, 2,000 steps a phase by
        default) on a small training set; pass `min_steps=0` for exactly `epochs`.
      workdir: where the run's files go; None: a new temporary directory (kept). Calling `fit`
        again with the same workdir and arguments returns the finished run, a larger `epochs`
        continues it.
      label_names: `c` names of the labels.
      log_epochs: print the per-epoch summaries (logger "ltcmh_jax") to stderr when nothing
        else handles that logger, as in a fresh notebook.
      **settings: any other `TrainConfig` field (`num_query=`, `z1=`, `lr_image=`, `seed=`, ...).

    Raises:
      ValueError: one line naming the argument, for unknown settings or bad values.
    """
    fields = {field.name for field in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(settings) - fields)
    if unknown:
        raise ValueError(f"fit: unknown settings {unknown}; see ltcmh_jax.train.TrainConfig")
    for name in ("dataset", "data_path", "data_dir"):
        if name in settings:
            raise ValueError(f"fit: {name}= does not apply to arrays; pass image, text, labels")
    dataset = data_lib.MultiModalDataset(
        image=np.asarray(image, np.float32),
        text=np.asarray(text, np.float32),
        labels=np.asarray(labels),
        label_names=tuple(label_names),
    )
    if settings.get("checkpoint_every", 1) == 0:
        raise ValueError("fit: checkpoint_every=0 keeps no trained state to return")
    if split == "longtail" and (settings.get("z1") is None or "imbalance_factor" not in settings):
        num_query = settings.get("num_query") or min(2000, max(1, dataset.num_samples // 10))
        suggested = suggest_longtail_split(dataset.labels, num_query=num_query)
        settings = {**suggested, **{k: v for k, v in settings.items() if v is not None}}
    config = TrainConfig(
        dataset="npz",
        data_path=ARRAYS_SOURCE,
        method=method,
        bits=bits,
        split=split,
        epochs=epochs,
        **settings,
    ).validate()
    if workdir is None:
        workdir = tempfile.mkdtemp(prefix="ltcmh-")
    with _epoch_log(enabled=log_epochs):
        scores = train_and_evaluate(config, workdir, dataset=dataset)
    return restore(config, workdir, dataset=dataset, scores=scores)


@contextlib.contextmanager
def _epoch_log(*, enabled: bool):
    """INFO lines of the "ltcmh_jax" logger on stderr for the block, unless the caller set that
    logger up (a handler of its own, or a level at INFO or below)."""
    logger = logging.getLogger("ltcmh_jax")
    if not enabled or logger.handlers or logger.getEffectiveLevel() <= logging.INFO:
        yield
        return
    handler = report.ConsoleHandler()
    saved = logger.level, logger.propagate
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    # Not also through the root's handlers (absl installs one): each line once.
    logger.propagate = False
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(saved[0])
        logger.propagate = saved[1]


def restore(config: TrainConfig, workdir: str, *, dataset, scores: dict) -> Result:
    """The `Result` of the finished run of `config` on `dataset` in `workdir` (its last
    checkpoint)."""
    config = inputs.resolve_defaults(config, dataset.num_samples, dataset.num_labels)
    split = inputs.make_split(config, dataset)
    trainer = Trainer(config, dataset, split, sharding_lib.make_data_mesh())
    checkpointer = Checkpointer(
        os.path.join(workdir, "checkpoints"), max_to_keep=config.keep_checkpoints
    )
    try:
        restored = checkpointer.restore_latest(trainer.abstract_state())
    finally:
        checkpointer.close()
    if restored is None:
        raise ValueError(f"{workdir}/checkpoints: no checkpoint of the finished run to restore")
    return Result(
        scores=scores,
        config=config,
        workdir=os.path.abspath(workdir),
        trainer=trainer,
        state=restored[1],
    )
