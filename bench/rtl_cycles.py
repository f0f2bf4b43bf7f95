"""Benchmark: cycles per inference of the generated core against the event lower bound and the
dense schedule, `hdlgen verilog` time, and cocotb simulation time (Icarus, Verilator).

Nets: the bundled digits MLP (64-32-10, T=16) and the Fashion-MNIST 784-128-10 MLP of
bench/fashion_mlp.py (T=16, 8-bit; run that first). Writes bench/results/rtl_cycles.json.

Run: `.venv/bin/python bench/rtl_cycles.py [--images 100] [--lanes 1 8] [--pixels-per-transfer 1 8]
[--simulators icarus] [--nets fashion_mlp]`.
"""

import argparse
import json
import sys
import time
from pathlib import Path

from hdlgen import ConvertConfig, convert, load_model, ttfs
from hdlgen.data import load_dataset
from hdlgen.simulate import missing_simulator, simulate
from hdlgen.verilog import write_verilog

ROOT = Path(__file__).resolve().parent.parent
DIGITS = ROOT / "examples" / "digits"
FASHION = ROOT / "out" / "bench"
RESULTS = ROOT / "bench" / "results"


def nets():
    train = load_dataset(DIGITS / "digits_train.npz", (1, 8, 8))
    digits = convert(load_model(DIGITS / "digits_mlp.pt2"), train.x, ConvertConfig(ticks=16), name="digits_mlp")
    yield digits, load_dataset(DIGITS / "digits_test.npz", (1, 8, 8))
    fashion = FASHION / "fashion_mlp_T16_w8.ttfs"
    if fashion.exists():
        yield ttfs.load(fashion), load_dataset(FASHION / "fashion_test.npz", (1, 28, 28))
    else:
        print(f"{fashion} missing: run bench/fashion_mlp.py first for the 784-128-10 figures")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=100)
    parser.add_argument("--lanes", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--pixels-per-transfer", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--simulators", nargs="+", default=["icarus", "verilator"])
    parser.add_argument("--nets", nargs="+", help="only these nets (names), default all")
    parser.add_argument("--output", default=str(RESULTS / "rtl_cycles.json"))
    args = parser.parse_args()
    RESULTS.mkdir(parents=True, exist_ok=True)
    simulators = [s for s in args.simulators if missing_simulator(s) is None]
    rows = []
    for net, data in nets():
        if args.nets and net.name not in args.nets:
            continue
        pixels = net.input.pixels(data.x[:args.images])
        for lanes, per_transfer in ((lanes, p) for lanes in args.lanes for p in args.pixels_per_transfer):
            start = time.perf_counter()
            write_verilog(net, FASHION / "verilog" / net.name, lanes=lanes, pixels_per_transfer=per_transfer)
            verilog_seconds = time.perf_counter() - start
            for simulator in simulators:
                start = time.perf_counter()
                report = simulate(net, pixels, labels=data.y[:args.images], lanes=lanes,
                                  pixels_per_transfer=per_transfer, simulator=simulator)
                seconds = time.perf_counter() - start
                row = {"net": net.name, "sizes": net.sizes, "ticks": net.ticks, "lanes": lanes,
                       "pixels_per_transfer": per_transfer, "intake": report.intake, "simulator": simulator,
                       "images": len(pixels), "mismatches": len(report.mismatches), "accuracy": report.accuracy,
                       "cycles_mean": report.cycles_mean, "cycles_max": report.cycles_max,
                       "initiation_interval": report.initiation_interval,
                       "lower_bound_mean": report.lower_bound_mean, "dense_cycles": report.dense_cycles_mean,
                       "ratio_to_lower_bound": report.cycles_mean / report.lower_bound_mean,
                       "ratio_to_dense": report.cycles_mean / report.dense_cycles_mean,
                       "verilog_seconds": round(verilog_seconds, 2), "simulation_seconds": round(seconds, 1)}
                rows.append(row)
                print(f"{net.name:<22} lanes {lanes:<3} P {per_transfer:<2} {simulator:<9} mismatches {row['mismatches']}  "
                      f"cycles {row['cycles_mean']:.0f} (max {row['cycles_max']})  bound {row['lower_bound_mean']:.0f} "
                      f"×{row['ratio_to_lower_bound']:.3f}  dense {row['dense_cycles']:.0f} ×{row['ratio_to_dense']:.3f}  "
                      f"II {row['initiation_interval'] or float('nan'):.0f}  verilog {verilog_seconds:.1f} s  "
                      f"sim {seconds:.0f} s", flush=True)
    command = "python bench/rtl_cycles.py " + " ".join(sys.argv[1:])
    Path(args.output).write_text(json.dumps({"benchmark": "rtl cycles", "command": command, "rows": rows}, indent=1)
                                 + "\n")


if __name__ == "__main__":
    main()
