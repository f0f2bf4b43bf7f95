"""The ``hdlgen`` command line: one module per subcommand in :mod:`hdlgen.commands`.

Each command module has ``register(subparsers)``, which adds its parser and sets
``func=run``; ``run(args)`` returns the exit code. A :class:`~hdlgen.errors.UserError`
becomes one line on stderr and exit code 2. When the reader of stdout leaves early
(``hdlgen info net.ttfs | head``), hdlgen stops quietly with exit code 141, the code of a program
ended by SIGPIPE (what ``cat`` or ``grep`` give in the same pipe), so ``set -o pipefail`` sees it.
SIGTERM stops a command as Ctrl-C does – the tools it started (which run in a session of their
own) are stopped, partial outputs cleaned up – and exits 143.
"""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys
import threading
from importlib import metadata

from .errors import UserError

__all__ = ["main", "COMMANDS"]

COMMANDS = ["convert", "finetune", "eval", "info", "verilog", "sim", "boards", "build", "flash", "run", "bench", "compare",
            "report", "prove"]


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the command is so that it stops as on Ctrl-C."""


def _terminate(signum, frame):
    raise Terminated


class _Parser(argparse.ArgumentParser):
    """An argument parser whose mistakes (an unknown option, a value that is not a number, a
    choice not offered) are one line on stderr and exit code 2, as a UserError's are."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="hdlgen",
                                     description="Trained ReLU network → verified TTFS FPGA accelerator.")
    parser.add_argument("--version", action="version", version=f"hdlgen {metadata.version('hdlgen')}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        importlib.import_module(f"hdlgen.commands.{name}").register(sub)
    for action in sub._choices_actions:   # 'hdlgen COMMAND --help' says at least what the list says
        command = sub.choices[action.dest]
        command.description = command.description or action.help[0].upper() + action.help[1:] + "."
    return parser


def _run(argv) -> int:
    args = _parser().parse_args(argv)
    try:
        return args.func(args) or 0
    except UserError as e:
        print(f"hdlgen {args.command}: error: {e}", file=sys.stderr)
        return 2
    except Terminated:
        print(f"hdlgen {args.command}: terminated", file=sys.stderr)
        return 128 + signal.SIGTERM
    except KeyboardInterrupt:
        print(f"hdlgen {args.command}: interrupted", file=sys.stderr)
        return 130


def main(argv=None) -> int:
    in_main_thread = threading.current_thread() is threading.main_thread()   # where signal handlers go
    previous = signal.signal(signal.SIGTERM, _terminate) if in_main_thread else None
    try:
        try:
            return _run(argv)
        finally:
            sys.stdout.flush()   # here, not at exit, so a reader that left is seen below
            if in_main_thread:
                signal.signal(signal.SIGTERM, previous)
    except BrokenPipeError:
        # stdout's reader left early: the rest goes nowhere (the flush at exit must not fail again)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 128 + signal.SIGPIPE


if __name__ == "__main__":
    sys.exit(main())
