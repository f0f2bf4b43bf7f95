"""Benchmark: `hdlgen finetune` on the Fashion-MNIST 784-128-10 MLP and the digits CNN.

Per T (and with a spike target at T=8): accuracy and spikes per neuron on the test data before
(`hdlgen convert`) and after (`hdlgen finetune`, measured by `hdlgen eval`), fine-tuning wall
time, and cycles per image of the core afterwards (the event lower bound and the RTL's upper
bound of `hdlgen.cycles` over the golden spike lists of the first test images). Fine-tuning picks
its epoch on a validation split of the training data, never on the test data.

Data: Debian's `dataset-fashion-mnist` (run `bench/fashion_mlp.py` first: it trains and exports the
MLP) and the bundled digits. Writes bench/results/finetune.json and prints a table.

Run: `.venv/bin/python bench/finetune.py [--nets fashion digits_cnn] [--threads 1]`.
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "out" / "bench" / "finetune"
RESULTS = ROOT / "bench" / "results"
sys.path.insert(0, str(Path(__file__).resolve().parent))

from fashion_mlp import OUT as FASHION_OUT  # noqa: E402
from fashion_mlp import fashion, hdlgen  # noqa: E402

# (input window, hidden windows, spike target) per row
ROWS = [(2, 2, None), (8, 2, None), (4, 4, None), (8, 8, None), (16, 16, None), (8, 8, 0.3)]
SPIKING_LAYERS = {"fashion": 2, "digits_cnn": 3}   # input + hidden layers with weights


def datasets(name):
    """(model, train, validation, test) paths; the validation split is the training data's last part."""
    OUT.mkdir(parents=True, exist_ok=True)
    if name == "fashion":
        model = FASHION_OUT / "fashion_mlp.pt2"
        if not model.exists():
            sys.exit(f"{model} not found: run bench/fashion_mlp.py first")
        x_train, y_train, x_test, y_test = fashion()
        held_out = 5000
    else:
        digits = ROOT / "examples" / "digits"
        model = digits / "digits_cnn.pt2"
        with np.load(digits / "digits_train.npz") as z:
            x_train, y_train = z["x"], z["y"]
        with np.load(digits / "digits_test.npz") as z:
            x_test, y_test = z["x"], z["y"]
        held_out = len(x_train) // 5
    paths = [OUT / f"{name}_{part}.npz" for part in ("train", "validation", "test")]
    for path, x, y in zip(paths, (x_train[:-held_out], x_train[-held_out:], x_test),
                          (y_train[:-held_out], y_train[-held_out:], y_test)):
        if not path.exists():
            np.savez(path, x=x, y=y)
    return model, *paths


def hidden(spikes, net):
    """Mean spikes per neuron of the hidden layers with weights (as hdlgen.finetune counts them)."""
    from hdlgen.finetune import hidden_spikes
    return hidden_spikes(net, spikes)


def cycles(net_path, test_path, images, lanes):
    """Mean event lower bound and upper bound of the core (lanes) over the first test images."""
    from hdlgen import golden, ttfs
    from hdlgen.cycles import cycle_counts
    net = ttfs.load(net_path)
    with np.load(test_path) as z:
        pixels = net.input.pixels(z["x"][:images])
    counts = [cycle_counts(net, golden.run_events(net, p), lanes) for p in pixels]
    return {key: float(np.mean([c[key] for c in counts])) for key in ("event_lower_bound", "upper_bound")}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nets", nargs="+", default=["fashion", "digits_cnn"], choices=["fashion", "digits_cnn"])
    parser.add_argument("--threads", type=int, default=1, help="PyTorch threads of each fine-tuning (default 1)")
    parser.add_argument("--images", type=int, default=200, help="test images for the cycle counts (default 200)")
    parser.add_argument("--lanes", type=int, default=8, help="lanes of the core the cycles are counted for (default 8)")
    args = parser.parse_args()
    from hdlgen import ttfs

    settings = {"fashion": {"epochs": 15, "batch": 128}, "digits_cnn": {"epochs": 30, "batch": 32}}
    results = RESULTS / "finetune.json"
    report = json.loads(results.read_text()) if results.exists() else {"benchmark": "hdlgen finetune", "nets": {}}
    command = "python bench/finetune.py " + " ".join(sys.argv[1:])
    for name in args.nets:
        model, train, validation, test = datasets(name)
        rows = []
        for t_input, t_hidden, target in ROWS:
            ticks = ",".join(map(str, [t_input] + [t_hidden] * (SPIKING_LAYERS[name] - 1)))
            tag = f"{name}_T{ticks.replace(',', '-')}" + (f"_s{target}" if target else "")
            before_path, after_path = OUT / f"{tag}_converted.ttfs", OUT / f"{tag}_finetuned.ttfs"
            before, _ = hdlgen("convert", model, "--data", test, "--calibration-data", train, "--ticks", ticks,
                               "-o", before_path)
            spike_option = ["--spikes-per-neuron", target] if target else []
            tuned, seconds = hdlgen("finetune", model, "--data", train, "--validation-data", validation,
                                    "--ticks", ticks, "--epochs", settings[name]["epochs"],
                                    "--batch-size", settings[name]["batch"], "--threads", args.threads,
                                    *spike_option, "-o", after_path)
            after, _ = hdlgen("eval", after_path, "--data", test)
            net = ttfs.load(after_path)
            row = {"ticks": net.ticks, "spike_target": target, "float_accuracy": before["ann_accuracy"],
                   "accuracy_before": before["snn_accuracy"], "accuracy_after": after["snn_accuracy"],
                   "hidden_spikes_before": hidden(before["spikes_per_neuron"], net),
                   "hidden_spikes_after": hidden(after["spikes_per_neuron"], net),
                   "spikes_per_neuron_before": before["spikes_per_neuron"],
                   "spikes_per_neuron_after": after["spikes_per_neuron"],
                   "finetune_seconds": round(seconds, 1), "epochs": settings[name]["epochs"],
                   "chosen_epoch": tuned["chosen_epoch"], "spike_target_met_on_training_data": tuned["spike_target_met"],
                   "cycles_before": cycles(before_path, test, args.images, args.lanes),
                   "cycles_after": cycles(after_path, test, args.images, args.lanes)}
            rows.append(row)
            print(f"{name:<11} T={ticks:<7}{'' if target is None else f' ≤{target} spikes':<12} float "
                  f"{100 * row['float_accuracy']:.2f} %  before {100 * row['accuracy_before']:.2f} % "
                  f"→ after {100 * row['accuracy_after']:.2f} %  hidden spikes/neuron {row['hidden_spikes_before']:.3f} "
                  f"→ {row['hidden_spikes_after']:.3f}  cycles {row['cycles_before']['event_lower_bound']:.0f} "
                  f"→ {row['cycles_after']['event_lower_bound']:.0f}  ({seconds:.0f} s)", flush=True)
        report["nets"][name] = {"command": command, "model": str(model.relative_to(ROOT)), "weight_bits": 8,
                                "lanes": args.lanes, "threads": args.threads, "test_samples": after["samples"],
                                "rows": rows}
        RESULTS.mkdir(parents=True, exist_ok=True)
        results.write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
