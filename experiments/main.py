r"""Train and evaluate LtCMH (or a baseline): flags in, `ltcmh_jax.train.train_and_evaluate` out.

  python -m experiments.main --flagfile=experiments/configs/synthetic.flags

Running the same command again resumes from `<workdir>/checkpoints`; a finished run is reported
from its `results.json` without training again.
"""

from __future__ import annotations

import logging as std_logging
import sys

from absl import app, flags, logging

from ltcmh_jax import models

_METHOD = flags.DEFINE_enum(
    "method", "ltcmh", list(models.METHODS), "Hashing method: ltcmh (the paper), dcmh or metacmh."
)
_VARIANT = flags.DEFINE_enum(
    "variant",
    "full",
    list(models.VARIANTS),
    "LtCMH ablation (paper Fig. 3): full, wo_c (no commonality), wo_i (no individuality), wo_ic "
    "(neither), wo_mi / wo_mt (no meta features on the image / text side).",
)
_MODALITY = flags.DEFINE_enum(
    "modality",
    "both",
    list(models.MODALITIES),
    "both: cross-modal hashing; image: the image modality alone, image->image retrieval "
    "(paper Table 4; see docs/DESIGN.md, Baselines).",
)
_DATASET = flags.DEFINE_enum(
    "dataset",
    "synthetic",
    ["synthetic", "mirflickr25k", "nuswide", "npz"],
    "Data set: the embedded synthetic long-tail set, MIRFlickr-25K or NUS-WIDE (.mat files in "
    "--data_dir), or precomputed features in an .npz (--data_path).",
)
_DATA_DIR = flags.DEFINE_string(
    "data_dir", "", "Directory with the DCMH-format .mat files (mirflickr25k, nuswide)."
)
_DATA_PATH = flags.DEFINE_string(
    "data_path", "", "An .npz with arrays image [n, d_x], text [n, d_t], labels [n, c]."
)
_DATA_SEED = flags.DEFINE_integer(
    "data_seed", 0, "Seed of the synthetic generator (fixed across --seed repeats)."
)
_SYNTHETIC_SAMPLES = flags.DEFINE_integer(
    "synthetic_samples", 0, "Samples of the synthetic set; 0 keeps the generator's default."
)
_SPLIT = flags.DEFINE_enum(
    "split",
    "longtail",
    ["longtail", "balanced"],
    "longtail: Zipf training set (paper Table 1); balanced: uniform training set (DCMH).",
)
_Z1 = flags.DEFINE_integer(
    "z1",
    None,
    "Samples of the most frequent label in the long-tail training set (default: "
    "the data set's, e.g. 3000 Flickr, 5000 NUS-WIDE).",
)
_IMBALANCE_FACTOR = flags.DEFINE_float(
    "imbalance_factor", None, "z1 / zc of the long-tail training set, >= 1 (paper: 50)."
)
_NUM_QUERY = flags.DEFINE_integer(
    "num_query", None, "Query samples (paper: 2000); the rest is the retrieval database."
)
_NUM_TRAIN = flags.DEFINE_integer(
    "num_train", None, "Training samples of a balanced split (DCMH: 10000 Flickr, 10500 NUS)."
)
_NUM_HEAD = flags.DEFINE_integer(
    "num_head",
    None,
    "Head labels for head/tail MAP, the most frequent first (paper: 14 "
    "Flickr, 15 NUS-WIDE; otherwise 60% of the labels).",
)
_BITS = flags.DEFINE_integer("bits", 64, "Hash code length k.")
_EPOCHS = flags.DEFINE_integer("epochs", 500, "Training epochs (paper: 500).")
_BATCH_SIZE = flags.DEFINE_integer(
    "batch_size", 128, "Global batch size, rounded up to a multiple of the device count."
)
_LR_IMAGE = flags.DEFINE_float(
    "lr_image", 10**-1.5, "SGD learning rate of theta_x (paper 10^-1.5)."
)
_LR_TEXT = flags.DEFINE_float("lr_text", 10**-1.5, "SGD learning rate of theta_y (paper 10^-1.5).")
_LR_AUTOENCODER = flags.DEFINE_float(
    "lr_autoencoder", 1e-2, "SGD learning rate of the auto-encoder theta_z (paper 10^-2)."
)
_LR_FINAL = flags.DEFINE_float(
    "lr_final", 1e-6, "Every rate decays linearly over the epochs to this value (DCMH: 1e-6)."
)
_ALPHA = flags.DEFINE_float("alpha", 0.05, "Weight of J1, the commonality regularizer (Eq. 7).")
_BETA = flags.DEFINE_float("beta", 0.05, "Weight of J2, the HSIC individuality term (Eq. 7).")
_GAMMA = flags.DEFINE_float("gamma", 1.0, "Weight of the quantization term of Eq. 10.")
_ETA = flags.DEFINE_float("eta", 1.0, "Weight of the bit-balance term of Eq. 10.")
_SIMILARITY_EVERY = flags.DEFINE_integer(
    "similarity_every", 1, "Recompute the label similarities R^x, R^y (Eq. 4) every N epochs."
)
_IMAGE_NET = flags.DEFINE_enum(
    "image_net",
    "mlp",
    ["mlp", "cnnf"],
    "Image network: mlp over feature vectors, or CNN-F on raw 224x224 images.",
)
_IMAGE_HIDDEN = flags.DEFINE_list(
    "image_hidden",
    [],
    "Hidden widths of the image MLP (empty: one linear layer, like CNN-F's fc8 over fc7 features).",
)
_TEXT_HIDDEN = flags.DEFINE_integer(
    "text_hidden", 8192, "Hidden width of the text net (DCMH 8192)."
)
_AE_HIDDEN = flags.DEFINE_integer("ae_hidden", 256, "Hidden width of the auto-encoder's MLPs.")
_CNNF_WEIGHTS = flags.DEFINE_string(
    "cnnf_weights", "", "MatConvNet imagenet-vgg-f.mat to initialise CNN-F (with --image_net=cnnf)."
)
_SEED = flags.DEFINE_integer("seed", 0, "Seed of the split, the initialisation and the batches.")
_WORKDIR = flags.DEFINE_string(
    "workdir",
    "runs/synthetic",
    "Output directory: results.json, codes.npz, metrics.jsonl, plots, checkpoints/.",
)
_CHECKPOINT_EVERY = flags.DEFINE_integer(
    "checkpoint_every", 1, "Save a checkpoint every N epochs (and after the last); 0: never."
)
_KEEP_CHECKPOINTS = flags.DEFINE_integer("keep_checkpoints", 2, "Checkpoints to keep.")
_EVAL_EVERY = flags.DEFINE_integer(
    "eval_every", 0, "Report the query MAP every N epochs (0: only at the end)."
)
_EPOCH_MODE = flags.DEFINE_enum(
    "epoch_mode",
    "auto",
    ["auto", "scan", "step"],
    "scan: each phase of an epoch is one compiled "
    "loop over on-device data; step: one call per batch from the host; auto: scan for feature "
    "vectors, step for raw images.",
)
_PROGRESS = flags.DEFINE_bool("progress", True, "Show a progress bar on stderr.")
_COORDINATOR_ADDRESS = flags.DEFINE_string(
    "coordinator_address", None, "Multi-host: host:port of process 0 (jax.distributed)."
)
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", None, "Multi-host: number of processes.")
_PROCESS_ID = flags.DEFINE_integer("process_id", None, "Multi-host: this process's index.")


