"""Benchmark: TTFS against AMOS and rate coding (``hdlgen compare``) on the Fashion-MNIST
784-128-10 MLP and the bundled digits CNN, every method at every step count, and the rate code's
ablations (hard reset, no θ/2T shift, both).

Needs the Fashion model and data of ``bench/fashion_mlp.py`` in out/bench/ (run that first).
Writes bench/results/compare.json (with the command that made it; the plots of each model's main
run go to out/bench/compare/) and prints a summary: per method the fewest steps within 1 pp of
the float net and what they cost.

Run: ``.venv/bin/python bench/compare.py [--samples N] [--lanes 8]`` (a few minutes on one core).
"""

import argparse
import json
import sys
from pathlib import Path

from fashion_mlp import SINGLE_THREAD, hdlgen

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "out" / "bench"
RESULTS = ROOT / "bench" / "results"
DIGITS = ROOT / "examples" / "digits"
MODELS = {
    "fashion_mlp": (OUT / "fashion_mlp.pt2", OUT / "fashion_test.npz", OUT / "fashion_calib.npz"),
    "digits_cnn": (DIGITS / "digits_cnn.pt2", DIGITS / "digits_test.npz", DIGITS / "digits_train.npz"),
}
ABLATIONS = {"hard_reset": ["--hard-reset"], "no_shift": ["--no-shift"], "hard_reset_no_shift": ["--hard-reset", "--no-shift"]}


def within(rows, ann_accuracy, points=0.01):
    """The first row (fewest steps) within ``points`` of the float accuracy, or None."""
    return next((r for r in rows if r["accuracy"] >= ann_accuracy - points), None)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, help="test images per model (default: all)")
    parser.add_argument("--lanes", type=int, default=8, help="lanes of the cycle counts (default 8)")
    args = parser.parse_args()
    if not MODELS["fashion_mlp"][0].exists():
        sys.exit(f"{MODELS['fashion_mlp'][0]} not found: run bench/fashion_mlp.py first")
    (OUT / "compare").mkdir(parents=True, exist_ok=True)
    samples = ["--samples", args.samples] if args.samples else []
    report = {"benchmark": "hdlgen compare: TTFS vs AMOS vs rate coding",
              "command": " ".join(["python bench/compare.py", *sys.argv[1:]]), "models": {}}
    for name, (model, data, calibration) in MODELS.items():
        common = [model, "--data", data, "--calibration-data", calibration, "--lanes", args.lanes, *samples]
        main_run, seconds = hdlgen("compare", *common, "-o", OUT / "compare" / f"{name}.json", env=SINGLE_THREAD)
        entry = {"run": main_run, "seconds": round(seconds, 1), "ablations": {}}
        print(f"\n{name}: float {100 * main_run['ann_accuracy']:.2f} % on {main_run['samples']} images "
              f"({seconds:.0f} s)")
        methods = {m: main_run["methods"][m] for m in ("ttfs", "amos", "rate")}   # the JSON sorts its keys
        for method, rows in methods.items():
            print(f"  {method:<5} " + "  ".join(f"{r['steps']}:{100 * r['accuracy']:.1f}" for r in rows))
        for ablation, flags in ABLATIONS.items():
            result, seconds = hdlgen("compare", *common, "--methods", "rate", *flags, env=SINGLE_THREAD)
            entry["ablations"][ablation] = {"rows": result["methods"]["rate"], "seconds": round(seconds, 1)}
            print(f"  rate {ablation:<20} " + "  ".join(f"{r['steps']}:{100 * r['accuracy']:.1f}"
                                                        for r in result["methods"]["rate"]))
        entry["within_1pp"] = {}
        for method, rows in methods.items():
            hit = within(rows, main_run["ann_accuracy"])
            entry["within_1pp"][method] = None if hit is None else {
                key: hit[key] for key in ("steps", "accuracy", "spikes_per_neuron_mean", "synaptic_events",
                                          "latency_ticks", "cycles_estimate")}
            print(f"  within 1 pp of float, {method:<5}: " + ("never" if hit is None else
                  f"{hit['steps']} steps, {100 * hit['accuracy']:.2f} %, {hit['spikes_per_neuron_mean']:.2f} spikes/neuron, "
                  f"{hit['synaptic_events']:.0f} synaptic events, latency {hit['latency_ticks']}, "
                  f"{hit['cycles_estimate']:.0f} cycles"))
        report["models"][name] = entry
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "compare.json").write_text(json.dumps(report, indent=1) + "\n")
    print(f"\nwrote {RESULTS / 'compare.json'}")


if __name__ == "__main__":
    main()
