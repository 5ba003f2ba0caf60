"""Speed and memory of `ltcmh_jax.losses.hsic` and `average_hausdorff` against plain baselines.

- HSIC (Eq. 5), forward + gradient at n = 1024, d = 64: ours (centred kernels, O(n^2 d)) against
  the literal (n-1)^-2 tr(K^x A K^y A) with the centring matrix A built (n^3 matmuls). Both use
  the same squared distances; the baseline takes the median heuristic by `jnp.nanmedian` (a sort),
  ours by bisection. The second line fixes sigma, so only the centring differs.
- Average Hausdorff H (Eq. 4) for 24 labels with Zipf sizes 3000 down to 60 (Flickr25K-LT's
  z_1 = 3000, z_c = 60; 8,567 memberships) and the same sizes x `--large_scale` (about 19k),
  d = 64, one label per sample (so n = memberships, the worst case for ours): jitted ours against
  a NumPy loop over label pairs (a <= b, one BLAS distance block per pair, both directed minima
  from it, float32). The values are compared as well.

`--case=synthetic` / `--case=aloi`: H alone, forward and forward + gradient (of a weighted sum
of H), on the training labels of the synthetic main job (experiments/configs/synthetic.flags: n
3,099, c 24, 6,181 memberships) or of ALOI's split (n 4,401, c 1,000, one label per row, Zipf
counts 100 down to 2; no data file needed), with features around random label centres, d = 64;
against a NumPy loop over labels (one BLAS block `[n, |b|]` per label, float32), the error
against the same loop in float64. `--case=aloi` also times J1 (sum, with its gradient) and S for a
batch of 128: ours (present labels gathered) against the same sums over all c labels.

Measured on 2 CPU cores shared with other processes (load average 8-10: only ratios within one
run mean much); "before" is the same script run against main's code at 55729af (per-label tiles
of 256 members, dense G):
  python -m benchmarks.losses --case=aloi --repeats=3
    before: ours forward 5.493 s   forward + gradient 5.457 s
    after:  ours forward 0.834 s   forward + gradient 1.517 s   NumPy label loop 7.9 s
            max |H - float64 loop| 7.6e-06 (1.3e-05 in a second run: 1.075 s / 1.483 s)
            J1 + gradient: ours 3.4 ms, all c labels 1212 ms; S: ours 5.9 ms, dense 15.9 ms
  python -m benchmarks.losses --case=synthetic --repeats=3
    before: ours forward 0.099 s   forward + gradient 0.089 s
    after:  ours forward 0.068 s   forward + gradient 0.097 s   NumPy label loop 0.36 s
End to end, seconds per epoch (epoch 1 includes compilation), same machine and load, run one
after another:
  python -m experiments.main --flagfile=experiments/configs/aloi.flags \
    --data_path=/work/main/data/mvcluster-1.16-py3-none-any.whl --workdir=/tmp/haus_aloi \
    --epochs=3 --min_steps=0
    LtCMH before 87.4, 82.6, 73.5   after 32.7, 4.6, 3.8   (DCMH, --method=dcmh: 10.7, 4.0, 3.6
    before; 10.6, 1.8, 1.9 after, from S)
  python -m experiments.main --flagfile=experiments/configs/synthetic.flags --epochs=3 \
    --min_steps=0 --workdir=/tmp/haus_synthetic
    before 20.5, 2.2, 2.4 and 24.5, 3.4, 3.2   after 24.9, 3.1, 3.1 and 26.5, 3.3, 2.7 (the text
    phase, unchanged, is most of it and moves with the load; label similarity 0.26 -> 0.17 s)

Memory of ours: XLA's compiled `memory_analysis()` (temporaries + arguments + outputs), the peak
of device buffers the computation needs. The NumPy loop's peak is `tracemalloc`'s.

Run from the repository root:
  python -m benchmarks.losses [--case=synthetic|aloi]
Timings are the minimum over `--repeats` interleaved runs (other processes share the CPU).
"""

import time
import tracemalloc

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags

from ltcmh_jax import data, losses
from ltcmh_jax.losses.distances import squared_distances

_REPEATS = flags.DEFINE_integer("repeats", 5, "Timed runs of each side; the minimum is reported.")
_HSIC_N = flags.DEFINE_integer("hsic_n", 1024, "Samples for HSIC.")
_DIM = flags.DEFINE_integer("dim", 64, "Feature dimension d.")
_NUM_LABELS = flags.DEFINE_integer("num_labels", 24, "Labels c for the Hausdorff benchmark.")
_Z1 = flags.DEFINE_integer("z1", 3000, "Largest label size.")
_ZC = flags.DEFINE_integer("zc", 60, "Smallest label size.")
_LARGE_SCALE = flags.DEFINE_float("large_scale", 2.2, "Size multiplier of the second Zipf set.")
_BLOCK_SIZE = flags.DEFINE_integer("block_size", 1024, "average_hausdorff block_size.")
_SEED = flags.DEFINE_integer("seed", 0, "Seed of the synthetic data.")
_CASE = flags.DEFINE_enum(
    "case",
    "zipf",
    ["zipf", "synthetic", "aloi"],
    "zipf: HSIC and H on the two Zipf sets; synthetic / aloi: H alone, forward and forward + "
    "backward, on the training labels of the synthetic main job / ALOI's split.",
)


