"""Benchmark: board builds of the generated accelerator (host link + core) with yowasp
yosys/nextpnr – utilisation, fmax against the requested clock, build time – and µs per
inference at the achieved clock (cycles from `hdlgen sim` × clock period).

Builds: the digits MLP (64-32-10) and the digits CNN (conv-BN-ReLU-maxpool ×2, linear) on
iCEBreaker (iCE40 UP5K), ULX3S-85F (ECP5) and Tang Nano 9K (Gowin GW1NR-9, board clock), the Fashion-MNIST 784-128-10 MLP of
bench/fashion_mlp.py (T=16, 8-bit; run that first) on iCEBreaker with layer 0's weights in
SPRAM and on ULX3S-85F with more lanes, and a seeded random net of its shape on iCEBreaker (the
row tests/test_board_guard.py rebuilds: a design of that size without training). A thin driver
over `hdlgen.bench` (what `hdlgen bench` runs): `rtl_row` simulates each net at each lanes once,
`board_row` builds, one at a time. Writes bench/results/boards.json and prints a table.

Run: `.venv/bin/python bench/boards.py [--samples 20] [--only digits-icebreaker ...]`.
"""

import argparse
import json
import subprocess
import sys
from pathlib import Path

from hdlgen import ttfs
from hdlgen.bench import board_row, format_boards, rtl_row
from hdlgen.boards.platforms import get_board
from hdlgen.data import load_dataset
from hdlgen.simulate import missing_simulator
from hdlgen.testing import random_fashion_mlp

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
OUT = ROOT / "out" / "bench" / "boards"
DIGITS = ROOT / "out" / "digits_mlp.ttfs"
DIGITS_CNN = ROOT / "out" / "digits_cnn.ttfs"
DIGITS_DATA = ROOT / "examples" / "digits" / "digits_test.npz"
FASHION = ROOT / "out" / "bench" / "fashion_mlp_T16_w8.ttfs"
FASHION_DATA = ROOT / "out" / "bench" / "fashion_test.npz"
# a seeded random net of the Fashion MLP's shape: its rows are what tests/test_board_guard.py rebuilds
RANDOM_MLP = ROOT / "out" / "bench" / "random_mlp_784_128_10.ttfs"

# name, net, data, board, lanes, requested clock (MHz), weights in SPRAM, pixels per transfer, spike lanes
# (one on the iCE40s, as hdlgen build chooses there)
BUILDS = [
    ("digits-icebreaker", DIGITS, DIGITS_DATA, "icebreaker", 1, 30, False, 1, 1),
    ("digits-ulx3s", DIGITS, DIGITS_DATA, "ulx3s-85f", 1, 100, False, 1, None),
    ("digits-cnn-icebreaker", DIGITS_CNN, DIGITS_DATA, "icebreaker", 1, 30, False, 1, 1),
    ("digits-cnn-ulx3s", DIGITS_CNN, DIGITS_DATA, "ulx3s-85f", 1, 100, False, 1, None),
    ("fashion-icebreaker", FASHION, FASHION_DATA, "icebreaker", 1, 30, True, 1, 1),
    ("fashion-icebreaker-l2", FASHION, FASHION_DATA, "icebreaker", 2, 30, True, 1, 1),
    ("fashion-icebreaker-l4", FASHION, FASHION_DATA, "icebreaker", 4, 30, True, 1, 1),
    ("fashion-icebreaker-l8", FASHION, FASHION_DATA, "icebreaker", 8, 30, True, 1, 1),
    ("random-mlp-icebreaker-l4", RANDOM_MLP, FASHION_DATA, "icebreaker", 4, 30, True, 1, 1),
    ("fashion-ulx3s", FASHION, FASHION_DATA, "ulx3s-85f", 4, 100, False, 1, None),
    ("fashion-ulx3s-l64", FASHION, FASHION_DATA, "ulx3s-85f", 64, 100, False, 8, None),
    ("digits-tangnano9k", DIGITS, DIGITS_DATA, "tangnano9k", 1, 27, False, 1, None),
    ("digits-cnn-tangnano9k", DIGITS_CNN, DIGITS_DATA, "tangnano9k", 1, 27, False, 1, None),
]


