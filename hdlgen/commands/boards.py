"""``hdlgen boards`` – the boards ``hdlgen build`` can target."""

from ..boards.platforms import boards
from ..report import print_json


def register(sub):
    p = sub.add_parser("boards", help="list the boards 'hdlgen build' can target (UART + open toolchain); "
                                      "others: --board module:Class")
    p.add_argument("--json", action="store_true", help="print the list as one JSON object on the last line")
    p.set_defaults(func=run)


def run(args):
    table = boards()
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
