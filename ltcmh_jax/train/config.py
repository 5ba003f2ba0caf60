"""`TrainConfig`: every setting of a training run, defined once.

Each field carries its command-line help, its choices and its bounds in `dataclasses.field`
metadata (`setting`); `experiments/settings.py` turns the fields into absl flags, and
`TrainConfig.validate` checks them, so a setting is written in one place only. Split fields left
None take the data set's defaults (`ltcmh_jax.train.inputs.resolve_defaults`).
"""

from __future__ import annotations

import dataclasses
import typing

from ltcmh_jax import models
from ltcmh_jax.data import synthetic
from ltcmh_jax.losses import autoencoder as autoencoder_losses
from ltcmh_jax.losses import hausdorff
from ltcmh_jax.optimizers import OPTIMIZERS

DATASETS = ("synthetic", "mirflickr25k", "nuswide", "npz", "mdi_icons", "aloi", "mfeat")
# Closed-form floors (`ltcmh_jax.classical`): trained on the same split, no network, no epochs.
CLASSICAL_METHODS = ("scm", "scm_orth", "cca_itq", "linear")
METHODS = tuple(models.METHODS) + CLASSICAL_METHODS
INPUT_SCALINGS = ("per_feature", "global")
HSIC_NORMALIZATIONS = ("cka", "none")
SELECTOR_INPUTS = ("normalized", "raw")
QUANTIZATIONS = ("per_entry", "dcmh")
PAIR_WEIGHTINGS = ("none", "balanced", "label_rarity")
REGULARISER_SCALINGS = ("batch_label_rate", "none", "bits_per_label")
SPLITS = ("longtail", "balanced")
EPOCH_MODES = ("auto", "scan", "step")
# --modality: the modalities a run trains (a model config, `models.ModelConfig.modalities`).
MODALITY_CHOICES = {"both": ("image", "text"), "image": ("image",)}


# `setting(before=...)` when no value of a setting reproduces runs saved before it existed.
NO_EARLIER_VALUE = object()


