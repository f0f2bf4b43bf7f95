"""Builds that end (issue 29): nextpnr's router watched from its log, a stalled route stopped and
reported "does not route", placement seeds tried one after another or at once. The logs in
tests/data are excerpts of real nextpnr-ecp5 runs (see each test)."""

import json
from pathlib import Path

import pytest

from hdlgen import ttfs
from hdlgen.boards import seeds as seeds_module
from hdlgen.boards.build import BUILD_RECORD, BuildReport, Utilization, build_outcome, check_report
from hdlgen.boards.route import DEFAULT_BUDGET, RouteBudget, RouteWatch
from hdlgen.cli import main

from .helpers import assert_previous_build_kept, previous_build, tiny_net

DATA = Path(__file__).parent / "data"


def watch_log(name: str, budget: RouteBudget, seconds_per_row: float = 1.0, chunk: int = 100):
    """Feed a recorded log to a watch in ``chunk``-byte pieces (lines cut anywhere, as a growing log
    is read), a row every ``seconds_per_row``; the verdict and the iteration it came at."""
    text = (DATA / name).read_text()
    watch = RouteWatch()
    now = 0.0
    for start in range(0, len(text), chunk):
        rows = len(watch.samples)
        watch.feed(text[start:start + chunk], now)
        now += seconds_per_row * (len(watch.samples) - rows)
        verdict = watch.verdict(budget, now)
        if verdict:
            return verdict, watch
    return None, watch


def test_a_route_that_converges_is_never_stalled():
    """Real router1 and router2 logs of the tiny net on the ULX3S-85F, router1 on the 784-128-10
    net at lanes 64 (P 8, --clock 100, seed 1: 132k arcs, 180k iterations, 615 s), and router2 on
    it at lanes 128 (P 16, 16 spike lanes, --clock 90: 35k overused wires, then 5–16 for 70 passes
    from pass 46, routed at pass 131 after 441 s – a 30-pass window stopped it at pass 88): all end at 0."""
    for name, router in [("nextpnr_router1_routed.log", "router1"), ("nextpnr_router2_routed.log", "router2"),
                         ("nextpnr_router1_routed_lanes64.log", "router1"),
                         ("nextpnr_router2_routed_lanes128.log", "router2")]:
        verdict, watch = watch_log(name, DEFAULT_BUDGET)
        assert verdict is None and watch.router == router
        assert watch.summary()["last"] == 0 and watch.summary()["first"] > 1000


def test_a_stalled_route_from_a_recorded_log():
    """router1 on the 784-128-10 net at lanes 128 (ULX3S-85F, --clock 90): 168k arcs, the arcs still
    to route fall to ~149k in 31,000 iterations and then by ~4 % in 45,000 more. The default rule
    calls it stalled at iteration 56,000 (boards/README.md), not before a window's worth of rows."""
    verdict, watch = watch_log("nextpnr_router1_stalled.log", DEFAULT_BUDGET)
    assert verdict == "stalled" and watch.samples[-1] == (56000, 148209)
    window = DEFAULT_BUDGET.stall_iterations["router1"]
    assert watch.samples[-1][0] - watch.samples[0][0] >= window
    summary = watch.summary()
    assert summary["fewest"] > 0.5 * summary["first"]   # far from routed


def test_the_rule_is_not_fooled_by_a_slow_but_steady_fall():
    """Congestion that falls by twice the rule's fraction per window, row by row a little, is never
    stalled (the rule compares a window's fewest with the fewest before it); by half of it, is."""
    window = DEFAULT_BUDGET.stall_iterations["router1"]
    slow = RouteWatch(router="router1", started=0.0)
    congestion = 100_000.0
    for iteration in range(1000, 3 * window, 1000):
        congestion *= (1 - DEFAULT_BUDGET.stall_fraction / 2) ** (1000 / window)
        slow.samples.append((iteration, int(congestion)))
    assert slow.verdict(DEFAULT_BUDGET, 1.0) == "stalled"
    watch = RouteWatch(router="router1", started=0.0)
    congestion = 100_000.0
    for iteration in range(1000, 10 * window, 1000):
        congestion *= (1 - 2 * DEFAULT_BUDGET.stall_fraction) ** (1000 / window)
        watch.samples.append((iteration, int(congestion)))
        assert watch.verdict(DEFAULT_BUDGET, 1.0) is None


