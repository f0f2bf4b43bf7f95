"""Benchmark: `hdlgen build --target-fps` (issue 28) – the folding `--lanes auto` picks for the
Fashion-MNIST 784-128-10 net, built for real, against the cycle and resource models.

Per run (a board, a target frame rate, a clock): the choice `hdlgen build` printed (lanes per
layer, pixels per transfer, predicted images/s, modelled resources, what limits it), any step-down,
and the build's real utilization, fmax and outcome beside the model's figures. Writes
bench/results/folding.json (runs of other names kept) and prints each run. `--fit` prints the
resource model's coefficients fitted to the builds recorded in bench/results (hdlgen.resources.LOGIC).

Run: `nice -n 10 .venv/bin/python bench/folding.py --name icebreaker-1000 -- --board icebreaker
--target-fps 1000 --clock 30` (after `--`: `hdlgen build` options). The net is
out/bench/fashion_mlp_T16_w8.ttfs (bench/fashion_mlp.py, or `hdlgen convert` of another Fashion
784-128-10 model at --ticks 16 --weight-bits 8; --net picks another).
"""

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from hdlgen import resources, ttfs
from hdlgen.boards.platforms import get_board
from hdlgen.geometry import NetGeometry

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "folding.json"
FASHION = ROOT / "out" / "bench" / "fashion_mlp_T16_w8.ttfs"
OUT = ROOT / "out" / "bench" / "folding"
DIGITS = ROOT / "examples" / "digits"


def fit() -> dict:
    """hdlgen.resources.LOGIC fitted again to bench/results (the digits nets converted as the tests do)."""
    from hdlgen import ConvertConfig, convert, load_model
    from hdlgen.data import load_dataset

    train = load_dataset(DIGITS / "digits_train.npz", (1, 8, 8))
    nets = {name: convert(load_model(DIGITS / f"{name}.pt2"), train.x, ConvertConfig(ticks=16, weight_bits=8), name=name)
            for name in ("digits_mlp", "digits_cnn")}
    return resources.fit(resources.recorded_builds(ROOT / "bench" / "results"), {**nets, **resources.stand_in_nets()})


def run(name: str, net: Path, build_args: list) -> dict:
    """One `hdlgen build NET --json BUILD_ARGS` with --lanes auto's choice, the build and the model side by side."""
    out = OUT / name
    command = [sys.executable, "-m", "hdlgen.cli", "build", str(net), *build_args, "-o", str(out), "--json"]
    start = time.perf_counter()
    proc = subprocess.run(command, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    lines = proc.stdout.strip().splitlines()
    if not lines or not lines[-1].startswith("{"):
        sys.exit(f"{' '.join(command)} failed:\n{proc.stderr}")
    report = json.loads(lines[-1])
    board = get_board(build_args[build_args.index("--board") + 1])
    lanes = report["lanes"]
    spike_lanes = report.get("spike_lanes")
    geometry = NetGeometry(ttfs.load(net), tuple(lanes) if isinstance(lanes, list) else lanes,
                           report["pixels_per_transfer"], 1 if board.family == "ice40" else spike_lanes)
    modelled = resources.estimate(geometry, board).total.used
    used = {kind: u["used"] for kind, u in report["utilization"].items()}
    return {"name": name, "command": "hdlgen " + " ".join(command[3:]), "exit_code": proc.returncode,
            "choice": [line for line in lines if line.startswith(("lanes auto", "  modelled", "  limited"))],
            "step_down": [line for line in proc.stderr.splitlines() if "stepping down" in line],
            "lanes": lanes, "pixels_per_transfer": report["pixels_per_transfer"], "spike_lanes": spike_lanes,
            "board": report["board"],
            "outcome": "built" if report["ok"] else report["problem"], "fmax_mhz": report["fmax_mhz"],
            "clock_mhz": report["clock_mhz"], "utilization": used, "modelled": modelled,
            "model_error_pct": {kind: round(100 * (modelled[kind] - used[kind]) / used[kind], 1)
                                for kind in modelled if used.get(kind)},
            "seconds": round(seconds, 1)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fit", action="store_true", help="print the resource model's coefficients fitted again")
    parser.add_argument("--name", help="the run's name in bench/results/folding.json")
    parser.add_argument("--net", type=Path, default=FASHION)
    parser.add_argument("build_args", nargs="*", help="after --: hdlgen build options (--board, --target-fps, --clock …)")
    args = parser.parse_args()
    if args.fit:
        print(json.dumps(fit(), indent=1))
        return
    if not args.name or "--board" not in args.build_args:
        parser.error("give --name and, after --, at least --board")
    row = run(args.name, args.net, args.build_args)
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {"benchmark": __doc__.splitlines()[0], "runs": []}
    results["runs"] = [r for r in results["runs"] if r["name"] != row["name"]] + [row]
    RESULTS.write_text(json.dumps(results, indent=1) + "\n")
    print(json.dumps(row, indent=1))


if __name__ == "__main__":
    main()
