r"""How training and evaluation cost grow with n: time and peak memory, with log-log slopes.

  python benchmarks/scale.py                       # train 5k, 20k, 80k; database 20k, 60k, 200k
  python benchmarks/scale.py --train=2000,8000 --database=5000,20000   # a quick look
  python benchmarks/scale.py --cnnf_memory         # XLA memory analysis of a CNN-F step

Every size runs in its own child process (so its peak RSS is its own), on NUS-WIDE-like random
data: 512-d image features, 1000-d bag-of-words text (~2% dense, the embedding-bag path), 21 labels
(1-3 per sample), k = 64, batch 128, the paper's network widths (text 8192, auto-encoder 256).

Training, per training-set size n (= buffer size):
  step_ms: one step of each phase (auto-encoder, image, text), measured over `--steps` scanned
    steps after a compile (the fastest of 3 runs); a step's likelihood is `[b, n]` against the
    whole buffer, so this grows as n.
  similarity_s: R^x, R^y (Eq. 4, average Hausdorff over all label pairs) once per epoch: the
    nearest-member search is O(n * sum of label sizes * k), about n^2.
  epoch_s: steps_per_epoch (n / b) * the three step times + similarity_s + the B update: the
    epoch of the paper's schedule (n/b steps per phase) without running all of them here.
Evaluation, per database size: encoding queries + database (both modalities), and MAP of 2000
queries in both directions (`metrics.evaluate`), each the faster of two rounds (no compile).
peak_mb is the child's peak RSS minus its RSS after importing JAX (data, buffers, XLA temps).
The slope column is d log(cost) / d log(n) between consecutive sizes.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import time

IMAGE_DIM, TEXT_DIM, NUM_LABELS, BITS, BATCH, NUM_QUERY = 512, 1000, 21, 64, 128, 2000


def _rss_mb() -> float:
    """Peak resident set size of this process so far, MB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _current_rss_mb() -> float:
    with open("/proc/self/statm") as stream:
        return int(stream.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _dataset(num_samples: int, seed: int = 0):
    import numpy as np

    from ltcmh_jax.data import MultiModalDataset

    rng = np.random.default_rng(seed)
    labels = np.zeros((num_samples, NUM_LABELS), np.float32)
    # Zipf-like label frequencies, 1-3 labels per sample.
    weights = 1.0 / np.arange(1, NUM_LABELS + 1)
    weights /= weights.sum()
    for count in (1, 2, 3):
        rows = np.arange(num_samples)[count - 1 :: 3]
        for _ in range(count):
            labels[rows, rng.choice(NUM_LABELS, rows.size, p=weights)] = 1
    centres_x = rng.standard_normal((NUM_LABELS, IMAGE_DIM)).astype(np.float32)
    image = labels @ centres_x + rng.standard_normal((num_samples, IMAGE_DIM), np.float32)
    text = (rng.random((num_samples, TEXT_DIM), np.float32) < 0.02).astype(np.float32)
    return MultiModalDataset(image=image, text=text, labels=labels)


def _trainer(num_samples: int, train_rows: int):
    import numpy as np

    from ltcmh_jax import sharding
    from ltcmh_jax.data import Split
    from ltcmh_jax.train import TrainConfig, Trainer

    dataset = _dataset(num_samples)
    rows = np.arange(num_samples)
    split = Split(
        query=rows[-NUM_QUERY:],
        database=rows[:-NUM_QUERY],
        train=rows[:train_rows],
        label_order=np.arange(NUM_LABELS),
        target_counts=None,
        achieved_counts=dataset.labels[:train_rows].sum(axis=0).astype(np.int64),
    )
    config = TrainConfig(dataset="npz", data_path="-", bits=BITS, batch_size=BATCH, epochs=500)
    return Trainer(config, dataset, split, sharding.make_data_mesh())


def _timed(function, *args):
    import jax

    started = time.perf_counter()
    result = jax.block_until_ready(function(*args))
    return time.perf_counter() - started, result


def child_train(num_train: int, steps: int, repeats: int = 3) -> dict:
    baseline = _current_rss_mb()
    trainer = _trainer(num_train + NUM_QUERY, num_train)
    steps_per_epoch = trainer.steps_per_epoch
    state = trainer.init_state()
    labels = trainer.device_labels
    _, state = _timed(trainer.jitted.update_similarity, state, labels)  # compile
    similarity_s, state = _timed(trainer.jitted.update_similarity, state, labels)
    _, state = _timed(trainer.jitted.update_codes, state)
    codes_s, state = _timed(trainer.jitted.update_codes, state)
    trainer.steps_per_epoch = steps  # time `steps` scanned steps, not the whole epoch
    step_ms = {}
    for phase in ("autoencoder", "image", "text"):
        state, _ = trainer.run_phase(state, phase, 0)  # compile
        # The fastest of `repeats` runs: the least disturbed by other processes on the machine.
        times = []
        for repeat in range(repeats):
            started = time.perf_counter()
            state, _ = trainer.run_phase(state, phase, 1 + repeat)
            times.append(time.perf_counter() - started)
        step_ms[phase] = min(times) / steps * 1e3
    epoch_s = steps_per_epoch * sum(step_ms.values()) / 1e3 + similarity_s + codes_s
    return {
        "n": num_train,
        "steps_per_epoch": steps_per_epoch,
        **{f"{phase}_step_ms": value for phase, value in step_ms.items()},
        "similarity_s": similarity_s,
        "epoch_s": epoch_s,
        "peak_mb": _rss_mb() - baseline,
    }


def child_eval(num_database: int) -> dict:
    import numpy as np

    from ltcmh_jax import metrics

    baseline = _current_rss_mb()
    trainer = _trainer(num_database + NUM_QUERY, 5000)
    state = trainer.init_state()
    split, labels = trainer.split, trainer.dataset.labels
    # Two rounds, the first compiles the encoders for these chunk shapes and warms numba; the
    # faster of the two is reported.
    encode_times, map_times = [], []
    for _ in range(2):
        started = time.perf_counter()
        query, database = trainer.codes(state, split.query), trainer.codes(state, split.database)
        query_x, query_y, db_x, db_y = (
            query["image"],
            query["text"],
            database["image"],
            database["text"],
        )
        encode_times.append(time.perf_counter() - started)
        started = time.perf_counter()
        metrics.evaluate(
            query_x, query_y, db_x, db_y,
            np.asarray(labels[split.query]), np.asarray(labels[split.database]),
        )  # fmt: skip
        map_times.append(time.perf_counter() - started)
    encode_s, map_s = min(encode_times), min(map_times)
    return {
        "n": num_database,
        "encode_s": encode_s,
        "map_s": map_s,
        "eval_s": encode_s + map_s,
        "map_ns_per_query_item": map_s / (2 * NUM_QUERY * num_database) * 1e9,
        "peak_mb": _rss_mb() - baseline,
    }


def cnnf_memory(images_per_device=(128, 16, 8)) -> None:
    """XLA's memory analysis of one jitted gradient of CNN-F on raw 224x224 images (compile
    only, nothing runs): what a device holds for the image phase at a given per-device batch."""
    import jax
    import jax.numpy as jnp
    from flax import nnx

    from ltcmh_jax import models

    config = models.ModelConfig(
        method="dcmh", bits=BITS, image_net="cnnf", image_dim=1, text_dim=TEXT_DIM
    )
    graphdef, params = nnx.split(models.build_model(config, rngs=nnx.Rngs(0)).image_net)

    def loss(params, images):
        return nnx.merge(graphdef, params)(images).sum()

    gradient = jax.jit(jax.grad(loss))
    print("| images per device | parameters MB | gradients MB | temporaries MB |")
    print("|---|---|---|---|")
    for count in images_per_device:
        images = jax.ShapeDtypeStruct((count, 3, 224, 224), jnp.uint8)
        analysis = gradient.lower(params, images).compile().memory_analysis()
        sizes = (
            analysis.argument_size_in_bytes - count * 3 * 224 * 224,
            analysis.output_size_in_bytes,
            analysis.temp_size_in_bytes,
        )
        print(f"| {count} | " + " | ".join(f"{size / 2**20:.0f}" for size in sizes) + " |")


def _run_child(kind: str, size: int, steps: int) -> dict:
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, JAX_PLATFORMS=os.environ.get("JAX_PLATFORMS", "cpu"))
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    command = [sys.executable, os.path.abspath(__file__), f"--child={kind}", f"--size={size}"]
    completed = subprocess.run(
        [*command, f"--steps={steps}"], env=env, cwd=root, capture_output=True, text=True
    )
    if completed.returncode != 0:
        raise SystemExit(f"{kind} n={size} failed:\n{completed.stderr[-3000:]}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


def _slopes(rows: list[dict], key: str) -> list[str]:
    slopes = ["-"]
    for before, after in zip(rows, rows[1:], strict=False):
        ratio = math.log(after[key] / before[key]) / math.log(after["n"] / before["n"])
        slopes.append(f"{ratio:.2f}")
    return slopes


def _table(title: str, rows: list[dict], columns: list[tuple[str, str, str]], slope_keys) -> str:
    slopes = {key: _slopes(rows, key) for key in slope_keys}
    header = [name for name, _, _ in columns] + [f"slope({key})" for key in slope_keys]
    lines = [f"{title}", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for index, row in enumerate(rows):
        cells = [fmt.format(row[key]) for _, key, fmt in columns]
        cells += [slopes[key][index] for key in slope_keys]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--train", default="5000,20000,80000", help="training-set sizes")
    parser.add_argument("--database", default="20000,60000,200000", help="database sizes")
    parser.add_argument("--steps", type=int, default=8, help="timed steps per phase")
    parser.add_argument(
        "--cnnf_memory", action="store_true", help="only XLA's memory analysis of a CNN-F step"
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.cnnf_memory:
        cnnf_memory()
        return
    if args.child == "train":
        print(json.dumps(child_train(args.size, args.steps)))
        return
    if args.child == "eval":
        print(json.dumps(child_eval(args.size)))
        return

    import jax

    started = time.perf_counter()
    print(f"# {jax.default_backend()} x{jax.device_count()}, {os.cpu_count()} cores; k={BITS}, "
          f"b={BATCH}, d_x={IMAGE_DIM}, d_t={TEXT_DIM}, c={NUM_LABELS}")  # fmt: skip
    train_rows = [_run_child("train", int(n), args.steps) for n in args.train.split(",")]
    print(
        _table(
            "training (epoch_s = n/b steps of each phase + similarity + B update)",
            train_rows,
            [
                ("n_train", "n", "{}"),
                ("steps/epoch", "steps_per_epoch", "{}"),
                ("ae step ms", "autoencoder_step_ms", "{:.1f}"),
                ("image step ms", "image_step_ms", "{:.1f}"),
                ("text step ms", "text_step_ms", "{:.1f}"),
                ("similarity s", "similarity_s", "{:.2f}"),
                ("epoch s", "epoch_s", "{:.1f}"),
                ("peak MB", "peak_mb", "{:.0f}"),
            ],
            ["image_step_ms", "similarity_s", "epoch_s", "peak_mb"],
        )
    )
    eval_rows = [_run_child("eval", int(n), args.steps) for n in args.database.split(",")]
    print(
        _table(
            f"evaluation ({NUM_QUERY} queries, both directions, encoding included)",
            eval_rows,
            [
                ("n_database", "n", "{}"),
                ("encode s", "encode_s", "{:.2f}"),
                ("MAP s", "map_s", "{:.2f}"),
                ("MAP ns per query-item", "map_ns_per_query_item", "{:.1f}"),
                ("peak MB", "peak_mb", "{:.0f}"),
            ],
            ["encode_s", "map_s", "peak_mb"],
        )
    )
    print(f"# total {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
