"""``hdlgen convert MODEL --data D.npz`` – float model → integer TTFS net (.ttfs), with its accuracy."""

import dataclasses
import sys
from pathlib import Path

from .. import conversion, ttfs
from ..errors import UserError
from ..evaluate import evaluate, format_evaluation, format_net
from ..passes import ConvertConfig, convert
from . import as_option, check_output, check_windows, print_json


def parse_ticks(text: str):
    try:
        values = [int(v) for v in text.split(",")]
    except ValueError:
        raise UserError(f"--ticks must be an integer ≥ 1 or a comma list per spiking layer (e.g. 16 or 16,8), "
                        f"got {text!r}") from None
    if any(v < 1 for v in values):
        raise UserError(f"--ticks must be ≥ 1, got {text!r}")
    check_windows(values, "--ticks")
    return values[0] if len(values) == 1 else values


def add_calibration_options(p):
    """The conversion options besides T and weight bits (shared with ``hdlgen bench``)."""
    p.add_argument("--calibration-data", help="representative data .npz for the activation scales (default: --data)")
    p.add_argument("--calibration-samples", type=int, default=2000, help="samples used to calibrate (default 2000)")
    p.add_argument("--per-channel", action="store_true", help="one weight scale and K per neuron instead of per layer")
    p.add_argument("--calibration", default="p99.9", help="activation scale: 'max' or a percentile like p99.9 (default)")
    p.add_argument("--no-rounding", action="store_true", help="floor instead of round to nearest (adds no floor(K/2) to biases)")


def load_model_and_data(args):
    """``args.model``'s graph, ``args.data`` and the calibration samples (``args.calibration_data``, else the
    data) – :func:`hdlgen.conversion.load_model_and_data` with the options of ``args``."""
    if args.calibration_samples < 1:
        raise UserError(f"--calibration-samples must be ≥ 1, got {args.calibration_samples}")
    loaded = conversion.load_model_and_data(args.model, args.data, args.calibration_data,
                                            calibration_samples=args.calibration_samples)
    return loaded.graph, loaded.data, loaded.calibration


CONFIG_OPTIONS = {"weight bits": "--weight-bits", "calibration": "--calibration", "ticks": "--ticks"}


def conversion_config(args, ticks, weight_bits: int) -> ConvertConfig:
    """The settings for ``ticks`` and ``weight_bits`` with the calibration options of ``args`` (checks them)."""
    try:
        return ConvertConfig(ticks, weight_bits, args.per_channel, args.calibration, not args.no_rounding)
    except UserError as e:
        raise as_option(e, CONFIG_OPTIONS) from None


def convert_model(graph, calibration, args, config: ConvertConfig, name: str):
    """``graph`` converted with ``config``, calibrated on the first ``args.calibration_samples`` of ``calibration``."""
    return convert(graph, calibration.x[:args.calibration_samples], config, name=name)


def other_scaling(graph, calibration, args, config: ConvertConfig, name: str, data, accuracy) -> dict | None:
    """The SNN accuracy on ``data`` of the other weight scaling (per channel ↔ per layer), and the line that says
    so, when it beats ``accuracy`` (which one is better depends on the net, T and weight bits: a digits CNN at
    T = 4 with 4-bit weights keeps 96.4 % per channel, 95.0 % per layer; at T = 16, 8 bits both 98.9 %)."""
    if accuracy is None:
        return None
    other = dataclasses.replace(config, per_channel=not config.per_channel)
    better = evaluate(convert_model(graph, calibration, args, other, name=name), data)["snn_accuracy"]
    if better <= accuracy:
        return None
    kind, flag = ("channel", "with --per-channel") if other.per_channel else ("layer", "without --per-channel")
    return {"per_channel": other.per_channel, "snn_accuracy": better,
            "note": f"note: weights scaled per {kind} give SNN accuracy {better:.2%} on this data against "
                    f"{accuracy:.2%}: convert {flag}"}


def register(sub):
    p = sub.add_parser("convert", help="convert a trained ReLU model to a TTFS net (.ttfs)",
                       description="Convert a trained ReLU network (.pt2 from torch.export.save, .onnx, or weight .npz) "
                                   "into an integer TTFS net, calibrated on data, and report its accuracy.")
    p.add_argument("model", help="model file: .pt2 (torch.export.save), .onnx (opsets 13–21; a QONNX or QCDQ model keeps "
                                 "its trained grids, docs/qat.md) or .npz (weight0, bias0, …)")
    p.add_argument("--data", required=True, help="data .npz with x (float) and y (labels): evaluation, and "
                                                  "calibration unless --calibration-data is given")
    p.add_argument("--ticks", default="16", help="window T of every spiking layer, or a comma list input,hidden… (default 16)")
    p.add_argument("--weight-bits", type=int, default=8, help="signed weight bits, 2..16 (default 8)")
    add_calibration_options(p)
    p.add_argument("-o", "--output", help="output .ttfs (default: MODEL with suffix .ttfs)")
    p.add_argument("--json", action="store_true", help="print the results as one JSON object on the last line")
    p.set_defaults(func=run)


def run(args):
    model = Path(args.model)
    output = Path(args.output) if args.output else model.with_suffix(".ttfs")
    check_output(output)
    config = conversion_config(args, parse_ticks(args.ticks), args.weight_bits)
    graph, data, calibration = load_model_and_data(args)
    net = convert_model(graph, calibration, args, config, name=model.stem)
    ttfs.save(net, output)
    result = evaluate(net, data, progress=sys.stderr.isatty() and not args.json)
    other = other_scaling(graph, calibration, args, config, model.stem, data, result["snn_accuracy"])
    print(format_net(net))
    print(format_evaluation(net, result))
    if other:
        print(other["note"])
    print(f"wrote {output}")
    if args.json:
        print_json({**result, "output": str(output), "other_scaling": other})
    return 0
