"""The boards hdlgen can build for: every amaranth-boards board with a UART that the yowasp
(WebAssembly) yosys + nextpnr tools can place and route, i.e. iCE40 (IceStorm flow) and ECP5
(Trellis flow).

Names are the platform class names in lower case with hyphens, without "Platform":
``ICEBreakerPlatform`` → ``icebreaker``, ``ULX3S_85F_Platform`` → ``ulx3s-85f``.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
from dataclasses import dataclass
from functools import lru_cache

from ..errors import UserError

__all__ = ["Board", "boards", "get_board", "board_name"]


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
        ``"ice40"`` or ``"ecp5"``: which nextpnr places it.
    device, package : str
    clock_hz : float
        The board's default clock.
    leds : int
        User LEDs the board top drives (at most 3: error, idle, busy).
    """

    name: str
    platform: type
    family: str
    device: str
    package: str
    clock_hz: float
    leds: int

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
    from amaranth.vendor import LatticePlatform, SiliconBluePlatform

    if isinstance(platform, SiliconBluePlatform) and platform.toolchain == "IceStorm":
        return "ice40"
    if isinstance(platform, LatticePlatform) and platform.family == "ecp5" and platform.toolchain == "Trellis":
        return "ecp5"
    return None


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
            try:
                platform = cls()
            except Exception:
                continue
            family = _family(platform)
            names = {(r.name, r.number) for r in platform.resources.values()}
            if family is None or ("uart", 0) not in names or platform.default_clk is None \
                    or platform.default_clk_frequency is None:
                continue
            leds = sum(1 for i in range(3) if ("led", i) in names)
            board = Board(board_name(cls), cls, family, platform.device, platform.package,
                          float(platform.default_clk_frequency), leds)
            found[board.name] = board
    return dict(sorted(found.items()))


def get_board(name: str) -> Board:
    """The board called ``name``; a :class:`UserError` listing the choices otherwise."""
    table = boards()
    if name not in table:
        raise UserError(f"unknown board {name!r}; choose one of: {', '.join(table)} (see 'hdlgen boards')")
    return table[name]
