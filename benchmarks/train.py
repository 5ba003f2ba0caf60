r"""Seconds per training epoch: our jitted, scanned step vs a faithful DCMH-style PyTorch loop.

  python benchmarks/train.py                 # MIRFlickr-25K shapes, 3 timed epochs per side
  python benchmarks/train.py --repeats=5 --skip_ltcmh
  python benchmarks/train.py --torch_device=cuda   # on a GPU: both sides on the GPU

Shapes (synthetic random inputs, as the real sets have them): `num_train` training samples, 4096-d
image features (VGG fc7; the image net is CNN-F's last layer, 4096 -> k), 1386-d binary tags about
2.5% dense, 24 labels, k = 64 bits, batch 128, text net 1386 -> 8192 -> k (DCMH).

The PyTorch loop is DCMH's own (jiangqy/DCMH-CVPR2017, DCMH_pytorch/main.py): per step a fresh
permutation for the batch, `setdiff1d` for the rows outside it, the batch likelihood against the
whole buffer of the other modality, quantization and balance terms, loss / (b n), SGD; B =
sign(F + G) per epoch; torch's threads = the cores this process may use. Ours runs the same DCMH
epoch (`--method=dcmh`) through `ltcmh_jax.train.Trainer` with the default recipe (Adam with
clipping, which reads and writes two moment buffers per step where SGD reads none; `--optimizer=sgd`
for DCMH's optimiser): each phase one `lax.scan`, the likelihood fused and blocked
(`losses.blocked_dcmh_likelihood`), the text net's first layer an embedding bag over the nonzero
tags. The full LtCMH epoch (auto-encoder phase, meta features, label similarities every epoch) runs
beside it. torch is optional and imported only here: `pip install torch` (the newest release the
environment allows; its version is printed).

FLOPs: XLA's cost analysis of the compiled code counts the body of a loop once, whatever its trip
count, so the count compiles each phase's step once more on its own with its inner loops of static
length unrolled (the likelihood's blocks, the embedding bag's slot groups, HSIC's bisection), and
multiplies by the steps per epoch; plus B's update. Loops of data-dependent length (the embedding
bag's gradient overflow, usually 0 or 1 rounds) count once. LtCMH's once-per-epoch R^x, R^y update
(`losses.average_hausdorff`, nested maps) is left out of its count. The float32 peak is measured in
the same run (the best of 3 products of two 4096 x 4096 float32 matrices, jnp, and torch when
installed: what the libraries reach on this machine under its present load), and the nominal
peak is computed as cores x GHz x FLOP per cycle from /proc/cpuinfo (the per-cycle figure assumed
from the vector ISA and vendor, printed; a virtual machine's MHz is its nominal clock).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

PEAK_SIZE = 4096


def make_data(num_train: int, *, image_dim: int, text_dim: int, num_labels: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    image = rng.random((num_train, image_dim), dtype=np.float32)
    text = (rng.random((num_train, text_dim)) < 0.025).astype(np.float32)
    labels = (rng.random((num_train, num_labels)) < 0.12).astype(np.float32)
    labels[np.arange(num_train), rng.integers(0, num_labels, num_train)] = 1.0
    return image, text, labels


def make_trainer(
    method: str, image, text, labels, *, bits, batch_size, text_hidden, epochs, **ours
):
    """A `Trainer` of `method` on the benchmark's data; `ours` are further `TrainConfig` fields."""
    from ltcmh_jax import data as data_lib
    from ltcmh_jax import sharding
    from ltcmh_jax.train import TrainConfig, Trainer

    num_train = labels.shape[0]
    dataset = data_lib.MultiModalDataset(image, text, labels)
    split = data_lib.Split(
        query=np.arange(0, dtype=np.int64),
        database=np.arange(num_train, dtype=np.int64),
        train=np.arange(num_train, dtype=np.int64),
        label_order=np.arange(labels.shape[1], dtype=np.int64),
        target_counts=None,
        achieved_counts=labels.sum(axis=0).astype(np.int64),
    )
    config = TrainConfig(
        method=method,
        dataset="npz",
        data_path="-",
        bits=bits,
        epochs=epochs,
        batch_size=batch_size,
        text_hidden=text_hidden,
        progress=False,
        **ours,
    )
    return Trainer(config, dataset, split, sharding.make_data_mesh())


