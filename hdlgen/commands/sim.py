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
    p.add_argument("--stream", type=int, metavar="N",
                   help="feed the last N images back to back, results always taken, and the others alone: the "
                        "interval between results with the pipeline full (default: a quarter back to back, a quarter "
                        "alone, the rest with gaps and back-pressure)")
    clock = p.add_mutually_exclusive_group()
    clock.add_argument("--clock", type=float, metavar="MHZ", help="give images per second at this clock (default: per MHz)")
    clock.add_argument("--build", metavar="DIR",
                       help="an 'hdlgen build' directory of this core: images per second at its fmax")
    p.add_argument("--seed", type=int, default=0, help="seed of the testbench's input gaps and back-pressure")
    p.add_argument("--build-dir", help="keep the Verilog, logs and testbench report here")
    p.add_argument("--json", action="store_true", help="print the results as one JSON object on the last line")
    p.set_defaults(func=run)


def _format(report, clock_mhz: float | None = None, clock_source: str = "") -> str:
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
              f"an empty core; {_others(report)})",
              f"event lower bound      {bound}  (of the same images: intake {report.intake} + Σ over engines of max(cycles of "
              f"their input spikes, the tick walk feeding them))",
              f"upper bound            {upper}  (intake + Σ engine cycles + Σ T + the core's overhead)",
              f"dense schedule         {report.dense_cycles_mean:.0f}  (the same with every input spiking)",
              f"interval               {interval} cycles{_spread(report)} (the {report.streamed} images fed back to "
              f"back, results taken at once)",
              f"throughput bound       {_bound(report)}"]
    rate = report.images_per_second(clock_mhz or 1.0)
    if rate is not None:
        lines.append(f"images per second      {rate:,.0f} {clock_source}" if clock_mhz else
                     f"images per second      {rate:,.1f} per MHz of clock")
    return "\n".join(lines)


def _others(report) -> str:
    stressed = report.samples - report.isolated - report.streamed
    if not report.streamed:    # a report that does not say how many streamed
        return "the others run back to back or with gaps and back-pressure"
    return f"{report.streamed} back to back" + (f", {stressed} with gaps and back-pressure" if stressed else "")


def _spread(report) -> str:
    if report.interval_std is None:
        return ""
    return f" (std {report.interval_std:.1f}, min {report.interval_min}, max {report.interval_max})"


def _bound(report) -> str:
    dense = "" if report.dense_throughput_bound is None else f"{report.dense_throughput_bound} with every input spiking"
    if report.throughput_bound is None:
        return f"n/a ({dense})" if dense else "n/a"
    dense = f"; {dense}" if dense else ""
    ratio = f"; interval {report.initiation_interval / report.throughput_bound:.2f}×" if report.throughput_bound else ""
    return (f"{report.throughput_bound:.1f} cycles  (the busiest stage's mean cycles per image of the stream: "
            f"{report.bottleneck}{ratio}{dense})")


def _clock(args) -> tuple:
    """``(MHz, how it was chosen)`` for the images per second; ``(None, "")``: per MHz."""
    if args.clock is not None:
        if not args.clock > 0:
            raise UserError(f"--clock must be > 0 MHz, got {args.clock:g}")
        return args.clock, f"at {args.clock:g} MHz"
    if args.build is None:
        return None, ""
    from ..boards.build import read_build_record
    record = read_build_record(args.build)
    built = record.get("lanes", args.lanes)
    if lanes_label(built) != lanes_label(args.lanes):
        raise UserError(f"--build {args.build}: built at {lanes_label(built)} lane(s), not --lanes {lanes_label(args.lanes)}")
    if not record.get("fmax_mhz"):
        raise UserError(f"--build {args.build}: the build record has no fmax (did place and route finish?)")
    return record["fmax_mhz"], f"at the build's fmax {record['fmax_mhz']:.1f} MHz"


def run(args):
    if args.seed < 0:
        raise UserError(f"--seed must be ≥ 0, got {args.seed}")
    check_output_dir(args.build_dir, "--build-dir")
    net = ttfs.load(args.net)
    data = load_dataset(args.data, net.input.shape, classes=net.classes).head(args.samples)
    settle_lanes(args, net, args.board and get_board(args.board))
    clock_mhz, clock_source = _clock(args)
    if args.stream is not None and not 2 <= args.stream < len(data):
        raise UserError(f"--stream {args.stream}: needs 2 to {len(data) - 1} images of the {len(data)} simulated "
                        "(one at least runs alone for the latency); give more --samples")
    check_core_options(net, args.net, args.lanes, args.pixels_per_transfer, args.spike_lanes)
    report = simulate(net, net.input.pixels(data.x), labels=data.y, lanes=args.lanes,
                      pixels_per_transfer=args.pixels_per_transfer, spike_lanes=args.spike_lanes,
                      simulator=args.simulator, stream=args.stream,
                      build_dir=args.build_dir, seed=args.seed, progress=sys.stderr.isatty() and not args.json)
    print(_format(report, clock_mhz, clock_source))
    if args.json:
        print_json({**report.to_dict(), "clock_mhz": clock_mhz,
                    "images_per_second": report.images_per_second(clock_mhz) if clock_mhz else None,
                    "images_per_second_per_mhz": report.images_per_second()})
    return 0 if report.passed else 1
