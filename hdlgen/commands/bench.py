"""``hdlgen bench MODEL --data D.npz`` – accuracy per T and weight bits, cycles per lanes, board builds.

Every conversion (T × weight bits) is simulated at every lanes and built for every board × lanes
(``--lanes`` as ``hdlgen build`` takes it: ``4``, ``64,8`` per layer, or ``auto`` – chosen per board
by :func:`hdlgen.folding.settle_lanes` for the first net, that choice simulated and built): each row
is a task (:mod:`hdlgen.sweep`), run in this process, on a local Dask cluster (``--workers N``) or on a
running one (``--scheduler``), cached by content with ``--cache DIR``.
The board rows that no other beats on accuracy, µs per image and LUTs are the Pareto front.
"""

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

from .. import sweep, ttfs
from ..bench import format_accuracy, format_boards, format_rtl, pareto_front, plot_front, ticks_label
from ..boards.build import link_clock, toolchain_env
from ..boards.platforms import get_board
from ..data import load_dataset
from ..errors import UserError
from ..files import write_atomically
from ..folding import AUTO, TARGET_FPS_HELP, check_target_fps, folding_label, lanes_label, lanes_option, settle_lanes
from ..simulate import SIMULATORS, missing_simulator
from ..tasks import BUILD_DIR_TOKEN, Cache, Task, content_key, engine, file_digest, loads_net, run_tasks, write_files
from . import check_core_options, check_output, check_output_dir, print_json
from .boards import prepare_tools
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
    p.add_argument("--lanes", nargs="+", type=lanes_option, metavar="N|N,N,…|auto",
                   help="foldings simulated and built at each: accumulators updated per cycle, one number for every "
                        "layer (e.g. 4) or one per layer with lanes (e.g. 64,8), or auto: chosen for each --board from "
                        "the cycle and resource models, as 'hdlgen build --lanes auto' (default 1, or auto with "
                        "--target-fps)")
    p.add_argument("--target-fps", type=float, metavar="F", help=TARGET_FPS_HELP)
    p.add_argument("--pixels-per-transfer", type=int, metavar="P",
                   help="pixels per transfer into the simulated and built cores (default 1, or chosen by --lanes auto)")
    p.add_argument("--samples", type=int, default=20,
                   help="test images simulated at each lanes; 0 skips the RTL section (default 20)")
    p.add_argument("--simulator", choices=sorted(SIMULATORS),
                   help="default: icarus, or verilator when only that is installed")
    p.add_argument("--board", nargs="+", default=[], metavar="NAME", help="boards to build for (see 'hdlgen boards')")
    p.add_argument("--build-lanes", nargs="+", type=lanes_option, metavar="N|N,N,…|auto",
                   help="of --lanes, those to build at (default: every one; simulating is cheaper than building)")
    p.add_argument("--clock", type=float, metavar="MHZ", help="design clock in MHz (default: each board's clock)")
    p.add_argument("--build-dir", metavar="DIR",
                   help="board builds go to DIR/<board>-lanes<L>, DIR/T<T>-w<BITS>/<board>-lanes<L> for several nets "
                        "(<L>: the lanes as --lanes takes them, then -p<P> for P pixels per transfer other than 1 and -s<S> "
                        "for the spike lanes --lanes auto chose; "
                        "default build/bench-<model>)")
    cluster = p.add_mutually_exclusive_group()
    cluster.add_argument("--workers", type=int, metavar="N",
                         help="run the rows on a Dask LocalCluster of N worker processes on this machine")
    cluster.add_argument("--scheduler", metavar="tcp://HOST:PORT",
                         help="run the rows on the Dask cluster of this scheduler ('dask scheduler' / 'dask worker')")
    p.add_argument("--cache", metavar="DIR",
                   help="keep every row's result in DIR by content; a re-run computes only the rows missing there")
    p.add_argument("-o", "--output", metavar="FILE",
                   help="write every figure as JSON to FILE, and the Pareto plot beside it (FILE with suffix .png)")
    p.add_argument("--json", action="store_true", help="print every figure as one JSON object on the last line")
    p.set_defaults(func=run)


