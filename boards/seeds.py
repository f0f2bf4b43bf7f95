"""Placement seeds tried for one build: one after another in this process, or at once as tasks on a
Dask cluster (:mod:`hdlgen.tasks`'s engine and task wrapper).

nextpnr's result on a large ECP5 design depends on its placement seed: one seed routes and meets
the clock where another does not route at all. Each seed is a whole build (synthesis included) in
``seed-<N>/`` under the build directory; the first that meets the clock is kept (one after
another: the seeds after it are not tried; at once: the others are stopped), else the fastest
that routed. The kept build's bitstream and logs are copied to the build directory and its record
(:data:`~hdlgen.boards.build.BUILD_RECORD`) says which seed won and what every seed reached
(``seeds``). When no seed routes, the build directory keeps the previous bitstream and record.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import tempfile
import time
from pathlib import Path

from ..files import write_atomically
from .build import (
    BUILD_RECORD,
    BuildFailed,
    BuildReport,
    _kept_unless_rebuilt,
    bitstream_path,
    build,
    build_outcome,
    read_build_record,
    write_build_record,
)
from .platforms import get_board
from .route import DEFAULT_BUDGET, RouteBudget

__all__ = ["build_seeds", "seed_task", "seed_summary"]

# a seed's files that come back from a worker and are copied up for the kept seed (besides the bitstream)
SEED_LOGS = (".build.log", ".report.json", ".tim", ".rpt")
# how long the builds still running get to stop their tools once one seed has won
STOP_SECONDS = 60


def seed_summary(report: BuildReport) -> dict:
    """What one seed's build reached: outcome, fmax, seconds and the router's figures."""
    route = report.extra.get("route") or {}
    return {"seed": report.extra.get("seed"), "outcome": build_outcome(report), "fmax_mhz": report.fmax_mhz,
            "seconds": None if report.seconds is None else round(report.seconds, 1),
            "route": {key: route.get(key) for key in ("verdict", "iterations", "fewest", "last", "seconds")}}


def _best(reports: list) -> BuildReport:
    """The first report that meets the clock, else the fastest that routed, else the one whose
    router came closest (fewest congestion)."""
    outcomes = [build_outcome(r) for r in reports]
    if "built" in outcomes:
        return reports[outcomes.index("built")]
    timed = [r for r, o in zip(reports, outcomes) if o == "misses timing"]
    if timed:
        return max(timed, key=lambda r: r.fmax_mhz)
    routed = [r for r in reports if (r.extra.get("route") or {}).get("fewest") is not None]
    return min(routed, key=lambda r: r.extra["route"]["fewest"]) if routed else reports[-1]


def _keep(best: BuildReport, reports: list, out_dir: Path, name: str, family: str) -> BuildReport:
    """``best`` with every seed's summary; its bitstream, logs and record copied up to ``out_dir``
    when it has a bitstream."""
    seeds = [seed_summary(r) for r in reports]
    extra = {**best.extra, "seeds": seeds}
    if best.bitstream is None:
        return BuildReport(best.board, best.utilization, best.fmax_mhz, best.clock_mhz, None, best.seconds, extra)
    source = best.bitstream.parent
    for suffix in SEED_LOGS:
        if (source / f"{name}{suffix}").is_file():
            shutil.copyfile(source / f"{name}{suffix}", out_dir / f"{name}{suffix}")
    bitstream = bitstream_path(out_dir, name, family)
    write_atomically(bitstream, lambda path: shutil.copyfile(best.bitstream, path))
    kept = BuildReport(best.board, best.utilization, best.fmax_mhz, best.clock_mhz, bitstream, best.seconds, extra)
    write_build_record(out_dir, {**read_build_record(source), **kept.to_dict()})
    return kept


def seed_task(net_data: bytes, *, board: str, seed: int, options: dict, route_budget: RouteBudget,
              stop_event: str) -> dict:
    """One seed's build on a Dask worker, in a scratch directory: its record as the row (paths under
    :data:`hdlgen.tasks.BUILD_DIR_TOKEN`) and its bitstream and logs as files. It stops when the
    cluster's event ``stop_event`` is set (another seed met the clock)."""
    from distributed import Event

    from ..tasks import BUILD_DIR_TOKEN, loads_net

    stop = Event(stop_event)
    with tempfile.TemporaryDirectory(prefix="hdlgen-seed-") as scratch:
        report = build(loads_net(net_data), get_board(board), scratch, seed=seed, route_budget=route_budget,
                       stop=stop.is_set, **options)
        files = {path.name: path.read_bytes().replace(scratch.encode(), BUILD_DIR_TOKEN.encode())
                 for path in Path(scratch).iterdir()
                 if path.is_file() and (path.name.endswith(SEED_LOGS) or path == report.bitstream
                                        or path.name == BUILD_RECORD)}
        row = json.dumps(report.to_dict()).replace(scratch, BUILD_DIR_TOKEN)
    return {"row": {"report": row}, "files": files}


