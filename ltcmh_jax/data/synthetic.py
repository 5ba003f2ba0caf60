"""The embedded default data set: two modalities, Zipf label frequencies, labels seen differently.

Two versions (`make_synthetic_longtail(version=...)`). Version 1 (the default, unchanged since
2026-12) has independent labels with their own prototypes and word sets, each visible in one of
three ways (`label_visibility`):
- "shared": evidence in both the image features and the text tags (the commonality);
- "image": evidence in the image features only;
- "text": evidence in the text tags only (the paper's "Hawaii", readable only from the text).
On top of the labels, each modality has nuisance structure unrelated to any label
(`synthetic_nuisance`) and noise. docs/DESIGN.md gives the reasons.

Version 2 (`synthetic_concepts`) gives a long-tail method something to transfer
(`label_structure`): middle and tail labels are built from shared head concepts. Its public names
are re-exported here.
"""

from __future__ import annotations

import math

import numpy as np

from ltcmh_jax.data.dataset import MultiModalDataset
from ltcmh_jax.data.synthetic_concepts import DOMINANCE_KINDS as DOMINANCE_KINDS
from ltcmh_jax.data.synthetic_concepts import TIERS as TIERS
from ltcmh_jax.data.synthetic_concepts import LabelStructure as LabelStructure
from ltcmh_jax.data.synthetic_concepts import label_structure as label_structure
from ltcmh_jax.data.synthetic_concepts import make_version_two
from ltcmh_jax.data.synthetic_nuisance import (
    NUM_TEXT_TOPICS,
    TOPIC_VOCABULARY_SHARE,
    add_nuisance_words,
    image_nuisance,
    scatter_words,
    unit_rows,
)

VISIBILITY_KINDS = ("shared", "image", "text")
# Half the labels are seen by both modalities, a quarter by one only: most concepts are both
# pictured and tagged, a minority only one of the two (docs/DESIGN.md).
_KIND_BLOCK = ("shared", "shared", "image", "text")

# The split that goes with the default set (used by experiments/configs/synthetic.flags): 1000
# queries, an 11000-sample database, a training set of about 2750 samples whose label counts run
# from 2000 down to 50 (IF 40; Table 1 uses 50 on larger sets; docs/DESIGN.md).
SYNTHETIC_SPLIT = dict(z1=2000, imbalance_factor=40.0, num_query=1000)

# Label words take a quarter of the vocabulary (nuisance topics another, `synthetic_nuisance`);
# the rest only ever appears as background.
_LABEL_VOCABULARY_SHARE = 0.25
VERSIONS = (1, 2)
_VERSION_TWO_DEFAULTS = dict(parent_cooccurrence=0.8, weak_evidence=0.35, concept_share=0.5)


