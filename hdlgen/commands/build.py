"""``hdlgen build NET.ttfs --board NAME`` – bitstream of the net behind the UART host link."""

import argparse
import contextlib
import dataclasses
import json
import math
import sys
import time
from pathlib import Path

from .. import ttfs
from ..boards.build import (
    PHASES,
    ROUTERS,
    BuildFailed,
    BuildReport,
    build,
    build_outcome,
    check_report,
    link_clock,
    toolchain_env,
)
from ..boards.flash import flash, loader_command
from ..boards.platforms import board_name, get_board
from ..boards.route import DEFAULT_BUDGET
from ..boards.seeds import STOP_SECONDS, build_seeds, seed_task
from ..errors import UserError
from ..folding import AUTO, add_lanes_options, folding_label, lanes_label, settle_lanes
from ..tasks import BUILD_DIR_TOKEN, dumps_net, engine, run_task, write_files
from . import as_option, check_core_options, check_output_dir, print_json
from .boards import prepare_tools, retry_on_bus_error


def register(sub):
    p = sub.add_parser("build", help="synthesize, place and route a .ttfs net for a board (yowasp yosys/nextpnr)")
    p.add_argument("net", help="a .ttfs net from 'hdlgen convert'")
    p.add_argument("--board", required=True,
                   help="board name (see 'hdlgen boards'), or an amaranth platform class of your own: "
                        "module:Class or path/to/file.py:Class (a default clock and a 'uart' resource)")
    add_lanes_options(p)
    p.add_argument("--pixels-per-transfer", type=int, metavar="P",
                   help="pixels per transfer into the core (the link's bytes are packed; default 1, or chosen by --lanes auto)")
    p.add_argument("--clock", type=float, metavar="MHZ",
                   help="design clock in MHz (default: the board's clock; otherwise a PLL makes it, within 1%%)")
    p.add_argument("--baud", type=int,
                   help="UART rate of the host link (default: the fastest the board's USB-UART bridge carries "
                        "that the clock makes exactly, e.g. 3000000 on the iCEBreaker)")
    p.add_argument("--spram", action=argparse.BooleanOptionalAction, default=None,
                   help="iCE40 UP5K: --spram keeps the largest layers' weights in SPRAM, --no-spram none "
                        "(default: SPRAM for the layers block RAM cannot hold); 'hdlgen run' loads them")
    seeds = p.add_mutually_exclusive_group()
    seeds.add_argument("--seed", type=int, help="nextpnr's placement seed (default: nextpnr's)")
    seeds.add_argument("--seeds", metavar="N|A,B,…",
                       help="try placement seeds 1..N, or those listed: keep the first build that meets the clock, "
                            "else the fastest (each seed a whole build in DIR/seed-<seed>; build.json says which won)")
    p.add_argument("--workers", type=int, metavar="N",
                   help="build at once on a local Dask cluster of N worker processes (default: one after another): "
                        "with --seeds the seeds, stopping the others when one meets the clock; with --lanes auto "
                        "the choice and the next N-1 foldings down, keeping the fastest that fits and meets timing")
    p.add_argument("--route-timeout", type=float, metavar="MIN",
                   help=f"stop routing after MIN minutes and report 'does not route' (default "
                        f"{DEFAULT_BUDGET.timeout_seconds / 60:g}; a stalled route is stopped before that)")
    p.add_argument("--router", choices=ROUTERS,
                   help="nextpnr's router (default: its own, router1 on iCE40 and ECP5); router2 routes some "
                        "congested designs router1 stalls on")
    p.add_argument("-o", "--out", metavar="DIR", help="build directory (default build/<net>-<board>)")
    p.add_argument("--flash", action="store_true", help="write the bitstream to the board with openFPGALoader")
    p.add_argument("--json", action="store_true", help="print the report as one JSON object on the last line")
    p.set_defaults(func=run)


