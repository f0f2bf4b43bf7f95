"""Benchmark: `hdlgen bench` sweeps as Dask tasks.

1. speedup – the same sweep (digits MLP, T 4 and 8 × lanes 1 and 2 simulated on `--samples` images,
   iCEBreaker builds at lanes 2: 2 conversions, 4 simulations, 2 builds) in process and with
   `--workers 2` (a LocalCluster on this machine): wall time of each and their ratio.
2. cnn – the digits CNN (T=16, 8-bit) over `--lanes` × `--boards` with `--workers 2` and a cache
   (an interrupted run resumes): every build row and the Pareto front of accuracy, µs per image and
   LUTs; the plot lands beside out/bench/sweep_cnn.json.

Writes bench/results/sweep.json (with the command of each run and the load average before it).
Run: `.venv/bin/python bench/sweep.py [--boards icebreaker ulx3s-85f] [--lanes 1 2 4 8 16] [--parts speedup cnn]`.
"""

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "sweep.json"
OUT = ROOT / "out" / "bench"
DIGITS = ROOT / "examples" / "digits"
DATA = DIGITS / "digits_test.npz"
TRAIN = DIGITS / "digits_train.npz"


def bench(argv, output: Path) -> tuple[dict, float, list]:
    """``hdlgen bench ARGV -o OUTPUT``: its figures, wall seconds and the command line."""
    command = [sys.executable, "-m", "hdlgen.cli", "bench", *map(str, argv), "-o", str(output)]
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return json.loads(output.read_text()), time.perf_counter() - start, command


def speedup(samples: int) -> dict:
    argv = [DIGITS / "digits_mlp.pt2", "--data", DATA, "--calibration-data", TRAIN, "--ticks", "4", "8",
            "--lanes", "1", "2", "--samples", samples, "--board", "icebreaker", "--build-lanes", "2",
            "--build-dir", OUT / "sweep-speedup"]
    runs = {}
    for name, extra in [("in_process", []), ("workers_2", ["--workers", "2"])]:
        load = os.getloadavg()
        figures, seconds, command = bench(argv + extra, OUT / f"sweep_{name}.json")
        runs[name] = {"wall_seconds": round(seconds, 1), "load_average_before": [round(v, 2) for v in load],
                      "tasks": figures["tasks"], "command": shlex.join(command),
                      "task_seconds": round(sum(row["task"]["seconds"] for section in ("accuracy", "boards")
                                                for row in figures[section])
                                            + sum(row["task"]["seconds"] for row in figures["rtl"]["rows"]), 1)}
        print(f"{name}: {seconds:.1f} s wall, tasks {runs[name]['task_seconds']} s, load before {load}", flush=True)
    runs["ratio"] = round(runs["workers_2"]["wall_seconds"] / runs["in_process"]["wall_seconds"], 3)
    print(f"ratio workers 2 / in process: {runs['ratio']}")
    return runs


def cnn(boards, lanes, samples: int) -> dict:
    argv = [DIGITS / "digits_cnn.pt2", "--data", DATA, "--calibration-data", TRAIN, "--ticks", "16",
            "--lanes", *lanes, "--samples", samples, "--board", *boards, "--workers", "2",
            "--cache", OUT / "sweep-cache", "--build-dir", OUT / "sweep-cnn"]
    load = os.getloadavg()
    figures, seconds, command = bench(argv, OUT / "sweep_cnn.json")
    keep = ["board", "lanes", "fits", "meets_timing", "fmax_mhz", "clock_mhz", "us_per_inference",
            "inferences_per_s_per_klut", "snn_accuracy", "pareto", "problem", "build_seconds"]
    rows = [{**{k: row.get(k) for k in keep}, "luts": row.get("utilization", {}).get("LUT", {}).get("used"),
             "worker": row["task"]["worker"], "cached": row["task"]["cached"]} for row in figures["boards"]]
    print(f"cnn sweep: {seconds:.1f} s wall, {figures['tasks']}")
    for row in rows:
        print(f"  {row['board']:12} lanes {row['lanes']:>2}: {row['luts']} LUT, {row['us_per_inference']} µs, "
              f"fmax {row['fmax_mhz']}{'  (front)' if row['pareto'] else ''}{'  ' + row['problem'] if row['problem'] else ''}")
    return {"command": shlex.join(command), "wall_seconds": round(seconds, 1),
            "load_average_before": [round(v, 2) for v in load], "tasks": figures["tasks"],
            "accuracy": figures["accuracy"][0]["snn_accuracy"], "cycles": {row["lanes"]: row.get("cycles_mean")
                                                                         for row in figures["rtl"]["rows"]},
            "boards": rows, "pareto": [rows[i] for i in figures["pareto"]],
            "plot": str((OUT / "sweep_cnn.png").relative_to(ROOT))}


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--parts", nargs="+", default=["speedup", "cnn"], choices=["speedup", "cnn"])
    p.add_argument("--boards", nargs="+", default=["icebreaker"])
    p.add_argument("--lanes", nargs="+", default=["1", "2", "4", "8", "16"])
    p.add_argument("--samples", type=int, default=10)
    args = p.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    script = shlex.join([sys.executable, *sys.argv])
    results["cpus"] = os.cpu_count()
    if "speedup" in args.parts:
        results["speedup"] = {"script": script, **speedup(args.samples)}
        RESULTS.write_text(json.dumps(results, indent=1) + "\n")
    if "cnn" in args.parts:
        results["cnn"] = {"script": script, **cnn(args.boards, args.lanes, args.samples)}
        RESULTS.write_text(json.dumps(results, indent=1) + "\n")
    print(f"wrote {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