def jax_epochs(trainer):
    """An `epoch()` callable running our epochs one after another (compiled on the first)."""
    state = trainer.init_state()
    epoch_number = 0

    def epoch():
        nonlocal state, epoch_number
        state, _ = trainer.run_epoch(state, epoch_number)
        np.asarray(state.codes)
        epoch_number += 1

    return epoch


def epoch_parts(trainer, repeats: int = 3) -> dict[str, float]:
    """Seconds of each part of one epoch of `trainer` (best of `repeats`, after a compiling
    epoch): the R^x, R^y update, each phase, and the code (and label-memory) updates."""
    import jax

    state, _ = trainer.run_epoch(trainer.init_state(), 0)
    parts = {
        "label similarity": lambda state: trainer.jitted.update_similarity(
            state, trainer.device_labels
        )
    }
    for phase in trainer.phases:
        parts[f"{phase} phase"] = lambda state, phase=phase: trainer.run_phase(state, phase, 1)[0]
    parts["codes"] = trainer.jitted.update_codes
    if trainer.has_memory:
        parts["label memories"] = lambda state: trainer.jitted.update_centroids(
            state, trainer.device_labels
        )
    best = {name: float("inf") for name in parts}
    for _ in range(repeats):
        for name, part in parts.items():
            started = time.perf_counter()
            state = jax.block_until_ready(part(state))
            best[name] = min(best[name], time.perf_counter() - started)
    return best


@contextlib.contextmanager
def unrolled_loops():
    """`jax.lax.fori_loop` with static bounds unrolled while tracing (for counting FLOPs only)."""
    import jax

    original = jax.lax.fori_loop

    def fori_loop(lower, upper, body, init, **kwargs):
        if isinstance(lower, int) and isinstance(upper, int):
            for index in range(lower, upper):
                init = body(index, init)
            return init
        return original(lower, upper, body, init, **kwargs)

    jax.lax.fori_loop = fori_loop
    try:
        yield
    finally:
        jax.lax.fori_loop = original


def compiled_flops(function, *args) -> float:
    """FLOPs of one call of `function` by XLA's cost analysis of its compiled form."""
    analysis = function.lower(*args).compile().cost_analysis()
    if isinstance(analysis, list | tuple):  # older jax: one dict per program
        analysis = analysis[0]
    return float(analysis.get("flops", 0.0))


def epoch_flops(trainer) -> float:
    """FLOPs of one epoch of `trainer` (a fresh one: its step functions must trace here)."""
    import jax.numpy as jnp

    from ltcmh_jax.train import steps

    state = trainer.init_state()
    total = 0.0
    with unrolled_loops():
        for phase in trainer.phases:
            indices = jnp.asarray(trainer.phase_batches(0, phase)[0])
            batch = steps.gather_batch(trainer.device_data, indices, steps.BATCH_FIELDS[phase])
            step = trainer.jitted.step[phase]
            flops = compiled_flops(step, state, batch, trainer.device_labels)
            total += trainer.steps_per_epoch * flops
        total += compiled_flops(trainer.jitted.update_codes, state)
    return total


