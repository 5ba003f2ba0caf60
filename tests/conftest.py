"""Shared pytest set-up: the repository root on sys.path (for `experiments`), and `TINY`, the tiny
training configuration every training test starts from (`from conftest import TINY`)."""

import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# One persistent XLA compilation cache for the session, set before jax is imported and inherited by
# the subprocesses the entry-point tests start: each test builds its own Trainer, whose jitted
# steps are new functions to jax's in-memory cache but the same programs, so without it most of the
# suite's time went to compiling the same tiny programs again.
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
    import tempfile

    os.environ["JAX_COMPILATION_CACHE_DIR"] = tempfile.mkdtemp(prefix="ltcmh-jax-test-xla-")
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.2")
# On a GPU the tests compare against NumPy to float32 precision and rerun training bit for bit:
# XLA's GPU scatter-adds are otherwise free to add in any order (BUILD.md, CUDA GPU). The flag is
# read by the GPU backend only; a CPU ignores it.
if "--xla_gpu_deterministic_ops" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (
        os.environ.get("XLA_FLAGS", "") + " --xla_gpu_deterministic_ops=true"
    ).strip()
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import jax  # noqa: E402 -- after the XLA flags

# The default float32 matmul of a recent GPU rounds its inputs to TF32 (10-bit mantissa), about
# 1e-3 relative: right for training, too coarse for the references the tests check at 1e-5. A
# CPU computes float32 products in full either way, so this changes nothing there.
if jax.default_backend() != "cpu":
    jax.config.update("jax_default_matmul_precision", "highest")

from ltcmh_jax.train import TrainConfig  # noqa: E402 -- needs the root on sys.path first

# experiments/configs/tiny.flags as a config: 342 training samples, 16 bits, 10 steps per phase.
TINY = TrainConfig(
    synthetic_samples=1500,
    z1=150,
    imbalance_factor=10,
    num_query=200,
    bits=16,
    epochs=4,
    batch_size=32,
    lr_image=1e-2,
    lr_text=1e-2,
    lr_autoencoder=1e-2,
    min_steps=0,
    text_hidden=256,
    ae_hidden=64,
    checkpoint_every=2,
    progress=False,
    # matplotlib's PNGs took 2.6 of a 5.6 s tiny run; the tests that check them turn them on.
    plots=False,
)