def _check_options(args):
    """Every option that does not need the model, before any long work."""
    check_target_fps(args.target_fps)
    args.lanes = list(dict.fromkeys(args.lanes or [AUTO if args.target_fps is not None else 1]))  # each once
    if any(n < 1 for lanes in args.lanes if lanes != AUTO for n in (lanes if isinstance(lanes, tuple) else [lanes])):
        raise UserError(f"--lanes must be ≥ 1, got {' '.join(map(lanes_label, args.lanes))}")
    if args.build_lanes is not None and not set(args.build_lanes) <= set(args.lanes):
        raise UserError(f"--build-lanes must be some of --lanes ({' '.join(map(lanes_label, args.lanes))}), "
                        f"got {' '.join(map(lanes_label, args.build_lanes))}")
    if AUTO in args.lanes and not args.board:
        raise UserError("--lanes auto needs --board: the boards whose resources and clock the folding is chosen for")
    if args.target_fps is not None and AUTO not in args.lanes:
        raise UserError(f"--target-fps comes with --lanes auto, not --lanes {' '.join(map(lanes_label, args.lanes))}")
    if args.pixels_per_transfer is not None and args.pixels_per_transfer < 1:
        raise UserError(f"--pixels-per-transfer must be ≥ 1, got {args.pixels_per_transfer}")
    if args.samples < 0:
        raise UserError(f"--samples must be ≥ 0 (0 skips the RTL section), got {args.samples}")
    if args.clock is not None and not args.clock > 0:
        raise UserError(f"--clock must be a positive frequency in MHz, got {args.clock:g}")
    if args.workers is not None and args.workers < 1:
        raise UserError(f"--workers must be ≥ 1, got {args.workers}")
    if args.scheduler is not None and not _is_address(args.scheduler):
        raise UserError(f"--scheduler must be a Dask scheduler address tcp://HOST:PORT, got {args.scheduler!r}")
    if args.output:
        check_output(args.output)
    check_output_dir(_build_dir(args) if args.board else args.build_dir, "--build-dir")
    check_output_dir(args.cache, "--cache", "a directory for the results")
    boards = [get_board(name) for name in dict.fromkeys(args.board)]
    for family in {board.family for board in boards}:
        toolchain_env(family)
    return boards


def _is_address(text: str) -> bool:
    host, _, port = text.removeprefix("tcp://").rpartition(":")
    return text.startswith("tcp://") and bool(host) and port.isdigit()


def _file(path) -> tuple:
    """``(name, bytes)`` of a file, as tasks receive it."""
    return Path(path).name, Path(path).read_bytes()


def _conversions(args):
    """``(conversion settings or None for a .ttfs, their rows' identities, the first net, the test data)``,
    every input checked (the first setting converted here, so that lanes are checked before any task)."""
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
        identity = {"ticks": net.ticks, "weight_bits": net.weight_bits,
                    "per_channel": bool(net.meta.get("per_channel", False))}
        return [None], [identity], net, data
    settings = {(t, bits): conversion_config(args, parse_ticks(t), bits)
                for t in args.ticks or ["16"] for bits in args.weight_bits or [8]}
    configs = list(settings.values())
    graph, data, calibration = load_model_and_data(args)
    first = convert_model(graph, calibration, args, configs[0], name=Path(args.model).stem)
    layers = len(first.ticks)
    identities = [{"ticks": [c.ticks] * layers if isinstance(c.ticks, int) else list(c.ticks),
                   "weight_bits": c.weight_bits, "per_channel": c.per_channel} for c in configs]
    return configs, identities, first, data


def _pick_simulator(args) -> tuple:
    """``(simulator, None)`` or ``(None, the one-line reason no simulation can run)``."""
    choices = [args.simulator] if args.simulator else ["icarus", "verilator"]
    reasons = [missing_simulator(name) for name in choices]
    for name, reason in zip(choices, reasons):
        if reason is None:
            return name, None
    return None, reasons[0]


@dataclass(frozen=True)
class Folding:
    """A folding the sweep simulates and builds: ``lanes`` (one number, or a tuple of one per layer with
    lanes), ``pixels_per_transfer`` and ``spike_lanes`` (``None``: the default – the lanes in a
    simulation, the board family's in a build)."""

    lanes: int | tuple
    pixels_per_transfer: int
    spike_lanes: int | tuple | None = None

    @property
    def name(self) -> str:
        """How its rows and build directories are named (:func:`hdlgen.folding.folding_label`)."""
        return folding_label(self.lanes, self.pixels_per_transfer, self.spike_lanes)

    def identity(self) -> dict:
        return {"lanes": self.lanes, "pixels_per_transfer": self.pixels_per_transfer,
                "spike_lanes": self.spike_lanes, "folding": self.name}


def _settle_auto(args, net, boards) -> tuple[dict, list]:
    """``--lanes auto`` for each board (:func:`hdlgen.folding.settle_lanes` on ``net`` at the board's
    design clock, ``--target-fps`` and ``--pixels-per-transfer`` if given): ``({board name: Folding},
    [{board, lanes, pixels_per_transfer, spike_lanes, why: the lines printed}])``."""
    clock_hz = None if args.clock is None else args.clock * 1e6
    chosen, records = {}, []
    for board in boards:
        _, design_clock, baud = link_clock(board, clock_hz)
        settled = SimpleNamespace(lanes=AUTO, target_fps=args.target_fps, pixels_per_transfer=args.pixels_per_transfer,
                                  spike_lanes=None)
        lines = []

        def say(line, lines=lines):
            print(line, flush=True)
            lines.append(line)
        settle_lanes(settled, net, board, design_clock, baud, say=say)
        chosen[board.name] = Folding(settled.lanes, settled.pixels_per_transfer, settled.spike_lanes)
        records.append({"board": board.name, **chosen[board.name].identity(), "why": lines})
    return chosen, records


