"""Benchmark: Fashion-MNIST 784-128-10 trained with Brevitas (quantization-aware) through QONNX → hdlgen convert,
against hdlgen's own post-training quantization of the same net trained in float.

Data: Debian's `dataset-fashion-mnist` (as bench/fashion_mlp.py). Trains, for a few epochs on one thread,
a float MLP and Brevitas MLPs with power-of-two scales – the input on a 4-bit grid (T0 = 15), the hidden
ReLU at 4 bits (T = 15), weights at 4 and at 2 bits – exports them with `export_qonnx`, converts them, and
records Brevitas's accuracy, the SNN's, how many test images the golden model and Brevitas disagree on, and
the float net converted by hdlgen at the same T and weight bits. With `--board B` it also builds the QAT nets
and the float net converted at 8 bits (`hdlgen build --lanes 4`) and records LUTs and block RAM. Writes
bench/results/qat.json.

Run: `.venv/bin/python bench/qat.py [--epochs 2] [--board icebreaker]`.
"""

import argparse
import json
import sys
import time
import warnings

import numpy as np
from fashion_mlp import OUT, RESULTS, fashion, hdlgen

WINDOW = 15   # 4-bit activations, and the input's 4-bit grid


def batches(x, y, epochs):
    import torch
    generator = torch.Generator().manual_seed(0)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    for epoch in range(epochs):
        for idx in torch.randperm(len(xt), generator=generator).split(128):
            yield xt[idx], yt[idx]
        print(f"epoch {epoch + 1}/{epochs}", flush=True)


def train(net, x, y, epochs):
    import torch
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    net.train()
    for xb, yb in batches(x, y, epochs):
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(net(xb), yb).backward()
        optimizer.step()
    return net.eval()


def brevitas_mlp(weight_bits):
    """Power-of-two scales throughout; float hidden bias, the readout's on the accumulator grid (docs/qat.md)."""
    import brevitas.nn as qnn
    import torch
    from brevitas.quant import Int8WeightPerTensorFixedPoint, Int32Bias, Uint8ActPerTensorFixedPoint
    acts = {"act_quant": Uint8ActPerTensorFixedPoint, "bit_width": 4, "return_quant_tensor": True}
    weights = {"weight_quant": Int8WeightPerTensorFixedPoint, "weight_bit_width": weight_bits}
    return torch.nn.Sequential(qnn.QuantIdentity(max_val=WINDOW / 16, **acts), torch.nn.Flatten(),
                               qnn.QuantLinear(784, 128, bias=True, **weights), qnn.QuantReLU(**acts),
                               qnn.QuantLinear(128, 10, bias=True, bias_quant=Int32Bias, **weights))


def accuracy(logits, y):
    return float(np.mean(np.argmax(logits, axis=1) == y))


