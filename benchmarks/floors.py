r"""Classical floors on the main job's data: MAP of SCM-Seq, SCM-Orth, CCA-ITQ, the linear floor.

  python -m benchmarks.floors          # 64 bits, the split of experiments/configs/synthetic.flags
  python -m benchmarks.floors --bits=16 --methods=scm_seq,linear_floor

Data and split are built exactly as `ltcmh_jax.train` builds them (`load_dataset`,
`resolve_defaults`, `make_split`) from a `TrainConfig` with synthetic.flags' dataset, split and
seed: fitted on the split's training rows, queries = `split.query`, database = `split.database`.
MAP@all with `ltcmh_jax.metrics.mean_average_precision` (tie_break="index", as the trainer
reports), chance = `train.chance_map`. Fit time is wall-clock seconds of the fit alone (encoding
excluded); on a shared machine `OPENBLAS_NUM_THREADS=1` keeps OpenBLAS from oversubscribing the
cores (on 2 shared cores it made small QR and Cholesky calls 20 to 70 times faster).
"""

from __future__ import annotations

import time

from absl import app, flags

from ltcmh_jax import classical, metrics, train

_BITS = flags.DEFINE_integer("bits", 64, "Code length k.")
_METHODS = flags.DEFINE_list(
    "methods", ["scm_seq", "scm_orth", "cca_itq", "linear_floor"], "Floors to fit."
)
_SEED = flags.DEFINE_integer("seed", 0, "Split seed (synthetic.flags: 0) and the floors' seed.")

FITS = {
    "scm_seq": lambda x, y, labels, bits, seed: classical.fit_scm(
        x, y, labels, bits=bits, variant="seq", seed=seed
    ),
    "scm_orth": lambda x, y, labels, bits, seed: classical.fit_scm(
        x, y, labels, bits=bits, variant="orth", seed=seed
    ),
    "cca_itq": lambda x, y, labels, bits, seed: classical.fit_cca_itq(x, y, bits=bits, seed=seed),
    "linear_floor": lambda x, y, labels, bits, seed: classical.fit_linear_floor(
        x, y, labels, bits=bits, seed=seed
    ),
}


def main(argv):
    del argv
    unknown = sorted(set(_METHODS.value) - set(FITS))
    if unknown:
        raise app.UsageError(f"--methods: unknown {unknown}; choose from {sorted(FITS)}")
    config = train.TrainConfig(dataset="synthetic", split="longtail", seed=_SEED.value)
    dataset = train.load_dataset(config)
    config = train.resolve_defaults(config, dataset.num_samples, dataset.num_labels)
    split = train.make_split(config, dataset)
    image, text, labels = dataset.image, dataset.text, dataset.labels
    query_labels, db_labels = labels[split.query], labels[split.database]
    print(
        f"synthetic: {split.train.size} training, {split.query.size} queries, "
        f"{split.database.size} database, {labels.shape[1]} labels, {_BITS.value} bits"
    )
    print(f"{'method':<14}{'I->T':>8}{'T->I':>8}{'fit s':>8}")
    for name in _METHODS.value:
        start = time.perf_counter()
        model = FITS[name](
            image[split.train], text[split.train], labels[split.train], _BITS.value, _SEED.value
        )
        seconds = time.perf_counter() - start
        i2t = metrics.mean_average_precision(
            model.encode_image(image[split.query]),
            model.encode_text(text[split.database]),
            query_labels,
            db_labels,
        )
        t2i = metrics.mean_average_precision(
            model.encode_text(text[split.query]),
            model.encode_image(image[split.database]),
            query_labels,
            db_labels,
        )
        print(f"{name:<14}{i2t:>8.4f}{t2i:>8.4f}{seconds:>8.2f}")
    chance = train.chance_map(query_labels, db_labels)
    print(f"{'chance':<14}{chance:>8.4f}{chance:>8.4f}{'':>8}")


if __name__ == "__main__":
    app.run(main)
