"""How far above the ridge floor can a label probe get? Each view's label vector predicted by ridge
(the floor of issue 11) or by a one-hidden-layer MLP classifier, hashed alike: codes
sign(l_hat(x) P), P `[c, bits]` standard normal from the seed, shared by both views.

    python -m benchmarks.label_probe --dataset=synthetic --seeds=0,1,2

Prints per seed, MAP I->T / T->I of: the ridge floor; the MLP probe on both views; the MLP on the
image view with ridge on the text view; the true labels hashed the same way (the projection's own
ceiling). The MLP (ReLU hidden layer, dropout, sigmoid cross-entropy, AdamW with a cosine decay,
batches of 128) is one setting, not tuned: the figures bound what a label probe of this size
reaches, not what any method could. Inputs are standardised as the training job does a dense
view (`fit_input_scaling`, per feature).

Measured 2026-12-04 (session 10), synthetic set, default split, 64 bits, seeds 0-2, 1,024 hidden
units, 3,000 steps, weight decay 1e-4, dropout 0.5 (mean over seeds; docs/RESULTS.md):
ridge 0.538 / 0.569, MLP 0.548 / 0.546, MLP image + ridge text 0.596 / 0.548, true labels 0.947.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax
from absl import app, flags

from ltcmh_jax import classical, metrics
from ltcmh_jax.models.mlp import dropout
from ltcmh_jax.train import TrainConfig
from ltcmh_jax.train.inputs import load_dataset, make_split, resolve_defaults
from ltcmh_jax.train.scaling import fit_input_scaling

_DATASET = flags.DEFINE_string("dataset", "synthetic", "A --dataset of the training job.")
_DATA_PATH = flags.DEFINE_string("data_path", None, "--data_path, for npz / aloi / mfeat.")
_SEEDS = flags.DEFINE_list("seeds", ["0", "1", "2"], "Seeds (split, projection, probe).")
_BITS = flags.DEFINE_integer("bits", 64, "Code length.")
_HIDDEN = flags.DEFINE_integer("hidden", 1024, "The MLP's hidden units.")
_STEPS = flags.DEFINE_integer("steps", 3000, "The MLP's optimisation steps.")
_WEIGHT_DECAY = flags.DEFINE_float("weight_decay", 1e-4, "The MLP's AdamW decay.")
_DROPOUT = flags.DEFINE_float("dropout", 0.5, "Dropout on the MLP's hidden layer.")
_RATE = flags.DEFINE_float("rate", 1e-3, "The MLP's peak rate.")


def sign_codes(scores: np.ndarray, projection: np.ndarray) -> np.ndarray:
    """`[n, k]` int8 codes sign(scores P), 0 -> +1."""
    return np.where(scores @ projection >= 0, 1, -1).astype(np.int8)


def mlp_label_scores(features, labels, train_rows, *, seed: int) -> np.ndarray:
    """`[n, c]` sigmoid label probabilities of every row, from an MLP fit on `train_rows`."""
    # The training job's own per-column standardisation of a dense view.
    inputs = fit_input_scaling(features[train_rows], mode="per_feature").apply(features)
    key, first, second = jax.random.split(jax.random.PRNGKey(seed), 3)
    width, classes = inputs.shape[1], labels.shape[1]
    params = {
        "w1": jax.random.normal(first, (width, _HIDDEN.value)) * np.sqrt(2 / width),
        "b1": jnp.zeros(_HIDDEN.value),
        "w2": jax.random.normal(second, (_HIDDEN.value, classes)) / np.sqrt(_HIDDEN.value),
        "b2": jnp.zeros(classes),
    }
    optimizer = optax.adamw(
        optax.cosine_decay_schedule(_RATE.value, _STEPS.value), weight_decay=_WEIGHT_DECAY.value
    )
    state = optimizer.init(params)

    def logits(params, x, key=None):
        hidden = dropout(jax.nn.relu(x @ params["w1"] + params["b1"]), _DROPOUT.value, key)
        return hidden @ params["w2"] + params["b2"]

    @jax.jit
    def step(params, state, x, y, key):
        def loss(params):
            return optax.sigmoid_binary_cross_entropy(logits(params, x, key), y).mean()

        gradient = jax.grad(loss)(params)
        updates, state = optimizer.update(gradient, state, params)
        return optax.apply_updates(params, updates), state

    rng = np.random.default_rng(seed)
    train_inputs = jnp.asarray(inputs[train_rows], jnp.float32)
    train_labels = jnp.asarray(labels[train_rows], jnp.float32)
    for _ in range(_STEPS.value):
        batch = rng.choice(len(train_rows), min(128, len(train_rows)), replace=False)
        key, dropout_key = jax.random.split(key)
        params, state = step(params, state, train_inputs[batch], train_labels[batch], dropout_key)
    return np.asarray(jax.nn.sigmoid(logits(params, jnp.asarray(inputs, jnp.float32))))


def probe_seed(seed: int) -> dict[str, tuple[float, float]]:
    """`{row name: (MAP I->T, MAP T->I)}` for one seed's split."""
    config = dataclasses.replace(
        TrainConfig(), dataset=_DATASET.value, data_path=_DATA_PATH.value, seed=seed
    ).validate()
    dataset = load_dataset(config)
    config = resolve_defaults(config, dataset.num_samples, dataset.num_labels)
    split = make_split(config, dataset)
    train, query, base = (np.asarray(rows) for rows in (split.train, split.query, split.database))
    image = np.asarray(dataset.image, np.float64).reshape(dataset.num_samples, -1)
    text = np.asarray(dataset.text, np.float64)
    labels = np.asarray(dataset.labels, np.float64)
    projection = np.random.default_rng(seed).standard_normal((labels.shape[1], _BITS.value))
    floor = classical.fit_linear_floor(
        image[train], text[train], labels[train], bits=_BITS.value, seed=seed
    )
    codes = {
        "ridge": (floor.encode_image(image), floor.encode_text(text)),
        "mlp": tuple(
            sign_codes(mlp_label_scores(view, labels, train, seed=seed), projection)
            for view in (image, text)
        ),
        "true labels": (sign_codes(labels, projection),) * 2,
    }
    codes["mlp image + ridge text"] = (codes["mlp"][0], codes["ridge"][1])

    def both_ways(image_codes, text_codes):
        result = metrics.evaluate(
            image_codes[query], text_codes[query], image_codes[base], text_codes[base],
            labels[query], labels[base],
        )  # fmt: skip
        return result["map_i2t"], result["map_t2i"]

    return {name: both_ways(*pair) for name, pair in codes.items()}


def main(argv):
    del argv
    rows = {}
    for seed in (int(value) for value in _SEEDS.value):
        for name, maps in probe_seed(seed).items():
            rows.setdefault(name, []).append(maps)
            print(f"seed {seed}  {name:24s} {maps[0]:.4f} / {maps[1]:.4f}", flush=True)
    for name, values in rows.items():
        values = np.array(values)
        print(f"mean  {name:24s} {values[:, 0].mean():.4f} / {values[:, 1].mean():.4f}")


if __name__ == "__main__":
    app.run(main)