def _label_layout(num_labels: int, seed: int) -> tuple[np.ndarray, tuple[str, ...]]:
    """Frequency rank (0 = most frequent) and visibility kind of each label id."""
    if int(num_labels) != num_labels or num_labels < 1:
        raise ValueError(f"num_labels: must be a positive integer, got {num_labels!r}")
    # Its own stream, so the layout depends only on (num_labels, seed), not on the sizes.
    rng = np.random.default_rng([seed, 0])
    rank_of_label = rng.permutation(num_labels)
    # Each run of four consecutive ranks holds two shared labels, one image-only and one text-only
    # label in random order, so head, middle and tail all contain every kind: no kind is
    # confounded with frequency.
    block = len(_KIND_BLOCK)
    kind_of_rank = np.concatenate(
        [rng.permutation(_KIND_BLOCK) for _ in range(-(-num_labels // block))]
    )[:num_labels]
    return rank_of_label, tuple(str(kind_of_rank[rank]) for rank in rank_of_label)


def label_visibility(num_labels: int, seed: int = 0) -> tuple[str, ...]:
    """Per label id, how `make_synthetic_longtail(num_labels=..., seed=...)` shows it.

    Returns:
      `c` strings from `VISIBILITY_KINDS`: "shared" (both modalities), "image" or "text" (only
      that one). The data set's `label_names` are `f"{kind}_{id:02d}"`, so they carry it too.
    """
    return _label_layout(num_labels, seed)[1]


def make_synthetic_longtail(
    *,
    num_samples: int = 12000,
    num_labels: int = 24,
    image_dim: int = 512,
    text_dim: int = 1000,
    seed: int = 0,
    head_frequency: float = 0.3,
    label_imbalance: float = 10.0,
    evidence_dropout: float = 0.15,
    image_noise: float | None = None,
    label_words: float | None = None,
    background_words: float = 15.0,
    version: int = 1,
    parent_cooccurrence: float | None = None,
    weak_evidence: float | None = None,
    concept_share: float | None = None,
) -> MultiModalDataset:
    """A two-modality, multi-label data set whose labels have Zipf frequencies.

    Version 1 (described here; version 2 changes what the list after this paragraph says).

    Labels: label of frequency rank `r` (0-based) is on each sample independently with probability
    `head_frequency * (r + 1)^-mu`, `mu = ln(label_imbalance) / ln(c)`; a sample left without labels
    gets one, drawn in proportion to those probabilities (real sets drop unlabelled samples).

    Image `[n, image_dim]` float32, nonnegative like CNN fc7 features:
    `relu(sum_a strength_ia * prototype_a + cluster_i + factors_i + noise_i)` over the sample's
    "shared" and "image" labels, each prototype a random unit vector, `strength ~ U(0.5, 1.5)`
    or 0 with probability `evidence_dropout` (an occluded object); `cluster_i` one of a few
    random centres of norm 1.5, `factors_i` a standard-normal mix of a few random unit directions,
    `noise_i ~ N(0, (image_noise^2 / image_dim) I)`.

    Text `[n, text_dim]` float32 in {0, 1}, a bag of tags a few percent dense: for each "shared"
    and "text" label, `Poisson(label_words)` words from that label's own word set (none with
    probability `evidence_dropout`), plus `Poisson(4)` words of one random nuisance topic, plus
    `Poisson(background_words)` words from a Zipf distribution over the whole vocabulary (so label
    words also turn up by chance).

    Version 2, with `k = c // 3` head labels, each a concept, and latent concepts `k`
    (`label_structure`). Labels: head labels as in version 1; a middle or tail label `b` keeps its
    Zipf probability `pi_b`, a share `parent_cooccurrence` of its samples carrying its parent `p`
    (probability `parent_cooccurrence * pi_b / pi_p` with the parent, the rest without); an
    unlabelled sample gets a head label. Image: as version 1 with every label's prototype
    `normalise(sqrt(s / 2) u_p + sqrt(s / 2) u_second + sqrt(1 - s) u_b)`, `s = concept_share`,
    for a middle or tail label (a head label's prototype is its concept `u_p`), and strength
    times `weak_evidence` in a label's weaker modality. Text: `Poisson(label_words)` words
    (times `weak_evidence` in the weaker modality) from the parent's, the second concept's or
    the label's own word set with probabilities `s / 2, s / 2, 1 - s`; own word sets are three
    times a concept's. Defaults `parent_cooccurrence=0.8, weak_evidence=0.35, concept_share=0.5`.

    Args:
      num_samples: `n`.
      num_labels: `c`.
      image_dim: `d_x`.
      text_dim: `d_t`, at least `4 c` so every word set has room.
      seed: everything is a pure function of the arguments.
      head_frequency: probability of the most frequent label.
      label_imbalance: ratio of the most to the least frequent label's probability (the data's own
        tail, before `longtail_split` makes the training set's).
      evidence_dropout: probability that a present label leaves no trace in one modality.
      image_noise: expected norm of the image noise vector; None: 6 (version 1), 5 (version 2).
      label_words: mean number of words a text-visible label contributes; None: 2.5 (version 1),
        3 (version 2).
      background_words: mean number of background words per sample.
      version: 1 or 2 (`VERSIONS`); version 1 is bit-identical to the set of 2026-12.
      parent_cooccurrence: version 2 only: share of a middle or tail label's samples with its
        parent, in (0, 1).
      weak_evidence: version 2 only: evidence in the weaker modality relative to the stronger.
      concept_share: version 2 only: share of a middle or tail label's evidence from its two
        concepts; the rest is its own.

    Returns:
      A `MultiModalDataset` with `label_names` `f"{kind}_{id:02d}"`: the visibility kind
      (`label_visibility`) in version 1, the dominance (`label_structure`) in version 2.
    """
    for name, value in (("num_samples", num_samples), ("image_dim", image_dim)):
        if int(value) != value or value < 1:
            raise ValueError(f"{name}: must be a positive integer, got {value!r}")
    if version not in VERSIONS:
        raise ValueError(f"version: expected one of {VERSIONS}, got {version!r}")
    version_two = dict(
        parent_cooccurrence=parent_cooccurrence,
        weak_evidence=weak_evidence,
        concept_share=concept_share,
    )
    for name, value in version_two.items():
        if value is None:
            version_two[name] = _VERSION_TWO_DEFAULTS[name]
        elif version == 1:
            raise ValueError(f"{name}: applies to version=2 only")
        elif not 0 < value < 1:
            raise ValueError(f"{name}: must be in (0, 1), got {value!r}")
    # Version 2 spreads each label's evidence over shared concepts and one modality more weakly,
    # so it needs a little more signal for the linear floor's MAP to reach 0.5.
    if image_noise is None:
        image_noise = 6.0 if version == 1 else 5.0
    if label_words is None:
        label_words = 2.5 if version == 1 else 3.0
    rank_of_label, kinds = _label_layout(num_labels, seed)
    if int(text_dim) != text_dim or text_dim < 4 * num_labels:
        raise ValueError(f"text_dim: must be an integer >= 4 * num_labels, got {text_dim!r}")
    if not 0 < head_frequency <= 1:
        raise ValueError(f"head_frequency: must be in (0, 1], got {head_frequency!r}")
    if not math.isfinite(label_imbalance) or label_imbalance < 1:
        raise ValueError(f"label_imbalance: must be a finite number >= 1, got {label_imbalance!r}")
    if not 0 <= evidence_dropout < 1:
        raise ValueError(f"evidence_dropout: must be in [0, 1), got {evidence_dropout!r}")
    for name, value in (
        ("image_noise", image_noise),
        ("label_words", label_words),
        ("background_words", background_words),
    ):
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"{name}: must be a finite number >= 0, got {value!r}")

    if version == 2:
        return make_version_two(
            num_samples=num_samples,
            num_labels=num_labels,
            image_dim=image_dim,
            text_dim=text_dim,
            seed=seed,
            head_frequency=head_frequency,
            label_imbalance=label_imbalance,
            evidence_dropout=evidence_dropout,
            image_noise=image_noise,
            label_words=label_words,
            background_words=background_words,
            **version_two,
        )
    rng = np.random.default_rng([seed, 1])
    labels = _sample_labels(rng, num_samples, rank_of_label, head_frequency, label_imbalance)
    kinds = np.asarray(kinds)
    in_image = np.isin(kinds, ("shared", "image"))
    in_text = np.isin(kinds, ("shared", "text"))
    image = _image_features(rng, labels, in_image, image_dim, evidence_dropout, image_noise)
    text = _text_tags(
        rng, labels, in_text, text_dim, evidence_dropout, label_words, background_words
    )
    return MultiModalDataset(
        image=image,
        text=text,
        labels=labels,
        label_names=tuple(f"{kind}_{label:02d}" for label, kind in enumerate(kinds)),
    )


def _sample_labels(
    rng: np.random.Generator,
    num_samples: int,
    rank_of_label: np.ndarray,
    head_frequency: float,
    label_imbalance: float,
) -> np.ndarray:
    num_labels = rank_of_label.size
    mu = math.log(label_imbalance) / math.log(num_labels) if num_labels > 1 else 0.0
    probability = head_frequency * (rank_of_label + 1.0) ** -mu
    labels = rng.random((num_samples, num_labels)) < probability
    empty = np.flatnonzero(~labels.any(axis=1))
    labels[empty, rng.choice(num_labels, size=empty.size, p=probability / probability.sum())] = True
    return labels.astype(np.float32)


def _image_features(
    rng: np.random.Generator,
    labels: np.ndarray,
    visible: np.ndarray,
    image_dim: int,
    evidence_dropout: float,
    image_noise: float,
) -> np.ndarray:
    num_labels = labels.shape[1]
    prototypes = unit_rows(rng, num_labels, image_dim) * visible[:, None]
    strength = rng.uniform(0.5, 1.5, size=labels.shape)
    strength *= labels * (rng.random(labels.shape) >= evidence_dropout)
    features = strength @ prototypes + image_nuisance(rng, labels.shape[0], image_dim, image_noise)
    return np.maximum(features, 0.0).astype(np.float32)


def _text_tags(
    rng: np.random.Generator,
    labels: np.ndarray,
    visible: np.ndarray,
    text_dim: int,
    evidence_dropout: float,
    label_words: float,
    background_words: float,
) -> np.ndarray:
    num_samples, num_labels = labels.shape
    vocabulary = rng.permutation(text_dim)
    visible_labels = np.flatnonzero(visible)
    per_label = max(1, int(text_dim * _LABEL_VOCABULARY_SHARE) // max(1, visible_labels.size))
    per_topic = max(1, int(text_dim * TOPIC_VOCABULARY_SHARE) // NUM_TEXT_TOPICS)
    label_vocabulary = vocabulary[: per_label * visible_labels.size].reshape(-1, per_label)
    topic_start = per_label * visible_labels.size
    topic_vocabulary = vocabulary[topic_start : topic_start + per_topic * NUM_TEXT_TOPICS]
    topic_vocabulary = topic_vocabulary.reshape(NUM_TEXT_TOPICS, per_topic)

    text = np.zeros((num_samples, text_dim), dtype=np.float32)
    shown = (labels > 0) & (rng.random(labels.shape) >= evidence_dropout)
    for words, label in zip(label_vocabulary, visible_labels, strict=True):
        rows = np.flatnonzero(shown[:, label])
        counts = rng.poisson(label_words, size=rows.size)
        rows = np.repeat(rows, counts)
        scatter_words(text, rows, rng.choice(words, size=rows.size))

    add_nuisance_words(rng, text, topic_vocabulary, background_words)
    return text