def _one_after_another(net, board: str, out_dir: Path, seeds: list, options: dict, route_budget, progress) -> list:
    reports = []
    for index, seed in enumerate(seeds):
        def seed_progress(phase, step, seed=seed, index=index):
            progress(phase, f"seed {seed} ({index + 1}/{len(seeds)}) {step}")
        report = build(net, get_board(board), out_dir / f"seed-{seed}", seed=seed, progress=seed_progress,
                       route_budget=route_budget, **options)
        reports.append(report)
        if build_outcome(report) in ("built", "does not fit"):   # no other seed makes a design fit
            break
    return reports


def _at_once(net, board: str, out_dir: Path, seeds: list, options: dict, route_budget, progress, client) -> list:
    from distributed import Event, wait

    from ..tasks import BUILD_DIR_TOKEN, dumps_net, run_task, write_files

    stop_event = f"hdlgen-seeds-{time.time_ns()}"
    stop = Event(stop_event, client=client)
    net_data = dumps_net(net)
    futures = {seed: client.submit(run_task, seed_task, {"seed": seed}, net_data, board=board, seed=seed,
                                   options=options, route_budget=route_budget, stop_event=stop_event,
                                   key=f"seed-{seed}-{stop_event}", pure=False)
               for seed in seeds}
    reports, started = {}, time.monotonic()
    try:
        while len(reports) < len(seeds):
            for seed, future in futures.items():
                if seed in reports or not future.done():
                    continue
                result = future.result()
                place = out_dir / f"seed-{seed}"
                write_files(result["files"], place)
                if result["failed"]:   # as build() raises it one after another
                    raise BuildFailed(f"{board}: seed {seed}: {result['row']['problem']}")
                reports[seed] = BuildReport.from_dict(json.loads(result["row"]["report"].replace(BUILD_DIR_TOKEN,
                                                                                                 str(place))))
                if build_outcome(reports[seed]) in ("built", "does not fit"):
                    stop.set()
            done = ", ".join(f"{s}: {build_outcome(r)}" for s, r in reports.items())
            progress("place and route", f"{len(seeds)} seeds on {len(client.nthreads())} workers, "
                                        f"{time.monotonic() - started:.0f} s; {done or 'none done'}")
            time.sleep(0.5)
    finally:
        # the builds still running stop their tools (also when this process is interrupted), and are
        # waited for: a worker shut down under a build would leave its tools running
        stop.set()
        with contextlib.suppress(TimeoutError):
            wait(list(futures.values()), timeout=STOP_SECONDS)
    return [reports[seed] for seed in seeds]


def build_seeds(net, board: str, out_dir, seeds: list, *, client=None, progress=None,
                route_budget: RouteBudget = DEFAULT_BUDGET, name: str = "top", **options) -> BuildReport:
    """Build ``net`` for ``board`` (a name :func:`~hdlgen.boards.platforms.get_board` takes) with
    each placement seed of ``seeds``, one after another, or at once as tasks of the Dask ``client``
    (:func:`hdlgen.tasks.engine`); keep the first build that meets the clock, else the fastest.

    ``options`` are :func:`~hdlgen.boards.build.build`'s (lanes, clock …). Returns the kept
    seed's report with ``extra["seeds"]`` (:func:`seed_summary` of each seed tried, in order);
    when no seed routed, the report of the seed whose router came closest, without a bitstream.
    A tool that fails outright raises as :func:`~hdlgen.boards.build.build` does.
    """
    progress = progress or (lambda phase, step: None)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    family = get_board(board).family
    options = {**options, "name": name}
    bitstream, record = bitstream_path(out_dir, name, family), out_dir / BUILD_RECORD
    with _kept_unless_rebuilt([bitstream, record], record):
        if client is None:
            reports = _one_after_another(net, board, out_dir, seeds, options, route_budget, progress)
        else:
            reports = _at_once(net, board, out_dir, seeds, options, route_budget, progress, client)
        return _keep(_best(reports), reports, out_dir, name, family)