def _best_time(fn, repeats):
    """Minimum wall time of `fn()` over `repeats` calls (after one warm-up call)."""
    jax.block_until_ready(fn())
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn())
        best = min(best, time.perf_counter() - start)
    return best


def naive_hsic(x, y, sigma_x=None, sigma_y=None):
    """(n-1)^-2 tr(K^x A K^y A) with A = I - e e^T / n formed explicitly (the baseline).

    Same distances as ours; the median heuristic by `jnp.nanmedian` (a sort).
    """
    n = x.shape[0]

    def kernel(points, sigma):
        centred = points - jnp.mean(points, axis=0)
        distances = squared_distances(centred, centred)
        if sigma is None:
            pairs = distances[np.triu_indices(n, k=1)]
            median = jnp.nanmedian(jnp.where(pairs > 0, pairs, jnp.nan))
            sigma = jax.lax.stop_gradient(jnp.where(jnp.isnan(median), 1.0, median))
        return jnp.exp(-distances / sigma)

    centring = jnp.eye(n) - jnp.ones((n, n)) / n
    kernel_x, kernel_y = kernel(x, sigma_x), kernel(y, sigma_y)
    return jnp.trace(kernel_x @ centring @ kernel_y @ centring) / (n - 1) ** 2


def bench_hsic(repeats):
    rng = np.random.default_rng(_SEED.value)
    n, dim = _HSIC_N.value, _DIM.value
    x = jnp.asarray(rng.standard_normal((n, dim)), jnp.float32)
    y = jnp.asarray(rng.standard_normal((n, dim)) + 0.5 * np.asarray(x), jnp.float32)
    print(f"HSIC forward + gradient, n = {n}, d = {dim}, float32")
    for label, sigma in (("median heuristic", None), ("fixed sigma = 2d", 2.0 * dim)):
        ours = jax.jit(
            jax.value_and_grad(
                lambda a, b, s=sigma: losses.hsic(a, b, sigma_x=s, sigma_y=s), argnums=(0, 1)
            )
        )
        base = jax.jit(
            jax.value_and_grad(lambda a, b, s=sigma: naive_hsic(a, b, s, s), argnums=(0, 1))
        )
        value_ours, value_base = float(ours(x, y)[0]), float(base(x, y)[0])
        t_ours = _best_time(lambda ours=ours: ours(x, y), repeats)
        t_base = _best_time(lambda base=base: base(x, y), repeats)
        print(
            f"  {label:17s} ours {t_ours * 1e3:8.1f} ms   A-built {t_base * 1e3:8.1f} ms   "
            f"speed-up {t_base / t_ours:5.1f}x   |value diff| {abs(value_ours - value_base):.1e}"
        )


def zipf_sizes(num_labels, z1, zc, scale=1.0):
    """z_a = round(scale * z1 * a^-mu), mu = ln(z1 / zc) / ln(c) (Zipf, z_c = scale * zc)."""
    mu = np.log(z1 / zc) / np.log(num_labels)
    return np.round(scale * z1 * np.arange(1, num_labels + 1) ** -mu).astype(int)


