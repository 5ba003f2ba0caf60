"""Where the fused likelihood runs blocked and in bfloat16 (`compile.likelihood_settings`), and
the Hausdorff search's block per platform (`compile.hausdorff_block`)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ltcmh_jax import losses
from ltcmh_jax.train import compile as compile_lib


@pytest.mark.parametrize(
    "mixed_precision, platform, block, dtype",
    [
        ("auto", "cpu", compile_lib.CPU_LIKELIHOOD_BLOCK, jnp.float32),
        ("auto", "gpu", None, jnp.bfloat16),
        ("auto", "tpu", None, jnp.bfloat16),
        ("on", "cpu", compile_lib.CPU_LIKELIHOOD_BLOCK, jnp.bfloat16),
        ("off", "gpu", None, jnp.float32),
    ],
)
def test_likelihood_settings(mixed_precision, platform, block, dtype):
    assert compile_lib.likelihood_settings(mixed_precision, platform) == (block, jnp.dtype(dtype))


def test_likelihood_settings_names_the_flag():
    with pytest.raises(ValueError, match="--mixed_precision: must be one of"):
        compile_lib.likelihood_settings("bf16", "cpu")


@pytest.mark.parametrize(
    ("platform", "block"),
    [("cpu", 1024), ("gpu", 8192), ("tpu", 8192)],
)
def test_hausdorff_block_per_platform(platform, block):
    assert compile_lib.hausdorff_block(platform) == block


def test_hausdorff_blocks_of_cpu_and_accelerator_give_the_same_distances():
    # The block only groups rows: every entry comes from the same tiles whatever the block, so
    # the accelerator's larger blocks change the speed of R's update, not R.
    rng = np.random.default_rng(0)
    n, num_labels = 2500, 12
    features = jnp.asarray(rng.standard_normal((n, 16)), jnp.float32)
    labels = rng.random((n, num_labels)) < 0.15
    labels[np.arange(n), rng.integers(0, num_labels, n)] = True
    distances = {
        platform: np.asarray(
            jax.jit(losses.average_hausdorff, static_argnames="block_size")(
                features, jnp.asarray(labels), block_size=compile_lib.hausdorff_block(platform)
            )
        )
        for platform in ("cpu", "gpu")
    }
    assert np.all(np.isfinite(distances["cpu"]))
    np.testing.assert_array_equal(distances["gpu"], distances["cpu"])
