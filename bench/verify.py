"""The verification campaign: random nets × vectors, bit-exact in cocotb against the golden model.

Every net comes from :func:`hdlgen.testing.random_spec` (MLPs and CNNs, depths 1–5, inputs up to
784, windows 1–64 per layer, weight bits 2–12, per-layer and per-channel K, strides, padding,
max-pools, lanes 1..fan-out, P pixels per transfer) or, every fifth, from
:func:`hdlgen.testing.random_graph_spec` (residual dense and conv nets: skip inputs, subsamples) and runs ``--vectors`` images
(:func:`hdlgen.testing.campaign_pixels`: random, all-zero, all-saturated, single-pixel) through
:func:`hdlgen.simulate.simulate`, whose testbench adds random input gaps and back-pressure and
compares every spike, logit and class with the golden model. Nets run in parallel, one process
each; ``--seed`` reproduces the whole campaign. Writes ``bench/results/verify.json``.

    .venv/bin/python bench/verify.py [--nets 50] [--vectors 200] [--seed 15] [--jobs N] [--simulator verilator] [--resume]

``--resume`` keeps the rows of an earlier run of the same campaign in the results file and runs only
the nets it lacks (the campaign is long: its 784-input CNNs take many minutes each).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import numpy as np
from tqdm import tqdm

from hdlgen.cycles import dense_schedule
from hdlgen.simulate import missing_simulator, simulate
from hdlgen.testing import campaign_pixels, net_from_spec, random_graph_spec, random_spec

RESULTS = Path(__file__).parent / "results" / "verify.json"
# Simulated cycles per net at most (dense schedule × vectors): a wide layer at few lanes gets more
# lanes rather than minutes of simulation.
CYCLE_BUDGET = 20_000_000
# Verilator's C++ of a big core takes minutes to compile at its default -Os, and the simulation
# seconds: unoptimised C++ compiles several times faster (make reads these from MAKEFLAGS).
VERILATOR_MAKEFLAGS = "OPT_FAST=-O0 OPT_SLOW=-O0 OPT_GLOBAL=-O0"


GRAPH_EVERY = 5     # every fifth net of a campaign is a residual (graph) net


def campaign_specs(nets: int, seed: int) -> list:
    """The ``nets`` specs of campaign ``seed`` (the same for every run of that seed): chain nets, and
    every :data:`GRAPH_EVERY`-th a graph net drawn from a generator of its own (so the chain nets at
    the other places are those of campaigns before graph nets)."""
    rng, graphs = np.random.default_rng(seed), np.random.default_rng([seed, GRAPH_EVERY])
    specs = [random_spec(rng) for _ in range(nets)]
    return [random_graph_spec(graphs) if i % GRAPH_EVERY == GRAPH_EVERY - 1 else spec for i, spec in enumerate(specs)]


def run_net(spec: dict, vectors: int, simulator: str, index: int) -> dict:
    """Simulate one spec's net on ``vectors`` images; the campaign row."""
    start = time.perf_counter()
    if simulator == "verilator" and VERILATOR_MAKEFLAGS not in os.environ.get("MAKEFLAGS", ""):
        os.environ["MAKEFLAGS"] = f"{os.environ.get('MAKEFLAGS', '')} {VERILATOR_MAKEFLAGS}".strip()
    net = net_from_spec(spec)
    widest = max(layer.fan_out for layer in net.layers)
    lanes = min(spec["lanes"], widest)
    while dense_schedule(net, lanes, spec["pixels_per_transfer"]) * vectors > CYCLE_BUDGET and lanes < widest:
        lanes = min(widest, 2 * lanes)
    pixels = campaign_pixels(np.random.default_rng(spec["seed"] + 1), vectors, net.input.size)
    row = {"index": index, "spec": spec, "sizes": net.sizes, "lanes": lanes,
           "pixels_per_transfer": spec["pixels_per_transfer"], "vectors": vectors}
    with tempfile.TemporaryDirectory(prefix=f"verify{index}-") as work:
        try:
            report = simulate(net, pixels, lanes=lanes, pixels_per_transfer=spec["pixels_per_transfer"],
                              simulator=simulator, build_dir=work, seed=spec["seed"])
            row["mismatches"] = report.mismatches
        except RuntimeError as e:  # a build or simulation that did not finish is a failure of the campaign
            row["mismatches"] = [f"simulation failed: {e}"]
    row["seconds"] = round(time.perf_counter() - start, 2)
    return row


