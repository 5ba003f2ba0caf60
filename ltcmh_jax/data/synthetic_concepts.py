"""Version 2 of the synthetic set: labels built from shared concepts (`label_structure`).

Head labels are concepts; a middle or tail label is its parent head concept, an unlabelled second
concept and a residual of its own, in both modalities, and mostly co-occurs with its parent. Every
label shows in both modalities, but some more strongly in one ("dominance"), tail labels more
often than head labels. The nuisance structure is version 1's (`synthetic_nuisance`).
`make_synthetic_longtail(version=2)` in `synthetic` checks the arguments and calls
`make_version_two`.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from ltcmh_jax.data.dataset import MultiModalDataset
from ltcmh_jax.data.synthetic_nuisance import (
    NUM_TEXT_TOPICS,
    TOPIC_VOCABULARY_SHARE,
    add_nuisance_words,
    image_nuisance,
    scatter_words,
    unit_rows,
)

# Sources (concepts and residuals) take twice the label words' share of version 1, since there
# are about twice as many word sets.
_LABEL_VOCABULARY_SHARE_V2 = 0.5
_RESIDUAL_WORDS = 3
TIERS = ("head", "middle", "tail")
DOMINANCE_KINDS = ("both", "image", "text")
# Share of each tier's labels whose evidence is strong in one modality only: the paper argues
# tail labels lean on one modality more often than head labels do.
_DOMINANT_SHARE = (0.25, 0.5, 0.75)


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


def make_version_two(
    *, num_samples, num_labels, seed, head_frequency, label_imbalance, parent_cooccurrence, **signal
) -> MultiModalDataset:
    """Version 2 of `make_synthetic_longtail`, whose docstring gives the model; the arguments are
    its own, already checked there (`image_dim`, `text_dim` and the evidence ones in `signal`)."""
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

    directions = unit_rows(rng, num_sources, image_dim)
    prototypes = np.einsum("ls,lsd->ld", np.sqrt(weights), directions[sources])
    prototypes /= np.linalg.norm(prototypes, axis=1, keepdims=True)
    strength = rng.uniform(0.5, 1.5, size=labels.shape) * image_factor
    strength *= labels * (rng.random(labels.shape) >= evidence_dropout)
    image = strength @ prototypes + image_nuisance(rng, num_samples, image_dim, image_noise)

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
    per_topic = max(1, int(text_dim * TOPIC_VOCABULARY_SHARE) // NUM_TEXT_TOPICS)
    topic_vocabulary = vocabulary[size.sum() : size.sum() + per_topic * NUM_TEXT_TOPICS]
    text = np.zeros((num_samples, text_dim), dtype=np.float32)
    shown = (labels > 0) & (rng.random(labels.shape) >= evidence_dropout)
    for label in range(num_labels):
        rows = np.flatnonzero(shown[:, label])
        rows = np.repeat(rows, rng.poisson(label_words * text_factor[label], size=rows.size))
        source = sources[label, rng.choice(3, size=rows.size, p=weights[label])]
        offset = (rng.random(rows.size) * size[source]).astype(np.int64)
        scatter_words(text, rows, vocabulary[start[source] + offset])
    add_nuisance_words(
        rng, text, topic_vocabulary.reshape(NUM_TEXT_TOPICS, per_topic), background_words
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