def config_from_flags():
    from ltcmh_jax.train import TrainConfig

    try:
        image_hidden = tuple(int(width) for width in _IMAGE_HIDDEN.value)
    except ValueError as error:
        raise ValueError(f"--image_hidden: comma-separated integers expected ({error})") from None
    return TrainConfig(
        method=_METHOD.value,
        variant=_VARIANT.value,
        modality=_MODALITY.value,
        dataset=_DATASET.value,
        data_dir=_DATA_DIR.value,
        data_path=_DATA_PATH.value,
        data_seed=_DATA_SEED.value,
        synthetic_samples=_SYNTHETIC_SAMPLES.value,
        split=_SPLIT.value,
        z1=_Z1.value,
        imbalance_factor=_IMBALANCE_FACTOR.value,
        num_query=_NUM_QUERY.value,
        num_train=_NUM_TRAIN.value,
        num_head=_NUM_HEAD.value,
        bits=_BITS.value,
        epochs=_EPOCHS.value,
        batch_size=_BATCH_SIZE.value,
        lr_image=_LR_IMAGE.value,
        lr_text=_LR_TEXT.value,
        lr_autoencoder=_LR_AUTOENCODER.value,
        lr_final=_LR_FINAL.value,
        alpha=_ALPHA.value,
        beta=_BETA.value,
        gamma=_GAMMA.value,
        eta=_ETA.value,
        similarity_every=_SIMILARITY_EVERY.value,
        image_net=_IMAGE_NET.value,
        image_hidden=image_hidden,
        text_hidden=_TEXT_HIDDEN.value,
        ae_hidden=_AE_HIDDEN.value,
        cnnf_weights=_CNNF_WEIGHTS.value,
        seed=_SEED.value,
        checkpoint_every=_CHECKPOINT_EVERY.value,
        keep_checkpoints=_KEEP_CHECKPOINTS.value,
        eval_every=_EVAL_EVERY.value,
        epoch_mode=_EPOCH_MODE.value,
        progress=_PROGRESS.value,
    ).validate()


