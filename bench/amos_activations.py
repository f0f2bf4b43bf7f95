"""Benchmark: AMOS beyond ReLU – Fashion-MNIST 784-128-10 MLPs with GELU and with SiLU against float
at K = 2, 4, 6, 8 units (``hdlgen compare``), beside the same MLP trained with ReLU (TTFS and AMOS).

Data: Debian's ``dataset-fashion-mnist`` (read as ``bench/fashion_mlp.py`` reads it). Trains the three
MLPs briefly (one thread; cached in out/bench/amos_activations/), saves the GELU and ReLU nets with
torch.export.save and the SiLU net with torch's ONNX exporter (``x·Sigmoid(x)``), so both importers
are on the path. Writes bench/results/amos_activations.json with the command that made it, and prints
accuracy, agreement, spikes, synaptic events and each gate's fit error.

Run: ``nice .venv/bin/python bench/amos_activations.py [--epochs 2] [--samples N]``.
"""

import argparse
import json
import logging
import sys
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fashion_mlp import SINGLE_THREAD, fashion, hdlgen, train  # noqa: E402  (the bench folder is no package)

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "out" / "bench" / "amos_activations"
RESULTS = ROOT / "bench" / "results"
ACTIVATIONS = {"relu": ("ReLU", ".pt2"), "gelu": ("GELU", ".pt2"), "silu": ("SiLU", ".onnx")}
STEPS = [2, 4, 6, 8]


def save(net, example, path):
    import torch

    if path.suffix == ".pt2":
        torch.export.save(torch.export.export(net, (example,)), path)
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        logging.disable(logging.WARNING)
        torch.onnx.export(net, (example,), path, dynamo=False)
        logging.disable(logging.NOTSET)


def compare(model, test, calibration, methods, steps, samples):
    """``hdlgen compare`` of ``model``: its JSON and the seconds it took."""
    return hdlgen("compare", model, "--data", test, "--calibration-data", calibration, "--methods", *methods,
                  "--steps", *steps, "--lanes", "8", *(["--samples", samples] if samples else []), env=SINGLE_THREAD)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--samples", type=int, help="test images (default: all 10 000)")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    OUT.mkdir(parents=True, exist_ok=True)
    x_train, y_train, x_test, y_test = fashion()
    test, calibration = OUT / "fashion_test.npz", OUT / "fashion_calib.npz"
    np.savez(test, x=x_test, y=y_test)
    np.savez(calibration, x=x_train[:2000], y=y_train[:2000])
    report = {"benchmark": "AMOS beyond ReLU: Fashion-MNIST 784-128-10 MLPs, hdlgen compare",
              "command": " ".join(["python bench/amos_activations.py", *sys.argv[1:]]), "epochs": args.epochs,
              "models": {}}
    for name, (module, suffix) in ACTIVATIONS.items():
        path = OUT / f"fashion_{name}{suffix}"
        if not path.exists():
            save(train(x_train, y_train, args.epochs, module), torch.from_numpy(x_test[:1]), path)
        methods = ["ttfs", "amos"] if name == "relu" else ["amos"]
        result, seconds = compare(path, test, calibration, methods, STEPS, args.samples)
        report["models"][name] = {"model": str(path.relative_to(ROOT)), "seconds": round(seconds, 1), **result}
        print(f"\n{module} MLP ({suffix}): float {100 * result['ann_accuracy']:.2f} %")
        for method, rows in result["methods"].items():
            for r in rows:
                fits = "; ".join(f"fit max error {f['max_error']:.3f} ({100 * f['max_error_of_range']:.1f} % of range)"
                                 for f in r.get("fits", []))
                print(f"  {method:<5} K/T={r['steps']:<2} accuracy {100 * r['accuracy']:.2f} %  agreement "
                      f"{100 * r['agreement']:.2f} %  spikes/neuron {r['spikes_per_neuron_mean']:.2f}  synaptic events "
                      f"{r['synaptic_events']:.0f}  cycles {'' if r['has_rtl'] else '~'}{r['cycles_estimate']:.0f}  {fits}")
        for r in result.get("not_offered", []):
            print(f"  {r['method']} not offered: {r['reason']}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "amos_activations.json").write_text(json.dumps(report, indent=1) + "\n")
    print(f"\nwrote {RESULTS / 'amos_activations.json'}")


if __name__ == "__main__":
    main()
