"""The boards hdlgen can build for: every amaranth-boards board with a UART that the yowasp
(WebAssembly) yosys + nextpnr tools can place and route, i.e. iCE40 (IceStorm flow), ECP5
(Trellis flow) and Gowin (Apicula flow: nextpnr-himbaechel with apycula's chip databases), and
any such platform class of the user's, named ``module:Class`` or ``path/to/file.py:Class``.

Names are the platform class names in lower case with hyphens, without "Platform":
``ICEBreakerPlatform`` → ``icebreaker``, ``ULX3S_85F_Platform`` → ``ulx3s-85f``.
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

__all__ = ["Board", "boards", "get_board", "board_name", "board_from_platform", "BRIDGE_BAUD", "DEFAULT_BAUD"]

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
    def has_dsp(self) -> bool:
        """Multiplier blocks yosys can map to: ECP5 always, iCE40 only the UltraPlus parts."""
        return self.family == "ecp5" or self.device.startswith("iCE40UP")


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