def setting(
    default,
    help: str,  # noqa: A002 -- the word absl uses
    *,
    choices: typing.Sequence[str] | None = None,
    minimum: float | None = None,
    exclusive_minimum: bool = False,
    affects_results: bool = True,
    before: typing.Any = NO_EARLIER_VALUE,
):
    """A `TrainConfig` field with its flag help, allowed values and lower bound.

    `affects_results=False` marks a setting that does not change what a run computes (paths,
    checkpoint cadence, progress): a run resumed with another value continues the same run.
    `before` is the value that reproduces what the code computed before the setting existed, so a
    run saved then (its config lacks the key) matches a config with that value; without it such a
    run differs from every config (the safe answer when no value reproduces the old behaviour).
    """
    metadata = {
        "help": help,
        "choices": tuple(choices) if choices is not None else None,
        "minimum": minimum,
        "exclusive_minimum": exclusive_minimum,
        "affects_results": affects_results,
        "before": before,
    }
    if isinstance(default, tuple):
        return dataclasses.field(default_factory=lambda: default, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Everything a training run depends on; `experiments/main.py` fills it from flags."""

    method: str = setting(
        "ltcmh",
        "Hashing method: ltcmh (the paper), dcmh or metacmh; or a closed-form floor: scm "
        "(SCM-Seq), scm_orth, cca_itq, linear (ridge onto the labels, shared projection).",
        choices=METHODS,
    )
    variant: str = setting(
        "full",
        "LtCMH ablation (paper Fig. 3): full, wo_c (no commonality), wo_i (no individuality), "
        "wo_ic (neither), wo_mi / wo_mt (no meta features on the image / text side).",
        choices=models.VARIANTS,
    )
    modality: str = setting(
        "both",
        "both: cross-modal hashing; image: the image modality alone, image->image retrieval "
        "(paper Table 4; see docs/DESIGN.md, Baselines).",
        choices=tuple(MODALITY_CHOICES),
    )
    dataset: str = setting(
        "synthetic",
        "Data set: the embedded synthetic long-tail set, MIRFlickr-25K or NUS-WIDE (.mat files "
        "in --data_dir), precomputed features in an .npz (--data_path), the embedded icons, ALOI "
        "or the mfeat digits (both from the wheel in --data_path), or tfds:BUILDER/CONFIG, "
        "a prepared longtail_* TFDS data set in --data_dir with its stored split (one of "
        f"{', '.join(DATASETS)}, tfds:NAME).",
    )
    data_dir: str = setting(
        "",
        "Directory with the DCMH-format .mat files (mirflickr25k, nuswide).",
        affects_results=False,
    )
    data_path: str = setting(
        "",
        "An .npz with arrays image [n, d_x], text [n, d_t], labels [n, c]; for aloi and mfeat the "
        "mvcluster 1.16 wheel (or its extracted folder, or such an .npz).",
        affects_results=False,
    )
    data_seed: int = setting(0, "Seed of the synthetic generator (fixed across --seed repeats).")
    synthetic_version: int = setting(
        2,
        "Synthetic generator: 2 builds labels from shared concepts (tail labels co-occur with a "
        "head parent, modality dominance); 1 is the first generator, kept reproducible.",
        minimum=1,
    )
    synthetic_samples: int = setting(
        0, "Samples of the synthetic set; 0 keeps the generator's default.", minimum=0
    )
    split: str = setting(
        "longtail",
        "longtail: Zipf training set (paper Table 1); balanced: uniform training set (DCMH).",
        choices=SPLITS,
    )
    z1: int | None = setting(
        None,
        "Samples of the most frequent label in the long-tail training set (default: the data "
        "set's, e.g. 3000 Flickr, 5000 NUS-WIDE).",
        minimum=1,
    )
    imbalance_factor: float | None = setting(
        None, "z1 / zc of the long-tail training set, >= 1 (paper: 50).", minimum=1
    )
    num_query: int | None = setting(
        None, "Query samples (paper: 2000); the rest is the retrieval database.", minimum=1
    )
    num_train: int | None = setting(
        None,
        "Training samples of a balanced split (DCMH: 10000 Flickr, 10500 NUS).",
        minimum=1,
    )
    num_head: int | None = setting(
        None,
        "Head labels for head/tail MAP, the most frequent first (paper: 14 Flickr, 15 NUS-WIDE; "
        "otherwise 60% of the labels).",
        minimum=1,
    )
    bits: int = setting(64, "Hash code length k.", minimum=1)
    floor_anchors: int = setting(
        0,
        "Closed-form floors only: 0 fits them on the raw views; N on Gaussian-kernel values "
        "against N training rows per view (standardised, bandwidth the mean anchor distance), "
        "so a view of d < --bits columns can still give --bits bits.",
        minimum=0,
        before=0,
    )
    epochs: int = setting(500, "Training epochs (paper: 500).", minimum=1)
    batch_size: int = setting(
        128, "Global batch size, rounded up to a multiple of the device count.", minimum=1
    )
    optimizer: str = setting(
        "adam",
        "adam (warm-up, cosine decay to 1%) or sgd (the paper's, linear decay per epoch to "
        "--lr_final); see docs/DESIGN.md, Training recipe.",
        choices=OPTIMIZERS,
    )
    lr_image: float = setting(
        6e-3,
        "Peak learning rate of theta_x (default for adam; paper's SGD: 10^-1.5).",
        minimum=0,
        exclusive_minimum=True,
    )
    lr_text: float = setting(
        6e-3,
        "Peak learning rate of theta_y (default for adam; paper's SGD: 10^-1.5).",
        minimum=0,
        exclusive_minimum=True,
    )
    lr_autoencoder: float = setting(
        6e-3,
        "Peak learning rate of the auto-encoder theta_z (default for adam; paper's SGD: 10^-2).",
        minimum=0,
        exclusive_minimum=True,
    )
    lr_final: float = setting(
        1e-6,
        "With --optimizer=sgd every rate decays linearly over the epochs to this (DCMH: 1e-6).",
        minimum=0,
    )
    clip_norm: float = setting(
        1.0, "Clip each gradient to this global norm before the optimiser; 0: off.", minimum=0
    )
    warmup: float = setting(
        0.05, "With --optimizer=adam, the share of the steps its rate warms up over.", minimum=0
    )
    weight_decay: float = setting(
        1.0,
        "With --optimizer=adam, decoupled weight decay (AdamW: each step shrinks the parameters "
        "by rate x this) of every parameter group; 0: plain Adam; sgd ignores it (docs/DESIGN.md).",
        minimum=0,
        before=0.0,
    )
    dropout: float = setting(
        0.5,
        "Dropout rate on the hidden layers of the feature nets (image MLP, the text net's hidden "
        "layer, CNN-F's fc6 / fc7) in their training steps; 0: off (docs/DESIGN.md, Training "
        "recipe).",
        minimum=0,
        before=0.0,
    )
    regulariser_scaling: str = setting(
        "batch_label_rate",
        "batch_label_rate: --weight_decay and --dropout multiplied by min(1, the expected samples "
        "of a label in one batch), which is 1 unless labels are so many that a batch holds less "
        "than one sample of each on average (ALOI: 0.128); none: both as given; bits_per_label: "
        "both multiplied by min(1, bits / labels) (session 9's option; docs/DESIGN.md, Training "
        "recipe).",
        choices=REGULARISER_SCALINGS,
        before="none",
    )
    pair_weighting: str = setting(
        "none",
        "none: Eq. 10, every pair of the likelihood weighs 1; balanced: similar and dissimilar "
        "pairs each carry half of it (weights 1 / (2 rho), 1 / (2 (1 - rho)), rho the share of "
        "similar training pairs; docs/DESIGN.md, Training recipe); label_rarity: a similar pair "
        "weighs the sum over the labels it shares of their inverse training frequency, scaled to "
        "average 1 over the similar pairs (not the paper's Eq. 10: an option; docs/DESIGN.md, "
        "Losses).",
        choices=PAIR_WEIGHTINGS,
        before="none",
    )
    min_steps: int = setting(
        1000,
        "Step budget: --epochs is raised until each phase takes at least this many steps, so a "
        "small training set is not left under-trained; 0: exactly --epochs.",
        minimum=0,
    )
    input_scaling: str = setting(
        "per_feature",
        "Dense feature views are standardised with training-split statistics: per_feature "
        "(z-score per column) or global (one mean vector and one overall spread, image only).",
        choices=INPUT_SCALINGS,
    )
    label_similarity: str = setting(
        "scale_free",
        "R of Eq. 4: scale_free exp(-H / mean H), or paper exp(-H / (mean H)^2).",
        choices=hausdorff.LABEL_SIMILARITY_SCALES,
    )
    j1_normalization: str = setting(
        "relative",
        "J1 (Eq. 3): relative (weighted mean over label pairs, over the spread of C*) or sum "
        "(as printed, over all c^2 pairs).",
        choices=autoencoder_losses.J1_NORMALIZATIONS,
    )
    hsic_normalization: str = setting(
        "cka",
        "J2 (Eq. 5): cka (HSIC normalised to [0, 1]) or none (as printed).",
        choices=HSIC_NORMALIZATIONS,
    )
    quantization: str = setting(
        "per_entry",
        "Scale of Eq. 10's quantisation term: per_entry (its mean over the batch's entries) or "
        "dcmh (divided by b * N with the other terms, so it fades as N grows).",
        choices=QUANTIZATIONS,
    )
    selector_input: str = setting(
        "normalized",
        "Eq. 8's selectors read F^v / rms(F^v) (normalized) or F^v (raw).",
        choices=SELECTOR_INPUTS,
    )
    commonality_path: str = setting(
        "estimator",
        "LtCMH's query-time estimate of C*: estimator (an MLP per modality fitted to C*) or "
        "memory (attention from F^v over the per-label means of C*; docs/DESIGN.md, Model).",
        choices=models.COMMONALITY_PATHS,
        before="estimator",
    )
    alpha: float = setting(0.05, "Weight of J1, the commonality regularizer (Eq. 7).", minimum=0)
    beta: float = setting(0.05, "Weight of J2, the HSIC individuality term (Eq. 7).", minimum=0)
    gamma: float = setting(1.0, "Weight of the quantization term of Eq. 10.", minimum=0)
    eta: float = setting(
        0.1,
        "Weight of the bit-balance term of Eq. 10 (paper: 1; 0.1 by default, docs/DESIGN.md, "
        "Training recipe).",
        minimum=0,
    )
    similarity_every: int = setting(
        1, "Recompute the label similarities R^x, R^y (Eq. 4) every N epochs.", minimum=1
    )
    image_net: str = setting(
        "mlp",
        "Image network: mlp over feature vectors, or CNN-F on raw 224x224 images.",
        choices=models.IMAGE_NETS,
    )
    image_hidden: tuple[int, ...] = setting(
        (),
        "Hidden widths of the image MLP (empty: one linear layer, like CNN-F's fc8 over fc7 "
        "features).",
        minimum=1,
    )
    text_hidden: int = setting(8192, "Hidden width of the text net (DCMH 8192).", minimum=1)
    ae_hidden: int = setting(256, "Hidden width of the auto-encoder's MLPs.", minimum=1)
    cnnf_weights: str = setting(
        "", "MatConvNet imagenet-vgg-f.mat to initialise CNN-F (with --image_net=cnnf)."
    )
    seed: int = setting(0, "Seed of the split, the initialisation and the batches.")
    checkpoint_every: int = setting(
        1,
        "Save a checkpoint every N epochs (and after the last); 0: never.",
        minimum=0,
        affects_results=False,
    )
    keep_checkpoints: int = setting(2, "Checkpoints to keep.", minimum=1, affects_results=False)
    eval_every: int = setting(
        0,
        "Report the query MAP every N epochs (0: only at the end).",
        minimum=0,
        affects_results=False,
    )
    mixed_precision: str = setting(
        "auto",
        "bfloat16 inputs, float32 accumulation, for the likelihood's two products: on, off, or "
        "auto (on for GPU/TPU, off on CPU; docs/DESIGN.md, Training speed).",
        choices=("auto", "on", "off"),
        before="off",
    )
    epoch_mode: str = setting(
        "auto",
        "scan: each phase of an epoch is one compiled loop over on-device data; step: one call "
        "per batch from the host; auto: scan for feature vectors, step for raw images.",
        choices=EPOCH_MODES,
        affects_results=False,
    )
    progress: bool = setting(True, "Show a progress bar on stderr.", affects_results=False)
    plots: bool = setting(
        True,
        "Write training_curves.png and pr_curves.png at the end of the run (matplotlib: about "
        "2.5 s even for a small run); results.json and metrics.jsonl hold the same numbers.",
        affects_results=False,
    )

    def __post_init__(self):
        object.__setattr__(self, "image_hidden", tuple(int(h) for h in self.image_hidden))

    @property
    def tfds_name(self) -> str:
        """`BUILDER/CONFIG` of `--dataset=tfds:BUILDER/CONFIG`; empty for the other data sets."""
        prefix, _, name = self.dataset.partition(":")
        return name if prefix == "tfds" else ""

    @property
    def modalities(self) -> tuple[str, ...]:
        """The modalities this run trains, in `models.MODALITIES` order."""
        return MODALITY_CHOICES[self.modality]

    def validate(self) -> TrainConfig:
        """Checks what can be checked without the data: each field against its metadata, then
        the rules that tie fields together.

        Raises:
          ValueError: one line naming the flag.
        """
        for field in dataclasses.fields(self):
            check_field(field, getattr(self, field.name))
        if self.dataset not in DATASETS and not self.tfds_name:
            raise ValueError(
                f"--dataset: must be one of {DATASETS} or tfds:NAME, got {self.dataset!r}"
            )
        if self.method in CLASSICAL_METHODS and self.modality != "both":
            raise ValueError(
                f"--modality: the closed-form floor --method={self.method} is cross-modal; "
                "use --modality=both"
            )
        if self.floor_anchors and self.method not in CLASSICAL_METHODS:
            raise ValueError(
                f"--floor_anchors: kernel features are for the closed-form floors "
                f"{CLASSICAL_METHODS}, not --method={self.method}; use --floor_anchors=0"
            )
        if self.dropout >= 1:
            raise ValueError(f"--dropout: a rate below 1 keeps some units, got {self.dropout}")
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
        if self.split == "balanced":
            for name in ("z1", "imbalance_factor"):
                if getattr(self, name) is not None:
                    raise ValueError(f"--{name}: applies to --split=longtail, not balanced")
        elif self.num_train is not None:
            raise ValueError(
                "--num_train: applies to --split=balanced; a long-tail training set's size "
                "follows from --z1 and --imbalance_factor"
            )
        if (self.dataset in ("mirflickr25k", "nuswide") or self.tfds_name) and not self.data_dir:
            raise ValueError(f"--data_dir: required for --dataset={self.dataset}")
        if self.dataset in ("npz", "aloi", "mfeat") and not self.data_path:
            raise ValueError(
                f"--data_path: required for --dataset={self.dataset}"
                + (
                    " (the mvcluster 1.16 wheel: pip download --no-deps mvcluster==1.16)"
                    if self.dataset in ("aloi", "mfeat")
                    else ""
                )
            )
        if self.synthetic_version not in synthetic.VERSIONS:
            raise ValueError(
                f"--synthetic_version: must be one of {synthetic.VERSIONS}, got "
                f"{self.synthetic_version}"
            )
        if self.dataset != "synthetic" and self.synthetic_samples:
            raise ValueError("--synthetic_samples: applies to --dataset=synthetic only")
        if self.cnnf_weights and self.image_net != "cnnf":
            raise ValueError("--cnnf_weights: needs --image_net=cnnf")
        if self.image_net == "cnnf" and self.dataset not in ("mirflickr25k", "nuswide"):
            raise ValueError(
                f"--image_net: cnnf needs raw images; --dataset={self.dataset} has feature vectors"
            )
        return self

    def earlier_values(self) -> dict:
        """`{field: value}` reproducing runs saved before the field existed (`setting(before=)`)."""
        return {
            field.name: field.metadata["before"]
            for field in dataclasses.fields(self)
            if field.metadata["before"] is not NO_EARLIER_VALUE
        }

    def run_fields(self) -> dict:
        """The fields that define what a run computes (compared when resuming)."""
        return {
            field.name: (
                list(getattr(self, field.name))
                if field.name == "image_hidden"
                else getattr(self, field.name)
            )
            for field in dataclasses.fields(self)
            if field.metadata["affects_results"]
        }


def check_field(field: dataclasses.Field, value) -> None:
    """One field's value against its `setting` metadata (choices, lower bound).

    Raises:
      ValueError: one line naming the flag.
    """
    name, metadata = field.name, field.metadata
    if value is None:
        return
    if metadata["choices"] is not None and value not in metadata["choices"]:
        raise ValueError(f"--{name}: must be one of {metadata['choices']}, got {value!r}")
    minimum = metadata["minimum"]
    if minimum is None:
        return
    values = value if isinstance(value, tuple) else (value,)
    for item in values:
        below = not item > minimum if metadata["exclusive_minimum"] else not item >= minimum
        if below:
            if minimum == 1 and not metadata["exclusive_minimum"]:
                bound = "positive"
            elif metadata["exclusive_minimum"] and minimum == 0:
                bound = "positive"
            else:
                bound = f">= {minimum:g}"
            raise ValueError(f"--{name}: must be {bound}, got {value}")
