"""``hdlgen compare MODEL --data D.npz`` – TTFS against AMOS and rate coding at every step count."""

import json
import sys
import tempfile
from pathlib import Path

from ..codes.compare import DEFAULT_STEPS, METHODS, compare, format_table, plot
from ..errors import UserError
from ..files import write_atomically
from ..passes import ConvertConfig
from . import check_output, print_json
from .convert import add_calibration_options, conversion_config, load_model_and_data


def register(sub):
    p = sub.add_parser("compare", help="compare TTFS with AMOS and rate coding: accuracy, spikes, cycles per step count",
                       description="Convert a trained ReLU model for each spiking code – TTFS (this tool's, with RTL), "
                                   "AMOS (Stöckl & Maass: K at-most-one-spike units per neuron) and rate coding "
                                   "(Deng & Gu: integrate-and-fire over T steps, threshold balancing, soft reset, "
                                   "θ/2T shift) – at every step count, and report accuracy, agreement with the float "
                                   "net, spikes per neuron, synaptic events, latency and the event-driven cycles. A net "
                                   "with GELU, SiLU, sigmoid, tanh, leaky ReLU, ELU or hard-swish runs as AMOS only, its "
                                   "gates emulated by fitted units (at most 16), each fit's error reported.")
    p.add_argument("model", help="model file: .pt2 (torch.export.save), .onnx or weight .npz")
    p.add_argument("--data", required=True, help="test data .npz with x (float) and y (labels); also the calibration "
                                                  "data unless --calibration-data is given")
    p.add_argument("--steps", nargs="+", type=int, default=list(DEFAULT_STEPS), metavar="N",
                   help="step counts: TTFS ticks per window, AMOS units per neuron (at most 32), rate time steps "
                        f"(default {' '.join(map(str, DEFAULT_STEPS))})")
    p.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS), help="codes to run (default: all)")
    p.add_argument("--lanes", type=int, default=1, help="synapses updated per cycle in the cycle counts (default 1)")
    p.add_argument("--weight-bits", type=int, default=8, help="signed weight bits, 2..16 (default 8)")
    add_calibration_options(p)
    p.add_argument("--rate-threshold", default="max",
                   help="rate coding's threshold θ: the calibrated activation 'max' (threshold balancing, default) "
                        "or a percentile like p99.9; --calibration sets TTFS's and AMOS's scales")
    p.add_argument("--hard-reset", action="store_true", help="rate ablation: reset to 0 after a spike instead of "
                                                             "subtracting θ")
    p.add_argument("--no-shift", action="store_true", help="rate ablation: no θ/2T added each step")
    p.add_argument("--samples", type=int, help="use only the first N test samples")
    p.add_argument("--cycle-samples", type=int, default=100, help="test images whose cycles are counted (default 100)")
    p.add_argument("-o", "--output", metavar="FILE", help="write the rows as JSON to FILE and the plots beside it "
                                                          "(FILE's stem + _accuracy.png, _spikes.png, _cycles.png)")
    p.add_argument("--json", action="store_true", help="print the rows as one JSON object on the last line")
    p.set_defaults(func=run)


def _check_options(args):
    """Every option that does not need the model, before any long work."""
    if Path(args.model).suffix == ".ttfs":
        raise UserError(f"{args.model}: compare converts the model at every step count; give the model file "
                        "(.pt2, .onnx, .npz), not a converted .ttfs net")
    if any(n < 1 for n in args.steps):
        raise UserError(f"--steps must be ≥ 1, got {' '.join(map(str, args.steps))}")
    if args.lanes < 1:
        raise UserError(f"--lanes must be ≥ 1, got {args.lanes}")
    if args.cycle_samples < 1:
        raise UserError(f"--cycle-samples must be ≥ 1, got {args.cycle_samples}")
    try:
        ConvertConfig(calibration=args.rate_threshold)
    except UserError:
        raise UserError(f"--rate-threshold must be 'max' or a percentile like 'p99.9' (50..100), "
                        f"got {args.rate_threshold!r}") from None
    if args.output:
        check_output(args.output)
        try:
            import matplotlib  # noqa: F401  (the plots need it; say so before the long work)
        except ImportError:
            raise UserError("the plots of -o need matplotlib: pip install 'hdlgen[plot]'") from None


def run(args):
    _check_options(args)
    config = conversion_config(args, 16, args.weight_bits)   # the windows are set per method and step count
    graph, data, calibration = load_model_and_data(args)
    data = data.head(args.samples)
    result = compare(graph, data, calibration.x[:args.calibration_samples], config, sorted(set(args.steps)),
                     [m for m in METHODS if m in args.methods], args.lanes, args.rate_threshold,
                     shift=not args.no_shift, soft_reset=not args.hard_reset, cycle_samples=args.cycle_samples,
                     progress=sys.stderr.isatty(), name=Path(args.model).stem)
    result = {"model": str(args.model), "data": str(args.data), "samples": len(data), "lanes": args.lanes,
              "weight_bits": args.weight_bits, "cycle_samples": min(args.cycle_samples, len(data)), **result}
    print(f"{len(data)} samples of {args.data}, {args.weight_bits}-bit weights, cycles at {args.lanes} lane(s) "
          f"over {result['cycle_samples']} images")
    print(format_table(result))
    if args.output:
        output = Path(args.output)
        stem = output.with_suffix("")
        # drawn in a scratch directory beside them, then renamed into place whole (as write_atomically does)
        with tempfile.TemporaryDirectory(prefix=".hdlgen-plots-", dir=stem.parent) as scratch:
            result["plots"] = [str(path.replace(stem.parent / path.name)) for path in plot(result, Path(scratch) / stem.name)]
        text = json.dumps(result, indent=1) + "\n"
        write_atomically(output, lambda path: path.write_text(text))
        print(f"wrote {output} and {', '.join(result['plots'])}")
    if args.json:
        print_json(result)
    return 0