def torch_epochs(image, text, labels, *, bits, batch_size, text_hidden, epochs, device="cpu"):
    """An `epoch()` callable running DCMH's PyTorch epochs one after another on `device`
    ("cpu" or "cuda"; DCMH's own code moves data, nets and buffers to the GPU the same way)."""
    import torch

    # Best CPU practice: one thread per core this process may run on (torch's default may count
    # cores it is not allowed), and no autograd outside the loss (the buffers take `.data`).
    torch.set_num_threads(len(os.sched_getaffinity(0)))
    torch.manual_seed(0)
    num_train = labels.shape[0]
    train_x = torch.from_numpy(image).to(device)
    train_y = torch.from_numpy(text).to(device)
    train_l = torch.from_numpy(labels).to(device)
    img_model = torch.nn.Linear(image.shape[1], bits).to(device)
    txt_model = torch.nn.Sequential(
        torch.nn.Linear(text.shape[1], text_hidden),
        torch.nn.ReLU(),
        torch.nn.Linear(text_hidden, bits),
    ).to(device)
    lr = np.linspace(np.power(10, -1.5), np.power(10, -6.0), epochs + 1)
    optimizer_img = torch.optim.SGD(img_model.parameters(), lr=lr[0])
    optimizer_txt = torch.optim.SGD(txt_model.parameters(), lr=lr[0])
    buffers = {
        "F": torch.randn(num_train, bits, device=device),
        "G": torch.randn(num_train, bits, device=device),
    }
    buffers["B"] = torch.sign(buffers["F"] + buffers["G"])
    ones = torch.ones(batch_size, 1, device=device)
    ones_ = torch.ones(num_train - batch_size, 1, device=device)
    gamma = eta = 1.0
    epoch_number = 0

    def calc_neighbor(label1, label2):
        return (label1.matmul(label2.transpose(0, 1)) > 0).type(torch.float32)

    def phase(model, optimizer, inputs, own, other):
        codes = buffers["B"]
        for _ in range(num_train // batch_size):
            index = np.random.permutation(num_train)
            ind = index[0:batch_size]
            unupdated_ind = np.setdiff1d(range(num_train), ind)
            similarity = calc_neighbor(train_l[ind, :], train_l)
            cur = model(inputs[ind])
            own[ind, :] = cur.data
            theta = 1.0 / 2 * torch.matmul(cur, other.t())
            logloss = -torch.sum(similarity * theta - torch.log(1.0 + torch.exp(theta)))
            quantization = torch.sum(torch.pow(codes[ind, :] - cur, 2))
            balance = torch.sum(torch.pow(cur.t().mm(ones) + own[unupdated_ind].t().mm(ones_), 2))
            loss = (logloss + gamma * quantization + eta * balance) / (batch_size * num_train)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()

    def epoch():
        nonlocal epoch_number
        phase(img_model, optimizer_img, train_x, buffers["F"], buffers["G"])
        phase(txt_model, optimizer_txt, train_y, buffers["G"], buffers["F"])
        buffers["B"] = torch.sign(buffers["F"] + buffers["G"])
        if device != "cpu":
            torch.cuda.synchronize()  # the epoch's kernels are queued; time them, not the queue
        epoch_number += 1
        for optimizer in (optimizer_img, optimizer_txt):
            for group in optimizer.param_groups:
                group["lr"] = lr[min(epoch_number, epochs)]

    return epoch, torch.__version__, torch.get_num_threads()


def measured_peak(repeats: int = 3, torch_device: str = "cpu") -> dict[str, float]:
    """GFLOP/s of the best of `repeats` float32 products of two PEAK_SIZE^2 matrices, per
    library (jnp on its default device; torch on `torch_device` when installed)."""
    import jax
    import jax.numpy as jnp

    flops = 2.0 * PEAK_SIZE**3
    rng = np.random.default_rng(0)
    a = rng.standard_normal((PEAK_SIZE, PEAK_SIZE), dtype=np.float32)
    b = rng.standard_normal((PEAK_SIZE, PEAK_SIZE), dtype=np.float32)

    def best(product) -> float:
        product()  # warm-up (compilation, threads)
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            product()
            times.append(time.perf_counter() - started)
        return flops / min(times) / 1e9

    matmul = jax.jit(jnp.matmul)
    a_jax, b_jax = jnp.asarray(a), jnp.asarray(b)
    peaks = {"jnp": best(lambda: matmul(a_jax, b_jax).block_until_ready())}
    with contextlib.suppress(ImportError):
        import torch

        a_torch, b_torch = (
            torch.from_numpy(a).to(torch_device),
            torch.from_numpy(b).to(torch_device),
        )
        synchronize = torch.cuda.synchronize if torch_device != "cpu" else lambda: None
        peaks["torch"] = best(lambda: (torch.matmul(a_torch, b_torch), synchronize()))
    return peaks


def nominal_peak() -> tuple[float, str]:
    """`(GFLOP/s, how)`: cores x GHz x float32 FLOP per cycle, from /proc/cpuinfo; 0 if unknown.

    FLOP per cycle = 2 (FMA) x float32 lanes x FMA pipes: AMD family 0x19 (Zen 3, Zen 4) has two
    256-bit FMA pipes (Zen 4 runs AVX-512 through them in two halves): 32; family 0x1a (Zen 5)
    two 512-bit ones: 64; an Intel core with AVX-512 two 512-bit pipes (some have one): 64; AVX2
    with FMA two 256-bit pipes: 32.
    """
    try:
        with open("/proc/cpuinfo") as file:
            text = file.read()
    except OSError:
        return 0.0, "no /proc/cpuinfo"
    fields = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    flags = set(fields.get("flags", "").split())
    vendor, family = fields.get("vendor_id", ""), int(fields.get("cpu family", "0") or 0)
    if vendor == "AuthenticAMD":
        per_cycle = 64 if family >= 0x1A else 32 if "fma" in flags else 16
    elif "avx512f" in flags:
        per_cycle = 64
    else:
        per_cycle = 32 if "fma" in flags else 16
    cores = len(os.sched_getaffinity(0))
    ghz = float(fields.get("cpu MHz", "0") or 0) / 1e3
    how = (
        f"{cores} cores x {ghz:.2f} GHz x {per_cycle} FLOP/cycle "
        f"({vendor} family {family:#x}, {'avx512f' if 'avx512f' in flags else 'no avx512f'})"
    )
    return cores * ghz * per_cycle, how


def seconds(epoch) -> tuple[float, float]:
    """`(wall, cpu)` seconds of one epoch; CPU time (all threads of this process) is the steadier
    figure when other jobs share the cores, since waiting for a core does not count."""
    started, started_cpu = time.perf_counter(), time.process_time()
    epoch()
    return time.perf_counter() - started, time.process_time() - started_cpu


def load() -> str:
    return "load average " + " ".join(f"{value:.2f}" for value in os.getloadavg())


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num_train", type=int, default=18015)
    parser.add_argument("--bits", type=int, default=64)
    parser.add_argument("--batch_size", type=int, default=128)
    parser.add_argument(
        "--repeats", type=int, default=3, help="timed epochs per side, interleaved; min reported"
    )
    parser.add_argument("--text_hidden", type=int, default=8192)
    parser.add_argument("--skip_ltcmh", action="store_true", help="time only the DCMH epochs")
    parser.add_argument("--optimizer", default="adam", help="our side's --optimizer (adam, sgd)")
    parser.add_argument(
        "--mixed_precision", default="auto", help="our side's --mixed_precision (auto, on, off)"
    )
    parser.add_argument(
        "--dropout", type=float, default=None, help="our side's --dropout (default: TrainConfig's)"
    )
    parser.add_argument(
        "--torch_device",
        default="cpu",
        help="where the PyTorch baseline runs: cpu, or cuda to compare on a GPU (ours runs on "
        "jax's default device either way)",
    )
    args = parser.parse_args()
    image, text, labels = make_data(args.num_train, image_dim=4096, text_dim=1386, num_labels=24)
    shapes = dict(
        bits=args.bits,
        batch_size=args.batch_size,
        text_hidden=args.text_hidden,
        epochs=args.repeats + 1,
    )
    import jax

    from ltcmh_jax.train import TrainConfig

    dropout = TrainConfig().dropout if args.dropout is None else args.dropout
    ours = dict(optimizer=args.optimizer, mixed_precision=args.mixed_precision, dropout=dropout)

    print(
        f"n_train={args.num_train}, image 4096-d, text 1386-d ({text.mean():.1%} nonzero), "
        f"24 labels, {args.bits} bits, batch {args.batch_size}, text hidden {args.text_hidden}; "
        f"jax {jax.__version__} on {jax.device_count()} {jax.default_backend()} device(s), "
        f"{len(os.sched_getaffinity(0))} CPU cores; ours: --optimizer={args.optimizer} "
        f"--mixed_precision={args.mixed_precision} --dropout={dropout}; {load()}"
    )
    methods = {"ours, DCMH epoch": "dcmh"}
    if not args.skip_ltcmh:
        methods["ours, LtCMH epoch"] = "ltcmh"
    # Counted on separate trainers: their step functions trace with the loops unrolled.
    flops = {
        name: epoch_flops(make_trainer(method, image, text, labels, **shapes, **ours))
        for name, method in methods.items()
    }
    trainers = {
        name: make_trainer(method, image, text, labels, **shapes, **ours)
        for name, method in methods.items()
    }
    sides = {name: jax_epochs(trainer) for name, trainer in trainers.items()}
    try:
        epoch, version, threads = torch_epochs(
            image, text, labels, **shapes, device=args.torch_device
        )
        where = f"{threads} threads" if args.torch_device == "cpu" else args.torch_device
        sides[f"PyTorch {version} ({where}), DCMH epoch"] = epoch
    except ImportError:
        print("torch not installed (pip install torch): no PyTorch baseline")
    for epoch in sides.values():
        epoch()  # warm-up: compilation on our side, allocator and threads on PyTorch's
    # Interleaved, so a load change on the shared machine hits every side alike.
    times = {name: [] for name in sides}
    cpu_times = {name: [] for name in sides}
    for _ in range(args.repeats):
        for name, epoch in sides.items():
            wall, cpu = seconds(epoch)
            times[name].append(wall)
            cpu_times[name].append(cpu)
    peaks = measured_peak(torch_device=args.torch_device)
    if jax.default_backend() == "cpu":
        nominal, how = nominal_peak()
    else:  # the CPU's nominal peak says nothing about an accelerator's
        nominal, how = 0.0, f"not computed for {jax.default_backend()}"
    best = {name: min(values) for name, values in times.items()}
    best_cpu = {name: min(values) for name, values in cpu_times.items()}
    for name, values in times.items():
        print(
            f"{name:45s} {best[name]:7.2f} s/epoch (min of {', '.join(f'{v:.2f}' for v in values)})"
            f", CPU {best_cpu[name]:.2f} s"
        )
    peak = max(peaks.values())
    print(
        "float32 peak: measured "
        + ", ".join(f"{library} {value:.1f}" for library, value in peaks.items())
        + f" GFLOP/s ({PEAK_SIZE}^2 matmul, best of 3); nominal {nominal:.1f} GFLOP/s = {how}"
    )
    for name, count in flops.items():
        rate = count / best[name] / 1e9
        note = " (without the R^x, R^y update)" if "LtCMH" in name else ""
        print(
            f"{name}: {count / 1e9:.1f} GFLOP per epoch{note} by XLA's cost analysis, "
            f"{rate:.1f} GFLOP/s, {rate / peak:.1%} of the measured float32 peak"
            + (f", {rate / nominal:.1%} of the nominal" if nominal else "")
        )
    if "ours, LtCMH epoch" in best:
        ltcmh, dcmh = "ours, LtCMH epoch", "ours, DCMH epoch"
        print(
            f"LtCMH epoch / DCMH epoch (ours): {best[ltcmh] / best[dcmh]:.2f}x "
            f"(CPU time: {best_cpu[ltcmh] / best_cpu[dcmh]:.2f}x)"
        )
    baseline = next((name for name in best if name.startswith("PyTorch")), None)
    if baseline is not None:
        for name in best:
            if name != baseline:
                print(
                    f"speed-up of {name} over the PyTorch DCMH epoch: "
                    f"{best[baseline] / best[name]:.2f}x (CPU time: "
                    f"{best_cpu[baseline] / best_cpu[name]:.2f}x)"
                )
    if "ours, LtCMH epoch" in trainers:
        # The timed trainer again: its steps are compiled already.
        parts = epoch_parts(trainers["ours, LtCMH epoch"])
        print(
            "LtCMH epoch parts (best of 3): "
            + ", ".join(f"{name} {value:.3f} s" for name, value in parts.items())
        )
    print(load())


if __name__ == "__main__":
    main()
