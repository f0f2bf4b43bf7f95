"""Folding: the lanes of every layer, as the user gives them and as ``--lanes auto`` chooses them.

* :func:`lanes_option` – the one parser of ``--lanes`` (``8``, ``64,8`` or ``auto``) and, without
  ``auto``, of ``--spike-lanes``; :func:`lanes_label` writes a value back the same way.
* :func:`choose` – ``--lanes auto``: every per-layer lanes (powers of two up to each layer's limit)
  and pixels per transfer, with the cycles between images (:mod:`hdlgen.cycles`) and the resources on
  the board (:mod:`hdlgen.resources`) of each; of the Pareto front of those that fit, the cheapest
  that reaches a target frame rate, or the fastest. Its ``order`` is the step-down a build follows
  when the chosen folding does not fit or misses timing.
"""

from __future__ import annotations

import argparse
import itertools
import math
from dataclasses import dataclass

from . import resources
from .cycles import dense_throughput_bound
from .errors import UserError
from .geometry import MAX_SPIKES_PER_CYCLE, STAGE_GEOMETRY, NetGeometry, multi_issue_layer, stage_geometry
from .resources import Estimate, Resources
from .ttfs import TTFSNet

__all__ = ["AUTO", "lanes_option", "counts_option", "lanes_label", "add_lanes_options", "Candidate", "lane_choices",
           "candidates", "pareto_front", "Choice", "choose", "describe", "check_target_fps", "settle_lanes",
           "folding_label"]

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


def folding_label(lanes, pixels_per_transfer: int = 1, spike_lanes=None) -> str:
    """How a folding's rows and build directories are named: ``lanes64,8``, then ``-p<P>`` when P is
    not 1 and ``-s<S>`` with spike lanes."""
    return (f"lanes{lanes_label(lanes)}" + (f"-p{pixels_per_transfer}" if pixels_per_transfer != 1 else "")
            + ("" if spike_lanes is None else f"-s{lanes_label(spike_lanes)}"))


TARGET_FPS_HELP = ("with --lanes auto: the cheapest folding that reaches F images/s at the clock "
                   "(default: the fastest that fits the board)")


def add_lanes_options(parser, *, board: bool = False) -> None:
    """``--lanes``, ``--spike-lanes`` and ``--target-fps`` of a command that makes a core; with
    ``board``, also ``--board`` (the board ``--lanes auto`` chooses for)."""
    parser.add_argument("--lanes", type=lanes_option, metavar="N|N,N,…|auto",
                        help="accumulators updated per cycle: one number for every layer (capped per layer), one "
                             "per layer with lanes (e.g. 64,8), or auto: chosen from the cycle and resource models "
                             "(default 1, or auto with --target-fps); a dense first layer takes up to twice its "
                             "fan-out: two input spikes a cycle")
    parser.add_argument("--spike-lanes", type=counts_option, metavar="N|N,N,…",
                        help="fire ticks found per cycle in each spike-time bank, 1..lanes, one number or one per "
                             "layer with lanes (fewer logic cells; default: lanes)")
    parser.add_argument("--target-fps", type=float, metavar="F", help=TARGET_FPS_HELP)
    if board:
        parser.add_argument("--board", metavar="NAME", help="with --lanes auto: the board to fit and its clock")


@dataclass(frozen=True)
class Candidate:
    """One folding: ``lanes`` (one per layer with lanes, as the stages build them),
    ``pixels_per_transfer``, ``spike_lanes`` (as a build gets them), the predicted ``cycles`` per
    image and ``resources`` on the board (:class:`~hdlgen.resources.Estimate`); ``over`` names the
    kinds beyond the board (empty: it fits) and ``cost`` is its share of the board's logic (an iCE40's logic cells, else LUTs)."""

    lanes: tuple
    pixels_per_transfer: int
    spike_lanes: int | tuple | None
    cycles: int
    resources: Estimate
    over: tuple
    cost: float

    @property
    def fits(self) -> bool:
        return not self.over

    def fps(self, clock_hz: float) -> float:
        return clock_hz / self.cycles

    def options(self) -> str:
        spike_lanes = "" if self.spike_lanes is None else f" --spike-lanes {lanes_label(self.spike_lanes)}"
        return f"--lanes {lanes_label(self.lanes)} --pixels-per-transfer {self.pixels_per_transfer}{spike_lanes}"

    def usage(self, capacity: Resources) -> str:
        return ", ".join(f"{kind} {self.resources.total[kind]}/{capacity[kind]}" for kind in capacity.used)


# at most this many per-layer lanes are tried (each a few milliseconds); a deeper net tries one power of
# two for every layer
MAX_LANE_CHOICES = 4096
# foldings this close to the fastest count as fast as it: the cheapest of them is "the fastest"
SAME_SPEED = 0.02


def _powers_to(limit: int) -> list:
    """1, 2, 4, … below ``limit``, and ``limit`` itself."""
    return sorted({1 << k for k in range(limit.bit_length()) if 1 << k < limit} | {limit})


