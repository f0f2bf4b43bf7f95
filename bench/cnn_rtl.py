"""CNN cores in cocotb/Icarus: cycles per inference against the event lower bound.

* the bundled digits CNN (conv-BN-ReLU-maxpool ×2, linear; 8×8) on 100 test images, lanes 1/4/8/16;
* a LeNet-5-shaped net on 28×28 (conv5 6ch – pool2 – conv5 16ch – pool2 – dense 120 – dense 10,
  random integer weights from ``hdlgen.testing.random_cnn``) on a few images, lanes 1/4/8/16,
  8 pixels per transfer.

Every run must be bit-exact with the golden model. Writes ``bench/results/cnn_rtl.json``.
Run: ``python bench/cnn_rtl.py [--images 100] [--lenet-images 4]`` (some minutes on one core).
"""

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from hdlgen import ConvertConfig, convert, load_model
from hdlgen.data import load_dataset
from hdlgen.simulate import simulate
from hdlgen.testing import random_cnn, random_pixels
from hdlgen.ttfs import IntDense, TTFSNet

ROOT = Path(__file__).resolve().parents[1]
DIGITS = ROOT / "examples" / "digits"


def lenet(rng, ticks=8, weight_bits=6) -> TTFSNet:
    """conv5(6) – pool2 – conv5(16) – pool2 – dense 120 – dense 10 on 1×28×28, random integers."""
    net = random_cnn(rng, (1, 28, 28), [("conv", 6, 5, 1, 0), ("pool", 2, 2), ("conv", 16, 5, 1, 0), ("pool", 2, 2)],
                     10, ticks, weight_bits, "random", name="lenet5")
    limit = (1 << (weight_bits - 1)) - 1
    fan_in, width = net.layers[-1].fan_in, 120
    spread = max(1, int(np.sqrt(fan_in) * limit * ticks / 2))
    hidden = IntDense(rng.integers(-limit, limit + 1, (width, fan_in)), rng.integers(-spread, spread + 1, width),
                      rng.integers(1, 2 * max(1, spread // ticks) + 1, width), ticks, ticks, weight_bits,
                      np.ones(width), name="dense120")
    readout = IntDense(rng.integers(-limit, limit + 1, (10, width)), rng.integers(-50, 50, 10), None, ticks, 0,
                       weight_bits, np.ones(10), name="dense10")
    return TTFSNet(net.input, net.layers[:-1] + [hidden, readout], "lenet5")


def run(net, pixels, lanes, labels=None, pixels_per_transfer=1):
    start = time.perf_counter()
    report = simulate(net, pixels, labels=labels, lanes=lanes, pixels_per_transfer=pixels_per_transfer)
    seconds = time.perf_counter() - start
    assert report.passed, report.mismatches[:3]
    row = {"net": net.name, "images": len(pixels), "lanes": lanes, "pixels_per_transfer": pixels_per_transfer,
           "intake": report.intake, "cycles_mean": report.cycles_mean,
           "cycles_max": report.cycles_max, "event_lower_bound_mean": report.lower_bound_mean,
           "ratio_to_lower_bound": report.cycles_mean / report.lower_bound_mean,
           "dense_schedule": report.dense_cycles_mean, "ratio_to_dense": report.cycles_mean / report.dense_cycles_mean,
           "initiation_interval": report.initiation_interval,
           "accuracy": report.accuracy, "simulation_seconds": round(seconds, 1)}
    print(json.dumps(row), flush=True)
    return row


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=100)
    parser.add_argument("--lenet-images", type=int, default=4)
    args = parser.parse_args()
    rows = []
    graph = load_model(DIGITS / "digits_cnn.pt2")
    train = load_dataset(DIGITS / "digits_train.npz", (1, 8, 8))
    test = load_dataset(DIGITS / "digits_test.npz", (1, 8, 8))
    digits = convert(graph, train.x, ConvertConfig(ticks=16, weight_bits=8), name="digits_cnn")
    pixels = digits.input.pixels(test.x[:args.images])
    for lanes in (1, 4, 8, 16):
        rows.append(run(digits, pixels, lanes, test.y[:args.images]))
    net = lenet(np.random.default_rng(5))
    for lanes in (1, 4, 8, 16):
        rows.append(run(net, random_pixels(np.random.default_rng(6), args.lenet_images, net.input.size), lanes,
                        pixels_per_transfer=8))
    out = ROOT / "bench" / "results" / "cnn_rtl.json"
    command = "python bench/cnn_rtl.py " + " ".join(sys.argv[1:])
    out.write_text(json.dumps({"benchmark": "cnn rtl", "command": command, "rows": rows}, indent=1) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