def _plan(args, configs, identities, data, boards, simulator, chosen: dict):
    """The tasks of the sweep in dependency order, and their keys by section. ``chosen``: each board's
    ``--lanes auto`` :class:`Folding` (simulated, as it is built, beside the ``--lanes`` given)."""
    model, data_file = _file(args.model), _file(args.data)
    calibration = _file(args.calibration_data) if args.calibration_data else None
    clock_hz = None if args.clock is None else args.clock * 1e6
    sample = data.head(args.samples) if simulator else None
    inputs = {"model": content_key(model[0], file_digest(args.model)),
              "data": file_digest(args.data),
              "calibration": None if calibration is None else file_digest(args.calibration_data)}
    tasks, keys = [], {"accuracy": [], "rtl": [], "boards": []}
    given = [Folding(lanes, args.pixels_per_transfer or 1) for lanes in args.lanes if lanes != AUTO]
    to_build = [lanes for lanes in args.lanes if args.build_lanes is None or lanes in args.build_lanes]

    def auto_for(folding) -> list:
        """The boards whose --lanes auto chose ``folding``."""
        return [board for board, choice in chosen.items() if choice == folding]

    def add(section, kind, function, kwargs, identity, depends=(), key_parts=()):
        key = content_key(kind, *key_parts, {k: v for k, v in kwargs.items() if k not in ("model", "data",
                                "calibration", "x", "y")}, sweep.tool_versions(kind, kwargs.get("simulator")))
        tasks.append(Task(key, kind, function, kwargs, identity, tuple(depends)))
        keys[section].append(key)
        return key

    for index, (config, identity) in enumerate(zip(configs, identities)):
        net = {"net_index": index, **identity}
        converted = add("accuracy", "convert", sweep.convert_task,
                        {"model": model, "data": data_file, "calibration": calibration, "config": config,
                         "calibration_samples": args.calibration_samples},
                        net, key_parts=[inputs, None if config is None else vars(config)])
        simulated = {}
        for folding in dict.fromkeys(given + list(chosen.values())) if sample else []:
            simulated[folding] = add("rtl", "simulate", sweep.simulate_task,
                                     {"x": sample.x, "y": sample.y, "lanes": folding.lanes,
                                      "pixels_per_transfer": folding.pixels_per_transfer,
                                      "spike_lanes": folding.spike_lanes, "simulator": simulator},
                                     {**net, **folding.identity(), "auto": auto_for(folding)},
                                     [converted], key_parts=[converted, inputs["data"], args.samples])
        for board in boards:
            # a folding given and chosen alike is built once (the choice's spike lanes are a build's default)
            foldings = {(f.lanes, f.pixels_per_transfer): f for f in given if f.lanes in to_build}
            choice = chosen.get(board.name) if AUTO in to_build else None
            if choice is not None:
                foldings.setdefault((choice.lanes, choice.pixels_per_transfer), choice)
            for folding in foldings.values():
                auto = choice is not None and (folding.lanes, folding.pixels_per_transfer) == \
                    (choice.lanes, choice.pixels_per_transfer)
                depends = [converted] + ([simulated[folding]] if folding in simulated else [])
                add("boards", "build", sweep.build_task,
                    {"board": board.name, "lanes": folding.lanes, "clock_hz": clock_hz,
                     "pixels_per_transfer": folding.pixels_per_transfer, "spike_lanes": folding.spike_lanes},
                    {**net, "board": board.name, **folding.identity(), "auto": auto}, depends, key_parts=depends)
    return tasks, keys


def _write_builds(results, keys, out: Path, several_nets: bool):
    """Each build's files into ``out`` (``<board>-<folding>``, e.g. ``icebreaker-lanes64,8``, under
    ``T<T>-w<BITS>`` when several nets), its row's paths pointing there."""
    for key in keys:
        row = results[key]["row"]
        place = out / f"{row['board']}-{row['folding']}"
        if several_nets:
            place = out / f"T{ticks_label(row['ticks'])}-w{row['weight_bits']}{'c' if row['per_channel'] else ''}" / place.name
        if results[key]["files"]:
            write_files(results[key]["files"], place)
        for field in ["problem", "bitstream"]:
            if row.get(field):
                row[field] = row[field].replace(BUILD_DIR_TOKEN, str(place))


def _build_dir(args) -> Path:
    """``--build-dir``, else build/bench-<model>."""
    return Path(args.build_dir) if args.build_dir else Path("build") / f"bench-{Path(args.model).stem}"


