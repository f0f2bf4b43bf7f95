"""``hdlgen bench MODEL --data D.npz`` – accuracy per T and weight bits, cycles per lanes, board builds.

The RTL and board sections measure one net: the one with the largest T (of those, the most
weight bits) – the net given when MODEL is a ``.ttfs``.
"""

import json
import sys
import time
from pathlib import Path

from tqdm import tqdm

from .. import ttfs
from ..bench import accuracy_row, board_row, format_accuracy, format_boards, format_rtl, rtl_row, ticks_label
from ..boards.build import toolchain_env
from ..boards.platforms import get_board
from ..data import load_dataset
from ..errors import UserError
from ..report import print_json
from ..simulate import SIMULATORS, missing_simulator
from . import check_core_options, check_output, check_output_dir
from .convert import add_calibration_options, conversion_config, convert_model, load_model_and_data, parse_ticks


def register(sub):
    p = sub.add_parser("bench", help="measure a model: accuracy per T and weight bits, cycles per lanes, board builds",
                       description="Measure a model the way you choose T, weight bits, lanes and board: (1) float vs "
                                   "SNN accuracy, spikes, convert time and golden-model speed per T × weight bits; "
                                   "(2) simulated cycles per inference per lanes; (3) board builds per board × lanes. "
                                   "Sections 2 and 3 use the net with the largest T (of those, the most weight bits).")
    p.add_argument("model", help="model file (.pt2, .onnx, weight .npz; converted at every --ticks × --weight-bits) "
                                 "or a converted .ttfs net")
    p.add_argument("--data", required=True, help="test data .npz with x (float) and y (labels)")
    p.add_argument("--ticks", nargs="+", metavar="T",
                   help="windows to convert at, each an integer or a comma list per spiking layer (default 16)")
    p.add_argument("--weight-bits", nargs="+", type=int, metavar="BITS", help="weight widths to convert at (default 8)")
    add_calibration_options(p)
    p.add_argument("--lanes", nargs="+", type=int, default=[1], metavar="N",
                   help="accumulators updated per cycle, simulated and built at each (default 1)")
    p.add_argument("--pixels-per-transfer", type=int, default=1, metavar="P",
                   help="pixels per transfer into the simulated and built cores (default 1)")
    p.add_argument("--samples", type=int, default=20,
                   help="test images simulated at each lanes; 0 skips the RTL section (default 20)")
    p.add_argument("--simulator", choices=sorted(SIMULATORS),
                   help="default: icarus, or verilator when only that is installed")
    p.add_argument("--board", nargs="+", default=[], metavar="NAME", help="boards to build for (see 'hdlgen boards')")
    p.add_argument("--clock", type=float, metavar="MHZ", help="design clock in MHz (default: each board's clock)")
    p.add_argument("--build-dir", metavar="DIR", help="board builds go to DIR/<board>-lanes<N> (default build/bench-<net>)")
    p.add_argument("-o", "--output", metavar="FILE", help="write every figure as JSON to FILE")
    p.add_argument("--json", action="store_true", help="print every figure as one JSON object on the last line")
    p.set_defaults(func=run)


def _check_options(args):
    """Every option that does not need the model, before any long work."""
    if any(n < 1 for n in args.lanes):
        raise UserError(f"--lanes must be ≥ 1, got {' '.join(map(str, args.lanes))}")
    args.lanes = list(dict.fromkeys(args.lanes))  # each lanes simulated and built once
    if args.pixels_per_transfer < 1:
        raise UserError(f"--pixels-per-transfer must be ≥ 1, got {args.pixels_per_transfer}")
    if args.samples < 0:
        raise UserError(f"--samples must be ≥ 0 (0 skips the RTL section), got {args.samples}")
    if args.clock is not None and not args.clock > 0:
        raise UserError(f"--clock must be a positive frequency in MHz, got {args.clock:g}")
    if args.output:
        check_output(args.output)
    check_output_dir(args.build_dir, "--build-dir")
    boards = [get_board(name) for name in dict.fromkeys(args.board)]
    for family in {board.family for board in boards}:
        toolchain_env(family)
    return boards


