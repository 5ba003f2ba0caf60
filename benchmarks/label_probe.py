"""How far above the ridge floor can a label probe get? Each view's label vector predicted by ridge
(the floor of issue 11) or by a one-hidden-layer MLP classifier, then either hashed like the floor,
codes sign(l_hat(x) P) with P `[c, bits]` standard normal from the seed and shared by both views,
or not hashed at all: the database ranked by the probes' probability that query and item share a
label, 1 - prod_l (1 - p_q,l p_d,l) (`share_scores`; ridge predictions clipped to [0, 1]), which
is what the relevance criterion asks and what no 64-bit code is bound to.

    python -m benchmarks.label_probe --dataset=synthetic --seeds=0,1,2
    python -m benchmarks.label_probe --seeds=0,1,2 --synthetic_pool=60000

Prints per seed, MAP I->T / T->I of: the ridge floor; the MLP probe on both views; the MLP on the
image view with ridge on the text view; ridge and MLP ranked by the probability of sharing a
label; the true labels hashed the same way (the projection's own ceiling). The MLP (ReLU hidden
layer, dropout, sigmoid cross-entropy, AdamW with a cosine decay, batches of 128) is one setting,
not tuned: the figures bound what a label probe of this size reaches, not what any method could.
Inputs are standardised as the training job does a dense view (`fit_input_scaling`, per feature).

`--synthetic_pool=N` (synthetic only) draws N rows more from the same generator call, makes the
split from the usual number of rows (the first ones) and fits the probes a second time on the N
extra rows: what the same probes reach with plentiful, naturally distributed training data. The
larger draw is another draw (the generator's directions come after its labels from one stream),
so every row of such a run, the floor's included, is measured on it.

Measured 2026-12-04 (session 10), synthetic set, default split, 64 bits, seeds 0-2, 1,024 hidden
units, 3,000 steps, weight decay 1e-4, dropout 0.5 (mean over seeds; docs/RESULTS.md):
ridge 0.538 / 0.569, MLP 0.548 / 0.546, MLP image + ridge text 0.596 / 0.548, true labels 0.947.
Session 12's rows, with `--synthetic_pool=60000`: docs/RESULTS.md, "Session 12".
"""

from __future__ import annotations

import dataclasses
import inspect

import jax
import jax.numpy as jnp
import numpy as np
import optax
from absl import app, flags

from ltcmh_jax import classical, metrics
from ltcmh_jax import data as data_lib
from ltcmh_jax.classical import moments
from ltcmh_jax.classical.linear_floor import ridge_to_labels
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
_POOL = flags.DEFINE_integer(
    "synthetic_pool", 0, "Rows drawn beyond the usual ones to fit the probes again (synthetic)."
)
_POOL_STEPS = flags.DEFINE_integer("pool_steps", 6000, "The MLP's steps on the pool.")
_POOL_DROPOUT = flags.DEFINE_float("pool_dropout", 0.3, "The MLP's dropout on the pool.")


def sign_codes(scores: np.ndarray, projection: np.ndarray) -> np.ndarray:
    """`[n, k]` int8 codes sign(scores P), 0 -> +1."""
    return np.where(scores @ projection >= 0, 1, -1).astype(np.int8)


def share_scores(query_probs: np.ndarray, db_probs: np.ndarray, chunk: int = 64) -> np.ndarray:
    """`[q, n]` -log(1 - P(share)) with P(share) = 1 - prod_l (1 - p_q,l p_d,l), from `[q, c]` and
    `[n, c]` label probabilities in [0, 1] taken as independent: higher = more likely relevant."""
    query_probs = np.clip(query_probs, 0.0, 1.0 - 1e-6)
    db_probs = np.clip(db_probs, 0.0, 1.0 - 1e-6)
    blocks = [
        -np.log1p(-query_probs[start : start + chunk, None, :] * db_probs[None]).sum(axis=2)
        for start in range(0, query_probs.shape[0], chunk)
    ]
    return np.concatenate(blocks)


def ridge_label_scores(features, labels, train_rows) -> np.ndarray:
    """`[n, c]` the floor's ridge prediction of the label vector (`fit_linear_floor`)."""
    mean = moments.column_mean(features[train_rows])
    weights = ridge_to_labels(features[train_rows], mean, labels[train_rows], ridge=1.0)
    return (features - mean) @ weights + labels[train_rows].mean(axis=0)