def ensure_digits():
    """The digits nets as `make demo` converts them (T=16, 8-bit)."""
    digits = ROOT / "examples" / "digits"
    for net, model in [(DIGITS, "digits_mlp.pt2"), (DIGITS_CNN, "digits_cnn.pt2")]:
        if not net.exists():
            subprocess.run([sys.executable, "-m", "hdlgen.cli", "convert", str(digits / model), "--data",
                            str(DIGITS_DATA), "--calibration-data", str(digits / "digits_train.npz"), "--ticks", "16",
                            "--weight-bits", "8", "-o", str(net)], check=True)


def ensure_random_mlp():
    """The seeded random 784-128-10 net (:func:`hdlgen.testing.random_fashion_mlp`)."""
    if not RANDOM_MLP.exists():
        RANDOM_MLP.parent.mkdir(parents=True, exist_ok=True)
        ttfs.save(random_fashion_mlp(), RANDOM_MLP)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=20, help="images simulated for the cycle counts")
    parser.add_argument("--only", nargs="+", help="build names to run (default: all)")
    args = parser.parse_args()
    chosen = [build for build in BUILDS if not args.only or build[0] in args.only]
    made_by_fashion_mlp = {FASHION: [FASHION, FASHION_DATA], RANDOM_MLP: [FASHION_DATA]}
    missing = sorted({str(path) for build in chosen for path in made_by_fashion_mlp.get(build[1], []) if not path.exists()})
    if missing:
        raise SystemExit(f"{', '.join(missing)} missing: run bench/fashion_mlp.py first")
    ensure_digits()
    ensure_random_mlp()
    simulator = "verilator" if missing_simulator("verilator") is None else "icarus"
    RESULTS.mkdir(parents=True, exist_ok=True)
    results_path = RESULTS / "boards.json"
    # rows of an earlier run are kept for the builds not chosen, if they are hdlgen.bench rows (each row
    # names the command that made it)
    previous = {row["name"]: row for row in json.loads(results_path.read_text())["rows"] if "us_per_inference" in row} \
        if results_path.exists() else {}
    command = "python bench/boards.py " + " ".join(sys.argv[1:])
    sims = {}
    rows = []
    for build in BUILDS:
        name, net_path, data_path, board, lanes, clock, spram, per_transfer, spike_lanes = build
        if build not in chosen:
            if name in previous:
                rows.append(previous[name])
            continue
        net = ttfs.load(net_path)
        timing = get_board(board).fpga_family.engine_timing   # the core as the board builds it
        key = net_path, lanes, per_transfer, spike_lanes, timing
        if key not in sims:
            print(f"simulating {net.name} at lanes {lanes}, P {per_transfer}, spike lanes {spike_lanes} ...", flush=True)
            sims[key] = rtl_row(net, load_dataset(data_path, net.input.shape).head(args.samples), lanes, simulator,
                                pixels_per_transfer=per_transfer, spike_lanes=spike_lanes, engine_timing=timing)
        sim = sims[key]
        print(f"building {name} ...", flush=True)
        row = board_row(net, get_board(board), lanes, OUT / name, clock_hz=clock * 1e6,
                        cycles_mean=sim["cycles_mean"], spram=spram, pixels_per_transfer=per_transfer,
                        spike_lanes=spike_lanes)
        rows.append({"name": name, "command": command, "net": net_path.stem, **row, "clock_requested_mhz": clock,
                     "cycles_mean": sim["cycles_mean"], "lower_bound_mean": sim["lower_bound_mean"],
                     "simulated_images": sim["samples"], "simulator": simulator, "bit_exact": sim["bit_exact"]})
        results_path.write_text(json.dumps({"benchmark": "boards", "command": command, "rows": rows}, indent=1) + "\n")
    results_path.write_text(json.dumps({"benchmark": "boards", "command": command, "rows": rows}, indent=1) + "\n")
    print(format_boards(rows))


if __name__ == "__main__":
    main()
