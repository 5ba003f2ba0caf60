"""Where the fused likelihood runs blocked and in bfloat16 (`compile.likelihood_settings`)."""

import jax.numpy as jnp
import pytest

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
