"""Benchmark: board builds of the generated accelerator (host link + core) with yowasp
yosys/nextpnr – utilisation, fmax against the requested clock, build time – and µs per
inference at the achieved clock (cycles from `hdlgen sim` × clock period).

Builds: the digits MLP (64-32-10) and the digits CNN (conv-BN-ReLU-maxpool ×2, linear) on
iCEBreaker (iCE40 UP5K) and ULX3S-85F (ECP5), the Fashion-MNIST 784-128-10 MLP of
bench/fashion_mlp.py (T=16, 8-bit; run that first) on iCEBreaker with layer 0's weights in
SPRAM and on ULX3S-85F with more lanes. Each build runs
`hdlgen build NET --board B --lanes N --clock MHZ [--spram] --json`, one at a time. Writes
bench/results/boards.json and prints a table.

Run: `.venv/bin/python bench/boards.py [--samples 20] [--only digits-icebreaker ...]`.
"""

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from hdlgen.simulate import missing_simulator

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
OUT = ROOT / "out" / "bench" / "boards"
HDLGEN = [sys.executable, "-m", "hdlgen.cli"]
DIGITS = ROOT / "out" / "digits_mlp.ttfs"
DIGITS_CNN = ROOT / "out" / "digits_cnn.ttfs"
DIGITS_DATA = ROOT / "examples" / "digits" / "digits_test.npz"
FASHION = ROOT / "out" / "bench" / "fashion_mlp_T16_w8.ttfs"
FASHION_DATA = ROOT / "out" / "bench" / "fashion_test.npz"

# name, net, data, board, lanes, requested clock (MHz), weights in SPRAM
BUILDS = [
    ("digits-icebreaker", DIGITS, DIGITS_DATA, "icebreaker", 1, 30, False),
    ("digits-ulx3s", DIGITS, DIGITS_DATA, "ulx3s-85f", 1, 100, False),
    ("digits-cnn-icebreaker", DIGITS_CNN, DIGITS_DATA, "icebreaker", 1, 30, False),
    ("digits-cnn-ulx3s", DIGITS_CNN, DIGITS_DATA, "ulx3s-85f", 1, 100, False),
    ("fashion-icebreaker", FASHION, FASHION_DATA, "icebreaker", 1, 30, True),
    ("fashion-icebreaker-l2", FASHION, FASHION_DATA, "icebreaker", 2, 30, True),
    ("fashion-ulx3s", FASHION, FASHION_DATA, "ulx3s-85f", 4, 100, False),
]


def last_json(stdout: str) -> dict:
    return json.loads(stdout.strip().splitlines()[-1])


def ensure_digits():
    """The digits nets as `make demo` converts them (T=16, 8-bit)."""
    digits = ROOT / "examples" / "digits"
    for net, model in [(DIGITS, "digits_mlp.pt2"), (DIGITS_CNN, "digits_cnn.pt2")]:
        if not net.exists():
            subprocess.run([*HDLGEN, "convert", str(digits / model), "--data", str(DIGITS_DATA),
                            "--calibration-data", str(digits / "digits_train.npz"), "--ticks", "16",
                            "--weight-bits", "8", "-o", str(net)], check=True)


def build(name, net, board, lanes, clock, spram) -> dict:
    command = [*HDLGEN, "build", str(net), "--board", board, "--lanes", str(lanes), "--clock", str(clock),
               "-o", str(OUT / name), "--json"] + (["--spram"] if spram else [])
    start = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    report = last_json(done.stdout)
    report["wall_seconds"] = round(time.perf_counter() - start, 1)
    return report


