"""Benchmark: time to prove each component's properties (`hdlgen prove`) for the bundled digits
MLP (64-32-10) and CNN at T=16, 8-bit, at the given lanes; and, when bench/fashion_mlp.py has
made it, the Fashion-MNIST 784-128-10 MLP. Writes bench/results/prove.json with the command
that made it, every proof's result, depth and seconds, and each net's wall-clock total. With
`--equivalence 2-2-2 4-3-2 …`, the whole-core equivalence of random dense nets of those sizes
(T=2, 2-bit weights; `hdlgen.testing.random_net`, seed 0) instead.

Run: `.venv/bin/python bench/prove.py [--lanes 1 4] [--nets digits_mlp digits_cnn] [--jobs 2]
[--property stream spike_time …] [--fashion NET.ttfs]`.
"""

import argparse
import json
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

from hdlgen import ConvertConfig, convert, load_model, ttfs
from hdlgen.data import load_dataset
from hdlgen.prove import proofs_for, run_proofs, summary
from hdlgen.rtl_templates.top import NetworkTop
from hdlgen.testing import random_net

ROOT = Path(__file__).resolve().parent.parent
DIGITS = ROOT / "examples" / "digits"
FASHION = ROOT / "out" / "bench" / "fashion_mlp_T16_w8.ttfs"
RESULTS = ROOT / "bench" / "results"


def nets(names, fashion: Path):
    train = load_dataset(DIGITS / "digits_train.npz", (1, 8, 8))
    for name in ("digits_mlp", "digits_cnn"):
        if name in names:
            yield convert(load_model(DIGITS / f"{name}.pt2"), train.x, ConvertConfig(ticks=16), name=name)
    if "fashion_mlp" in names:
        if fashion.exists():
            yield ttfs.load(fashion)
        else:
            print(f"{fashion} missing: run bench/fashion_mlp.py first for the 784-128-10 figures")


def equivalence_nets(sizes, ticks: int, weight_bits: int):
    for spec in sizes:
        layers = [int(v) for v in spec.split("-")]
        yield random_net(np.random.default_rng(0), layers, [ticks] * (len(layers) - 1), weight_bits=weight_bits,
                         name=f"random_{spec}_T{ticks}_w{weight_bits}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lanes", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--nets", nargs="+", default=["digits_mlp", "digits_cnn"])
    parser.add_argument("--property", nargs="+", help="only these property kinds")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--timeout", type=int, default=600)
    parser.add_argument("--fashion", type=Path, default=FASHION, help="the fashion_mlp net's .ttfs file")
    parser.add_argument("--output", default=str(RESULTS / "prove.json"))
    parser.add_argument("--equivalence", nargs="+", metavar="SIZES", help="random dense nets, e.g. 2-2-2 4-3-2")
    parser.add_argument("--ticks", type=int, default=2, help="T of the --equivalence nets")
    parser.add_argument("--weight-bits", type=int, default=2, help="weight bits of the --equivalence nets")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    runs = []
    chosen = (equivalence_nets(args.equivalence, args.ticks, args.weight_bits) if args.equivalence
              else nets(args.nets, args.fashion))
    for net in chosen:
        for lanes in args.lanes:
            core = NetworkTop(net, lanes=min(lanes, max(l.fan_out for l in net.layers)))
            proofs = proofs_for(core, ["equivalence"] if args.equivalence else args.property)
            load = os.getloadavg()[0]   # the machine's load when the run starts (proof times scale with it)
            start = time.perf_counter()
            with tempfile.TemporaryDirectory(prefix="prove-bench-") as work:
                results = run_proofs(proofs, work, jobs=args.jobs, timeout=args.timeout,
                                     progress=lambda r: print(f"  {r.component:34} {r.kind:11} {r.result:8} "
                                                              f"{r.depth:3d} {r.seconds:7.1f} s", flush=True))
            row = summary(net, lanes, results)
            row.update(wall_seconds=round(time.perf_counter() - start, 1), load_average=round(load, 2))
            print(f"{net.name} lanes {lanes}: {row['passed']} proved, {row['bounded']} bounded, {row['failed']} failed, "
                  f"{row['errors']} errors; {row['wall_seconds']} s wall ({args.jobs} jobs)", flush=True)
            runs.append(row)
            # after every run, so an interrupted benchmark keeps what it measured
            Path(args.output).write_text(json.dumps({"command": " ".join([Path(sys.executable).name, *sys.argv]),
                                                     "jobs": args.jobs, "runs": runs}, indent=1) + "\n")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
