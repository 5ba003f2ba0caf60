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

Memory of ours: XLA's compiled `memory_analysis()` (temporaries + arguments + outputs), the peak
of device buffers the computation needs. The NumPy loop's peak is `tracemalloc`'s.

Run from the repository root:
  python -m benchmarks.losses
Timings are the minimum over `--repeats` interleaved runs (other processes share the CPU).
"""

import time
import tracemalloc

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags

from ltcmh_jax import losses
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


def main(argv):
    del argv
    print(f"jax {jax.__version__} on {jax.devices()[0].platform}")
    bench_hsic(_REPEATS.value)
    bench_hausdorff(_REPEATS.value)


if __name__ == "__main__":
    app.run(main)