def test_a_route_past_its_time_is_timed_out():
    budget = RouteBudget(0.05, {"router1": 10**9, "router2": 10**9}, timeout_seconds=60)
    watch = RouteWatch()
    watch.feed("Info: Routing..\n", now=100.0)
    assert watch.verdict(budget, 159.0) is None and watch.status() == "routing"
    assert watch.verdict(budget, 161.0) == "timed out"
    assert RouteWatch().verdict(budget, 10**6) is None   # placement is not routing


def test_status_names_iteration_and_congestion():
    _, watch = watch_log("nextpnr_router1_routed.log", DEFAULT_BUDGET)
    assert watch.status() == "routing: iteration 9612, 0 arcs still to route (fewest 0)"


def stalled_report(**extra):
    route = {"router": "router1", "measure": "arcs still to route", "iterations": 61000, "first": 190000,
             "fewest": 183000, "last": 185000, "verdict": "stalled", "seconds": 900.0,
             "budget": DEFAULT_BUDGET.describe("router1")}
    return BuildReport("ulx3s-85f", {"LUT": Utilization(60000, 83640)}, None, 90.0, None, 1200.0,
                       {"route": route, "seed": None, **extra})


def test_does_not_route_is_an_outcome_and_one_line():
    report = stalled_report()
    assert build_outcome(report) == "does not route" and report.to_dict()["outcome"] == "does not route"
    message = check_report(report, lanes=128)
    assert message.startswith("does not route on ulx3s-85f at this folding: the router stalled after 15.0 min")
    assert "185000 arcs still to route after 61000 iterations (fewest 183000" in message
    assert "fewer lanes (now 128)" in message and "bigger device" in message and "\n" not in message
    assert message.endswith("or --router router2)")      # router1 stalled: the other router is worth a try
    report.extra["route"]["router"] = "router2"
    assert "--router" not in check_report(report, lanes=128)
    report.extra["route"]["verdict"] = "timed out"
    assert build_outcome(report) == "does not route" and "timed out" in check_report(report, lanes=128)
    report.extra["route"]["verdict"] = "stopped"
    assert build_outcome(report) == "stopped"
    routed = BuildReport("b", {"LUT": Utilization(1, 2)}, 50.0, 40.0, Path("top.bit"), 1.0, {"route": {"verdict": "routed"}})
    assert build_outcome(routed) == "built" and BuildReport.from_dict(routed.to_dict()) == routed


def test_a_stopped_route_keeps_the_previous_bitstream_and_record(tmp_path, monkeypatch, capsys):
    """The tools stopped by a stalled route after writing part of a bitstream: exit 2, one line
    "does not route", the previous bitstream and record as they were, no partial one."""
    import subprocess

    from hdlgen.boards import build as board_build

    out, good = previous_build(tmp_path)

    def tools_stopped(out_dir, name, family, progress, budget, stop):
        (out_dir / f"{name}.bin").write_bytes(b"half a bits")
        watch = RouteWatch()
        watch.feed((DATA / "nextpnr_router1_routed.log").read_text(), now=0.0)
        return subprocess.CompletedProcess([], -15, stdout=""), watch, "stalled"
    monkeypatch.setattr(board_build, "_run_script", tools_stopped)
    net_path = ttfs.save(tiny_net(), tmp_path / "tiny.ttfs")
    code = main(["build", str(net_path), "--board", "icebreaker", "-o", str(out), "--json"])
    captured = capsys.readouterr()
    assert code == 2 and json.loads(captured.out.strip().splitlines()[-1])["outcome"] == "does not route"
    assert captured.err.startswith("hdlgen build: does not route on icebreaker") and captured.err.count("\n") == 1
    assert_previous_build_kept(out, good)


# -- seeds -------------------------------------------------------------------------------------------

def fake_build(outcomes: dict, calls: list, stop_wait: bool = False):
    """A stand-in for build(): seed → "built", "misses timing" or "does not route", each writing what
    the real one writes (a bitstream and record only for a routed build)."""
    import time

    def build(net, board, out_dir, *, seed, route_budget, progress=None, stop=None, name="top", **options):
        calls.append(seed)
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / f"{name}.tim").write_text(f"log of seed {seed}\n")
        outcome = outcomes[seed]
        if outcome == "does not route" and stop_wait:   # routes on until told to stop
            while not stop():
                time.sleep(0.05)
            outcome = "stopped"
        if outcome in ("does not route", "stopped"):
            return stalled_report(seed=seed) if outcome == "does not route" else BuildReport(
                board.name, {}, None, 90.0, None, 1.0, {"seed": seed, "route": {"verdict": "stopped"}})
        bitstream = out_dir / f"{name}.bit"
        bitstream.write_bytes(f"bitstream of seed {seed}".encode())
        fmax = {"built": 95.0 + seed, "misses timing": 80.0 + seed}[outcome]
        report = BuildReport(board.name, {"LUT": Utilization(10, 20)}, fmax, 90.0, bitstream, 2.0,
                             {"seed": seed, "baud": 3000000, "route": {"verdict": "routed", "iterations": 9000}})
        (out_dir / BUILD_RECORD).write_text(json.dumps(report.to_dict()))
        return report
    return build