def lane_choices(net: TTFSNet) -> list:
    """Per layer with lanes, the lanes worth trying: powers of two up to its limit and the limit,
    each as the stage builds it (:func:`~hdlgen.geometry.stage_geometry`: lanes that buy no cycle
    dropped), and for the layer that may take several input spikes a cycle
    (:func:`~hdlgen.geometry.multi_issue_layer`) its fan-out times each of 2.. that many."""
    choices = []
    multi_issue = multi_issue_layer(net)
    for index, layer in enumerate(net.layers):
        if layer.has_weights:
            limit = STAGE_GEOMETRY[layer.kind].lane_limit(layer)
            choices.append(sorted({stage_geometry(layer, lanes).lanes for lanes in _powers_to(limit)}))
            if index == multi_issue:    # and whole fan-outs more: as many input spikes a cycle
                choices[-1] += [spikes * limit for spikes in range(2, MAX_SPIKES_PER_CYCLE + 1)]
    return choices


def candidates(net: TTFSNet, board, *, spike_lanes=None, pixels_per_transfer=None, cycles=dense_throughput_bound) -> list:
    """Every folding of ``net`` worth trying on ``board``: per-layer lanes from :func:`lane_choices`
    (at most :data:`MAX_LANE_CHOICES`, else one power of two for every layer) and pixels per
    transfer 1, 2, 4, 8, 16 (or the one given), spike lanes from :func:`_spike_lane_choices`, with
    ``cycles(net, lanes, pixels per transfer, spike lanes)`` between
    images (default: the throughput bound with every input spiking,
    :func:`hdlgen.cycles.dense_throughput_bound` – images come that often with the pipeline full, so a
    frame rate is clock / cycles; real images spike less) and the resource model's estimate
    (:mod:`hdlgen.resources`)."""
    capacity = resources.capacity(board)
    logic = "LC" if "LC" in capacity.used else "LUT"
    transfers = ([pixels_per_transfer] if pixels_per_transfer else
                 [p for p in (1, 2, 4, 8, 16) if p <= net.input.size])
    choices = lane_choices(net)
    if math.prod(map(len, choices)) > MAX_LANE_CHOICES:     # a deep net: the same power of two in every layer
        widest = max(STAGE_GEOMETRY[layer.kind].lane_limit(layer) for layer in net.layers if layer.has_weights)
        every = [[stage_geometry(layer, lanes).lanes for layer in net.layers if layer.has_weights]
                 for lanes in _powers_to(widest)]
    else:
        every = itertools.product(*choices)
    found = []
    for lanes in every:
        for per_transfer, spikes in itertools.product(transfers, _spike_lane_choices(lanes, spike_lanes, board)):
            geometry = NetGeometry(net, lanes, per_transfer, spikes)
            estimate = resources.estimate(geometry, board)
            shares = {kind: estimate.total[kind] / capacity[kind] if capacity[kind] else
                      math.inf if estimate.total[kind] else 0.0 for kind in capacity.used}
            found.append(Candidate(tuple(lanes), per_transfer, spikes, cycles(net, lanes, per_transfer, spikes), estimate,
                                   tuple(kind for kind, share in shares.items() if share > 1), shares[logic]))
    return found


def _spike_lane_choices(lanes, spike_lanes, board) -> list:
    """The spike lanes to try with ``lanes``: as asked (capped by each layer's lanes); else the
    family's default (an iCE40: one ladder per bank, as :func:`hdlgen.boards.build.build` gives it),
    and where that is a ladder per lane (``None``), also every power of two below the widest layer's
    lanes (fewer ladders, more cycles to find the fire ticks)."""
    if spike_lanes is None:
        default = board.fpga_family.default_spike_lanes
        return [default] if default is not None else [None, *_powers_to(max(lanes))[:-1]]
    if isinstance(spike_lanes, int):
        return [min(spike_lanes, max(lanes))]
    return [tuple(min(s, n) for s, n in zip(spike_lanes, lanes))]


def pareto_front(found: list) -> list:
    """The candidates no other beats on both cycles and cost, fastest first."""
    front, best_cost = [], math.inf
    for candidate in sorted(found, key=lambda c: (c.cycles, c.cost)):
        if candidate.cost < best_cost:
            front.append(candidate)
            best_cost = candidate.cost
    return front


@dataclass
class Choice:
    """What ``--lanes auto`` chose: ``order`` (the candidates to build, the choice first, then the
    slower ones of the Pareto front that fit, each cheaper than the one before: the step-down),
    ``reason`` and ``limit`` (lines saying why and what limits it)."""

    order: list
    reason: str
    limit: str

    @property
    def chosen(self) -> Candidate:
        return self.order[0]