def _print_results(results: dict, workdir: str) -> None:
    statistics = results.get("split_statistics", {})
    print(
        f"{results['method']} ({results['variant']}) on {results['dataset']} "
        f"{results['split']}, {results['bits']} bits, seed {results['seed']}: "
        f"{results['epochs']} epochs in {results['train_seconds']:.1f} s"
    )
    print("split: " + ", ".join(f"{key}={value}" for key, value in statistics.items()))
    print(f"{'':6} {'all':>7} {'head':>7} {'tail':>7}")
    directions = (("i2t", "I->T"), ("t2i", "T->I"))
    if "map_i2i" in results:
        directions = (("i2i", "I->I"),)
    for direction, name in directions:
        row = [results.get(f"map_{direction}{part}") for part in ("", "_head", "_tail")]
        print(
            f"{name:6} "
            + " ".join(f"{value:7.4f}" if value is not None else f"{'-':>7}" for value in row)
        )
    print(f"chance-level MAP {results['chance_map']:.4f}; results in {workdir}/results.json")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    # Orbax logs every save at INFO through absl; keep those at WARNING and the library's own
    # (standard logging, "ltcmh_jax") lines at INFO: one line per epoch.
    logging.set_verbosity(logging.WARNING)
    std_logging.getLogger("ltcmh_jax").setLevel(std_logging.INFO)
    try:
        from ltcmh_jax import sharding
        from ltcmh_jax.train import train_and_evaluate

        sharding.maybe_initialize_distributed(
            _COORDINATOR_ADDRESS.value, _NUM_PROCESSES.value, _PROCESS_ID.value
        )
        config = config_from_flags()
        results = train_and_evaluate(config, _WORKDIR.value)
    except (ValueError, OSError, FloatingPointError, RuntimeError) as error:
        # OSError covers a missing file, an unwritable --workdir and a full disk; every message
        # names the file or flag, so one line is the whole report.
        logging.debug("failed", exc_info=True)
        sys.exit(f"error: {error}")
    _print_results(results, _WORKDIR.value)


if __name__ == "__main__":
    app.run(main)
