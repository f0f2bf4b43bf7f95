"""Folding: the lanes of every layer, as the user gives them and as ``--lanes auto`` chooses them.

* :func:`lanes_option` – the one parser of ``--lanes`` (``8``, ``64,8`` or ``auto``) and, without
  ``auto``, of ``--spike-lanes``; :func:`lanes_label` writes a value back the same way.
"""

from __future__ import annotations

import argparse

__all__ = ["AUTO", "lanes_option", "counts_option", "lanes_label", "add_lanes_options"]

AUTO = "auto"


def counts_option(text: str):
    """``--spike-lanes``-style value: one number (``8``) or one per layer with lanes (``64,8``) → an
    int or a tuple of ints (their ranges are the geometry's to check)."""
    parts = text.split(",")
    try:
        values = tuple(int(part) for part in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or one per layer with lanes (e.g. 64,8), got {text!r}") from None
    return values[0] if len(values) == 1 else values


def lanes_option(text: str):
    """``--lanes`` value: :func:`counts_option`, or ``auto`` (:data:`AUTO`: chosen by :mod:`hdlgen.folding`)."""
    if text.strip().lower() == AUTO:
        return AUTO
    try:
        return counts_option(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"expected a number, one per layer with lanes (e.g. 64,8) or auto, "
                                         f"got {text!r}") from None


def lanes_label(lanes) -> str:
    """``8``, ``64,8``: a lanes value as ``--lanes`` takes it."""
    return ",".join(map(str, lanes)) if isinstance(lanes, (list, tuple)) else str(lanes)


def add_lanes_options(parser, *, board: bool = False) -> None:
    """``--lanes``, ``--spike-lanes`` and ``--target-fps`` of a command that makes a core; with
    ``board``, also ``--board`` (the board ``--lanes auto`` chooses for)."""
    parser.add_argument("--lanes", type=lanes_option, default=1, metavar="N|N,N,…|auto",
                        help="accumulators updated per cycle: one number for every layer (capped per layer), one "
                             "per layer with lanes (e.g. 64,8), or auto: chosen from the cycle and resource models "
                             "(default 1, or auto with --target-fps)")
    parser.add_argument("--spike-lanes", type=counts_option, metavar="N|N,N,…",
                        help="fire ticks found per cycle in each spike-time bank, 1..lanes, one number or one per "
                             "layer with lanes (fewer logic cells; default: lanes)")
    parser.add_argument("--target-fps", type=float, metavar="F",
                        help="with --lanes auto: the cheapest folding that reaches F images/s at the clock "
                             "(default: the fastest that fits the board)")
    if board:
        parser.add_argument("--board", metavar="NAME", help="with --lanes auto: the board to fit and its clock")
