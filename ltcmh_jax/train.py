"""The main job: LtCMH's alternating training, sharded and resumable, then retrieval evaluation.

`train_and_evaluate(config, workdir)` loads the data set, builds the split, trains for
`config.epochs` epochs (each: auto-encoder on Loss1, theta_x and theta_y on Loss2, then
B = sign(M^x + M^y)), checkpoints to `<workdir>/checkpoints`, and writes `results.json`,
`codes.npz`, `metrics.jsonl` and PNG plots. Running it again on the same workdir resumes from
the latest checkpoint, or returns the saved results of a finished run.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import logging
import math
import os
import sys
import tempfile
import time

import jax
import numpy as np
from flax import nnx

from ltcmh_jax import data as data_lib
from ltcmh_jax import metrics, models
from ltcmh_jax import sharding as sharding_lib
from ltcmh_jax import train_step as steps
from ltcmh_jax.checkpoint import Checkpointer, abstract_like

DATASETS = ("synthetic", "mirflickr25k", "nuswide", "npz")
SPLITS = ("longtail", "balanced")
EPOCH_MODES = ("auto", "scan", "step")

# Split settings of the paper (Table 1; DCMH's balanced protocol) and its head labels (Fig. 2).
_DATASET_DEFAULTS = {
    "mirflickr25k": dict(z1=3000, imbalance_factor=50.0, num_query=2000, num_train=10000),
    "nuswide": dict(z1=5000, imbalance_factor=50.0, num_query=2000, num_train=10500),
}
_NUM_HEAD = {"mirflickr25k": 14, "nuswide": 15}
# Elsewhere: the first 60% of the labels (head to tail) are head, about Flickr's 14 of 24.
_HEAD_SHARE = 0.6
# Rows per call when encoding the training set, the queries and the database.
_ENCODE_CHUNK = 1024
# Host random stream of the initial M buffers (batches use the streams [seed, epoch, phase]).
_BUFFER_STREAM = 2**31 - 1
# Text goes through the embedding-bag path when its widest row is at most this share of d_t.
_SPARSE_TEXT_MAX_DENSITY = 0.25

# Config fields that do not change what is computed: a run resumed with other values of these
# continues the same run.
_LOGISTIC_FIELDS = (
    "data_dir",
    "data_path",
    "checkpoint_every",
    "keep_checkpoints",
    "eval_every",
    "epoch_mode",
    "progress",
)

log = logging.getLogger("ltcmh_jax.train")


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Everything a training run depends on; `experiments/main.py` fills it from flags.

    Split fields left None take the data set's defaults (`resolve_defaults`).
    """

    method: str = "ltcmh"
    variant: str = "full"
    modality: str = "both"
    dataset: str = "synthetic"
    data_dir: str = ""
    data_path: str = ""
    data_seed: int = 0
    synthetic_samples: int = 0
    split: str = "longtail"
    z1: int | None = None
    imbalance_factor: float | None = None
    num_query: int | None = None
    num_train: int | None = None
    num_head: int | None = None
    bits: int = 64
    epochs: int = 500
    batch_size: int = 128
    lr_image: float = 10**-1.5
    lr_text: float = 10**-1.5
    lr_autoencoder: float = 1e-2
    lr_final: float = 1e-6
    alpha: float = 0.05
    beta: float = 0.05
    gamma: float = 1.0
    eta: float = 1.0
    similarity_every: int = 1
    image_net: str = "mlp"
    image_hidden: tuple[int, ...] = ()
    text_hidden: int = 8192
    ae_hidden: int = 256
    cnnf_weights: str = ""
    seed: int = 0
    checkpoint_every: int = 1
    keep_checkpoints: int = 2
    eval_every: int = 0
    epoch_mode: str = "auto"
    progress: bool = True

    def __post_init__(self):
        object.__setattr__(self, "image_hidden", tuple(int(h) for h in self.image_hidden))

    def validate(self) -> TrainConfig:
        """Checks what can be checked without the data.

        Raises:
          ValueError: one line naming the flag.
        """
        choices = (
            ("method", models.METHODS),
            ("variant", models.VARIANTS),
            ("modality", models.MODALITIES),
            ("dataset", DATASETS),
            ("split", SPLITS),
            ("image_net", ("mlp", "cnnf")),
            ("epoch_mode", EPOCH_MODES),
        )
        for name, allowed in choices:
            if getattr(self, name) not in allowed:
                raise ValueError(f"--{name}: must be one of {allowed}, got {getattr(self, name)!r}")
        if self.method != "ltcmh" and self.variant != "full":
            raise ValueError(
                f"--variant: {self.variant!r} is an LtCMH ablation; --method={self.method} "
                "needs --variant=full"
            )
        if self.modality == "image" and self.variant in ("wo_mi", "wo_mt"):
            raise ValueError(
                f"--variant: {self.variant} removes one modality's meta features; "
                "--modality=image has one modality"
            )
        positive = ("bits", "epochs", "batch_size", "text_hidden", "ae_hidden", "similarity_every")
        for name in positive:
            if getattr(self, name) < 1:
                raise ValueError(f"--{name}: must be positive, got {getattr(self, name)}")
        for name in ("lr_image", "lr_text", "lr_autoencoder"):
            if not getattr(self, name) > 0:
                raise ValueError(f"--{name}: must be positive, got {getattr(self, name)}")
        for name in ("lr_final", "alpha", "beta", "gamma", "eta"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"--{name}: must be >= 0, got {getattr(self, name)}")
        for name in ("checkpoint_every", "eval_every", "synthetic_samples"):
            if getattr(self, name) < 0:
                raise ValueError(f"--{name}: must be >= 0, got {getattr(self, name)}")
        if self.keep_checkpoints < 1:
            raise ValueError(f"--keep_checkpoints: must be positive, got {self.keep_checkpoints}")
        if any(h < 1 for h in self.image_hidden):
            raise ValueError(f"--image_hidden: widths must be positive, got {self.image_hidden}")
        if self.imbalance_factor is not None and not self.imbalance_factor >= 1:
            raise ValueError(f"--imbalance_factor: must be >= 1, got {self.imbalance_factor}")
        for name in ("z1", "num_query", "num_train", "num_head"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"--{name}: must be positive, got {value}")
        if self.split == "balanced":
            for name in ("z1", "imbalance_factor"):
                if getattr(self, name) is not None:
                    raise ValueError(f"--{name}: applies to --split=longtail, not balanced")
        elif self.num_train is not None:
            raise ValueError(
                "--num_train: applies to --split=balanced; a long-tail training set's size "
                "follows from --z1 and --imbalance_factor"
            )
        if self.dataset in ("mirflickr25k", "nuswide") and not self.data_dir:
            raise ValueError(f"--data_dir: required for --dataset={self.dataset}")
        if self.dataset == "npz" and not self.data_path:
            raise ValueError("--data_path: required for --dataset=npz")
        if self.dataset != "synthetic" and self.synthetic_samples:
            raise ValueError("--synthetic_samples: applies to --dataset=synthetic only")
        if self.cnnf_weights and self.image_net != "cnnf":
            raise ValueError("--cnnf_weights: needs --image_net=cnnf")
        if self.image_net == "cnnf" and self.dataset in ("synthetic", "npz"):
            raise ValueError(
                f"--image_net: cnnf needs raw images; --dataset={self.dataset} has feature vectors"
            )
        return self

    def run_fields(self) -> dict:
        """The fields that define what a run computes (compared when resuming)."""
        fields = dataclasses.asdict(self)
        for name in _LOGISTIC_FIELDS:
            fields.pop(name)
        fields["image_hidden"] = list(self.image_hidden)
        return fields