def test_seeds_are_tried_in_order_and_the_first_that_meets_the_clock_is_kept(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(seeds_module, "build", fake_build(
        {3: "does not route", 7: "misses timing", 8: "built", 9: "built"}, calls))
    report = seeds_module.build_seeds(tiny_net(), "ulx3s-85f", tmp_path, [3, 7, 8, 9], lanes=1)
    assert calls == [3, 7, 8]   # seed 9 is not tried
    assert build_outcome(report) == "built" and report.extra["seed"] == 8
    assert (tmp_path / "top.bit").read_bytes() == b"bitstream of seed 8"
    assert (tmp_path / "top.tim").read_text() == "log of seed 8\n"
    record = json.loads((tmp_path / BUILD_RECORD).read_text())
    assert record["seed"] == 8 and record["bitstream"] == str(tmp_path / "top.bit") and record["baud"] == 3000000
    assert [(s["seed"], s["outcome"]) for s in record["seeds"]] == [(3, "does not route"), (7, "misses timing"),
                                                                     (8, "built")]
    assert record["seeds"][0]["route"]["fewest"] == 183000 and record["seeds"][1]["fmax_mhz"] == 87.0


def test_without_a_seed_that_meets_the_clock_the_fastest_is_kept(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(seeds_module, "build", fake_build({1: "misses timing", 2: "misses timing", 3: "does not route"},
                                                          calls))
    report = seeds_module.build_seeds(tiny_net(), "ulx3s-85f", tmp_path, [1, 2, 3])
    assert calls == [1, 2, 3] and report.extra["seed"] == 2 and report.fmax_mhz == 82.0
    assert (tmp_path / "top.bit").read_bytes() == b"bitstream of seed 2"


def test_when_no_seed_routes_the_previous_bitstream_and_record_stay(tmp_path, monkeypatch):
    (tmp_path / "top.bit").write_bytes(b"previous bitstream")
    (tmp_path / BUILD_RECORD).write_text('{"previous": true}')
    monkeypatch.setattr(seeds_module, "build", fake_build({1: "does not route", 2: "does not route"}, []))
    report = seeds_module.build_seeds(tiny_net(), "ulx3s-85f", tmp_path, [1, 2])
    assert build_outcome(report) == "does not route" and report.bitstream is None
    assert "tried seeds 1, 2" in check_report(report, lanes=4)
    assert (tmp_path / "top.bit").read_bytes() == b"previous bitstream"
    assert json.loads((tmp_path / BUILD_RECORD).read_text()) == {"previous": True}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["build.json", "seed-1", "seed-2", "top.bit"]


def test_seeds_at_once_stop_the_others_when_one_meets_the_clock(tmp_path, monkeypatch):
    """Two workers (threads of this process, so the stand-in build reaches them): seed 1 would route
    for ever, seed 2 meets the clock; seed 1 is stopped and reported so."""
    distributed = pytest.importorskip("distributed")
    calls = []
    monkeypatch.setattr(seeds_module, "build", fake_build({1: "does not route", 2: "built"}, calls, stop_wait=True))
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        report = seeds_module.build_seeds(tiny_net(), "ulx3s-85f", tmp_path, [1, 2], client=client)
    assert sorted(calls) == [1, 2]
    assert report.extra["seed"] == 2 and (tmp_path / "top.bit").read_bytes() == b"bitstream of seed 2"
    assert [(s["seed"], s["outcome"]) for s in report.extra["seeds"]] == [(1, "stopped"), (2, "built")]
    assert json.loads((tmp_path / BUILD_RECORD).read_text())["bitstream"] == str(tmp_path / "top.bit")


# -- real builds -------------------------------------------------------------------------------------

@pytest.mark.slow
def test_a_stopped_build_is_reported_and_keeps_the_previous_bitstream(tmp_path, capsys):
    """The tiny net on the ULX3S-85F: built once, then again with a route timeout shorter than its
    route (~5 s): the tools are stopped, one line says "does not route", exit 2, and the first
    bitstream and record are there as they were."""
    net_path = ttfs.save(tiny_net(), tmp_path / "tiny.ttfs")
    out = tmp_path / "out"
    assert main(["build", str(net_path), "--board", "ulx3s-85f", "-o", str(out)]) == 0
    before = {name: (out / name).read_bytes() for name in ["top.bit", BUILD_RECORD]}
    capsys.readouterr()
    code = main(["build", str(net_path), "--board", "ulx3s-85f", "-o", str(out), "--route-timeout", "0.001", "--json"])
    captured = capsys.readouterr()
    report = json.loads(captured.out.strip().splitlines()[-1])
    assert code == 2 and report["outcome"] == "does not route" and report["route"]["verdict"] == "timed out"
    err = [line for line in captured.err.splitlines() if line.startswith("hdlgen")]
    assert len(err) == 1 and err[0].startswith("hdlgen build: does not route on ulx3s-85f at this folding")
    assert {name: (out / name).read_bytes() for name in before} == before


@pytest.mark.slow
def test_a_real_route_with_a_tiny_stall_budget_is_stopped(tmp_path):
    """The same net with a rule no route can meet (99 % less every 1000 iterations): stopped at the
    router's second row, no bitstream; the progress showed the router at work."""
    from hdlgen.boards.build import build
    from hdlgen.boards.platforms import get_board

    budget = RouteBudget(0.99, {"router1": 1000, "router2": 1}, None)
    shown = []
    report = build(tiny_net(), get_board("ulx3s-85f"), tmp_path, route_budget=budget,
                   progress=lambda phase, step: shown.append((phase, step)))
    route = report.extra["route"]
    assert build_outcome(report) == "does not route" and route["verdict"] == "stalled"
    assert 2000 <= route["iterations"] <= 3000 and report.bitstream is None   # as soon as the log showed 2000
    assert any(phase == "place and route" and step.startswith("routing") for phase, step in shown)
    assert not (tmp_path / "top.bit").exists() and not (tmp_path / "top.config").exists()


def _processes_in(directory: Path) -> list:
    """The pids of processes whose working directory is ``directory`` (the build's tools run there)."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and (proc / "cwd").resolve() == directory.resolve():
                found.append(int(proc.name))
        except OSError:     # gone, or not ours to look at
            continue
    return found


@pytest.mark.slow
def test_sigterm_stops_a_build_and_its_tools(tmp_path):
    """SIGTERM to 'hdlgen build' while yosys runs: one line, exit 143, and no tool left running (the tools
    run in a session of their own, so only hdlgen can stop them)."""
    import os
    import signal
    import subprocess
    import sys
    import time

    net_path = ttfs.save(tiny_net(), tmp_path / "tiny.ttfs")
    out = tmp_path / "out"
    build = subprocess.Popen([sys.executable, "-m", "hdlgen.cli", "build", str(net_path), "--board", "ulx3s-85f",
                              "-o", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not _processes_in(out) and time.monotonic() < deadline:     # the build script and yosys started
        time.sleep(0.2)
    assert _processes_in(out), "the build's tools never started"
    os.kill(build.pid, signal.SIGTERM)
    _, err = build.communicate(timeout=60)
    assert build.returncode == 128 + signal.SIGTERM
    assert err.strip().splitlines()[-1] == "hdlgen build: terminated"
    deadline = time.monotonic() + 10     # a killed tool may take a moment to leave on a loaded machine
    while _processes_in(out) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _processes_in(out)


def test_a_signal_while_the_tools_start_is_raised_once_they_can_be_stopped():
    """SIGTERM that comes while the build script is being started (the test above sends it as soon as
    the child exists, often before Popen has returned) waits for ``release()``: raised earlier, it
    would leave the script running with nobody holding its pid."""
    import os
    import signal
    import time

    from hdlgen.boards.build import _signals_held
    from hdlgen.cli import Terminated, _terminate

    previous = signal.signal(signal.SIGTERM, _terminate)
    reached = []
    try:
        with pytest.raises(Terminated):
            with _signals_held() as release:
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(0.1)              # an unheld handler would have raised by now
                reached.append("after the signal")
                release()
                reached.append("after release")
        assert reached == ["after the signal"]
        assert signal.getsignal(signal.SIGTERM) is _terminate
    finally:
        signal.signal(signal.SIGTERM, previous)
