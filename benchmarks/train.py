r"""Seconds per training epoch: our jitted, scanned step vs a faithful DCMH-style PyTorch loop.

  python benchmarks/train.py                 # MIRFlickr-25K shapes, 3 timed epochs per side
  python benchmarks/train.py --repeats=5 --skip_ltcmh

Shapes (synthetic random inputs, as the real sets have them): `num_train` training samples, 4096-d
image features (VGG fc7; the image net is CNN-F's last layer, 4096 -> k), 1386-d binary tags about
2.5% dense, 24 labels, k = 64 bits, batch 128, text net 1386 -> 8192 -> k (DCMH).

The PyTorch loop is DCMH's own (jiangqy/DCMH-CVPR2017, DCMH_pytorch/main.py): per step a fresh
permutation for the batch, `setdiff1d` for the rows outside it, the batch likelihood against the
whole buffer of the other modality, quantization and balance terms, loss / (b n), SGD; B =
sign(F + G) per epoch. Ours runs the same DCMH epoch (`--method=dcmh`) through
`ltcmh_jax.train.Trainer` (each phase one `lax.scan`, the text net's first layer as an embedding
bag over the nonzero tags), and the full LtCMH epoch (auto-encoder phase, meta features, label
similarities every epoch) for reference. torch is optional and imported only here.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def make_data(num_train: int, *, image_dim: int, text_dim: int, num_labels: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    image = rng.random((num_train, image_dim), dtype=np.float32)
    text = (rng.random((num_train, text_dim)) < 0.025).astype(np.float32)
    labels = (rng.random((num_train, num_labels)) < 0.12).astype(np.float32)
    labels[np.arange(num_train), rng.integers(0, num_labels, num_train)] = 1.0
    return image, text, labels


def jax_epochs(method: str, image, text, labels, *, bits, batch_size, text_hidden, epochs):
    """An `epoch()` callable running our epochs one after another (compiled on the first)."""
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
    )
    trainer = Trainer(config, dataset, split, sharding.make_data_mesh())
    state = trainer.init_state()
    epoch_number = 0

    def epoch():
        nonlocal state, epoch_number
        state, _ = trainer.run_epoch(state, epoch_number)
        np.asarray(state.codes)
        epoch_number += 1

    return epoch


def torch_epochs(image, text, labels, *, bits, batch_size, text_hidden, epochs):
    """An `epoch()` callable running DCMH's PyTorch epochs one after another."""
    import torch

    torch.manual_seed(0)
    num_train = labels.shape[0]
    train_x = torch.from_numpy(image)
    train_y = torch.from_numpy(text)
    train_l = torch.from_numpy(labels)
    img_model = torch.nn.Linear(image.shape[1], bits)
    txt_model = torch.nn.Sequential(
        torch.nn.Linear(text.shape[1], text_hidden),
        torch.nn.ReLU(),
        torch.nn.Linear(text_hidden, bits),
    )
    lr = np.linspace(np.power(10, -1.5), np.power(10, -6.0), epochs + 1)
    optimizer_img = torch.optim.SGD(img_model.parameters(), lr=lr[0])
    optimizer_txt = torch.optim.SGD(txt_model.parameters(), lr=lr[0])
    buffers = {"F": torch.randn(num_train, bits), "G": torch.randn(num_train, bits)}
    buffers["B"] = torch.sign(buffers["F"] + buffers["G"])
    ones = torch.ones(batch_size, 1)
    ones_ = torch.ones(num_train - batch_size, 1)
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
        epoch_number += 1
        for optimizer in (optimizer_img, optimizer_txt):
            for group in optimizer.param_groups:
                group["lr"] = lr[min(epoch_number, epochs)]

    return epoch, torch.__version__, torch.get_num_threads()


def seconds(epoch) -> tuple[float, float]:
    """`(wall, cpu)` seconds of one epoch; CPU time (all threads of this process) is the steadier
    figure when other jobs share the cores, since waiting for a core does not count."""
    started, started_cpu = time.perf_counter(), time.process_time()
    epoch()
    return time.perf_counter() - started, time.process_time() - started_cpu


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
    args = parser.parse_args()
    image, text, labels = make_data(args.num_train, image_dim=4096, text_dim=1386, num_labels=24)
    shapes = dict(
        bits=args.bits,
        batch_size=args.batch_size,
        text_hidden=args.text_hidden,
        epochs=args.repeats + 1,
    )
    import jax

    print(
        f"n_train={args.num_train}, image 4096-d, text 1386-d ({text.mean():.1%} nonzero), "
        f"24 labels, {args.bits} bits, batch {args.batch_size}, text hidden {args.text_hidden}; "
        f"jax {jax.__version__} on {jax.device_count()} {jax.default_backend()} device(s), "
        f"{os.cpu_count()} CPU cores"
    )
    sides = {"ours, DCMH epoch": jax_epochs("dcmh", image, text, labels, **shapes)}
    if not args.skip_ltcmh:
        sides["ours, LtCMH epoch"] = jax_epochs("ltcmh", image, text, labels, **shapes)
    try:
        epoch, version, threads = torch_epochs(image, text, labels, **shapes)
        sides[f"PyTorch {version} ({threads} threads), DCMH epoch"] = epoch
    except ImportError:
        print("torch not installed (pip install torch==2.13.0): no PyTorch baseline")
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
    best = {name: min(values) for name, values in times.items()}
    best_cpu = {name: min(values) for name, values in cpu_times.items()}
    for name, values in times.items():
        print(
            f"{name:45s} {best[name]:7.2f} s/epoch (min of {', '.join(f'{v:.2f}' for v in values)})"
            f", CPU {best_cpu[name]:.2f} s"
        )
    baseline = next((name for name in best if name.startswith("PyTorch")), None)
    if baseline is None:
        return
    for name in best:
        if name != baseline:
            print(
                f"speed-up of {name} over the PyTorch DCMH epoch: "
                f"{best[baseline] / best[name]:.2f}x (CPU time: "
                f"{best_cpu[baseline] / best_cpu[name]:.2f}x)"
            )


if __name__ == "__main__":
    main()
