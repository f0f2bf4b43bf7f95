"""Benchmark: images back to back – the interval between results against the throughput bound.

`hdlgen sim --stream 64` on 64 Fashion-MNIST test images given twice (each first alone: its
latency, then all back to back: the interval) on

* the Fashion-MNIST 784-128-10 MLP of bench/fashion_mlp.py (T=16, 8-bit; trained and converted
  here if out/bench has no copy), lanes 8, 32, 64, 128 and 256 (two input spikes a cycle), 8 pixels per transfer;
* the LeNet-5-shaped CNN of bench/cnn_rtl.py (random integer weights) on Fashion-MNIST test
  images, lanes 4 and 16, 8 pixels per transfer.

Each row: latency (cycles of the images run alone), the interval between the 64 streamed
results (mean, spread), the throughput bound (the busiest stage's mean cycles per image,
hdlgen.cycles.throughput_bound) and its stage, interval / bound, images per second per MHz,
bit-exactness; and the bound of a core whose every stage would keep two images' state
(``overlapped``: what double buffering could buy at most). Verilator (Icarus takes hours on the
wide cores). Writes bench/results/stream.json as each row is done; a run of some nets or lanes
replaces those rows and keeps the others, each row with the command that made it.

Run: `python bench/stream.py [--stream 64] [--only fashion_mlp] [--lanes 64 128]` (some minutes a row);
`--pixels-per-transfer P --spike-lanes S` for another folding (rows are keyed by net and folding).
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from cnn_rtl import lenet
from fashion_mlp import OUT, RESULTS, SINGLE_THREAD, fashion, hdlgen, train

NETS = {"fashion_mlp": [8, 32, 64, 128, 256], "lenet5": [4, 16]}


def fashion_mlp() -> Path:
    """The 784-128-10 MLP at T=16, 8-bit weights, as bench/fashion_mlp.py makes it."""
    path = OUT / "fashion_mlp_T16_w8.ttfs"
    if path.exists():
        return path
    import torch
    torch.set_num_threads(1)
    x_train, y_train, x_test, _ = fashion()
    model = OUT / "fashion_mlp.pt2"
    if not model.exists():
        torch.export.save(torch.export.export(train(x_train, y_train, 15), (torch.from_numpy(x_test[:1]),)), model)
    np.savez(OUT / "fashion_calib.npz", x=x_train[:2000], y=y_train[:2000])
    hdlgen("convert", model, "--data", OUT / "fashion_test.npz", "--calibration-data", OUT / "fashion_calib.npz",
           "--ticks", 16, "--weight-bits", 8, "-o", path, env=SINGLE_THREAD)
    return path


def overlapped_bound(net_path: Path, x, lanes: int, pixels_per_transfer: int, spike_lanes: int | None) -> tuple:
    """The throughput bound of the streamed images after the first with every stage double-buffered."""
    from hdlgen import golden, ttfs
    from hdlgen.cycles import throughput_bound
    net = ttfs.load(net_path)
    spikes = [golden.run_events(net, image).spikes for image in net.input.pixels(x[1:])]
    return throughput_bound(net, spikes, lanes, pixels_per_transfer, spike_lanes, overlapped=True)


def lenet5() -> Path:
    from hdlgen import ttfs
    return ttfs.save(lenet(np.random.default_rng(5)), OUT / "lenet5_stream.ttfs")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stream", type=int, default=64)
    parser.add_argument("--only", nargs="+", choices=sorted(NETS), help="only these nets (default both)")
    parser.add_argument("--lanes", nargs="+", type=int, help="only these lanes (default each net's)")
    parser.add_argument("--pixels-per-transfer", type=int, default=8)
    parser.add_argument("--spike-lanes", type=int, help="spike lanes (default: lanes)")
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    _, _, x_test, y_test = fashion()
    np.savez(OUT / "fashion_test.npz", x=x_test, y=y_test)
    twice = OUT / f"fashion_stream{args.stream}.npz"
    np.savez(twice, x=np.concatenate([x_test[:args.stream]] * 2), y=np.concatenate([y_test[:args.stream]] * 2))
    out = RESULTS / "stream.json"
    command = "python bench/stream.py " + " ".join(sys.argv[1:])
    for name, lanes_list in NETS.items():
        if args.only and name not in args.only:
            continue
        net = {"fashion_mlp": fashion_mlp, "lenet5": lenet5}[name]()
        for lanes in [n for n in lanes_list if not args.lanes or n in args.lanes]:
            simulator = "verilator"
            spike_lanes = [] if args.spike_lanes is None else ["--spike-lanes", args.spike_lanes]
            report, seconds = hdlgen("sim", net, "--data", twice, "--stream", args.stream, "--lanes", lanes,
                                     "--pixels-per-transfer", args.pixels_per_transfer, *spike_lanes,
                                     "--simulator", simulator, env=SINGLE_THREAD)
            row = {"net": name, "lanes": lanes, "pixels_per_transfer": args.pixels_per_transfer,
                   "spike_lanes": args.spike_lanes, "simulator": simulator,
                   "samples": report["samples"],
                   "streamed": report["streamed"], "isolated": report["isolated"],
                   "latency_mean": report["cycles_mean"], "latency_max": report["cycles_max"],
                   "event_lower_bound_mean": report["lower_bound_mean"],
                   "interval_mean": report["initiation_interval"], "interval_std": report["interval_std"],
                   "interval_min": report["interval_min"], "interval_max": report["interval_max"],
                   "throughput_bound": report["throughput_bound"], "bottleneck": report["bottleneck"],
                   "interval_to_bound": report["initiation_interval"] / report["throughput_bound"],
                   "interval_to_latency": report["initiation_interval"] / report["cycles_mean"],
                   "dense_throughput_bound": report["dense_throughput_bound"],
                   **dict(zip(["overlapped_bound", "overlapped_bottleneck"],
                              overlapped_bound(net, x_test[:args.stream], lanes, args.pixels_per_transfer,
                                                       args.spike_lanes))),
                   "images_per_second_per_mhz": round(report["images_per_second_per_mhz"], 2),
                   "bit_exact": not report["mismatches"], "mismatches": report["mismatches"][:3],
                   "simulation_seconds": round(seconds, 1), "command": command}
            rows = json.loads(out.read_text())["rows"] if out.exists() else []   # another run's rows may be new
            folding = ("net", "lanes", "pixels_per_transfer", "spike_lanes")
            rows = [r for r in rows if [r.get(k) for k in folding] != [row[k] for k in folding]] + [row]
            rows.sort(key=lambda r: (list(NETS).index(r["net"]), r["lanes"], r["pixels_per_transfer"], r.get("spike_lanes") or 0))
            out.write_text(json.dumps({"benchmark": "stream: interval vs throughput bound", "rows": rows}, indent=1) + "\n")
            print(f"{name:<12} lanes {lanes:<4} latency {row['latency_mean']:>7.1f}  interval {row['interval_mean']:>7.1f} "
                  f"(std {row['interval_std']:.1f})  bound {row['throughput_bound']:>7.1f} ({row['bottleneck']})  "
                  f"×{row['interval_to_bound']:.3f}  overlapped {row['overlapped_bound']:.1f}  "
                  f"{row['images_per_second_per_mhz']:.1f} images/s per MHz  "
                  f"bit-exact {row['bit_exact']}  {seconds:.0f} s", flush=True)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
