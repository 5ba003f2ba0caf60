#!/usr/bin/env bash
# The GPU check: one script, run from the repository root on a machine with an NVIDIA GPU and a
# CUDA build of jax (`pip install "jax[cuda12]==0.10.2"` or cuda13; BUILD.md), writes its logs to
# OUT_DIR (default ./gpu_check):
#   1. versions and the devices jax sees;
#   2. the numerical and training tests on the GPU backend (losses against NumPy and numerical
#      gradients, models, steps, the trainer, checkpoints, the entry point);
#   3. benchmarks/train.py with the PyTorch DCMH baseline on the same GPU (--torch_device=cuda);
#   4. the README's two main jobs (synthetic, icons), for their MAP against the CPU figures.
# Each step has its own time limit and a failure does not stop the next; the summary lists every
# step's exit status; TEST_SECONDS, TRAIN_SECONDS, JOB_SECONDS and JOBS override the defaults,
# TESTS the test files, TRAIN_ARGS the speed benchmark's flags; TRAIN_SECONDS=0 skips that step
# (the tests took more than 440 s on an H200 with 8 workers in session 10: TEST_SECONDS is 600).
# Memory: the pytest workers share one GPU, so no worker preallocates. pytest is verbose so that
# a run cut off by its time limit still names every test that finished, and how.
set -u
OUT_DIR=${1:-gpu_check}
mkdir -p "$OUT_DIR"
export XLA_PYTHON_CLIENT_PREALLOCATE=false PYTHONUNBUFFERED=1
PYTHON=${PYTHON:-python3}
status() { echo "$1 exit $2" | tee -a "$OUT_DIR/summary.txt"; }

TESTS=${TESTS:-tests/test_losses_autoencoder.py tests/test_losses_hashing.py
  tests/test_losses_hausdorff.py tests/test_losses_hsic.py tests/test_models_autoencoder.py
  tests/test_models_hashing.py tests/test_models_image.py tests/test_models_meta.py
  tests/test_models_text.py tests/test_optimizers.py tests/test_train_steps.py
  tests/test_train_trainer.py tests/test_train_loop.py tests/test_checkpoint.py
  tests/test_train_compile.py tests/test_main.py tests/test_sharding.py}

{
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
  "$PYTHON" -c "import jax, flax, optax, orbax.checkpoint as oc, numpy; print('jax', jax.__version__,
'flax', flax.__version__, 'optax', optax.__version__, 'orbax', oc.__version__, 'numpy',
numpy.__version__); print(jax.devices(), jax.default_backend())"
} > "$OUT_DIR/versions.txt" 2>&1
status versions $?

timeout "${TEST_SECONDS:-600}" "$PYTHON" -m pytest -v -n "${TEST_WORKERS:-8}" --dist loadfile \
  -p no:cacheprovider $TESTS > "$OUT_DIR/tests.txt" 2>&1
status tests $?

if [ "${TRAIN_SECONDS:-240}" != 0 ]; then
  # shellcheck disable=SC2086  # TRAIN_ARGS is a list of flags
  timeout "${TRAIN_SECONDS:-240}" "$PYTHON" benchmarks/train.py --torch_device=cuda \
    ${TRAIN_ARGS:---repeats=3} > "$OUT_DIR/train_speed.txt" 2>&1
  status train_speed $?
fi

for name in ${JOBS:-synthetic mdi_icons}; do
  started=$(date +%s)
  timeout "${JOB_SECONDS:-150}" "$PYTHON" -m experiments.main \
    --flagfile="experiments/configs/$name.flags" --workdir="/tmp/gpu_check_$name" \
    --noprogress > "$OUT_DIR/main_$name.txt" 2>&1
  code=$?
  echo "wall $(($(date +%s) - started)) s" >> "$OUT_DIR/main_$name.txt"
  cp "/tmp/gpu_check_$name/results.json" "$OUT_DIR/results_$name.json" 2>/dev/null
  status "main_$name" $code
done