def _write_report(converted: dict, data, figures: dict, path: Path):
    """``hdlgen report`` of the sweep's first net with these figures, beside the JSON (when the
    report's packages are there; a note otherwise)."""
    from ..html_report import missing_packages, write_report

    missing = missing_packages()
    if missing:
        print(f"no report {path}: it {missing}")
        return
    if "net" not in converted["files"]:
        print(f"no report {path}: the first net's conversion failed")
        return
    print(f"wrote {write_report(loads_net(converted['files']['net']), data, path, bench=figures)}")


def _print_tables(figures, samples: int, simulated: str, several_nets: bool):
    """The sweep's tables: accuracy, RTL, boards (with the Pareto front), and where its tasks ran."""
    print(f"accuracy on {samples} samples of {figures['data']}")
    print(format_accuracy(figures["accuracy"]))
    rtl = figures["rtl"]
    if rtl["skipped"] and rtl["skipped"] != "--samples 0":
        print(f"\nRTL: skipped, {rtl['skipped']}")
    elif rtl["rows"]:
        print(f"\nRTL: {simulated}")
        print(format_rtl(rtl["rows"], several_nets))
    if figures["boards"]:
        print("\nboards: µs per inference = cycles mean at the lower of fmax and clock; front: on the Pareto front "
              "of accuracy, µs per inference and LUTs")
        print(format_boards(figures["boards"], several_nets))
    tasks = figures["tasks"]
    workers = f" by {', '.join(tasks['workers'])}" if tasks["engine"] != "in this process" else ""
    print(f"\ntasks: {tasks['total']}, {tasks['cached']} from the cache, {tasks['computed']} computed "
          f"{tasks['engine']}{workers}, {tasks['failed']} failed")


def run(args):
    progress = sys.stderr.isatty() and not args.json
    boards = _check_options(args)
    configs, identities, first, data = _conversions(args)
    for lanes in args.lanes:   # the nets differ in T and weights only, not in the sizes these depend on
        if lanes != AUTO:
            check_core_options(first, args.model, lanes, args.pixels_per_transfer or 1)
    chosen, lanes_auto = _settle_auto(args, first, boards) if AUTO in args.lanes else ({}, [])
    simulator, reason = (None, "--samples 0") if args.samples == 0 else _pick_simulator(args)
    tasks, keys = _plan(args, configs, identities, data, boards, simulator, chosen)
    cache = Cache(args.cache)
    where = ("in this process" if args.workers is None and args.scheduler is None
             else f"on {args.scheduler}" if args.scheduler else f"on a local cluster of {args.workers} workers")

    def announce(cached, total):
        if args.cache:
            print(f"cache {args.cache}: {cached} of {total} tasks there, computing {total - cached} {where}", flush=True)

    if boards and args.workers:   # the workers' builds side by side must not be the tools' first runs
        prepare_tools(sorted({board.family for board in boards}))
    with engine(args.workers, args.scheduler) as client:
        results, cached = run_tasks(tasks, client, cache, progress, announce)
    several = len(configs) > 1
    out = _build_dir(args)
    _write_builds(results, keys["boards"], out, several)

    rows = {section: [results[key]["row"] for key in section_keys] for section, section_keys in keys.items()}
    for row in rows["boards"]:
        row["snn_accuracy"] = rows["accuracy"][row["net_index"]].get("snn_accuracy")
    for row, on_front in zip(rows["boards"], pareto_front(rows["boards"])):
        row["pareto"] = on_front
    computed = [results[task.key]["row"]["task"] for task in tasks if not results[task.key]["row"]["task"]["cached"]]
    failed = sum(results[task.key]["failed"] for task in tasks)
    figures = {"model": str(args.model), "data": str(args.data), "lanes_auto": lanes_auto, "accuracy": rows["accuracy"],
               "rtl": {"skipped": reason, "rows": rows["rtl"]}, "boards": rows["boards"],
               "tasks": {"total": len(tasks), "cached": cached, "computed": len(computed), "failed": failed,
                         "engine": where, "workers": sorted({task["worker"] for task in computed if task["worker"]})},
               "pareto": [i for i, row in enumerate(rows["boards"]) if row["pareto"]]}

    _print_tables(figures, len(data), f"{min(args.samples, len(data))} images, {simulator}", several)
    if args.output:
        write_atomically(Path(args.output), lambda path: path.write_text(json.dumps(figures, indent=1) + "\n"))
        print(f"wrote {args.output}")
        plot = plot_front(rows["boards"], Path(args.output).with_suffix(".png"))
        if plot:
            print(f"wrote {plot}")
        _write_report(results[keys["accuracy"][0]], data, figures, Path(args.output).with_suffix(".html"))
    if args.json:
        print_json(figures)
    bit_exact = all(row.get("bit_exact") for row in rows["rtl"])
    return 0 if bit_exact and not failed else 1