def mlp_label_scores(
    features, labels, train_rows, *, seed: int, steps=None, dropout_rate=None
) -> np.ndarray:
    """`[n, c]` sigmoid label probabilities of every row, from an MLP fit on `train_rows`."""
    steps = _STEPS.value if steps is None else steps
    dropout_rate = _DROPOUT.value if dropout_rate is None else dropout_rate
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
        optax.cosine_decay_schedule(_RATE.value, steps), weight_decay=_WEIGHT_DECAY.value
    )
    state = optimizer.init(params)

    def logits(params, x, key=None):
        hidden = dropout(jax.nn.relu(x @ params["w1"] + params["b1"]), dropout_rate, key)
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
    for _ in range(steps):
        batch = rng.choice(len(train_rows), min(128, len(train_rows)), replace=False)
        key, dropout_key = jax.random.split(key)
        params, state = step(params, state, train_inputs[batch], train_labels[batch], dropout_key)
    return np.asarray(jax.nn.sigmoid(logits(params, jnp.asarray(inputs, jnp.float32))))


def probe_seed(seed: int) -> dict[str, tuple[float, float]]:
    """`{row name: (MAP I->T, MAP T->I)}` for one seed's split."""
    config = dataclasses.replace(
        TrainConfig(), dataset=_DATASET.value, data_path=_DATA_PATH.value, seed=seed
    ).validate()
    pool = _POOL.value
    if pool:
        if config.dataset != "synthetic":
            raise ValueError("--synthetic_pool: applies to --dataset=synthetic only")
        usual = inspect.signature(data_lib.make_synthetic_longtail).parameters["num_samples"]
        config = dataclasses.replace(config, synthetic_samples=usual.default + pool)
    dataset = load_dataset(config)
    image = np.asarray(dataset.image, np.float64).reshape(dataset.num_samples, -1)
    text = np.asarray(dataset.text, np.float64)
    labels = np.asarray(dataset.labels, np.float64)
    usual_rows = dataset.num_samples - pool
    usual_set = data_lib.MultiModalDataset(
        image[:usual_rows], text[:usual_rows], labels[:usual_rows], dataset.label_names
    )
    config = resolve_defaults(config, usual_rows, dataset.num_labels)
    split = make_split(config, usual_set)
    train, query, base = (np.asarray(rows) for rows in (split.train, split.query, split.database))
    projection = np.random.default_rng(seed).standard_normal((labels.shape[1], _BITS.value))

    def hashed(image_codes, text_codes):
        result = metrics.evaluate(
            image_codes[query], text_codes[query], image_codes[base], text_codes[base],
            labels[query], labels[base],
        )  # fmt: skip
        return result["map_i2t"], result["map_t2i"]

    def ranked(image_probs, text_probs):
        return tuple(
            metrics.score_map(share_scores(one[query], other[base]), labels[query], labels[base])
            for one, other in ((image_probs, text_probs), (text_probs, image_probs))
        )

    floor = classical.fit_linear_floor(
        image[train], text[train], labels[train], bits=_BITS.value, seed=seed
    )
    ridge = [ridge_label_scores(view, labels, train) for view in (image, text)]
    mlp = [mlp_label_scores(view, labels, train, seed=seed) for view in (image, text)]
    maps = {
        "ridge": hashed(floor.encode_image(image), floor.encode_text(text)),
        "mlp": hashed(*(sign_codes(scores, projection) for scores in mlp)),
        "mlp image + ridge text": hashed(sign_codes(mlp[0], projection), floor.encode_text(text)),
        "ridge, P(share)": ranked(*(np.clip(scores, 0.0, 1.0) for scores in ridge)),
        "mlp, P(share)": ranked(*mlp),
        "true labels": hashed(*(sign_codes(labels, projection),) * 2),
    }
    if pool:
        rows = np.arange(usual_rows, dataset.num_samples)
        ridge = [ridge_label_scores(view, labels, rows) for view in (image, text)]
        mlp = [
            mlp_label_scores(
                view,
                labels,
                rows,
                seed=seed,
                steps=_POOL_STEPS.value,
                dropout_rate=_POOL_DROPOUT.value,
            )
            for view in (image, text)
        ]
        maps[f"pool {pool}: ridge"] = hashed(*(sign_codes(scores, projection) for scores in ridge))
        maps[f"pool {pool}: mlp"] = hashed(*(sign_codes(scores, projection) for scores in mlp))
        maps[f"pool {pool}: ridge, P(share)"] = ranked(*(np.clip(v, 0.0, 1.0) for v in ridge))
        maps[f"pool {pool}: mlp, P(share)"] = ranked(*mlp)
    return maps


def main(argv):
    del argv
    rows = {}
    for seed in (int(value) for value in _SEEDS.value):
        for name, maps in probe_seed(seed).items():
            rows.setdefault(name, []).append(maps)
            print(f"seed {seed}  {name:30s} {maps[0]:.4f} / {maps[1]:.4f}", flush=True)
    for name, values in rows.items():
        values = np.array(values)
        print(f"mean  {name:30s} {values[:, 0].mean():.4f} / {values[:, 1].mean():.4f}")


if __name__ == "__main__":
    app.run(main)
