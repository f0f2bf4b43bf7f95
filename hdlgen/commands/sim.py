"""``hdlgen sim NET.ttfs --data D.npz`` – simulate the generated core and compare it with the golden model."""

import sys

from .. import ttfs
from ..boards.platforms import get_board
from ..data import load_dataset
from ..errors import UserError
from ..folding import add_lanes_options, lanes_label, settle_lanes
from ..simulate import SIMULATORS, simulate
from . import check_core_options, check_output_dir, print_json


def register(sub):
    p = sub.add_parser("sim", help="simulate the generated core (cocotb) and check it bit-exact against the golden model")
    p.add_argument("net", help="a .ttfs net from 'hdlgen convert'")
    p.add_argument("--data", required=True, help="data .npz with x (float) and y (labels)")
    p.add_argument("--samples", type=int, help="simulate only the first N samples (default: all)")
    p.add_argument("--simulator", choices=sorted(SIMULATORS), default="icarus", help="default: icarus")
    add_lanes_options(p, board=True)
    p.add_argument("--pixels-per-transfer", type=int, metavar="P",
                   help="pixels per transfer of the core's pixel stream, 1..input size (default 1, or chosen by --lanes auto)")
    p.add_argument("--seed", type=int, default=0, help="seed of the testbench's input gaps and back-pressure")
    p.add_argument("--build-dir", help="keep the Verilog, logs and testbench report here")
    p.add_argument("--json", action="store_true", help="print the results as one JSON object on the last line")
    p.set_defaults(func=run)


def _format(report) -> str:
    verdict = "PASS: bit-exact with the golden model" if report.passed else \
        f"FAIL: {len(report.mismatches)} mismatch(es) with the golden model"
    accuracy = "n/a" if report.accuracy is None else f"{100 * report.accuracy:.2f} %"
    interval = "n/a" if report.initiation_interval is None else f"{report.initiation_interval:.1f}"
    latency = "n/a" if report.cycles_mean is None else f"mean {report.cycles_mean:.1f}, max {report.cycles_max}"
    bound = "n/a" if report.lower_bound_mean is None else f"mean {report.lower_bound_mean:.1f}"
    upper = "n/a" if report.upper_bound_mean is None else f"mean {report.upper_bound_mean:.1f}"
    lines = [f"{verdict} ({report.samples} images, {report.simulator}, lanes {lanes_label(report.lanes)}, "
             f"{report.pixels_per_transfer} pixel(s) per transfer)"]
    lines += [f"  {m}" for m in report.mismatches[:20]]
    if len(report.mismatches) > 20:
        lines.append(f"  ... and {len(report.mismatches) - 20} more")
    lines += [f"accuracy               {accuracy}",
              f"cycles per inference   {latency}  (over the {report.isolated} of {report.samples} images run alone in "
              f"an empty core; the others run back to back or with gaps and back-pressure)",
              f"event lower bound      {bound}  (of the same images: intake {report.intake} + Σ over engines of max(cycles of "
              f"their input spikes, the tick walk feeding them))",
              f"upper bound            {upper}  (intake + Σ engine cycles + Σ T + the core's overhead)",
              f"dense schedule         {report.dense_cycles_mean:.0f}  (the same with every input spiking)",
              f"initiation interval    {interval} cycles (images back to back)"]
    return "\n".join(lines)


def run(args):
    if args.seed < 0:
        raise UserError(f"--seed must be ≥ 0, got {args.seed}")
    check_output_dir(args.build_dir, "--build-dir")
    net = ttfs.load(args.net)
    data = load_dataset(args.data, net.input.shape, classes=net.classes).head(args.samples)
    settle_lanes(args, net, args.board and get_board(args.board))
    check_core_options(net, args.net, args.lanes, args.pixels_per_transfer, args.spike_lanes)
    report = simulate(net, net.input.pixels(data.x), labels=data.y, lanes=args.lanes,
                      pixels_per_transfer=args.pixels_per_transfer, spike_lanes=args.spike_lanes,
                      simulator=args.simulator,
                      build_dir=args.build_dir, seed=args.seed, progress=sys.stderr.isatty() and not args.json)
    print(_format(report))
    if args.json:
        print_json(report.to_dict())
    return 0 if report.passed else 1