def format_report(report) -> str:
    if report.extra.get("estimate"):
        lines = [f"{report.board}: not built, its memories need more block RAM than it has ({report.extra['estimate']})"]
    elif build_outcome(report) in ("does not route", "stopped"):
        lines = [f"{report.board}: {build_outcome(report)}, tools stopped after {report.seconds:.0f} s"]
    else:
        lines = [f"{report.board}: built in {report.seconds:.0f} s"]
    for name, u in report.utilization.items():
        if u.available or u.used:
            lines.append(f"  {name:5} {u.used:7} / {u.available:<7} {100 * u.fraction:5.1f}%")
    if report.fmax_mhz is not None:
        verdict = "meets" if report.fmax_mhz >= report.clock_mhz else "MISSES"
        lines.append(f"  fmax {report.fmax_mhz:.1f} MHz, clock {report.clock_mhz:g} MHz ({verdict} timing)")
    if report.extra.get("spram_layers"):
        lines.append(f"  weights of layers {report.extra['spram_layers']} in SPRAM: 'hdlgen run' loads them "
                     f"after each configuration")
    if report.extra.get("bram_layers"):
        lines.append(f"  weights of layers {report.extra['bram_layers']} in block RAM")
    if report.extra.get("baud"):
        lines.append(f"  UART {report.extra['baud']} baud" + (f", nextpnr seed {report.extra['seed']}"
                                                             if report.extra.get("seed") is not None else ""))
    if report.extra.get("products_in_logic"):
        lines.append(f"  products of engines {report.extra['products_in_logic']} built in logic cells "
                     f"(the DSP blocks went to the engines before them)")
    if report.extra.get("dsp_registers"):
        lines.append(f"  multipliers of engines {report.extra['dsp_registers']} registered inside their DSP blocks")
    for seed in report.extra.get("seeds", []):
        route = seed["route"]
        reached = (f"fmax {seed['fmax_mhz']:.1f} MHz" if seed["fmax_mhz"] is not None
                   else f"{route['last']} {report.extra['route']['measure']} after {route['iterations']} iterations"
                   if route.get("iterations") else "")
        kept = "  ← kept" if report.bitstream is not None and seed["seed"] == report.extra.get("seed") else ""
        lines.append(f"  seed {seed['seed']}: {seed['outcome']}{f', {reached}' if reached else ''}, "
                     f"{seed['seconds']:.0f} s{kept}")
    if report.bitstream is not None:
        lines.append(f"  bitstream {report.bitstream}")
    return "\n".join(lines)


def _build_dir(args, board) -> Path:
    """``-o``, else build/<net>-<board>."""
    return Path(args.out) if args.out else Path("build") / f"{Path(args.net).stem}-{board_name(board.platform)}"


def _check_options(args, board):
    """Clock, baud rate, build directory and tools, before any gateware is made."""
    if args.clock is not None and not args.clock > 0:
        raise UserError(f"--clock must be a positive frequency in MHz, got {args.clock:g}")
    if args.route_timeout is not None and not 0 < args.route_timeout < math.inf:
        raise UserError(f"--route-timeout must be a positive number of minutes, got {args.route_timeout:g}")
    args.seeds = None if args.seeds is None else parse_seeds(args.seeds)
    auto = args.lanes == AUTO or (args.lanes is None and args.target_fps is not None)
    if args.workers is not None and (not (args.seeds or auto) or args.workers < 1):
        raise UserError(f"--workers must be ≥ 1 and comes with --seeds or --lanes auto, got --workers {args.workers}"
                        f"{'' if args.seeds or auto else ' without either'}")
    if args.workers is not None and args.seeds and auto:
        raise UserError("--workers builds either placement seeds (--seeds) or --lanes auto's foldings at once, not "
                        "both: drop --seeds, or give --lanes")
    try:
        link_clock(board, None if args.clock is None else args.clock * 1e6, args.baud)
    except UserError as e:
        raise as_option(e, {"baud rate": "--baud"}) from None
    check_output_dir(_build_dir(args, board), what="a build directory")
    toolchain_env(board.family)
    if args.flash:
        loader_command(Path("top.bin"), board)   # openFPGALoader is there and knows the board