def clustered_features(sizes, dim, seed):
    """One label per sample, label a's samples around its own centre: `[n, d]`, `[n, c]`."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.eye(len(sizes), dtype=np.float32), sizes, axis=0)
    centres = 2.0 * rng.standard_normal((len(sizes), dim))
    features = labels @ centres + rng.standard_normal((labels.shape[0], dim))
    return features.astype(np.float32), labels


def numpy_pair_loop(features, labels):
    """H by a loop over label pairs a <= b: one BLAS distance block per pair (the baseline)."""
    num_labels = labels.shape[1]
    members = [np.flatnonzero(labels[:, a]) for a in range(num_labels)]
    squared_norms = np.einsum("ij,ij->i", features, features)
    hausdorff = np.zeros((num_labels, num_labels))
    for a in range(num_labels):
        for b in range(a, num_labels):
            rows, cols = members[a], members[b]
            squared = (
                squared_norms[rows][:, None]
                + squared_norms[cols][None, :]
                - 2.0 * features[rows] @ features[cols].T
            )
            distances = np.sqrt(np.maximum(squared, 0.0))
            total = distances.min(axis=1).sum() + distances.min(axis=0).sum()
            hausdorff[a, b] = hausdorff[b, a] = total / (len(rows) + len(cols))
    np.fill_diagonal(hausdorff, 0.0)
    return hausdorff


def bench_hausdorff_once(sizes, dim, block_size, repeats):
    features, labels = clustered_features(sizes, dim, _SEED.value)
    n = features.shape[0]
    print(
        f"average_hausdorff, c = {len(sizes)}, sizes {sizes[0]}..{sizes[-1]}, "
        f"{int(sizes.sum())} memberships, n = {n}, d = {dim}, block_size = {block_size}"
    )
    ours = jax.jit(lambda f, y: losses.average_hausdorff(f, y, block_size=block_size))
    features_jax, labels_jax = jnp.asarray(features), jnp.asarray(labels)
    memory = ours.lower(features_jax, labels_jax).compile().memory_analysis()
    ours_bytes = (
        memory.temp_size_in_bytes + memory.argument_size_in_bytes + memory.output_size_in_bytes
    )
    tracemalloc.start()
    reference = numpy_pair_loop(features, labels)
    numpy_peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    error = np.max(np.abs(np.asarray(ours(features_jax, labels_jax)) - reference))
    t_ours = _best_time(lambda: ours(features_jax, labels_jax), repeats)
    t_base = _best_time(lambda: numpy_pair_loop(features, labels), repeats)
    print(
        f"  ours {t_ours:6.3f} s   NumPy pair loop {t_base:6.3f} s   "
        f"speed-up {t_base / t_ours:5.2f}x   max |H diff| {error:.1e}"
    )
    print(
        f"  memory: ours {ours_bytes / 2**20:6.1f} MiB compiled "
        f"(temp {memory.temp_size_in_bytes / 2**20:.1f}; n*n*4 would be {n * n * 4 / 2**20:.0f})"
        f"   NumPy loop peak {numpy_peak / 2**20:6.1f} MiB (tracemalloc)"
    )


def bench_hausdorff(repeats):
    for scale in (1.0, _LARGE_SCALE.value):
        sizes = zipf_sizes(_NUM_LABELS.value, _Z1.value, _ZC.value, scale)
        bench_hausdorff_once(sizes, _DIM.value, _BLOCK_SIZE.value, repeats)


def synthetic_job_labels():
    """`[n, c]` training labels of the synthetic main job (experiments/configs/synthetic.flags)."""
    from experiments import settings
    from ltcmh_jax.train import TrainConfig, inputs

    config = TrainConfig(**settings.read_flagfile("experiments/configs/synthetic.flags"))
    dataset, _ = inputs.load(config)
    config = inputs.resolve_defaults(config, dataset.num_samples, dataset.num_labels)
    split = inputs.make_split(config, dataset)
    return np.asarray(dataset.labels[np.asarray(split.train)], np.float32)


def aloi_split_labels():
    """`[4401, 1000]` one label per row with the Zipf counts 100 down to 2 that ALOI's split
    (data.ALOI_SPLIT: z1 100, imbalance factor 50) meets exactly; no data file needed."""
    counts = data.zipf_counts(1000, data.ALOI_SPLIT["z1"], data.ALOI_SPLIT["imbalance_factor"])
    return np.repeat(np.eye(len(counts), dtype=np.float32), counts, axis=0)


def features_for(labels, dim, seed):
    """`[n, d]` float32: each row around the mean of its labels' random centres, plus noise."""
    rng = np.random.default_rng(seed)
    centres = 2.0 * rng.standard_normal((labels.shape[1], dim))
    means = labels @ centres / np.maximum(labels.sum(axis=1, keepdims=True), 1)
    return (means + rng.standard_normal((labels.shape[0], dim))).astype(np.float32)


def numpy_label_loop(features, labels):
    """H by a loop over labels b: D_ib = min over b's members by one BLAS block `[n, |b|]`, then
    G = L^T D and H = (G + G^T) / (|a| + |b|), in the dtype of `features` (the baseline for many
    labels, where the pair loop would run c^2 / 2 blocks)."""
    features = features - features.mean(axis=0)
    squared_norms = np.einsum("ij,ij->i", features, features)
    nearest = np.zeros((features.shape[0], labels.shape[1]), features.dtype)
    for b in range(labels.shape[1]):
        cols = np.flatnonzero(labels[:, b])
        squared = (
            squared_norms[:, None]
            + squared_norms[cols][None, :]
            - 2.0 * features @ features[cols].T
        )
        nearest[:, b] = np.sqrt(np.maximum(squared, 0.0)).min(axis=1)
    sums = labels.T @ nearest
    sizes = labels.sum(axis=0)
    hausdorff = (sums + sums.T) / (sizes[:, None] + sizes[None, :])
    np.fill_diagonal(hausdorff, 0.0)
    return hausdorff