def _nets(args, progress: bool):
    """``(net, data, convert seconds or None)`` per T × weight bits, or the one net of a .ttfs."""
    if Path(args.model).suffix == ".ttfs":
        given = [flag for flag, value in [("--ticks", args.ticks), ("--weight-bits", args.weight_bits),
                                          ("--calibration-data", args.calibration_data),
                                          ("--per-channel", args.per_channel), ("--no-rounding", args.no_rounding)]
                 if value]
        if given:
            raise UserError(f"{', '.join(given)}: only for a model file to convert; {args.model} is a converted "
                            f".ttfs net (its T and weights are fixed)")
        net = ttfs.load(args.model)
        data = load_dataset(args.data, net.input.shape, classes=net.classes)
        return [(net, data, None)]
    configs = [conversion_config(args, parse_ticks(t), bits)
               for t in args.ticks or ["16"] for bits in args.weight_bits or [8]]
    graph, data, calibration = load_model_and_data(args)
    nets = []
    for config in tqdm(configs, unit="net", desc="converting", disable=not progress):
        start = time.perf_counter()
        net = convert_model(graph, calibration, args, config, name=Path(args.model).stem)
        nets.append((net, data, time.perf_counter() - start))
    return nets


def _pick_simulator(args) -> tuple:
    """``(simulator, None)`` or ``(None, the one-line reason no simulation can run)``."""
    choices = [args.simulator] if args.simulator else ["icarus", "verilator"]
    reasons = [missing_simulator(name) for name in choices]
    for name, reason in zip(choices, reasons):
        if reason is None:
            return name, None
    return None, reasons[0]


def run(args):
    progress = sys.stderr.isatty()
    boards = _check_options(args)
    nets = _nets(args, progress)
    for lanes in args.lanes:   # the nets differ in T and weights only, not in the sizes these depend on
        check_core_options(nets[0][0], args.model, lanes, args.pixels_per_transfer)
    accuracy = [accuracy_row(net, data, seconds) for net, data, seconds in
                tqdm(nets, unit="net", desc="evaluating", disable=not progress)]
    pick = max(range(len(nets)), key=lambda i: (max(nets[i][0].ticks), accuracy[i]["weight_bits"]))
    net, data, _ = nets[pick]
    figures = {"model": str(args.model), "data": str(args.data), "accuracy": accuracy,
               "hardware_net": {"index": pick, "name": net.name, "ticks": net.ticks,
                                "weight_bits": accuracy[pick]["weight_bits"]}}
    print(f"accuracy on {len(data)} samples of {args.data}")
    print(format_accuracy(accuracy))

    hardware = f"T={ticks_label(net.ticks)}, {accuracy[pick]['weight_bits']}-bit weights"
    rtl = {"skipped": None, "rows": []}
    if args.samples == 0:
        rtl["skipped"] = "--samples 0"
    else:
        simulator, reason = _pick_simulator(args)
        if simulator is None:
            rtl["skipped"] = reason
            print(f"\nRTL: skipped, {reason}")
        else:
            sample = data.head(args.samples)
            print(f"\nRTL: {hardware}, {len(sample)} images, {simulator}", flush=True)
            rtl["rows"] = [rtl_row(net, sample, lanes, simulator, progress, args.pixels_per_transfer)
                           for lanes in args.lanes]
            print(format_rtl(rtl["rows"]))
    figures["rtl"] = rtl

    cycles = {row["lanes"]: row["cycles_mean"] for row in rtl["rows"]}
    out = Path(args.build_dir) if args.build_dir else Path("build") / f"bench-{net.name}"
    builds = [(board, lanes) for board in boards for lanes in args.lanes]
    figures["boards"] = [board_row(net, board, lanes, out / f"{board.name}-lanes{lanes}",
                                   clock_hz=None if args.clock is None else args.clock * 1e6,
                                   cycles_mean=cycles.get(lanes), pixels_per_transfer=args.pixels_per_transfer)
                         for board, lanes in tqdm(builds, unit="build", desc="building", disable=not progress)]
    if builds:
        print(f"\nboards: {hardware}; µs per inference = cycles mean at the lower of fmax and clock")
        print(format_boards(figures["boards"]))

    if args.output:
        Path(args.output).write_text(json.dumps(figures, indent=1) + "\n")
        print(f"wrote {args.output}")
    if args.json:
        print_json(figures)
    return 0 if all(row["bit_exact"] for row in rtl["rows"]) else 1