class Progress:
    """The build's phase, its elapsed time and the tool's last step (while routing: the router's iteration and
    congestion; with seeds: which seed), on one line of a terminal's stderr."""

    def __init__(self, enabled: bool):
        from tqdm import tqdm

        self.bar = tqdm(total=len(PHASES), disable=not enabled, file=sys.stderr, leave=False, dynamic_ncols=True,
                        bar_format="hdlgen build: {desc} ({elapsed} in all): {postfix}")
        self.phase, self.started = None, time.perf_counter()

    def __call__(self, phase: str, step: str):
        if phase != self.phase:
            self.phase, self.started = phase, time.perf_counter()
            self.bar.n = PHASES.index(phase)
        self.bar.set_description_str(f"{PHASES.index(phase) + 1}/{len(PHASES)} {phase} "
                                     f"{time.perf_counter() - self.started:.0f} s", refresh=False)
        self.bar.set_postfix_str(step[:80])

    def close(self):
        self.bar.close()


def parse_seeds(text: str) -> list:
    """``--seeds``: ``N`` → seeds 1..N; ``A,B,…`` → those seeds (each once, in that order)."""
    items = text.split(",")
    try:
        numbers = [int(item) for item in items]
    except ValueError:
        numbers = []
    if not numbers or any(n < 0 for n in numbers) or (len(items) == 1 and numbers[0] < 1):
        raise UserError(f"--seeds must be a count N ≥ 1 or a list of seeds ≥ 0 such as 1,5,9, got {text!r}")
    if len(set(numbers)) < len(numbers):
        raise UserError(f"--seeds lists a seed twice: {text!r}")
    return numbers if len(items) > 1 else list(range(1, numbers[0] + 1))


# --lanes auto builds at most this many candidates (the choice and the next ones down) before giving up
STEP_DOWN_BUILDS = 3
STEP_DOWN_OUTCOMES = ("does not fit", "misses timing", "does not route")


def _build(args, net, board, out, clock_hz):
    """One build (or one per seed) at the lanes and pixels per transfer in ``args``."""
    progress = Progress(sys.stderr.isatty() and not args.json)
    options = {"lanes": args.lanes, "pixels_per_transfer": args.pixels_per_transfer, "spike_lanes": args.spike_lanes,
               "baud": args.baud, "clock_hz": clock_hz, "spram": args.spram, "route_budget": _route_budget(args),
               "router": args.router}
    try:
        if args.seeds:
            with engine(args.workers) as client:
                return build_seeds(net, args.board, out, args.seeds, client=client, progress=progress, **options)
        return retry_on_bus_error(lambda: build(net, board, out, seed=args.seed, progress=progress, **options),
                                  lambda line: print(f"hdlgen build: {line}", file=sys.stderr))
    finally:
        progress.close()


def _route_budget(args):
    if args.route_timeout is None:
        return DEFAULT_BUDGET
    return dataclasses.replace(DEFAULT_BUDGET, timeout_seconds=args.route_timeout * 60)


def candidate_dir(candidate) -> str:
    """The subdirectory of a --lanes auto --workers build where one folding is built (its
    :func:`~hdlgen.folding.folding_label`: foldings may differ in pixels per transfer or spike lanes alone)."""
    return folding_label(candidate.lanes, candidate.pixels_per_transfer, candidate.spike_lanes)


def _ranked_winner(outcomes: list) -> int | None:
    """Of the candidates (fastest first; ``None`` for one still building), the index of the fastest that was
    built (fits, meets timing) once every faster one has settled; ``None`` while that is not known."""
    for index, outcome in enumerate(outcomes):
        if outcome is None:
            return None
        if outcome == "built":
            return index
    return None