def resolve_defaults(config: TrainConfig, num_samples: int, num_labels: int) -> TrainConfig:
    """Fills split fields left None from the data set's defaults.

    synthetic: `data.SYNTHETIC_SPLIT`; mirflickr25k / nuswide: the paper's Table 1 (z1 3000 / 5000,
    IF 50, 2000 queries) and DCMH's balanced sizes (10000 / 10500 training samples); npz: 2000
    queries (or a tenth of the data when smaller), and z1, imbalance_factor must be given. Head
    labels: 14 (Flickr) and 15 (NUS-WIDE) as in the paper's Fig. 2, else 60% of the labels.
    """
    if config.dataset == "synthetic":
        from ltcmh_jax.data.synthetic import SYNTHETIC_SPLIT

        defaults = dict(SYNTHETIC_SPLIT)
    else:
        defaults = dict(_DATASET_DEFAULTS.get(config.dataset, {}))
    defaults.setdefault("num_query", min(2000, max(1, num_samples // 10)))
    updates = {}
    if config.num_query is None:
        updates["num_query"] = int(defaults["num_query"])
    num_query = updates.get("num_query", config.num_query)
    if num_query >= num_samples:
        raise ValueError(
            f"--num_query: {num_query} queries leave no database in a data set of "
            f"{num_samples} samples"
        )
    if config.split == "longtail":
        for name in ("z1", "imbalance_factor"):
            if getattr(config, name) is None:
                if name not in defaults:
                    raise ValueError(
                        f"--{name}: required for --split=longtail on --dataset={config.dataset}"
                    )
                updates[name] = defaults[name]
    elif config.num_train is None:
        updates["num_train"] = int(defaults.get("num_train", min(10000, num_samples - num_query)))
    if config.num_head is None:
        head = _NUM_HEAD.get(config.dataset, round(_HEAD_SHARE * num_labels))
        updates["num_head"] = int(min(max(head, 1), num_labels - 1)) if num_labels > 1 else 1
    elif config.num_head >= num_labels:
        raise ValueError(
            f"--num_head: {config.num_head} head labels leave no tail among {num_labels} labels"
        )
    return dataclasses.replace(config, **updates)


def load_dataset(config: TrainConfig) -> data_lib.MultiModalDataset:
    """The data set `config.dataset` names (raw images for cnnf, feature vectors for mlp)."""
    image_source = "raw" if config.image_net == "cnnf" else "features"
    if config.dataset == "synthetic":
        from ltcmh_jax.data.synthetic import make_synthetic_longtail

        sizes = {"num_samples": config.synthetic_samples} if config.synthetic_samples else {}
        return make_synthetic_longtail(seed=config.data_seed, **sizes)
    if config.dataset == "mirflickr25k":
        from ltcmh_jax.data.matfiles import load_mirflickr25k

        return load_mirflickr25k(config.data_dir, image_source=image_source)
    if config.dataset == "nuswide":
        from ltcmh_jax.data.matfiles import load_nuswide

        return load_nuswide(config.data_dir, image_source=image_source)
    from ltcmh_jax.data.matfiles import load_npz

    return load_npz(config.data_path)


def make_split(config: TrainConfig, dataset) -> data_lib.Split:
    if config.split == "longtail":
        return data_lib.longtail_split(
            dataset.labels,
            z1=config.z1,
            imbalance_factor=config.imbalance_factor,
            num_query=config.num_query,
            seed=config.seed,
        )
    return data_lib.balanced_split(
        dataset.labels, num_query=config.num_query, num_train=config.num_train, seed=config.seed
    )


def model_config(config: TrainConfig, dataset) -> models.ModelConfig:
    image_dim = int(np.prod(dataset.image.shape[1:])) if config.image_net == "mlp" else 1
    return models.ModelConfig(
        method=config.method,
        variant=config.variant,
        bits=config.bits,
        image_net=config.image_net,
        image_dim=image_dim,
        image_hidden=config.image_hidden,
        text_dim=int(dataset.text.shape[1]),
        text_hidden=config.text_hidden,
        ae_hidden=config.ae_hidden,
        num_labels=int(dataset.labels.shape[1]),
        modality=config.modality,
    )


def chance_map(query_labels: np.ndarray, db_labels: np.ndarray, *, chunk: int = 512) -> float:
    """MAP of a random ranking: each query's AP is then (in expectation) its share of relevant
    database items, so the chance level is the mean of those shares."""
    db = np.asarray(db_labels, np.float32)
    shares = []
    for start in range(0, query_labels.shape[0], chunk):
        block = np.asarray(query_labels[start : start + chunk], np.float32)
        shares.append(((block @ db.T) > 0).mean(axis=1))
    return float(np.concatenate(shares).mean())


def _sparse_text(text: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """`models.sparse_bag(text)` when the bag is sparse enough for the embedding-bag path."""
    indices, values = models.sparse_bag(text)
    if indices.shape[1] > _SPARSE_TEXT_MAX_DENSITY * text.shape[1]:
        return None
    return indices, values


def _text_fields(text: np.ndarray, use_sparse: bool) -> dict[str, np.ndarray]:
    text = np.asarray(text, np.float32)
    if use_sparse:
        indices, values = models.sparse_bag(text)
        return {"text_indices": indices, "text_values": values}
    return {"text": text}


def _json_safe(value):
    if isinstance(value, dict):
        return {key: _json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(item) for item in value]
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    return value


def _write_atomic(path: str, suffix: str, write) -> None:
    """Calls `write(stream)` on a temporary file next to `path`, then renames it onto `path`, so a
    reader sees the old file or the new one, never half of one; on failure (disk full, killed
    mid-write) the old file is left as it was and the temporary one removed.

    Raises:
      OSError: naming `path`, when the write or the rename fails.
    """
    directory = os.path.dirname(os.path.abspath(path))
    temporary = None
    try:
        handle, temporary = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=suffix)
        with os.fdopen(handle, "wb") as stream:
            write(stream)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except OSError as error:
        raise OSError(f"{path}: cannot write ({error.strerror or error})") from error
    finally:
        if temporary is not None and os.path.exists(temporary):
            os.remove(temporary)


def write_json_atomic(path: str, payload) -> None:
    """`payload` as JSON in `path`, atomically (`_write_atomic`)."""
    text = json.dumps(_json_safe(payload), indent=2, sort_keys=True) + "\n"
    _write_atomic(path, ".json", lambda stream: stream.write(text.encode()))


def _write_lines_atomic(path: str, rows: list[dict]) -> None:
    text = "".join(json.dumps(_json_safe(row), sort_keys=True) + "\n" for row in rows)
    _write_atomic(path, ".jsonl", lambda stream: stream.write(text.encode()))


def _save_npz_atomic(path: str, arrays: dict[str, np.ndarray]) -> None:
    _write_atomic(path, ".npz", lambda stream: np.savez(stream, **arrays))


def _check_workdir(workdir: str) -> None:
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


def check_label_coverage(labels: np.ndarray, source: str) -> None:
    """Refuses samples without a label and labels without a sample.

    A sample with no label is relevant to no query (its AP is 0 as a query, and as a training
    row its similarity row is all 0); a label with no sample has no prototype (J1) and no
    Hausdorff distance (Eq. 4). DCMH's releases of both data sets hold neither, so rather than
    dropping rows (which would shift every index of a split) the data is refused.

    Raises:
      ValueError: one line naming `source`, the row or label, and how many there are.
    """
    labels = np.asarray(labels)
    empty_rows = np.flatnonzero(~labels.any(axis=1))
    if empty_rows.size:
        raise ValueError(
            f"{source}: labels: {empty_rows.size} sample(s) have no label (first: row "
            f"{int(empty_rows[0])}); remove them (DCMH's data sets keep labelled samples only)"
        )
    empty_labels = np.flatnonzero(~labels.any(axis=0))
    if empty_labels.size:
        raise ValueError(
            f"{source}: labels: {empty_labels.size} label(s) have no sample (first: column "
            f"{int(empty_labels[0])}); remove those columns"
        )


class ProgressBar:
    """A one-line text progress bar with elapsed time and ETA over the run's epochs (stderr).

    On a terminal it redraws in place; in a log file it prints once per epoch.
    """

    def __init__(self, total_epochs: int, first_epoch: int = 0, *, stream=None, enabled=True):
        self.total = total_epochs
        self.first = first_epoch
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.start = time.monotonic()
        self.interactive = enabled and hasattr(self.stream, "isatty") and self.stream.isatty()

    def update(self, done_epochs: float, label: str = "", *, final: bool = False) -> None:
        if not self.enabled or (not final and not self.interactive):
            return
        elapsed = time.monotonic() - self.start
        fraction = done_epochs / max(self.total, 1)
        rate = (done_epochs - self.first) / elapsed if elapsed > 0 else 0.0
        remaining = (self.total - done_epochs) / rate if rate > 0 else float("nan")
        width = 30
        filled = int(round(width * min(max(fraction, 0.0), 1.0)))
        line = (
            f"[{'#' * filled}{'.' * (width - filled)}] epoch {done_epochs:5.1f}/{self.total} "
            f"{_clock(elapsed)} elapsed, ETA {_clock(remaining)} {label}"
        )
        end = "\r" if self.interactive and not final else "\n"
        self.stream.write(line.ljust(100)[:120] + end)
        self.stream.flush()


def _clock(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "--:--"
    minutes, seconds = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes:02d}:{seconds:02d}"


def _check_finite(phase: str, epoch: int, terms: dict[str, np.ndarray]) -> None:
    """Stops the run on the first non-finite loss term, naming the epoch, step and term."""
    for name, values in terms.items():
        values = np.atleast_1d(values)
        bad = ~np.isfinite(values)
        if bad.any():
            step = int(np.flatnonzero(bad)[0])
            raise FloatingPointError(
                f"epoch {epoch}, {phase} phase step {step}: loss term {name!r} is "
                f"{values[step]}; the last good checkpoint is kept"
            )


class Trainer:
    """The jitted updates of one run, bound to its model structure, data and mesh.

    Holds no training state: `init_state` builds a `TrainState`, and `run_epoch` maps a state and
    an epoch number to the next state (plus per-phase loss terms), so checkpoints hold everything.
    """

    def __init__(self, config: TrainConfig, dataset, split: data_lib.Split, mesh):
        self.config = config
        self.dataset = dataset
        self.split = split
        self.mesh = mesh
        self.model_config = model_config(config, dataset)
        self.train_rows = np.asarray(split.train)
        self.num_train = int(self.train_rows.size)
        devices = sharding_lib.data_parallel_size(mesh)
        batch_size = sharding_lib.round_batch_size(config.batch_size, mesh)
        if batch_size > self.num_train:
            # A training set smaller than a batch: one step on (nearly) all of it per phase.
            batch_size = max(devices, self.num_train // devices * devices)
        if batch_size > self.num_train:
            raise ValueError(
                f"--batch_size: {self.num_train} training samples cannot fill one row per device "
                f"on {devices} devices"
            )
        self.batch_size = batch_size
        self.steps_per_epoch = self.num_train // batch_size
        self.train_labels = np.asarray(dataset.labels[self.train_rows], np.float32)
        train_text = np.asarray(dataset.text[self.train_rows], np.float32)
        self.sparse_text = _sparse_text(train_text) is not None
        self.raw_images = bool(getattr(dataset, "has_raw_images", False))
        mode = config.epoch_mode
        if mode == "auto":
            # Feature vectors fit on the device and the epoch runs as scans; raw images stream
            # from the host batch by batch.
            mode = "step" if self.raw_images else "scan"
        self.epoch_mode = mode
        self.host_text = _text_fields(train_text, self.sparse_text)
        self.weights = steps.LossWeights(
            alpha=config.alpha, beta=config.beta, gamma=config.gamma, eta=config.eta
        )
        self.rates = rates = steps.LearningRates(
            image=config.lr_image,
            text=config.lr_text,
            autoencoder=config.lr_autoencoder,
            final=config.lr_final,
            epochs=config.epochs,
            steps_per_epoch=self.steps_per_epoch,
        )
        model = models.build_model(self.model_config, rngs=nnx.Rngs(config.seed))
        if config.cnnf_weights:
            models.load_vggf_weights(model.image_net, config.cnnf_weights)
        self.has_autoencoder = model.autoencoder is not None
        self.has_memory = isinstance(model.image_meta, models.MemoryMetaFeature)
        self.graphdef, *self._initial_parts = steps.split_model(model)
        self.jitted = steps.jitted_updates(self.graphdef, mesh, rates, self.weights)
        self.optimizers = self.jitted.optimizers
        self.device_labels = sharding_lib.put_replicated(self.train_labels, mesh)
        self.image_mean = self.image_scale = None
        if not self.raw_images:
            train_images = np.asarray(dataset.image[self.train_rows], np.float64)
            self.image_mean = train_images.mean(axis=0)
            spread = np.sqrt(np.mean((train_images - self.image_mean) ** 2))
            self.image_mean = self.image_mean.astype(np.float32)
            self.image_scale = np.float32(1.0 / spread if spread > 0 else 1.0)
            del train_images
        self.device_data = None
        if self.epoch_mode == "scan":
            image = self._image_input(dataset.image[self.train_rows])
            host_data = {"labels": self.train_labels, "image": image, **self.host_text}
            self.device_data = sharding_lib.put_replicated(host_data, mesh)

    def _image_input(self, images) -> np.ndarray:
        """Raw images as stored (CNN-F subtracts its average image); feature vectors standardised
        with the training set's mean feature and overall spread (unit variance per dimension on
        average), the feature-space analogue of that subtraction (see DESIGN.md, Training)."""
        images = np.asarray(images)
        if self.image_mean is None:
            return images
        return (images.astype(np.float32) - self.image_mean) * self.image_scale

    def blank_state(self) -> steps.TrainState:
        """The initial parameters with zero buffers: the structure a checkpoint restores into."""
        params_x, params_y, params_z, rest = self._initial_parts
        bits = self.config.bits
        num_labels = self.train_labels.shape[1]
        zeros = np.zeros((self.num_train, bits), np.float32)
        state = steps.TrainState(
            params_x=params_x,
            params_y=params_y,
            params_z=params_z,
            rest=rest,
            opt_x=self.optimizers.image.init(params_x),
            opt_y=self.optimizers.text.init(params_y),
            opt_z=self.optimizers.autoencoder.init(params_z),
            features_x=zeros,
            features_y=zeros,
            meta_x=zeros,
            meta_y=zeros,
            codes=zeros,
            similarity_x=np.zeros((num_labels, num_labels), np.float32),
            similarity_y=np.zeros((num_labels, num_labels), np.float32),
            key=jax.random.key_data(jax.random.key(self.config.seed)),
        )
        return sharding_lib.put_replicated(jax.tree.map(np.asarray, state), self.mesh)

    def init_state(self) -> steps.TrainState:
        """The start of training: F^x, F^y buffers from a forward pass over the training set (what
        the first R^x, R^y, Loss1 and MetaCMH's centroids are computed from); the M^x, M^y buffers
        drawn from N(0, 1) and B = sign(M^x + M^y), as DCMH starts its F, G buffers.

        The random start matters: the networks' first outputs are near 0, and with both M buffers
        near 0 the likelihood's gradient (a sum of (sigma - S) M^other) vanishes; measured on the
        synthetic set, a forward-pass start left the likelihood at log 2 and the MAP at chance.
        """
        state = self.blank_state()
        features_x, _ = self.encode(state, "image", self.train_rows)
        features_y, _ = self.encode(state, "text", self.train_rows)
        rng = np.random.default_rng([self.config.seed, _BUFFER_STREAM])
        shape = (self.num_train, self.config.bits)
        put = functools.partial(sharding_lib.put_replicated, mesh=self.mesh)
        state = state.replace(
            features_x=put(features_x),
            features_y=put(features_y),
            meta_x=put(rng.standard_normal(shape, dtype=np.float32)),
            meta_y=put(rng.standard_normal(shape, dtype=np.float32)),
        )
        state = self.jitted.update_codes(state)
        if self.has_memory:
            state = self.jitted.update_centroids(state, self.device_labels)
        return state

    def encode(self, state, modality: str, rows: np.ndarray, *, chunk: int = _ENCODE_CHUNK):
        """`(F, M)` of dataset rows `rows` from one modality, as host arrays `[len(rows), k]`."""
        devices = sharding_lib.data_parallel_size(self.mesh)
        chunk = max(devices, chunk // devices * devices)
        rows = np.asarray(rows)
        features, metas = [], []
        for start in range(0, rows.size, chunk):
            block = rows[start : start + chunk]
            size = block.size
            # Pad the last block with copies of its last row so it splits over the devices.
            padded = np.concatenate([block, np.repeat(block[-1:], (-size) % devices)])
            if modality == "image":
                batch = {"image": self._image_input(self.dataset.image[padded])}
            else:
                batch = _text_fields(self.dataset.text[padded], self.sparse_text)
            feature, meta = self.jitted.forward[modality](
                state, sharding_lib.put_batch(batch, self.mesh)
            )
            features.append(np.asarray(feature)[:size])
            metas.append(np.asarray(meta)[:size])
        return np.concatenate(features), np.concatenate(metas)

    def epoch_batches(self, epoch: int, phase: str) -> np.ndarray:
        """`[steps, b]` rows of the training set for one phase of one epoch.

        Drawn from `(seed, epoch, phase)` only, so a resumed run draws what an uninterrupted one
        does without any saved RNG state. Each row is visited at most once per phase; the
        `n mod b` left over change from epoch to epoch. Rows are sorted within a batch (the
        loss does not depend on their order, and an HDF5 image stack reads sorted rows only).
        """
        phase_id = ("autoencoder", "image", "text").index(phase)
        rng = np.random.default_rng([self.config.seed, epoch, phase_id])
        order = rng.permutation(self.num_train)[: self.steps_per_epoch * self.batch_size]
        return np.sort(order.reshape(self.steps_per_epoch, self.batch_size), axis=1).astype(
            np.int32
        )

    def _host_batch(self, phase: str, indices: np.ndarray) -> dict:
        batch = {"indices": indices, "labels": self.train_labels[indices]}
        if phase == "image":
            batch["image"] = self._image_input(self.dataset.image[self.train_rows[indices]])
        elif phase == "text":
            batch.update({name: value[indices] for name, value in self.host_text.items()})
        return batch

    def run_phase(self, state, phase: str, epoch: int, on_step=None):
        """One phase of an epoch; returns `(state, terms)` with terms `{name: [steps]}` on host.

        The host reads each call's losses before the next call: besides the NaN check, this is
        what keeps simulated multi-device CPU runs from the XLA rendezvous timeout (DESIGN.md).
        """
        batches = self.epoch_batches(epoch, phase)
        if self.epoch_mode == "scan":
            indices = sharding_lib.put_batch(batches, self.mesh, axis=1)
            state, terms = self.jitted.scan[phase](state, self.device_data, indices)
            terms = jax.tree.map(np.asarray, terms)
            if on_step is not None:
                on_step(len(batches))
            return state, terms
        rows = []
        for step, indices in enumerate(batches):
            batch = sharding_lib.put_batch(self._host_batch(phase, indices), self.mesh)
            state, terms = self.jitted.step[phase](state, batch, self.device_labels)
            rows.append(jax.tree.map(np.asarray, terms))
            if on_step is not None:
                on_step(step + 1)
        return state, {name: np.stack([row[name] for row in rows]) for name in rows[0]}

    def run_epoch(self, state, epoch: int, progress=None):
        """One epoch of the alternating optimisation (0-based `epoch`).

        Returns:
          `(state, terms)` with `terms[phase][name]` `[steps]` host arrays.
        """
        terms = {}
        phases = (("autoencoder",) if self.has_autoencoder else ()) + ("image", "text")
        for number, phase in enumerate(phases):
            if phase == "autoencoder" and epoch % self.config.similarity_every == 0:
                state = self.jitted.update_similarity(state, self.device_labels)
                similarity = np.asarray(state.similarity_x)
                _check_finite("label similarity", epoch + 1, {"R^x": similarity})

            def on_step(done, number=number, phase=phase):
                if progress is not None:
                    fraction = (number + done / self.steps_per_epoch) / len(phases)
                    progress(epoch + fraction, phase)

            state, terms[phase] = self.run_phase(state, phase, epoch, on_step)
            _check_finite(phase, epoch + 1, terms[phase])
        state = self.jitted.update_codes(state)
        if self.has_memory:
            state = self.jitted.update_centroids(state, self.device_labels)
        # Nothing is left in flight when the next call starts (see run_phase).
        jax.block_until_ready(state)
        return state, terms

    def codes(self, state, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Single-modality codes sign(M^x), sign(M^y) of dataset rows, int8 `[len(rows), k]`."""
        _, meta_x = self.encode(state, "image", rows)
        _, meta_y = self.encode(state, "text", rows)
        return (
            np.where(meta_x >= 0, 1, -1).astype(np.int8),
            np.where(meta_y >= 0, 1, -1).astype(np.int8),
        )

    def evaluate(self, state, *, head_labels=None) -> tuple[dict, dict]:
        """MAP of the query split against the database split; also returns the codes."""
        query_x, query_y = self.codes(state, self.split.query)
        db_x, db_y = self.codes(state, self.split.database)
        query_labels = np.asarray(self.dataset.labels[self.split.query])
        db_labels = np.asarray(self.dataset.labels[self.split.database])
        scores = metrics.evaluate(
            query_x, query_y, db_x, db_y, query_labels, db_labels, head_labels=head_labels
        )
        codes = {
            "query_image_codes": query_x,
            "query_text_codes": query_y,
            "db_image_codes": db_x,
            "db_text_codes": db_y,
            "query_labels": query_labels.astype(np.uint8),
            "db_labels": db_labels.astype(np.uint8),
            "query_indices": np.asarray(self.split.query),
            "db_indices": np.asarray(self.split.database),
        }
        return scores, codes


def _split_arrays(split: data_lib.Split) -> dict[str, np.ndarray]:
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


def _epoch_summary(terms: dict) -> dict[str, float]:
    """Mean of each loss term over the epoch's steps, as `"phase/term"`."""
    return {
        f"{phase}/{name}": float(np.mean(values))
        for phase, phase_terms in terms.items()
        for name, values in phase_terms.items()
    }


def _format_terms(summary: dict[str, float]) -> str:
    short = {
        "autoencoder/total": "loss1",
        "autoencoder/j1_commonality": "j1",
        "autoencoder/j2_hsic": "j2",
        "autoencoder/j3_reconstruction": "j3",
        "autoencoder/j4_match": "j4",
        "image/total": "loss2_x",
        "image/likelihood": "lik_x",
        "image/quantization": "quant_x",
        "image/balance": "bal_x",
        "text/total": "loss2_y",
        "text/likelihood": "lik_y",
        "text/quantization": "quant_y",
        "text/balance": "bal_y",
    }
    ordered = [key for key in short if key in summary] + [
        key for key in summary if key not in short
    ]
    return " ".join(f"{short.get(key, key)}={summary[key]:.4g}" for key in ordered)


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


def _load_finished(workdir: str, config: TrainConfig, fingerprint: str) -> dict | None:
    path = os.path.join(workdir, "results.json")
    if not os.path.exists(path):
        return None
    try:
        with open(path) as stream:
            results = json.load(stream)
    except (OSError, ValueError) as error:
        log.warning("%s is unreadable (%s); training again", path, error)
        return None
    saved = results.get("config", {})
    expected = _json_safe(config.run_fields())
    if {key: saved.get(key) for key in expected} != expected:
        raise ValueError(
            f"{path}: holds the results of another configuration; use another --workdir"
        )
    if results.get("data_fingerprint", fingerprint) != fingerprint:
        raise ValueError(
            f"{path}: holds the results of a run on other data (data fingerprint "
            f"{results['data_fingerprint']} there, {fingerprint} now); use another --workdir"
        )
    return results


def _check_resumable(meta: dict, config: TrainConfig, directory: str) -> None:
    saved = meta.get("config", {})
    expected = _json_safe(config.run_fields())
    for key, value in expected.items():
        if saved.get(key) != value:
            raise ValueError(
                f"{directory}: checkpoint of another configuration (--{key}={saved.get(key)!r} "
                f"there, {value!r} now); use another --workdir"
            )


def _write_plots(workdir: str, history: list[dict], scores_codes) -> list[str]:
    """Training curves and PR curves as PNGs; plotting problems never fail a finished run."""
    try:
        from ltcmh_jax import plots
    except ImportError as error:  # the plots module is optional for the training loop
        log.warning("no plots: %s", error)
        return []
    written = []
    try:
        written.append(
            plots.plot_training_curves(history, os.path.join(workdir, "training_curves.png"))
        )
        codes = scores_codes
        if "db_text_codes" not in codes:  # --modality=image
            curves = {
                "I->I": metrics.pr_curve_by_radius(
                    codes["query_image_codes"],
                    codes["db_image_codes"],
                    codes["query_labels"],
                    codes["db_labels"],
                )
            }
            written.append(plots.plot_pr_curves(curves, os.path.join(workdir, "pr_curves.png")))
            return [str(path) for path in written]
        curves = {
            "I->T": metrics.pr_curve_by_radius(
                codes["query_image_codes"],
                codes["db_text_codes"],
                codes["query_labels"],
                codes["db_labels"],
            ),
            "T->I": metrics.pr_curve_by_radius(
                codes["query_text_codes"],
                codes["db_image_codes"],
                codes["query_labels"],
                codes["db_labels"],
            ),
        }
        written.append(plots.plot_pr_curves(curves, os.path.join(workdir, "pr_curves.png")))
    except Exception as error:  # noqa: BLE001 -- a figure must not lose the results
        log.warning("plotting failed: %s: %s", type(error).__name__, error)
    return [str(path) for path in written]


def train_and_evaluate(config: TrainConfig, workdir: str) -> dict:
    """Trains (or resumes) the run `config` describes in `workdir` and evaluates it.

    Returns:
      The results dict also written to `<workdir>/results.json`.
    """
    config.validate()
    workdir = os.path.abspath(workdir)
    _check_workdir(workdir)
    is_writer = jax.process_index() == 0

    dataset = load_dataset(config)
    check_label_coverage(dataset.labels, config.data_path or config.data_dir or config.dataset)
    config = resolve_defaults(config, dataset.num_samples, dataset.num_labels)
    fingerprint = data_fingerprint(dataset)
    finished = _load_finished(workdir, config, fingerprint)
    if finished is not None:
        log.info("%s holds a finished run; not training again", workdir)
        return finished
    split = make_split(config, dataset)
    statistics = data_lib.describe(dataset, split)
    mesh = sharding_lib.make_data_mesh()
    if config.modality == "image":
        from ltcmh_jax.single_modality import ImageOnlyTrainer as trainer_class
    else:
        trainer_class = Trainer
    trainer = trainer_class(config, dataset, split, mesh)
    log.info(
        "data %s: %s; %d devices (%s), batch %d, %d steps per phase, %s epochs, text %s",
        config.dataset,
        ", ".join(f"{key}={value}" for key, value in statistics.items()),
        sharding_lib.data_parallel_size(mesh),
        jax.default_backend(),
        trainer.batch_size,
        trainer.steps_per_epoch,
        trainer.epoch_mode,
        "sparse" if trainer.sparse_text else "dense",
    )

    checkpointer = Checkpointer(
        os.path.join(workdir, "checkpoints"), max_to_keep=config.keep_checkpoints
    )
    latest = checkpointer.latest_epoch()
    latest_meta = checkpointer.read_meta(latest) if latest is not None else None
    if latest_meta is not None:
        # Before restoring: another configuration's arrays may not even have this one's shapes.
        _check_resumable(latest_meta, config, checkpointer.directory)
    blank = trainer.blank_state()
    restored = checkpointer.restore_latest(abstract_like(blank))
    history: list[dict] = []
    train_seconds = 0.0
    if restored is None:
        first_epoch = 0
        state = trainer.init_state()
    else:
        first_epoch, state, saved_split, meta = restored
        _check_resumable(meta, config, checkpointer.directory)
        for name, value in _split_arrays(split).items():
            if not np.array_equal(saved_split.get(name), value):
                raise ValueError(
                    f"{checkpointer.directory}: the saved split ({name}) differs from the one "
                    "built now (data or code changed); use another --workdir"
                )
        history = list(meta.get("history", []))[:first_epoch]
        train_seconds = float(meta.get("train_seconds", 0.0))
        log.info("resuming from %s at epoch %d", checkpointer.directory, first_epoch)
    del blank

    head_labels = np.asarray(split.label_order[: config.num_head])
    progress = ProgressBar(config.epochs, first_epoch, enabled=config.progress and is_writer)
    metrics_path = os.path.join(workdir, "metrics.jsonl")
    for epoch in range(first_epoch, config.epochs):
        started = time.monotonic()
        try:
            state, terms = trainer.run_epoch(
                state, epoch, lambda done, label: progress.update(done, label)
            )
        except FloatingPointError as error:
            kept = checkpointer.latest_epoch()
            where = (
                os.path.join(checkpointer.directory, str(kept))
                if kept is not None
                else "none written yet"
            )
            raise FloatingPointError(f"{error} ({where})") from None
        seconds = time.monotonic() - started
        train_seconds += seconds
        row = {"epoch": epoch + 1, "seconds": seconds, **_epoch_summary(terms)}
        if config.eval_every and (epoch + 1) % config.eval_every == 0 and epoch + 1 < config.epochs:
            scores, _ = trainer.evaluate(state)
            row.update(scores)
        history.append(row)
        progress.update(epoch + 1, final=True)
        log.info(
            "epoch %d/%d %.1fs %s%s",
            epoch + 1,
            config.epochs,
            seconds,
            _format_terms(_epoch_summary(terms)),
            "".join(f" {key}={row[key]:.4f}" for key in ("map_i2t", "map_t2i") if key in row),
        )
        if is_writer:
            _write_lines_atomic(metrics_path, history)
        last = epoch + 1 == config.epochs
        if config.checkpoint_every and ((epoch + 1) % config.checkpoint_every == 0 or last):
            checkpointer.save(
                epoch + 1,
                state,
                _split_arrays(split),
                {
                    "epoch": epoch + 1,
                    "config": config.run_fields(),
                    "history": _json_safe(history),
                    "train_seconds": train_seconds,
                },
            )
    checkpointer.close()

    started = time.monotonic()
    scores, codes = trainer.evaluate(state, head_labels=head_labels)
    eval_seconds = time.monotonic() - started
    chance = chance_map(codes["query_labels"], codes["db_labels"])
    results = {
        "method": config.method,
        "variant": config.variant,
        "modality": config.modality,
        "dataset": config.dataset,
        "split": config.split,
        "bits": config.bits,
        "seed": config.seed,
        "epochs": config.epochs,
        **scores,
        "chance_map": chance,
        "num_head": config.num_head,
        "head_labels": head_labels.tolist(),
        "train_seconds": train_seconds,
        "eval_seconds": eval_seconds,
        "split_statistics": statistics,
        "devices": sharding_lib.data_parallel_size(mesh),
        "backend": jax.default_backend(),
        "config": config.run_fields(),
        "data_fingerprint": fingerprint,
    }
    if is_writer:
        _save_npz_atomic(os.path.join(workdir, "codes.npz"), codes)
        _write_lines_atomic(metrics_path, history)
        results["plots"] = _write_plots(workdir, history, codes)
        write_json_atomic(os.path.join(workdir, "results.json"), results)
    return _json_safe(results)
