"""The ``hdlgen`` command line: one module per subcommand in :mod:`hdlgen.commands`.

Each command module has ``register(subparsers)``, which adds its parser and sets
``func=run``; ``run(args)`` returns the exit code. A :class:`~hdlgen.errors.UserError`
becomes one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from .errors import UserError

__all__ = ["main", "COMMANDS"]

COMMANDS = ["convert", "finetune", "eval", "info", "verilog", "sim", "boards", "build", "flash", "run", "bench", "compare",
            "report", "prove"]


class _Parser(argparse.ArgumentParser):
    """An argument parser whose mistakes (an unknown option, a value that is not a number, a
    choice not offered) are one line on stderr and exit code 2, as a UserError's are."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="hdlgen",
                                     description="Trained ReLU network → verified TTFS FPGA accelerator.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        importlib.import_module(f"hdlgen.commands.{name}").register(sub)
    return parser


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    try:
        return args.func(args) or 0
    except UserError as e:
        print(f"hdlgen {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"hdlgen {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