def _build_candidates(args, net, board, out: Path, clock_hz, tried: list) -> tuple:
    """--lanes auto --workers N: the ``tried`` foldings (the choice and the next ones down, fastest first) built
    at once on a local Dask cluster, each in ``out/<folding>`` (:func:`candidate_dir`; :func:`hdlgen.boards.seeds.seed_task` on a
    worker). A folding that fits and meets timing stops the slower ones at once; once the fastest such is
    known (every faster one settled) the rest are stopped too. Returns ``(index kept, report kept, one summary
    per folding)``; the kept build's files are also written to ``out``. Without a success the kept one is the
    fastest that made a bitstream (missing timing), else the choice."""
    from distributed import Event, wait

    prepare_tools([board.family])     # builds side by side must not be a YoWASP tool's first runs
    progress = Progress(sys.stderr.isatty() and not args.json)
    options = {"baud": args.baud, "clock_hz": clock_hz, "spram": args.spram, "router": args.router}
    outcomes, reports, summaries, files = ([None] * len(tried) for _ in range(4))
    started = time.monotonic()
    with engine(args.workers) as client:
        base = f"hdlgen-lanes-{time.time_ns()}"
        stops = [Event(f"{base}-{index}", client=client) for index in range(len(tried))]
        net_data = dumps_net(net)
        futures = [client.submit(run_task, seed_task, {"lanes": lanes_label(c.lanes)}, net_data, board=args.board,
                                 seed=args.seed, route_budget=_route_budget(args), stop_event=f"{base}-{index}",
                                 options={**options, "lanes": c.lanes, "pixels_per_transfer": c.pixels_per_transfer,
                                          "spike_lanes": c.spike_lanes},
                                 key=f"lanes-{index}-{base}", pure=False)
                   for index, c in enumerate(tried)]

        def settle(index):
            """The finished build ``index``: its files into its directory, its outcome."""
            result = futures[index].result()
            place = out / candidate_dir(tried[index])
            write_files(result["files"], place)
            files[index], worker = result["files"], result["row"]["task"]["worker"]
            if result["failed"]:     # a tool failed outright: this folding is out, the others go on
                outcomes[index] = "failed"
                summaries[index] = {"outcome": "failed", "problem": result["row"]["problem"], "worker": worker}
                return
            report = BuildReport.from_dict(json.loads(result["row"]["report"].replace(BUILD_DIR_TOKEN, str(place))))
            reports[index], outcomes[index] = report, build_outcome(report)
            summaries[index] = {"outcome": outcomes[index], "fmax_mhz": report.fmax_mhz, "seconds": report.seconds,
                                "worker": worker}
            if outcomes[index] == "built":      # the slower ones cannot be kept any more
                for stop in stops[index + 1:]:
                    stop.set()

        try:
            while _ranked_winner(outcomes) is None and None in outcomes:
                for index, future in enumerate(futures):
                    if outcomes[index] is None and future.done():
                        settle(index)
                done = ", ".join(f"{lanes_label(c.lanes)}: {o}" for c, o in zip(tried, outcomes) if o)
                progress("place and route", f"{len(tried)} foldings on {args.workers} workers, "
                                            f"{time.monotonic() - started:.0f} s; {done or 'none done'}")
                time.sleep(0.5)
        finally:
            # the builds still running stop their tools, and are waited for (a worker shut down under a
            # build would leave its tools running)
            for stop in stops:
                stop.set()
            progress.close()
            with contextlib.suppress(TimeoutError):
                wait(futures, timeout=STOP_SECONDS)
        for index, future in enumerate(futures):
            if outcomes[index] is None and future.status == "finished":
                settle(index)
    for index, summary in enumerate(summaries):
        if summary is None:
            summaries[index] = {"outcome": "stopped", "fmax_mhz": None, "seconds": None, "worker": None}
    winner = _ranked_winner(outcomes)
    if winner is None:
        made = [index for index, report in enumerate(reports) if report is not None and report.bitstream is not None]
        winner = made[0] if made else 0
    if reports[winner] is None:
        raise BuildFailed(f"{board.name}: --lanes {lanes_label(tried[winner].lanes)}: "
                          f"{summaries[winner].get('problem', summaries[winner]['outcome'])}")
    kept = reports[winner]
    if kept.bitstream is not None:      # the kept build's bitstream, logs and record, where a build leaves them
        write_files(files[winner], out)
        kept = dataclasses.replace(kept, bitstream=out / kept.bitstream.name)
    return winner, kept, summaries