def bench_hausdorff_case(case, repeats):
    labels = synthetic_job_labels() if case == "synthetic" else aloi_split_labels()
    features = features_for(labels, _DIM.value, _SEED.value)
    n, num_labels = labels.shape
    block_size = _BLOCK_SIZE.value
    print(
        f"average_hausdorff, {case}: n = {n}, c = {num_labels}, "
        f"{int(labels.sum())} memberships, sizes {int(labels.sum(0).max())}.."
        f"{int(labels.sum(0).min())}, d = {_DIM.value}, block_size = {block_size}"
    )
    features_jax, labels_jax = jnp.asarray(features), jnp.asarray(labels)
    weights = jnp.asarray(np.random.default_rng(1).random((num_labels, num_labels)), jnp.float32)

    def weighted(points, y):
        distances = losses.average_hausdorff(points, y, block_size=block_size)
        return jnp.sum(weights * jnp.where(jnp.isfinite(distances), distances, 0.0))

    forward = jax.jit(lambda f, y: losses.average_hausdorff(f, y, block_size=block_size))
    backward = jax.jit(jax.value_and_grad(weighted))
    reference = numpy_label_loop(features.astype(np.float64), labels.astype(np.float64))
    error = np.max(np.abs(np.asarray(forward(features_jax, labels_jax)) - reference))
    t_forward = _best_time(lambda: forward(features_jax, labels_jax), repeats)
    t_backward = _best_time(lambda: backward(features_jax, labels_jax), repeats)
    t_base = _best_time(lambda: numpy_label_loop(features, labels), repeats)
    print(
        f"  ours forward {t_forward:6.3f} s   forward + gradient {t_backward:6.3f} s   "
        f"NumPy label loop (float32) {t_base:6.3f} s   max |H - float64 loop| {error:.1e}"
    )


def bench_batch_terms(labels, repeats, batch_size=128, bits=64):
    """J1 (value and gradient) and S of one batch against the training set: ours (present labels
    gathered) against the same sums over all c labels (`[c, c, k]` differences; the dense
    `[b, c] x [c, n]` product)."""
    from ltcmh_jax.losses import autoencoder as autoencoder_losses

    rng = np.random.default_rng(_SEED.value)
    num_labels = labels.shape[1]
    batch = jnp.asarray(labels[rng.choice(labels.shape[0], batch_size, replace=False)])
    commonality = jnp.asarray(rng.standard_normal((batch_size, bits)), jnp.float32)
    r = rng.random((num_labels, num_labels))
    r = jnp.asarray((r + r.T) / 2, jnp.float32)

    def full_j1(c, y, r_x, r_y):
        weights = (y != 0).astype(c.dtype)
        sizes = weights.sum(axis=0)
        present = sizes > 0
        prototypes = weights.T @ c / jnp.where(present, sizes, 1.0)[:, None]
        pair = jnp.where(present[:, None] & present[None, :], r_x + r_y, 0.0)
        return autoencoder_losses.weighted_prototype_spread(prototypes, pair)

    ours = jax.jit(jax.value_and_grad(losses.commonality_regularizer))
    full = jax.jit(jax.value_and_grad(full_j1))
    args = (commonality, batch, r, r)
    t_ours, t_full = (_best_time(lambda f=f: f(*args), repeats) for f in (ours, full))
    difference = abs(float(ours(*args)[0]) - float(full(*args)[0]))
    print(
        f"J1 (sum) + gradient, batch {batch_size}, k = {bits}: ours {t_ours * 1e3:7.1f} ms   "
        f"all c labels {t_full * 1e3:7.1f} ms   |value diff| {difference:.1e}"
    )
    train = jnp.asarray(labels)
    ours_s = jax.jit(losses.similarity_matrix)
    dense_s = jax.jit(lambda a, b: ((a @ b.T) > 0).astype(jnp.float32))
    t_ours = _best_time(lambda: ours_s(batch, train), repeats)
    t_dense = _best_time(lambda: dense_s(batch, train), repeats)
    same = bool(jnp.all(ours_s(batch, train) == dense_s(batch, train)))
    print(
        f"S, batch {batch_size} x n = {labels.shape[0]}: ours {t_ours * 1e3:7.1f} ms   "
        f"dense product {t_dense * 1e3:7.1f} ms   equal {same}"
    )


def main(argv):
    del argv
    print(f"jax {jax.__version__} on {jax.devices()[0].platform}")
    if _CASE.value != "zipf":
        bench_hausdorff_case(_CASE.value, _REPEATS.value)
        if _CASE.value == "aloi":
            bench_batch_terms(aloi_split_labels(), _REPEATS.value)
        return
    bench_hsic(_REPEATS.value)
    bench_hausdorff(_REPEATS.value)


if __name__ == "__main__":
    app.run(main)