def _summary(rows: list, command: str, args, simulator: str, seconds: float) -> dict:
    """The results file: totals over the nets run so far, then their rows in campaign order."""
    rows = sorted(rows, key=lambda r: r["index"])
    vectors = sum(r["vectors"] for r in rows)
    return {"benchmark": "verify", "command": command, "seed": args.seed, "simulator": simulator, "jobs": args.jobs,
            "nets_planned": args.nets, "nets": len(rows), "vectors": vectors,
            "mismatches": sum(len(r["mismatches"]) for r in rows),
            "failed_nets": [r["index"] for r in rows if r["mismatches"]], "seconds": round(seconds, 1),
            "vectors_per_second": round(vectors / seconds, 2), "rows": rows}


def _earlier_rows(path: Path, specs: list, vectors: int, simulator: str) -> tuple[list, float]:
    """The rows of ``path`` that belong to this campaign (same spec at the same index, vectors and
    simulator) and the wall seconds that run had taken when it wrote them."""
    if not path.exists():
        return [], 0.0
    earlier = json.loads(path.read_text())
    if earlier.get("simulator") != simulator:
        return [], 0.0
    rows = [row for row in earlier["rows"] if row["index"] < len(specs) and row["spec"] == specs[row["index"]]
            and row["vectors"] == vectors]
    return rows, earlier["seconds"] if rows else 0.0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nets", type=int, default=50)
    parser.add_argument("--vectors", type=int, default=200)
    parser.add_argument("--seed", type=int, default=15)
    parser.add_argument("--jobs", type=int, default=os.cpu_count())
    parser.add_argument("--simulator", choices=["verilator", "icarus"], default=None,
                        help="default: verilator, else icarus when verilator is missing")
    parser.add_argument("-o", "--output", type=Path, default=RESULTS)
    parser.add_argument("--resume", action="store_true",
                        help="keep the rows of an earlier run of this campaign in --output; run only the missing nets")
    args = parser.parse_args(argv)
    if args.vectors < 6:
        parser.error("--vectors must be at least 6 (two all-zero, two saturated, two single-pixel)")
    simulator = args.simulator or ("verilator" if missing_simulator("verilator") is None else "icarus")
    reason = missing_simulator(simulator)
    if reason:
        parser.error(reason)
    specs = campaign_specs(args.nets, args.seed)
    command = shlex.join(["python", "bench/verify.py", *(sys.argv[1:] if argv is None else argv)])
    rows, earlier_seconds = _earlier_rows(args.output, specs, args.vectors, simulator) if args.resume else ([], 0.0)
    done = {row["index"] for row in rows}
    if rows:
        print(f"resuming: {len(rows)} nets already in {args.output}, {len(specs) - len(rows)} to run")
    start = time.perf_counter() - earlier_seconds   # the campaign's wall time counts both runs
    result = _summary(rows, command, args, simulator, time.perf_counter() - start) if rows else None
    with ProcessPoolExecutor(args.jobs) as pool:
        futures = [pool.submit(run_net, spec, args.vectors, simulator, i) for i, spec in enumerate(specs)
                   if i not in done]
        for future in tqdm(as_completed(futures), total=len(futures), unit="net", desc=f"{simulator} seed {args.seed}"):
            row = future.result()
            rows.append(row)
            if row["mismatches"]:
                tqdm.write(f"net {row['index']} ({row['spec']['kind']} {row['sizes']}, lanes {row['lanes']}, "
                           f"P {row['pixels_per_transfer']}): {len(row['mismatches'])} mismatch(es), "
                           f"first: {row['mismatches'][0]}")
            # rewritten after every net, so an interrupted campaign keeps what it ran
            result = _summary(rows, command, args, simulator, time.perf_counter() - start)
            args.output.parent.mkdir(parents=True, exist_ok=True)
            args.output.write_text(json.dumps(result, indent=1) + "\n")
    failed = result["failed_nets"]
    print(f"{result['nets']} nets × {args.vectors} vectors = {result['vectors']} vectors, {result['mismatches']} "
          f"mismatch(es) in {len(failed)} net(s), {result['seconds']:.0f} s, {result['vectors_per_second']} vectors/s "
          f"({simulator}, {args.jobs} jobs); reproduce: python bench/verify.py --seed {args.seed} --nets {args.nets} "
          f"--vectors {args.vectors}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