def format_candidates(tried: list, summaries: list, kept: int) -> str:
    """One line per folding that --lanes auto --workers built: its options and what came of it."""
    lines = []
    for index, (candidate, summary) in enumerate(zip(tried, summaries)):
        detail = summary.get("problem") or (f"fmax {summary['fmax_mhz']:.1f} MHz" if summary.get("fmax_mhz") else "")
        where = f", {summary['seconds']:.0f} s on worker {summary['worker']}" if summary.get("seconds") is not None else ""
        mark = "  ← kept" if index == kept else ""
        lines.append(f"  {candidate.options()}: {summary['outcome']}{f', {detail}' if detail else ''}{where}{mark}")
    return "\n".join(lines)


def run(args):
    board = get_board(args.board)
    _check_options(args, board)
    net = ttfs.load(args.net)
    clock_hz = None if args.clock is None else args.clock * 1e6
    _, design_clock, baud = link_clock(board, clock_hz, args.baud)
    order = settle_lanes(args, net, board, design_clock, baud)
    check_core_options(net, args.net, args.lanes, args.pixels_per_transfer, args.spike_lanes)
    out = _build_dir(args, board)
    if order and args.workers:
        return _run_candidates(args, net, board, out, clock_hz, order[:args.workers])
    step_down = order[1:STEP_DOWN_BUILDS]
    while True:
        report = _build(args, net, board, out, clock_hz)
        print(format_report(report))
        problem = check_report(report, lanes=lanes_label(args.lanes), weight_bits=net.weight_bits)
        if problem is None or not step_down or build_outcome(report) not in STEP_DOWN_OUTCOMES:
            break
        below = step_down.pop(0)
        print(f"hdlgen build: lanes auto: --lanes {lanes_label(args.lanes)} --pixels-per-transfer "
              f"{args.pixels_per_transfer} {build_outcome(report)}; stepping down to {below.options()}", file=sys.stderr)
        args.lanes, args.pixels_per_transfer, args.spike_lanes = below.lanes, below.pixels_per_transfer, below.spike_lanes
    return _finish(args, board, report, problem)


def _run_candidates(args, net, board, out: Path, clock_hz, tried: list) -> int:
    """--lanes auto --workers N: the foldings ``tried`` built at once; the kept one reported as one build."""
    print(f"hdlgen build: lanes auto: building {len(tried)} foldings at once on {args.workers} workers", flush=True)
    kept, report, summaries = _build_candidates(args, net, board, out, clock_hz, tried)
    chosen = tried[kept]
    args.lanes, args.pixels_per_transfer, args.spike_lanes = chosen.lanes, chosen.pixels_per_transfer, chosen.spike_lanes
    problem = check_report(report, lanes=lanes_label(args.lanes), weight_bits=net.weight_bits)
    print(format_report(report))
    print(f"  foldings tried at once ({'the fastest that fits and meets timing kept' if problem is None else 'none built'}):")
    print(format_candidates(tried, summaries, kept))
    candidates = [{"lanes": c.lanes, "pixels_per_transfer": c.pixels_per_transfer, **summary}
                  for c, summary in zip(tried, summaries)]
    return _finish(args, board, report, problem, {"candidates": candidates})


def _finish(args, board, report, problem, extra=None) -> int:
    """Flash when asked, print the JSON summary, say the problem: the exit code."""
    flashed = False
    if problem is None and args.flash:
        flash(report.bitstream, board)
        flashed = True
        print(f"  flashed {board.name}")
    if args.json:
        print_json({**report.to_dict(), "lanes": args.lanes,
                    "pixels_per_transfer": args.pixels_per_transfer, "ok": problem is None,
                    "problem": problem, "flashed": flashed, **(extra or {})})
    if problem:
        print(f"hdlgen build: {problem}", file=sys.stderr)
        return 2
    return 0
