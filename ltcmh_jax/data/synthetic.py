"""The embedded default data set: two modalities, Zipf label frequencies, labels seen differently.

Two versions (`make_synthetic_longtail(version=...)`). Version 1 (the default, unchanged since
2026-12) has independent labels with their own prototypes and word sets, each visible in one of
three ways (`label_visibility`):
- "shared": evidence in both the image features and the text tags (the commonality);
- "image": evidence in the image features only;
- "text": evidence in the text tags only (the paper's "Hawaii", readable only from the text).
On top of the labels, each modality has nuisance structure unrelated to any label (image: a few
clusters and a low-rank continuous factor, like photographic style; text: topic words, like camera
or user tags, and frequent background words) and noise. docs/DESIGN.md gives the reasons.

Version 2 gives a long-tail method something to transfer (`label_structure`): head labels are
concepts; a middle or tail label is its parent head concept, an unlabelled second concept and a
residual of its own, in both modalities, and mostly co-occurs with its parent. Every label shows
in both modalities, but some more strongly in one ("dominance"), tail labels more often than head
labels. The nuisance structure is version 1's.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from ltcmh_jax.data.dataset import MultiModalDataset

VISIBILITY_KINDS = ("shared", "image", "text")
# Half the labels are seen by both modalities, a quarter by one only: most concepts are both
# pictured and tagged, a minority only one of the two (docs/DESIGN.md).
_KIND_BLOCK = ("shared", "shared", "image", "text")

# The split that goes with the default set (used by experiments/configs/synthetic.flags): 1000
# queries, an 11000-sample database, a training set of about 2750 samples whose label counts run
# from 2000 down to 50 (IF 40; Table 1 uses 50 on larger sets; docs/DESIGN.md).
SYNTHETIC_SPLIT = dict(z1=2000, imbalance_factor=40.0, num_query=1000)

# Vocabulary shares: label words and nuisance-topic words each take a quarter, the rest only ever
# appears as background.
_LABEL_VOCABULARY_SHARE = 0.25
_TOPIC_VOCABULARY_SHARE = 0.25
_NUM_TEXT_TOPICS = 8
# Version 2: sources (concepts and residuals) take twice the label words' share of version 1,
# since there are about twice as many word sets.
_LABEL_VOCABULARY_SHARE_V2 = 0.5
_RESIDUAL_WORDS = 3
TIERS = ("head", "middle", "tail")
DOMINANCE_KINDS = ("both", "image", "text")
# Share of each tier's labels whose evidence is strong in one modality only: the paper argues
# tail labels lean on one modality more often than head labels do.
_DOMINANT_SHARE = (0.25, 0.5, 0.75)
VERSIONS = (1, 2)
_VERSION_TWO_DEFAULTS = dict(parent_cooccurrence=0.8, weak_evidence=0.35, concept_share=0.5)
_NUM_IMAGE_CLUSTERS = 8
_NUM_IMAGE_FACTORS = 8


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
        return _make_version_two(
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


def _unit_rows(rng: np.random.Generator, rows: int, dim: int) -> np.ndarray:
    vectors = rng.standard_normal((rows, dim))
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def _image_features(
    rng: np.random.Generator,
    labels: np.ndarray,
    visible: np.ndarray,
    image_dim: int,
    evidence_dropout: float,
    image_noise: float,
) -> np.ndarray:
    num_labels = labels.shape[1]
    prototypes = _unit_rows(rng, num_labels, image_dim) * visible[:, None]
    strength = rng.uniform(0.5, 1.5, size=labels.shape)
    strength *= labels * (rng.random(labels.shape) >= evidence_dropout)
    features = strength @ prototypes + _image_nuisance(rng, labels.shape[0], image_dim, image_noise)
    return np.maximum(features, 0.0).astype(np.float32)


def _image_nuisance(
    rng: np.random.Generator, num_samples: int, image_dim: int, image_noise: float
) -> np.ndarray:
    """`[n, image_dim]`: a cluster centre, a low-rank factor mix and isotropic noise per sample."""
    centres = 1.5 * _unit_rows(rng, _NUM_IMAGE_CLUSTERS, image_dim)
    cluster = rng.integers(_NUM_IMAGE_CLUSTERS, size=num_samples)
    factor_directions = _unit_rows(rng, _NUM_IMAGE_FACTORS, image_dim)
    factors = rng.standard_normal((num_samples, _NUM_IMAGE_FACTORS))
    noise = rng.standard_normal((num_samples, image_dim)) * (image_noise / math.sqrt(image_dim))
    return centres[cluster] + factors @ factor_directions + noise


def _scatter_words(text: np.ndarray, rows: np.ndarray, words: np.ndarray) -> None:
    text[rows, words] = 1.0


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
    per_topic = max(1, int(text_dim * _TOPIC_VOCABULARY_SHARE) // _NUM_TEXT_TOPICS)
    label_vocabulary = vocabulary[: per_label * visible_labels.size].reshape(-1, per_label)
    topic_start = per_label * visible_labels.size
    topic_vocabulary = vocabulary[topic_start : topic_start + per_topic * _NUM_TEXT_TOPICS]
    topic_vocabulary = topic_vocabulary.reshape(_NUM_TEXT_TOPICS, per_topic)

    text = np.zeros((num_samples, text_dim), dtype=np.float32)
    shown = (labels > 0) & (rng.random(labels.shape) >= evidence_dropout)
    for words, label in zip(label_vocabulary, visible_labels, strict=True):
        rows = np.flatnonzero(shown[:, label])
        counts = rng.poisson(label_words, size=rows.size)
        rows = np.repeat(rows, counts)
        _scatter_words(text, rows, rng.choice(words, size=rows.size))

    _add_nuisance_words(rng, text, topic_vocabulary, background_words)
    return text


def _add_nuisance_words(
    rng: np.random.Generator,
    text: np.ndarray,
    topic_vocabulary: np.ndarray,
    background_words: float,
) -> None:
    """Adds to `text` (`[n, d_t]`) `Poisson(4)` words of one random topic per sample (rows of
    `topic_vocabulary`, `[topics, words]`) and `Poisson(background_words)` background words."""
    num_samples, text_dim = text.shape
    num_topics, per_topic = topic_vocabulary.shape
    topic = rng.integers(num_topics, size=num_samples)
    rows = np.repeat(np.arange(num_samples), rng.poisson(4.0, size=num_samples))
    _scatter_words(
        text, rows, topic_vocabulary[topic[rows], rng.integers(per_topic, size=rows.size)]
    )

    # Zipf background over a random order of the whole vocabulary: frequent filler tags, some of
    # them label words, which is what makes a single tag weak evidence.
    background = rng.permutation(1.0 / np.arange(1, text_dim + 1))
    rows = np.repeat(np.arange(num_samples), rng.poisson(background_words, size=num_samples))
    _scatter_words(
        text, rows, rng.choice(text_dim, size=rows.size, p=background / background.sum())
    )


class LabelStructure(NamedTuple):
    """How version 2 builds each label from shared concepts (`label_structure`).

    Attributes:
      rank_of_label: `[c]` int64 frequency rank, 0 = most frequent.
      tier: `c` strings from `TIERS`: the first `c // 3` ranks are "head", the next `c // 3`
        "middle", the rest "tail".
      parent: `[c]` int64, the head label whose concept a middle or tail label builds on (and
        which it mostly co-occurs with); -1 for a head label (a concept itself).
      second: `[c]` int64, the unlabelled second concept of a middle or tail label; -1 for a head
        label. Each is shared by a middle and a tail label.
      dominance: `c` strings from `DOMINANCE_KINDS`: "both", or the one modality ("image",
        "text") whose evidence is strong; the other's is `weak_evidence` times as strong.
    """

    rank_of_label: np.ndarray
    tier: tuple[str, ...]
    parent: np.ndarray
    second: np.ndarray
    dominance: tuple[str, ...]


def label_structure(num_labels: int, seed: int = 0) -> LabelStructure:
    """The concept layout of `make_synthetic_longtail(version=2, num_labels=..., seed=...)`."""
    if int(num_labels) != num_labels or num_labels < 3:
        raise ValueError(f"num_labels: version 2 needs an integer >= 3, got {num_labels!r}")
    rng = np.random.default_rng([seed, 2])
    rank_of_label = rng.permutation(num_labels)
    label_at_rank = np.argsort(rank_of_label)
    num_concepts = num_labels // 3
    parent = np.full(num_labels, -1, dtype=np.int64)
    second = np.full(num_labels, -1, dtype=np.int64)
    latent = rng.permutation(num_concepts)
    for position, rank in enumerate(range(num_concepts, num_labels)):
        label = label_at_rank[rank]
        parent[label] = label_at_rank[position % num_concepts]
        # Middle label j and tail label j + k share a parent; tail label j + k and middle label
        # j + 1 share a second concept, so what one learns about a concept serves another label.
        second[label] = latent[(position + position // num_concepts) % num_concepts]
    tier_of_rank = np.array(["head", "middle", "tail"])[
        np.minimum(np.arange(num_labels) // num_concepts, 2)
    ]
    dominance_of_rank = np.full(num_labels, "both", dtype=object)
    for tier, share in zip(TIERS, _DOMINANT_SHARE, strict=True):
        ranks = rng.permutation(np.flatnonzero(tier_of_rank == tier))
        dominant = ranks[: round(share * ranks.size)]
        sides = np.resize(rng.permutation(("image", "text")), dominant.size)
        dominance_of_rank[dominant] = sides
    return LabelStructure(
        rank_of_label=rank_of_label.astype(np.int64),
        tier=tuple(str(tier_of_rank[rank]) for rank in rank_of_label),
        parent=parent,
        second=second,
        dominance=tuple(str(dominance_of_rank[rank]) for rank in rank_of_label),
    )


def _make_version_two(
    *, num_samples, num_labels, seed, head_frequency, label_imbalance, parent_cooccurrence, **signal
) -> MultiModalDataset:
    structure = label_structure(num_labels, seed)
    rng = np.random.default_rng([seed, 3])
    labels = _sample_labels_v2(
        rng, num_samples, structure, head_frequency, label_imbalance, parent_cooccurrence
    )
    image, text = _views_v2(rng, labels, structure, **signal)
    return MultiModalDataset(
        image=image,
        text=text,
        labels=labels,
        label_names=tuple(f"{kind}_{label:02d}" for label, kind in enumerate(structure.dominance)),
    )


def _views_v2(
    rng: np.random.Generator,
    labels: np.ndarray,
    structure: LabelStructure,
    *,
    image_dim: int,
    text_dim: int,
    evidence_dropout: float,
    weak_evidence: float,
    concept_share: float,
    image_noise: float,
    label_words: float,
    background_words: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Image `[n, d_x]` and text `[n, d_t]` of version 2 (see `make_synthetic_longtail`)."""
    num_samples, num_labels = labels.shape
    num_concepts = num_labels // 3
    is_head = structure.parent < 0
    # Concept sources, in both modalities: head labels' concepts by rank, then the latent ones,
    # then one residual per label (a head label's residual is its concept).
    concept_of_head = np.where(is_head, structure.rank_of_label, 0)
    num_sources = 2 * num_concepts + num_labels
    residual = 2 * num_concepts + np.arange(num_labels)
    sources = np.stack(
        [
            np.where(is_head, concept_of_head, concept_of_head[np.maximum(structure.parent, 0)]),
            np.where(is_head, concept_of_head, num_concepts + structure.second),
            np.where(is_head, concept_of_head, residual),
        ],
        axis=1,
    )
    weights = np.where(
        is_head[:, None], 1.0 / 3.0, [concept_share / 2, concept_share / 2, 1 - concept_share]
    )
    dominance = np.asarray(structure.dominance)
    image_factor = np.where(dominance == "text", weak_evidence, 1.0)
    text_factor = np.where(dominance == "image", weak_evidence, 1.0)

    directions = _unit_rows(rng, num_sources, image_dim)
    prototypes = np.einsum("ls,lsd->ld", np.sqrt(weights), directions[sources])
    prototypes /= np.linalg.norm(prototypes, axis=1, keepdims=True)
    strength = rng.uniform(0.5, 1.5, size=labels.shape) * image_factor
    strength *= labels * (rng.random(labels.shape) >= evidence_dropout)
    image = strength @ prototypes + _image_nuisance(rng, num_samples, image_dim, image_noise)

    # Word sets: a concept's few frequent tags, and for each middle or tail label a residual set
    # `_RESIDUAL_WORDS` times larger (a rare label's own tags are many and varied), so a few
    # samples do not show all of them; head labels' residual sources get no words.
    vocabulary = rng.permutation(text_dim)
    used = np.ones(num_sources, dtype=bool)
    used[residual[is_head]] = False
    size = np.where(np.arange(num_sources) < 2 * num_concepts, 1, _RESIDUAL_WORDS) * used
    unit = int(text_dim * _LABEL_VOCABULARY_SHARE_V2) // max(1, size.sum())
    size = np.maximum(unit, 1) * size
    start = np.concatenate([[0], np.cumsum(size)[:-1]])
    per_topic = max(1, int(text_dim * _TOPIC_VOCABULARY_SHARE) // _NUM_TEXT_TOPICS)
    topic_vocabulary = vocabulary[size.sum() : size.sum() + per_topic * _NUM_TEXT_TOPICS]
    text = np.zeros((num_samples, text_dim), dtype=np.float32)
    shown = (labels > 0) & (rng.random(labels.shape) >= evidence_dropout)
    for label in range(num_labels):
        rows = np.flatnonzero(shown[:, label])
        rows = np.repeat(rows, rng.poisson(label_words * text_factor[label], size=rows.size))
        source = sources[label, rng.choice(3, size=rows.size, p=weights[label])]
        offset = (rng.random(rows.size) * size[source]).astype(np.int64)
        _scatter_words(text, rows, vocabulary[start[source] + offset])
    _add_nuisance_words(
        rng, text, topic_vocabulary.reshape(_NUM_TEXT_TOPICS, per_topic), background_words
    )
    return np.maximum(image, 0.0).astype(np.float32), text


def _sample_labels_v2(
    rng: np.random.Generator,
    num_samples: int,
    structure: LabelStructure,
    head_frequency: float,
    label_imbalance: float,
    parent_cooccurrence: float,
) -> np.ndarray:
    num_labels = structure.rank_of_label.size
    mu = math.log(label_imbalance) / math.log(num_labels)
    probability = head_frequency * (structure.rank_of_label + 1.0) ** -mu
    labels = np.zeros((num_samples, num_labels), dtype=bool)
    for label in np.argsort(structure.rank_of_label):
        parent = structure.parent[label]
        if parent < 0:
            chance = np.full(num_samples, probability[label])
        else:
            # A share `parent_cooccurrence` of the label's samples carry the parent, the rest do
            # not, and the label keeps its Zipf frequency.
            with_parent = parent_cooccurrence * probability[label] / probability[parent]
            # max(): a parent on every sample (head_frequency 1) leaves no row without it.
            without_parent = max(1 - probability[parent], 1e-12)
            without = (1 - parent_cooccurrence) * probability[label] / without_parent
            chance = np.where(labels[:, parent], min(with_parent, 1.0), without)
        labels[:, label] = rng.random(num_samples) < chance
    # An unlabelled sample gets a head label, so that the other labels keep their frequency and
    # their share of samples with the parent.
    empty = np.flatnonzero(~labels.any(axis=1))
    head = np.flatnonzero(structure.parent < 0)
    chosen = rng.choice(head, size=empty.size, p=probability[head] / probability[head].sum())
    labels[empty, chosen] = True
    return labels.astype(np.float32)
