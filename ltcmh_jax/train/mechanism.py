"""Per-epoch mechanism diagnostics of a run (`diagnostics` applied to the trainer's state): does
each part of LtCMH do anything? Recorded in metrics.jsonl next to the loss terms."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from ltcmh_jax import data as data_lib
from ltcmh_jax import diagnostics
from ltcmh_jax.train.state import merge_model

# Held-out rows (queries) the query-time commonality is compared with C* on.
HELD_OUT_ROWS = 512


def related_labels(config, num_labels: int) -> np.ndarray | None:
    """`[c, c]` bool: labels that share a concept, where the data set knows it (the synthetic
    generator's version 2: a parent and its children, two children of one parent or of one
    second concept); None elsewhere."""
    if config.dataset != "synthetic" or config.synthetic_version != 2:
        return None
    structure = data_lib.label_structure(num_labels, config.data_seed)
    parent, second = np.asarray(structure.parent), np.asarray(structure.second)
    related = (parent[:, None] == np.arange(num_labels)[None, :]) | (
        parent[None, :] == np.arange(num_labels)[:, None]
    )
    related |= (parent[:, None] == parent[None, :]) & (parent[:, None] >= 0)
    related |= (second[:, None] == second[None, :]) & (second[:, None] >= 0)
    return related


def _meta_effect(direct, meta):
    # `diagnostics.flipped_bit_share` and `diagnostics.meta_sign_agreement` on the device: only
    # two scalars come back to the host, not the two [N, k] buffers, every epoch.
    flipped = jnp.mean((direct >= 0) != (meta >= 0))
    added = meta - direct
    changed = added != 0
    agree = jnp.sum(changed & (jnp.sign(added) == jnp.sign(direct)))
    agreement = jnp.where(jnp.any(changed), agree / jnp.maximum(jnp.sum(changed), 1), jnp.nan)
    return flipped, agreement


def _gate_sizes(state, features, *, graphdef, modality: str):
    # Mean |E1|, |E2| of Eq. 8's selectors on held-out rows (NaN for a selector that is absent).
    meta = getattr(merge_model(graphdef, state), f"{modality}_meta")
    return tuple(
        jnp.nan if gate is None else jnp.mean(jnp.abs(gate)) for gate in meta.selectors(features)
    )


def _commonality_outputs(state, features_x, features_y, *, graphdef):
    out = merge_model(graphdef, state).autoencode(features_x, features_y)
    return out.commonality, out.commonality_estimate_x, out.commonality_estimate_y


class MechanismProbe:
    """The diagnostics of one trainer's states (each jitted function compiles once)."""

    def __init__(self, trainer):
        self.trainer = trainer
        self.related = related_labels(trainer.config, trainer.train_labels.shape[1])
        self.rows = np.asarray(trainer.split.query)[:HELD_OUT_ROWS]
        self.commonality = jax.jit(
            functools.partial(_commonality_outputs, graphdef=trainer.graphdef)
        )
        self.meta_effect = jax.jit(_meta_effect)
        self.gates = {
            name: jax.jit(functools.partial(_gate_sizes, graphdef=trainer.graphdef, modality=name))
            for name in trainer.gated_modalities
        }

    def __call__(self, state, summary: dict[str, float]) -> dict[str, float]:
        trainer, config = self.trainer, self.trainer.config
        row = diagnostics.weighted_terms(
            summary, alpha=config.alpha, beta=config.beta, gamma=config.gamma, eta=config.eta
        )
        for name, modality in state.modalities.items():
            flipped, agreement = map(float, self.meta_effect(modality.features, modality.meta))
            row[f"diag_bits_flipped_{name}"] = flipped
            if np.isfinite(agreement):
                row[f"diag_meta_sign_agreement_{name}"] = agreement
            if self.related is not None and trainer.has_autoencoder:
                means = diagnostics.similarity_by_relation(
                    np.asarray(modality.similarity), self.related
                )
                row[f"diag_r_related_{name}"] = means["related"]
                row[f"diag_r_unrelated_{name}"] = means["unrelated"]
        features = {}  # F^v of the held-out rows, encoded once for what needs them

        def held_out(name):
            if name not in features:
                features[name] = trainer.encode(state, name, self.rows)[0]
            return features[name]

        for name, gate in self.gates.items():
            sizes = gate(state, held_out(name))
            for part, size in zip(("commonality", "individuality"), sizes, strict=True):
                if np.isfinite(float(size)):
                    row[f"diag_gate_{part}_{name}"] = float(size)
        if trainer.has_autoencoder and len(trainer.modalities) == 2:
            common, estimate_x, estimate_y = self.commonality(
                state, held_out("image"), held_out("text")
            )
            if common is not None:
                common = np.asarray(common)
                for name, estimate in (("image", estimate_x), ("text", estimate_y)):
                    row[f"diag_commonality_corr_{name}"] = diagnostics.correlation(
                        np.asarray(estimate), common
                    )
                row["diag_commonality_label_share"] = diagnostics.label_variance_share(
                    common, np.asarray(trainer.dataset.labels[self.rows])
                )
        return row