def choose(net: TTFSNet, board, clock_hz: float, target_fps: float | None = None, **options) -> Choice:
    """The folding to build: with ``target_fps``, the cheapest that fits ``board`` and reaches it at
    ``clock_hz``, else (or when none reaches it) the fastest that fits. ``options`` go to
    :func:`candidates`. Raises :class:`~hdlgen.errors.UserError` when nothing fits."""
    found = candidates(net, board, **options)
    capacity = resources.capacity(board)
    fitting = pareto_front([c for c in found if c.fits])
    if not fitting:
        smallest = min(found, key=lambda c: c.cost)
        raise UserError(f"--lanes auto: no folding of {net.name} fits {board.name} by the resource model; the "
                        f"smallest ({smallest.options()}) needs {smallest.usage(capacity)}")
    fastest = fitting[0]
    reaching = [c for c in fitting if target_fps is not None and c.fps(clock_hz) >= target_fps]
    if reaching:
        chosen = min(reaching, key=lambda c: (c.cost, c.cycles))
        reason = (f"the cheapest folding that reaches {target_fps:g} images/s: {chosen.fps(clock_hz):.0f} images/s "
                  f"({chosen.cycles} cycles between images with the pipeline full, every input spiking) "
                  f"at {clock_hz / 1e6:g} MHz")
    else:
        chosen = min((c for c in fitting if c.cycles <= fastest.cycles * (1 + SAME_SPEED)), key=lambda c: (c.cost, c.cycles))
        reason = (f"the fastest folding that fits {board.name} (the cheapest within {SAME_SPEED:.0%} of it): "
                  f"{chosen.fps(clock_hz):.0f} images/s "
                  f"({chosen.cycles} cycles between images with the pipeline full, every input spiking) "
                  f"at {clock_hz / 1e6:g} MHz")
        if target_fps is not None:
            reason += f"; {target_fps:g} images/s is out of reach on this board (this is the best it can do)"
    blocked = [c for c in found if not c.fits and c.cycles < fastest.cycles]
    if reaching and chosen is not fastest:
        limit = f"the target (faster foldings that fit exist, up to {fastest.fps(clock_hz):.0f} images/s)"
    elif not blocked:
        limit = "the net itself: every layer at its most lanes and pixels per transfer (intake and tick walks)"
    else:
        nearest = min(blocked, key=lambda c: (c.cost, -c.cycles))
        limit = (f"{' and '.join(nearest.over)}: the next faster folding ({nearest.options()}, "
                 f"{nearest.fps(clock_hz):.0f} images/s) needs {nearest.usage(capacity)}")
    order = [chosen] + [c for c in fitting if c.cycles > chosen.cycles and c.cost < chosen.cost]
    return Choice(order, reason, limit)


def describe(choice: Choice, board) -> list:
    """Lines telling what ``--lanes auto`` chose, why, and what limits it."""
    chosen, capacity = choice.chosen, resources.capacity(board)
    return [f"lanes auto: {chosen.options()} on {board.name}: {choice.reason}",
            f"  modelled {chosen.usage(capacity)}",
            f"  limited by {choice.limit}"]


def check_target_fps(target_fps: float | None) -> None:
    """``--target-fps``: none, or a positive finite number of images per second."""
    if target_fps is not None and not 0 < target_fps < math.inf:
        raise UserError(f"--target-fps must be a positive number of images per second, got {target_fps:g}")


def settle_lanes(args, net: TTFSNet, board=None, clock_hz: float | None = None, baud: int | None = None,
                 say=print) -> list:
    """Settle a command's ``--lanes`` and ``--pixels-per-transfer`` (``args``): as given (``--lanes``
    1 and one pixel per transfer by default), or with ``--lanes auto`` (the default with
    ``--target-fps``) chosen for ``board`` at ``clock_hz`` (default: a build's) – printed with why,
    what limits it and what the host link at ``baud`` (default: a build's) carries, each line told to
    ``say``. Returns the candidates to build in turn (the choice, then the step-down; empty without
    ``auto``). A :class:`~hdlgen.errors.UserError` for options that do not go together."""
    check_target_fps(args.target_fps)
    if args.lanes is None:
        args.lanes = AUTO if args.target_fps is not None else 1
    if args.lanes != AUTO:
        if args.target_fps is not None:
            raise UserError(f"--target-fps comes with --lanes auto, not --lanes {lanes_label(args.lanes)}")
        if args.pixels_per_transfer is None:
            args.pixels_per_transfer = 1
        return []
    if board is None:
        raise UserError("--lanes auto needs --board: the board whose resources and clock the folding is chosen for")
    from .boards.build import link_clock
    from .boards.link import link_limit

    _, default_clock, default_baud = link_clock(board)      # what a build gets by default
    clock_hz, baud = clock_hz or default_clock, baud or default_baud
    choice = choose(net, board, clock_hz, args.target_fps, spike_lanes=args.spike_lanes,
                    pixels_per_transfer=args.pixels_per_transfer)
    for line in describe(choice, board):
        say(line)
    carried = link_limit(net.input.size, net.classes, baud)
    short = " (fewer than the core classifies: images sent over it arrive slower than that)" \
        if carried < choice.chosen.fps(clock_hz) else ""
    say(f"  the host link at {baud} baud carries at most {carried:.0f} images/s{short}")
    chosen = choice.chosen
    args.lanes, args.pixels_per_transfer, args.spike_lanes = chosen.lanes, chosen.pixels_per_transfer, chosen.spike_lanes
    return choice.order
