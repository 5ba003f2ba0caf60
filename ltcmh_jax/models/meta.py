"""Meta features: LtCMH's dynamic meta features (Eq. 8) and MetaCMH's label-memory features."""

import jax
import jax.numpy as jnp
from flax import nnx


class MetaFeature(nnx.Module):
    """M^v = F^v + tanh(FC1(F^v)) * C + tanh(FC2(F^v)) * P^v (Eq. 8), all `[n, bits]`.

    E1 = tanh(FC1(F^v)) and E2 = tanh(FC2(F^v)) are the commonality and individuality selectors.
    C is the modality's own commonality estimate C_hat^v (see docs/DESIGN.md, Model). A selector
    exists only for a memory the variant keeps (`use_commonality`, `use_individuality`).

    With `normalize_selector_input`, the selectors read F^v / rms(F^v) (per row) instead of F^v:
    the text net's F^y can be 10x smaller than F^x, and tanh of a near-zero input is a near-zero
    gate, so a raw-input selector can switch a modality's meta branch off by scale alone. Those
    selectors also start closed (zero kernel and bias, E = 0, so M^v = F^v at the start, DCMH's
    features): the memories C_hat^v and P^v are not trained for hashing, and gates opened at
    random perturbed M^v before the hash loss could judge them (docs/DESIGN.md, Model). And the
    memories are rescaled per row to the root mean square of F^v: M^v stays within 3x F^v's size
    whatever the auto-encoder's scale does (a scale-free J1 leaves C*'s scale free, and a growing
    C_hat^v once blew the balance term of Eq. 10 up to 3e3).
    """

    def __init__(
        self,
        bits: int,
        *,
        use_commonality: bool = True,
        use_individuality: bool = True,
        normalize_selector_input: bool = False,
        rngs: nnx.Rngs,
    ):
        self.normalize_selector_input = normalize_selector_input
        start = {"kernel_init": nnx.initializers.zeros} if normalize_selector_input else {}
        self.commonality_selector = (
            nnx.Linear(bits, bits, rngs=rngs, **start) if use_commonality else None
        )
        self.individuality_selector = (
            nnx.Linear(bits, bits, rngs=rngs, **start) if use_individuality else None
        )

    def __call__(
        self,
        direct: jax.Array,
        *,
        commonality: jax.Array | None = None,
        individuality: jax.Array | None = None,
    ) -> jax.Array:
        for name, memory, selector in (
            ("commonality", commonality, self.commonality_selector),
            ("individuality", individuality, self.individuality_selector),
        ):
            if (memory is None) != (selector is None):
                raise ValueError(
                    f"MetaFeature was built {'with' if selector is not None else 'without'} a "
                    f"{name} selector but got {name}={'None' if memory is None else 'an array'}"
                )
            if memory is not None and memory.shape != direct.shape:
                raise ValueError(
                    f"MetaFeature: {name} has shape {memory.shape}, F^v has {direct.shape}"
                )
        # The gates first: this order of operations gives the earlier code's results bit for
        # bit (the README's main job); computing them after the rescale moved its MAP by 0.002.
        commonality_gate, individuality_gate = self.selectors(direct)
        if self.normalize_selector_input:
            size = root_mean_square(direct)
            if commonality is not None:
                commonality = selector_scale(commonality) * size
            if individuality is not None:
                individuality = selector_scale(individuality) * size
        meta = direct
        if commonality is not None:
            meta = meta + commonality_gate * commonality
        if individuality is not None:
            meta = meta + individuality_gate * individuality
        return meta

    def selectors(self, direct: jax.Array) -> tuple[jax.Array | None, jax.Array | None]:
        """`(E1, E2)` = (tanh(FC1(.)), tanh(FC2(.))) of F^v (or F^v / rms(F^v)), each `[n, bits]`
        or None for a selector the variant does not keep."""
        selector_input = selector_scale(direct) if self.normalize_selector_input else direct
        return tuple(
            None if selector is None else jnp.tanh(selector(selector_input))
            for selector in (self.commonality_selector, self.individuality_selector)
        )


def root_mean_square(values: jax.Array, *, epsilon: float = 1e-6) -> jax.Array:
    """`[n, 1]` sqrt(mean(values^2) + epsilon^2) per row: smooth at a zero row, where the plain
    root's derivative is infinite (a text with no words has F^y = 0 exactly at the start, and
    0 * inf made the first text step NaN on the icon set)."""
    return jnp.sqrt(jnp.mean(jnp.square(values), axis=-1, keepdims=True) + epsilon**2)


def selector_scale(direct: jax.Array, *, epsilon: float = 1e-6) -> jax.Array:
    """`[n, k]` rows of F^v divided by their root mean square (a parameter-free RMS norm), so a
    selector sees the same input whatever the scale of F^v; a zero row stays zero."""
    return direct / root_mean_square(direct, epsilon=epsilon)


class Memory(nnx.Variable):
    """Label centroids of MetaCMH's memory: set from the training set, never trained by SGD."""


def label_centroids(features: jax.Array, labels: jax.Array) -> jax.Array:
    """Per-label mean of the features of the samples annotated with it: `[c, k]`.

    `features` `[n, k]`, `labels` `[n, c]` multi-hot: a sample with several labels contributes to
    each. centroid_a = sum_i L_ia f_i / sum_i L_ia; a label with no sample gets a zero centroid.
    """
    if features.ndim != 2 or labels.ndim != 2 or features.shape[0] != labels.shape[0]:
        raise ValueError(
            f"label_centroids expects features [n, k] and labels [n, c], got {features.shape} "
            f"and {labels.shape}"
        )
    labels = jnp.asarray(labels, jnp.float32)
    sums = labels.T @ jnp.asarray(features, jnp.float32)
    counts = jnp.sum(labels, axis=0)[:, None]
    # The double `where` keeps an empty label's centroid (and its gradient) at 0, not 0/0 = NaN.
    safe_counts = jnp.where(counts > 0, counts, 1.0)
    return jnp.where(counts > 0, sums / safe_counts, 0.0)


class MemoryMetaFeature(nnx.Module):
    """MetaCMH's meta feature (OLTR's meta-embedding without reachability scaling).

    memory = softmax(FC_hal(F^v)) @ centroids^v, M^v = F^v + tanh(FC_sel(F^v)) * memory, with
    `F^v` `[n, bits]` and `centroids` `[num_labels, bits]` (zeros until `set_centroids`).
    """

    def __init__(self, bits: int, num_labels: int, *, rngs: nnx.Rngs):
        self.hallucinator = nnx.Linear(bits, num_labels, rngs=rngs)
        self.selector = nnx.Linear(bits, bits, rngs=rngs)
        self.centroids = Memory(jnp.zeros((num_labels, bits), jnp.float32))

    def set_centroids(self, centroids: jax.Array) -> None:
        expected = tuple(self.centroids.shape)
        if tuple(centroids.shape) != expected:
            raise ValueError(f"centroids must have shape {expected}, got {tuple(centroids.shape)}")
        self.centroids[...] = jnp.asarray(centroids, jnp.float32)

    def memory_feature(self, direct: jax.Array) -> jax.Array:
        """softmax(FC_hal(F^v)) @ centroids, `[n, bits]`: a mixture of label centroids."""
        return jax.nn.softmax(self.hallucinator(direct), axis=-1) @ self.centroids[...]

    def __call__(self, direct: jax.Array) -> jax.Array:
        return direct + jnp.tanh(self.selector(direct)) * self.memory_feature(direct)
