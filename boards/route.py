"""nextpnr's router, watched while it works: its progress rows read from the log as nextpnr writes
it, and the rule that calls a route stalled.

nextpnr's two routers print their progress differently. router1 (the ECP5 and iCE40 default)
prints a row every 1000 arcs it routes (``IterCnt``) with the arcs still to route; a design the
device cannot route keeps ripping up as many arcs as it routes, so that count stops falling.
router2 (Gowin's himbaechel) prints a row per pass with its overused wires, which stop falling
the same way. Either count is the route's *congestion*: a route has stalled when the lowest
congestion of its last ``stall_iterations`` iterations is not at least ``stall_fraction`` below
the lowest before them. The defaults come from measured builds (boards/README.md, "Builds that
end").
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

__all__ = ["RouteBudget", "RouteWatch", "ROUTER_MEASURE", "DEFAULT_BUDGET"]

_ROUTER1_ROW = re.compile(r"^Info:\s+(?P<iteration>\d+) \|\s*\d+\s+\d+ \|\s*\d+\s+\d+ \|\s*(?P<congestion>\d+)\|")
_ROUTER2_ROW = re.compile(r"^Info:\s+iter=(?P<iteration>\d+) wires=\d+ overused=(?P<congestion>\d+)")
_ROUTER_STARTS = {"router1": "Info: Routing..", "router2": "Info: Running router2"}
# what each router's congestion counts
ROUTER_MEASURE = {"router1": "arcs still to route", "router2": "overused wires"}


@dataclass(frozen=True)
class RouteBudget:
    """How long a route may go on: stopped when its congestion has not fallen by
    ``stall_fraction`` over the router's last ``stall_iterations[router]`` iterations, or when it
    has routed for ``timeout_seconds`` (None: no limit)."""

    stall_fraction: float
    stall_iterations: dict
    timeout_seconds: float | None

    def describe(self, router: str) -> str:
        limit = "" if self.timeout_seconds is None else f", or {self.timeout_seconds / 60:g} min of routing"
        return (f"stopped when {ROUTER_MEASURE[router]} fall by less than {100 * self.stall_fraction:g} % over "
                f"{self.stall_iterations[router]} iterations{limit}")


DEFAULT_BUDGET = RouteBudget(stall_fraction=0.1, stall_iterations={"router1": 50_000, "router2": 100},
                             timeout_seconds=45 * 60)


@dataclass
class RouteWatch:
    """The router's progress rows of one nextpnr log, fed to :meth:`feed` as the log grows.

    ``samples`` are ``(iteration, congestion)``; ``started`` is the time (any clock, as given to
    :meth:`feed`) at which the router was first seen working.
    """

    router: str | None = None
    samples: list = field(default_factory=list)
    started: float | None = None
    _partial: str = ""

    def feed(self, text: str, now: float) -> None:
        """Read ``text``, the log's next bytes (a last unfinished line waits for the rest)."""
        lines = (self._partial + text).split("\n")
        self._partial = lines.pop()
        for line in lines:
            if self.router is None:
                self.router = next((router for router, start in _ROUTER_STARTS.items() if line.startswith(start)), None)
                if self.router is not None:
                    self.started = now
                continue
            row = (_ROUTER1_ROW if self.router == "router1" else _ROUTER2_ROW).match(line)
            if row:
                self.samples.append((int(row["iteration"]), int(row["congestion"])))

    def verdict(self, budget: RouteBudget, now: float) -> str | None:
        """``"stalled"``, ``"timed out"`` or None (routing on, or not yet routing)."""
        if self.started is None:
            return None
        if budget.timeout_seconds is not None and now - self.started > budget.timeout_seconds:
            return "timed out"
        if not self.samples:
            return None
        latest = self.samples[-1][0]
        window = budget.stall_iterations[self.router]
        before = [congestion for iteration, congestion in self.samples if iteration <= latest - window]
        if not before:
            return None
        recent = min(congestion for iteration, congestion in self.samples if iteration > latest - window)
        return "stalled" if recent > (1 - budget.stall_fraction) * min(before) else None

    def status(self) -> str:
        """One line for the progress display: the router's iteration and congestion."""
        if not self.samples:
            return "routing" if self.router else ""
        iteration, congestion = self.samples[-1]
        best = min(c for _, c in self.samples)
        return f"routing: iteration {iteration}, {congestion} {ROUTER_MEASURE[self.router]} (fewest {best})"

    def summary(self) -> dict:
        """The route's figures for a report: router, iterations, congestion first, fewest and last."""
        out = {"router": self.router, "measure": ROUTER_MEASURE.get(self.router), "iterations": None,
               "first": None, "fewest": None, "last": None}
        if self.samples:
            out.update(iterations=self.samples[-1][0], first=self.samples[0][1],
                       fewest=min(c for _, c in self.samples), last=self.samples[-1][1])
        return out
