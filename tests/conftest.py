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
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

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