def cycles(net, data, lanes, samples, simulator) -> dict:
    command = [*HDLGEN, "sim", str(net), "--data", str(data), "--samples", str(samples), "--lanes", str(lanes),
               "--simulator", simulator, "--json"]
    done = subprocess.run(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if done.returncode != 0:
        raise SystemExit(f"hdlgen sim failed on {net} (lanes {lanes}):\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    return last_json(done.stdout)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=20, help="images simulated for the cycle counts")
    parser.add_argument("--only", nargs="+", help="build names to run (default: all)")
    args = parser.parse_args()
    if not FASHION.exists():
        raise SystemExit(f"{FASHION} missing: run bench/fashion_mlp.py first")
    ensure_digits()
    simulator = "verilator" if missing_simulator("verilator") is None else "icarus"
    RESULTS.mkdir(parents=True, exist_ok=True)
    results_path = RESULTS / "boards.json"
    previous = {row["name"]: row for row in json.loads(results_path.read_text())["rows"]} \
        if results_path.exists() else {}
    sims = {}
    rows = []
    for name, net, data, board, lanes, clock, spram in BUILDS:
        if args.only and name not in args.only:
            if name in previous:
                rows.append(previous[name])
            continue
        print(f"building {name} ...", flush=True)
        report = build(name, net, board, lanes, clock, spram)
        if (net, lanes) not in sims:
            print(f"simulating {net.name} at lanes {lanes} ...", flush=True)
            sims[net, lanes] = cycles(net, data, lanes, args.samples, simulator)
        sim = sims[net, lanes]
        mean = sim["cycles_mean"]
        fmax, usage = report.get("fmax_mhz"), report.get("utilization") or {}
        rows.append({
            "name": name, "net": net.stem, "board": board, "lanes": lanes, "spram": spram,
            "clock_requested_mhz": clock, "clock_mhz": report.get("clock_mhz"), "fmax_mhz": fmax,
            "fits": bool(usage) and all(u["used"] <= u["available"] for u in usage.values()),
            "meets_timing": fmax is not None and fmax >= report["clock_mhz"],
            "problem": report.get("problem"),
            "utilization": usage, "build_seconds": report.get("seconds"),
            "cycles_mean": mean, "lower_bound_mean": sim["lower_bound_mean"], "simulated_images": args.samples,
            "simulator": simulator, "bit_exact": not sim["mismatches"],
            "us_per_inference_at_fmax": None if fmax is None else round(mean / fmax, 1),
            "us_per_inference_at_clock": None if report.get("clock_mhz") is None
            else round(mean / report["clock_mhz"], 1),
        })
        results_path.write_text(json.dumps({"benchmark": "boards", "rows": rows}, indent=1) + "\n")
    results_path.write_text(json.dumps({"benchmark": "boards", "rows": rows}, indent=1) + "\n")
    table(rows)


def table(rows):
    head = f"{'build':20} {'lanes':>5} {'logic':>16} {'FF':>11} {'BRAM':>7} {'SPRAM':>5} {'DSP':>6} " \
           f"{'fmax/clock MHz':>15} {'build s':>7} {'cycles':>8} {'µs/inf':>7}  (µs at the lower of fmax and clock)"
    print(head)
    for r in rows:
        u = r["utilization"] or {}
        logic = u.get("LC") or u.get("LUT") or {}
        kind = "LC" if "LC" in u else "LUT"

        def cell(key):
            x = u.get(key)
            return f"{x['used']}/{x['available']}" if x else "–"
        fmax = "–" if r["fmax_mhz"] is None else f"{r['fmax_mhz']:.1f}"
        print(f"{r['name']:20} {r['lanes']:>5} {logic.get('used', '–'):>7}/{logic.get('available', '–')} {kind:3}"
              f"{cell('FF'):>11} {cell('BRAM'):>7} {cell('SPRAM'):>5} {cell('DSP'):>6} "
              f"{fmax:>7}/{r['clock_mhz'] or '–':<7} {r['build_seconds'] or '–':>7} {r['cycles_mean']:>8.0f} "
              f"{achieved_us(r):>7}")


def achieved_us(row) -> str:
    """µs per inference at the clock the build can run: the requested one, or fmax if lower."""
    clocks = [c for c in (row["clock_mhz"], row["fmax_mhz"]) if c]
    return f"{row['cycles_mean'] / min(clocks):.1f}" if clocks else "–"


if __name__ == "__main__":
    main()
