"""Benchmark: a 784-128-10 ReLU MLP on Fashion-MNIST through torch.export → hdlgen convert.

Data: Debian's `dataset-fashion-mnist` (offline, /usr/share/datasets/fashion-mnist). Trains the
MLP once (cached in out/bench/), saves it with torch.export.save, then measures
`hdlgen convert` time, SNN vs float accuracy at several T and weight bits, and the golden
model's throughput. Writes bench/results/fashion_mlp.json and prints a table.

Run: `make bench` or `.venv/bin/python bench/fashion_mlp.py [--epochs N]`.
"""

import argparse
import gzip
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
DATA = Path("/usr/share/datasets/fashion-mnist")
OUT = ROOT / "out" / "bench"
RESULTS = ROOT / "bench" / "results"


def read_idx(path):
    with gzip.open(path) as f:
        raw = f.read()
    dims = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(dims))
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * dims).reshape(shape)


def fashion():
    if not DATA.is_dir():
        sys.exit(f"{DATA} not found: apt-get install dataset-fashion-mnist")
    x_train = read_idx(DATA / "train-images-idx3-ubyte.gz").astype(np.float32)[:, None] / 255
    y_train = read_idx(DATA / "train-labels-idx1-ubyte.gz").astype(np.int64)
    x_test = read_idx(DATA / "t10k-images-idx3-ubyte.gz").astype(np.float32)[:, None] / 255
    y_test = read_idx(DATA / "t10k-labels-idx1-ubyte.gz").astype(np.int64)
    return x_train, y_train, x_test, y_test


def train(x, y, epochs, activation="ReLU"):
    """The 784-128-10 MLP, with ``activation`` (a torch.nn class name) between its layers."""
    import torch
    from torch import nn
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(784, 128), getattr(nn, activation)(), nn.Linear(128, 10))
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    generator = torch.Generator().manual_seed(0)
    for epoch in range(epochs):
        for idx in torch.randperm(len(xt), generator=generator).split(128):
            opt.zero_grad()
            nn.functional.cross_entropy(net(xt[idx]), yt[idx]).backward()
            opt.step()
        print(f"{activation}: epoch {epoch + 1}/{epochs}", flush=True)
    return net.eval()


# the benches' subprocesses on one core each: on a 2-core machine a second thread only waits
SINGLE_THREAD = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def hdlgen(*args, env=None):
    """``hdlgen ARGS --json`` in a subprocess: its JSON (the last line) and the seconds it took; a failure
    stops the bench with the tool's own message."""
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "hdlgen.cli", *map(str, args), "--json"],
                          capture_output=True, text=True, env=env)
    if proc.returncode:
        sys.exit(f"hdlgen {' '.join(map(str, args))} failed:\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1]), time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=15)
    args = parser.parse_args()
    import torch

    OUT.mkdir(parents=True, exist_ok=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    x_train, y_train, x_test, y_test = fashion()
    model_path = OUT / "fashion_mlp.pt2"
    if not model_path.exists():
        net = train(x_train, y_train, args.epochs)
        torch.export.save(torch.export.export(net, (torch.from_numpy(x_test[:1]),)), model_path)
    np.savez(OUT / "fashion_test.npz", x=x_test, y=y_test)
    np.savez(OUT / "fashion_calib.npz", x=x_train[:2000], y=y_train[:2000])

    rows = []
    for ticks, bits, per_channel in [(4, 8, False), (8, 8, False), (16, 8, False), (32, 8, False), (16, 4, False),
                                     (16, 4, True)]:
        scaling = ["--per-channel"] if per_channel else []
        result, seconds = hdlgen("convert", model_path, "--data", OUT / "fashion_test.npz", "--calibration-data",
                                 OUT / "fashion_calib.npz", "--ticks", ticks, "--weight-bits", bits, *scaling,
                                 "-o", OUT / f"fashion_mlp_T{ticks}_w{bits}{'_pc' if per_channel else ''}.ttfs")
        rows.append({"ticks": ticks, "weight_bits": bits, "per_channel": per_channel, "convert_seconds": round(seconds, 2),
                     "ann_accuracy": result["ann_accuracy"], "snn_accuracy": result["snn_accuracy"],
                     "agreement": result["agreement"], "spikes_per_neuron": result["spikes_per_neuron"]})
        print(f"T={ticks:<3} {bits}-bit {'per channel' if per_channel else 'per layer  '}  "
              f"float {100 * result['ann_accuracy']:.2f} %  SNN {100 * result['snn_accuracy']:.2f} %"
              f"  Δ {100 * (result['snn_accuracy'] - result['ann_accuracy']):+.2f} pp  convert+eval {seconds:.1f} s", flush=True)

    from hdlgen import golden, ttfs
    net = ttfs.load(OUT / "fashion_mlp_T16_w8.ttfs")
    pixels = net.input.pixels(x_test)
    golden.run_batch(net, pixels[:1000])
    start = time.perf_counter()
    golden.run_batch(net, pixels)
    rate = len(pixels) / (time.perf_counter() - start)
    print(f"golden batch form: {rate:,.0f} images/s (784-128-10, T=16)")
    report = {"benchmark": "fashion_mlp 784-128-10", "rows": rows, "golden_images_per_second": round(rate)}
    (RESULTS / "fashion_mlp.json").write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
