"""A run's directory: the writability probe, the data fingerprint and the checks before resuming.

Files are written through `ltcmh_jax.files` (atomic), re-exported here for the loop.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile

import numpy as np

from ltcmh_jax import data as data_lib
from ltcmh_jax.files import json_safe as json_safe
from ltcmh_jax.files import save_npz_atomic as save_npz_atomic
from ltcmh_jax.files import write_json_atomic as write_json_atomic
from ltcmh_jax.files import write_lines_atomic as write_lines_atomic
from ltcmh_jax.train.config import TrainConfig

log = logging.getLogger("ltcmh_jax.train")


def check_workdir(workdir: str) -> None:
    """Creates `workdir` and writes a probe file there: a read-only or full file system (which
    `os.access` misses for root) fails here, before any training, not at the results."""
    try:
        os.makedirs(workdir, exist_ok=True)
        with tempfile.TemporaryFile(dir=workdir) as probe:
            probe.write(b"\0" * 4096)
            probe.flush()
            os.fsync(probe.fileno())
    except OSError as error:
        raise OSError(
            f"--workdir: {workdir} is not a writable directory ({error.strerror or error})"
        ) from error


def data_fingerprint(dataset: data_lib.MultiModalDataset) -> str:
    """A digest of the labels, the text and both shapes: tells finished runs on other data apart.

    `--data_dir` / `--data_path` are not part of a run's identity (moving the files must not
    invalidate a run), so this digest is what notices that they now hold other data. Raw images
    are left out of it (reading 3 GB to hash them would cost more than it saves); their shape is in.
    """
    digest = hashlib.sha256()
    digest.update(repr((tuple(dataset.image.shape), tuple(dataset.text.shape))).encode())
    digest.update(np.ascontiguousarray(dataset.labels, np.uint8).tobytes())
    digest.update(np.ascontiguousarray(dataset.text, np.float32).tobytes())
    return digest.hexdigest()[:16]


def split_arrays(split: data_lib.Split) -> dict[str, np.ndarray]:
    """The arrays of a split as a checkpoint stores them."""
    arrays = {
        "query": split.query,
        "database": split.database,
        "train": split.train,
        "label_order": split.label_order,
        "achieved_counts": split.achieved_counts,
    }
    if split.target_counts is not None:
        arrays["target_counts"] = split.target_counts
    return {name: np.asarray(value) for name, value in arrays.items()}


def differing_flags(saved: dict, config: TrainConfig) -> dict[str, tuple]:
    """`{flag: (saved value, value now)}` for each result-affecting setting that differs.

    A key the saved config lacks (the run predates the setting) matches when the value now is the
    setting's `before` value, the one that computes what the code computed then.
    """
    earlier = config.earlier_values()
    differences = {}
    for key, value in json_safe(config.run_fields()).items():
        if key in saved:
            if saved[key] != value:
                differences[key] = (saved[key], value)
        elif key not in earlier or json_safe({key: earlier[key]})[key] != value:
            differences[key] = (None, value)
    return differences


def is_extension(differences: dict[str, tuple]) -> bool:
    """True when the only difference is a larger `--epochs`: the run continues, not restarts."""
    if set(differences) != {"epochs"}:
        return False
    saved, now = differences["epochs"]
    return isinstance(saved, int) and now > saved


def describe_differences(differences: dict[str, tuple]) -> str:
    """`--bits=16 there, 32 now; --seed=...` for an error message."""
    return "; ".join(
        f"--{key}={saved!r} there, {now!r} now" for key, (saved, now) in differences.items()
    )


def load_finished(workdir: str, config: TrainConfig, fingerprint: str) -> dict | None:
    """The results of a finished run of `config` in `workdir`, or None when there is none (or
    when `config` extends it to more epochs: training then continues from its last checkpoint).

    Raises:
      ValueError: naming the file and every differing flag, when it holds another
        configuration's or other data's run.
    """
    path = os.path.join(workdir, "results.json")
    if not os.path.exists(path):
        return None
    try:
        with open(path) as stream:
            results = json.load(stream)
    except (OSError, ValueError) as error:
        log.warning("%s is unreadable (%s); training again", path, error)
        return None
    differences = differing_flags(results.get("config", {}), config)
    if is_extension(differences):
        if not os.path.isdir(os.path.join(workdir, "checkpoints")):
            raise ValueError(
                f"{path}: --epochs={config.epochs} extends a finished run that kept no "
                "checkpoint (--checkpoint_every=0); use another --workdir"
            )
        return None
    if differences:
        raise ValueError(
            f"{path}: holds the results of another configuration "
            f"({describe_differences(differences)}); use another --workdir (only a larger "
            "--epochs continues a run)"
        )
    if results.get("data_fingerprint", fingerprint) != fingerprint:
        raise ValueError(
            f"{path}: holds the results of a run on other data (data fingerprint "
            f"{results['data_fingerprint']} there, {fingerprint} now); use another --workdir"
        )
    return results


def check_resumable(meta: dict, config: TrainConfig, directory: str) -> None:
    """Refuses a checkpoint written by another configuration, naming every differing flag.

    A larger `--epochs` than the checkpoint's is accepted: the run continues (see
    docs/DESIGN.md, "Extending a run", for how the learning-rate schedule extends).
    """
    differences = differing_flags(meta.get("config", {}), config)
    if differences and not is_extension(differences):
        raise ValueError(
            f"{directory}: checkpoint of another configuration "
            f"({describe_differences(differences)}); use another --workdir (only a larger "
            "--epochs continues a run)"
        )


def check_split(saved: dict, split: data_lib.Split, directory: str) -> None:
    """Refuses to resume on a split other than the one the checkpoint was trained on."""
    for name, value in split_arrays(split).items():
        if not np.array_equal(saved.get(name), value):
            raise ValueError(
                f"{directory}: the saved split ({name}) differs from the one built now (data "
                "or code changed); use another --workdir"
            )
