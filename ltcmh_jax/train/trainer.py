"""`Trainer`: the jitted updates of one run bound to its model, data and mesh.

It holds no training state: `init_state` builds a `TrainState`, and `run_epoch` maps a state and
an epoch number to the next state (plus per-phase loss terms), so checkpoints hold everything.
One trainer serves both protocols; the modalities of the run (`TrainConfig.modalities`) decide
which phases an epoch has and which codes it is evaluated on.
"""

from __future__ import annotations

import jax
import numpy as np
from flax import nnx

from ltcmh_jax import data as data_lib
from ltcmh_jax import models, optimizers
from ltcmh_jax import sharding as sharding_lib
from ltcmh_jax.train import compile as compile_lib
from ltcmh_jax.train.config import TrainConfig
from ltcmh_jax.train.evaluation import binary_codes, evaluate_codes
from ltcmh_jax.train.scaling import fit_input_scaling
from ltcmh_jax.train.state import (
    LearningRates,
    LossWeights,
    initial_state,
    regulariser_scale,
    split_model,
)

# Rows per call when encoding the training set, the queries and the database.
ENCODE_CHUNK = 1024
# Host random stream of the initial M buffers (batches use the streams [seed, epoch, phase]).
BUFFER_STREAM = 2**31 - 1
# Text goes through the embedding-bag path when its widest row is at most this share of d_t.
SPARSE_TEXT_MAX_DENSITY = 0.25
# Phase ids of the batch streams: fixed, so an image-only run draws the cross-modal image batches.
PHASES = ("autoencoder", "image", "text")


def model_config(config: TrainConfig, dataset) -> models.ModelConfig:
    """The model of a run on `dataset` (its feature, text and label widths)."""
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
        modalities=config.modalities,
        normalize_selector_input=config.selector_input == "normalized",
        commonality_path=config.commonality_path,
    )


def check_finite(phase: str, epoch: int, terms: dict[str, np.ndarray]) -> None:
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


def text_fields(text: np.ndarray, *, sparse: bool, bucket: bool = False) -> dict[str, np.ndarray]:
    """A text batch as the steps read it: dense "text", or "text_indices" / "text_values".

    bucket: round the sparse width up to a power of two (zero-valued padding adds nothing), so
    that blocks of rows with different maximum tag counts share one compiled forward pass.
    """
    text = np.asarray(text, np.float32)
    if sparse:
        indices, values = models.sparse_bag(text)
        if not bucket:
            return {"text_indices": indices, "text_values": values}
        width = indices.shape[1]
        padding = ((0, 0), (0, (1 << (width - 1).bit_length()) - width))
        return {"text_indices": np.pad(indices, padding), "text_values": np.pad(values, padding)}
    return {"text": text}