def build(net_path, board):
    report, seconds = hdlgen("build", net_path, "--board", board, "--lanes", 4, "-o", OUT / f"{net_path.stem}-{board}")
    used = {name: value["used"] for name, value in report.get("utilization", {}).items()}
    return {"board": board, "lanes": 4, "utilization": used, "fmax_mhz": report.get("fmax_mhz"),
            "outcome": report.get("outcome"), "build_seconds": round(seconds, 1)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--board", help="also build every net for this board (lanes 4) and record LUTs and RAM")
    args = parser.parse_args()
    import torch
    from brevitas.export import export_qonnx

    from hdlgen import golden, ttfs
    torch.set_num_threads(1)
    OUT.mkdir(parents=True, exist_ok=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    x_train, y_train, x_test, y_test = fashion()
    test, calibration = OUT / "fashion_test.npz", OUT / "fashion_calib.npz"
    np.savez(test, x=x_test, y=y_test)
    np.savez(calibration, x=x_train[:2000], y=y_train[:2000])
    example = torch.from_numpy(x_test[:1])

    rows = []
    torch.manual_seed(0)
    start = time.perf_counter()
    floating = train(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 128), torch.nn.ReLU(),
                                         torch.nn.Linear(128, 10)), x_train, y_train, args.epochs)
    float_seconds = time.perf_counter() - start
    float_path = OUT / "fashion_float.pt2"
    torch.export.save(torch.export.export(floating, (example,)), float_path)
    for weight_bits in (4, 2):
        torch.manual_seed(0)
        start = time.perf_counter()
        model = train(brevitas_mlp(weight_bits), x_train, y_train, args.epochs)
        train_seconds = time.perf_counter() - start
        with torch.no_grad():
            logits = model(torch.from_numpy(x_test)).numpy().astype(np.float64)
        path = OUT / f"fashion_qat_w{weight_bits}a4.onnx"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            export_qonnx(model, example, str(path))
        net_path = path.with_suffix(".ttfs")
        result, seconds = hdlgen("convert", path, "--data", test, "--calibration-data", calibration, "-o", net_path)
        net = ttfs.load(net_path)
        ours = golden.run_batch(net, net.input.pixels(x_test))
        units = logits / net.layers[-1].scale
        ptq_path = OUT / f"fashion_float_ptq_w{weight_bits}_T{WINDOW}.ttfs"
        ptq, _ = hdlgen("convert", float_path, "--data", test, "--calibration-data", calibration, "--ticks", WINDOW,
                        "--weight-bits", weight_bits, "-o", ptq_path)
        row = {"weights": f"{weight_bits}-bit", "activations": "4-bit (T = 15)", "input": "4-bit grid (T0 = 15)",
               "train_seconds": round(train_seconds, 1), "convert_seconds": round(seconds, 2),
               "brevitas_accuracy": accuracy(logits, y_test), "snn_accuracy": result["snn_accuracy"],
               "class_differs_from_brevitas": int(np.sum(ours.classes != np.argmax(logits, axis=1))),
               "logits_differ_from_brevitas": int(np.sum(np.any(np.abs(ours.logits - units) > 1e-3, axis=1))),
               "source_check_calibration": {k: v for k, v in net.meta["source_check"].items() if k != "differing"},
               "notes": net.meta.get("notes", []),
               "float_accuracy": ptq["ann_accuracy"], "float_train_seconds": round(float_seconds, 1),
               "float_ptq_snn_accuracy": ptq["snn_accuracy"],
               "float_ptq": f"hdlgen convert fashion_float.pt2 --ticks {WINDOW} --weight-bits {weight_bits}"}
        if args.board:
            row["build"] = build(net_path, args.board)
        rows.append(row)
        print(f"{weight_bits}-bit weights, 4-bit activations: Brevitas {100 * row['brevitas_accuracy']:.2f} %  "
              f"SNN {100 * row['snn_accuracy']:.2f} %  ({row['class_differs_from_brevitas']} test images classed "
              f"otherwise, {row['logits_differ_from_brevitas']} with other logits)  | float {100 * ptq['ann_accuracy']:.2f} % "
              f"→ hdlgen PTQ {100 * ptq['snn_accuracy']:.2f} %", flush=True)
    eight_bit = OUT / f"fashion_float_ptq_w8_T{WINDOW}.ttfs"
    reference, _ = hdlgen("convert", float_path, "--data", test, "--calibration-data", calibration, "--ticks", WINDOW,
                          "--weight-bits", 8, "-o", eight_bit)
    reference = {"net": f"hdlgen convert fashion_float.pt2 --ticks {WINDOW} --weight-bits 8",
                 "snn_accuracy": reference["snn_accuracy"]}
    if args.board:
        reference["build"] = build(eight_bit, args.board)
    report = {"benchmark": "qat: Fashion-MNIST 784-128-10, Brevitas QAT (QONNX) vs hdlgen PTQ of the float net",
              "command": "python bench/qat.py " + " ".join(sys.argv[1:]), "epochs": args.epochs, "rows": rows,
              "eight_bit_reference": reference}
    (RESULTS / "qat.json").write_text(json.dumps(report, indent=1) + "\n")
    print(f"wrote {RESULTS / 'qat.json'}")


if __name__ == "__main__":
    main()