class Trainer:
    """The jitted updates of one run, bound to its model structure, data and mesh."""

    def __init__(self, config: TrainConfig, dataset, split: data_lib.Split, mesh):
        self.config = config
        self.dataset = dataset
        self.split = split
        self.mesh = mesh
        self.modalities = config.modalities
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
        self.raw_images = bool(getattr(dataset, "has_raw_images", False))
        mode = config.epoch_mode
        if mode == "auto":
            # Feature vectors fit on the device and the epoch runs as scans; raw images stream
            # from the host batch by batch.
            mode = "step" if self.raw_images else "scan"
        self.epoch_mode = mode
        self.sparse_text = False
        self.host_text = {}
        self.scalings = {}
        if "text" in self.modalities:
            train_text = np.asarray(dataset.text[self.train_rows], np.float32)
            indices, _ = models.sparse_bag(train_text)
            self.sparse_text = indices.shape[1] <= SPARSE_TEXT_MAX_DENSITY * train_text.shape[1]
            # A dense text view is standardised like the image features; "global" keeps the
            # earlier (paper) input, raw text.
            if self.sparse_text or config.input_scaling == "per_feature":
                self.scalings["text"] = fit_input_scaling(
                    train_text, mode=config.input_scaling, sparse=self.sparse_text
                )
            self.host_text = text_fields(self._text_input(train_text), sparse=self.sparse_text)
        self.weights = LossWeights.from_config(config, train_labels=self.train_labels)
        # The epochs this run trains: --epochs, raised to the step budget (--min_steps).
        self.epochs = optimizers.epochs_for_step_budget(
            config.epochs, self.steps_per_epoch, config.min_steps
        )
        # Weight decay and dropout shrink where a batch holds less than one sample of a label
        # on average (--regulariser_scaling=batch_label_rate, the default).
        self.regulariser_scale = regulariser_scale(
            config.regulariser_scaling,
            bits=config.bits,
            train_labels=self.train_labels,
            batch_size=self.batch_size,  # as trained: rounded to the devices, at most n
        )
        self.rates = LearningRates.from_config(
            config,
            epochs=self.epochs,
            steps_per_epoch=self.steps_per_epoch,
            regulariser_scale=self.regulariser_scale,
        )
        model = models.build_model(self.model_config, rngs=nnx.Rngs(config.seed))
        if config.cnnf_weights:
            models.load_vggf_weights(model.image_net, config.cnnf_weights)
        self.has_autoencoder = model.autoencoder is not None
        # The modalities whose M^v is Eq. 8's (LtCMH's selectors; the mechanism diagnostics).
        self.gated_modalities = tuple(
            name
            for name in self.modalities
            if isinstance(getattr(model, f"{name}_meta"), models.MetaFeature)
        )
        # A label memory (MetaCMH's centroids of F^v, or LtCMH's centroids of C*) is refreshed
        # from the buffers at the start and after every epoch.
        self.has_memory = model.has_label_memory
        self.parts = split_model(model)
        self.graphdef = self.parts.graphdef
        # Compiled functions live as long as this trainer (and its mesh), not the process.
        self.jitted = compile_lib.jitted_updates(
            self.graphdef,
            mesh,
            self.rates,
            self.weights,
            modalities=self.modalities,
            mixed_precision=config.mixed_precision,
            dropout_rate=config.dropout * self.regulariser_scale,
            dropout_seed=config.seed,
        )
        self.device_labels = sharding_lib.put_replicated(self.train_labels, mesh)
        if not self.raw_images:
            # Raw images go in as stored (CNN-F subtracts its average image).
            self.scalings["image"] = fit_input_scaling(
                np.asarray(dataset.image[self.train_rows]).reshape(self.num_train, -1),
                mode=config.input_scaling,
            )
        self.device_data = None
        if self.epoch_mode == "scan":
            image = self._image_input(dataset.image[self.train_rows])
            host_data = {"labels": self.train_labels, "image": image, **self.host_text}
            self.device_data = sharding_lib.put_replicated(host_data, mesh)

    @property
    def phases(self) -> tuple[str, ...]:
        """The phases of an epoch: Loss1 when the model has an auto-encoder, then each modality."""
        return (("autoencoder",) if self.has_autoencoder else ()) + self.modalities

    def _image_input(self, images) -> np.ndarray:
        """Raw images as stored; feature vectors standardised with the training split's
        statistics (`scaling.fit_input_scaling`, docs/DESIGN.md, Training recipe)."""
        if "image" not in self.scalings:
            return np.asarray(images)
        return self.scalings["image"].apply(images)

    def _text_input(self, text) -> np.ndarray:
        """`[n, d_t]` float32 text, scaled as the training split's statistics say."""
        if "text" not in self.scalings:
            return np.asarray(text, np.float32)
        return self.scalings["text"].apply(text)

    def scaling_arrays(self) -> dict[str, np.ndarray]:
        """Every view's input statistics as named arrays (the run's `input_scaling.npz`)."""
        arrays = {}
        for name, scaling in self.scalings.items():
            arrays.update(scaling.arrays(name))
        return arrays

    def _fresh_state(self):
        return initial_state(
            self.parts,
            self.jitted.optimizers,
            num_train=self.num_train,
            bits=self.config.bits,
            num_labels=self.train_labels.shape[1],
        )

    def abstract_state(self):
        """Shapes, dtypes and shardings of the state, from `jax.eval_shape`: the structure a
        checkpoint restores into, with nothing allocated."""
        replicated = sharding_lib.replicated(self.mesh)
        return jax.tree.map(
            lambda leaf: jax.ShapeDtypeStruct(leaf.shape, leaf.dtype, sharding=replicated),
            jax.eval_shape(self._fresh_state),
        )

    def init_state(self):
        """The start of training: F^v buffers from a forward pass over the training set (what
        the first R^v, Loss1 and MetaCMH's centroids are computed from); the M^v buffers drawn
        from N(0, 1) and B = sign(M^x + M^y), as DCMH starts its F, G buffers.

        The random start matters: the networks' first outputs are near 0, and with both M buffers
        near 0 the likelihood's gradient (a sum of (sigma - S) M^other) vanishes; measured on the
        synthetic set, a forward-pass start left the likelihood at log 2 and the MAP at chance.
        """
        state = sharding_lib.put_replicated(
            jax.tree.map(np.asarray, self._fresh_state()), self.mesh
        )
        features = {name: self.encode(state, name, self.train_rows)[0] for name in self.modalities}
        rng = np.random.default_rng([self.config.seed, BUFFER_STREAM])
        shape = (self.num_train, self.config.bits)
        modalities = {}
        for name in self.modalities:
            modalities[name] = state.modalities[name].replace(
                features=sharding_lib.put_replicated(features[name], self.mesh),
                meta=sharding_lib.put_replicated(
                    rng.standard_normal(shape, dtype=np.float32), self.mesh
                ),
            )
        state = self.jitted.update_codes(state.replace(modalities=modalities))
        if self.has_memory:
            state = self.jitted.update_centroids(state, self.device_labels)
        return state

    def encode(self, state, modality: str, rows: np.ndarray, *, chunk: int = ENCODE_CHUNK):
        """`(F, M)` of dataset rows `rows` from one modality, as host arrays `[len(rows), k]`."""
        devices = sharding_lib.data_parallel_size(self.mesh)
        chunk = max(devices, chunk // devices * devices)
        rows = np.asarray(rows)
        features, metas = [], []
        for start in range(0, rows.size, chunk):
            block = rows[start : start + chunk]
            size = block.size
            # Pad every block to the full chunk with copies of its last row: one shape, so one
            # compilation per modality whatever the split sizes (a new shape per set cost a
            # compilation each), and the chunk splits over the devices.
            padded = np.concatenate([block, np.repeat(block[-1:], chunk - size)])
            if modality == "image":
                batch = {"image": self._image_input(self.dataset.image[padded])}
            else:
                batch = text_fields(
                    self._text_input(self.dataset.text[padded]),
                    sparse=self.sparse_text,
                    bucket=True,
                )
            feature, meta = self.jitted.forward[modality](
                state, sharding_lib.put_batch(batch, self.mesh)
            )
            features.append(np.asarray(feature)[:size])
            metas.append(np.asarray(meta)[:size])
        return np.concatenate(features), np.concatenate(metas)

    def phase_batches(self, epoch: int, phase: str) -> np.ndarray:
        """`[steps, b]` rows of the training set for one phase of one epoch (full batches only,
        one stream per phase; `data.pipeline.epoch_batches` is the generic one-stream form).

        Drawn from `(seed, epoch, phase)` only, so a resumed run draws what an uninterrupted one
        does without any saved RNG state. Each row is visited at most once per phase; the
        `n mod b` left over change from epoch to epoch. Rows are sorted within a batch (the
        loss does not depend on their order, and an HDF5 image stack reads sorted rows only).
        """
        rng = np.random.default_rng([self.config.seed, epoch, PHASES.index(phase)])
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
        batches = self.phase_batches(epoch, phase)
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
        phases = self.phases
        for number, phase in enumerate(phases):
            if phase == "autoencoder" and epoch % self.config.similarity_every == 0:
                state = self.jitted.update_similarity(state, self.device_labels)
                similarity = np.asarray(state.modalities["image"].similarity)
                check_finite("label similarity", epoch + 1, {"R^x": similarity})

            def on_step(done, number=number, phase=phase):
                if progress is not None:
                    fraction = (number + done / self.steps_per_epoch) / len(phases)
                    progress(epoch + fraction, phase)

            state, terms[phase] = self.run_phase(state, phase, epoch, on_step)
            check_finite(phase, epoch + 1, terms[phase])
        state = self.jitted.update_codes(state)
        if self.has_memory:
            state = self.jitted.update_centroids(state, self.device_labels)
        # Nothing is left in flight when the next call starts (see run_phase).
        jax.block_until_ready(state)
        return state, terms

    def codes(self, state, rows: np.ndarray) -> dict[str, np.ndarray]:
        """Single-modality codes sign(M^v) of dataset rows per modality, int8 `[len(rows), k]`."""
        return {name: binary_codes(self.encode(state, name, rows)[1]) for name in self.modalities}

    def evaluate(self, state, *, head_labels=None) -> tuple[dict, dict]:
        """MAP of the query split against the database split; also returns the codes."""
        query_codes = self.codes(state, self.split.query)
        db_codes = self.codes(state, self.split.database)
        codes = {f"query_{name}_codes": query_codes[name] for name in self.modalities}
        codes.update({f"db_{name}_codes": db_codes[name] for name in self.modalities})
        return evaluate_codes(codes, self.dataset, self.split, head_labels=head_labels)
