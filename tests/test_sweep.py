"""``hdlgen bench`` as a sweep of tasks: on a separately started Dask cluster (real ``dask scheduler``
and ``dask worker`` processes on 127.0.0.1), with a worker killed under it, resumed from its cache
after being killed itself; the Pareto front and its plot."""

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from hdlgen import bench, golden, ttfs
from hdlgen.tasks import Cache, Task, dumps_net, loads_net, run_tasks
from hdlgen.testing import random_net

from .helpers import DIGITS, run_cli

MLP = DIGITS / "digits_mlp.pt2"
DATA = DIGITS / "digits_test.npz"
DASK = Path(sys.executable).parent / "dask"
START_SECONDS = 60
# figures that measure time (and where the files went) and so differ from run to run
TIMING = {"task", "convert_seconds", "golden_images_per_second", "simulation_seconds", "build_seconds", "bitstream"}


def _last_json(out: str) -> dict:
    return json.loads(out.strip().splitlines()[-1])


def _figures(rows):
    return [{k: v for k, v in row.items() if k not in TIMING} for row in rows]


def _all_rows(figures) -> list:
    return figures["accuracy"] + figures["rtl"]["rows"] + figures["boards"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Cluster:
    """A ``dask scheduler`` and named ``dask worker`` processes (one thread each, no nanny, so a
    killed worker stays dead), each worker in a directory of its own: they share no disk."""

    def __init__(self, directory: Path, workers: list):
        self.address = f"tcp://127.0.0.1:{_free_port()}"
        self.processes = {}
        logs = directory / "logs"
        logs.mkdir()
        self._start("scheduler", [DASK, "scheduler", "--host", "127.0.0.1", "--port", self.address.rsplit(":", 1)[1],
                                  "--no-dashboard"], directory, logs)
        for name in workers:
            (directory / name).mkdir()
            self._start(name, [DASK, "worker", self.address, "--name", name, "--nthreads", "1", "--no-nanny",
                               "--no-dashboard", "--host", "127.0.0.1"], directory / name, logs)
        from distributed import Client

        with Client(self.address, timeout=f"{START_SECONDS}s") as client:
            client.wait_for_workers(len(workers), timeout=START_SECONDS)

    def _start(self, name, argv, cwd, logs):
        self.processes[name] = subprocess.Popen([str(a) for a in argv], cwd=cwd, stdout=subprocess.DEVNULL,
                                                stderr=open(logs / f"{name}.log", "w"))

    def stop(self):
        for process in reversed(self.processes.values()):
            process.terminate()
        for process in self.processes.values():
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@contextlib.contextmanager
def cluster(directory, workers=("w1", "w2")):
    started = Cluster(directory, list(workers))
    try:
        yield started
    finally:
        started.stop()


def _bench(*argv) -> subprocess.Popen:
    """``hdlgen bench …`` as a process of its own (to be interrupted, or watched while it runs)."""
    return subprocess.Popen([sys.executable, "-m", "hdlgen.cli", "bench", *map(str, argv)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


SIM_SWEEP = [MLP, "--data", DATA, "--ticks", "4", "8", "--lanes", "1", "2", "--samples", "3"]


@pytest.mark.slow
def test_a_sweep_on_a_separate_cluster_equals_the_in_process_one(tmp_path, capsys):
    argv = [*SIM_SWEEP, "--board", "icebreaker", "--build-lanes", "2", "--json"]
    code, out, _ = run_cli(capsys, "bench", *argv, "--build-dir", tmp_path / "here")
    assert code == 0
    here = _last_json(out)
    with cluster(tmp_path) as dask:
        code, out, _ = run_cli(capsys, "bench", *argv, "--scheduler", dask.address, "--build-dir", tmp_path / "there",
                               "-o", tmp_path / "sweep.json")
    assert code == 0
    there = _last_json(out)
    assert _figures(_all_rows(there)) == _figures(_all_rows(here))
    assert [len(here["accuracy"]), len(here["rtl"]["rows"]), len(here["boards"])] == [2, 4, 2]
    assert {row["task"]["worker"] for row in _all_rows(there)} == {"w1", "w2"}
    assert {row["task"]["worker"] for row in _all_rows(here)} == {"local"}
    assert there["tasks"] == {"total": 8, "cached": 0, "computed": 8, "failed": 0, "engine": f"on {dask.address}",
                              "workers": ["w1", "w2"]}
    for row in there["boards"]:   # the bitstream came back from the worker as bytes
        assert row["fits"] and Path(row["bitstream"]).is_file() and str(tmp_path / "there") in row["bitstream"]
        assert Path(row["bitstream"]).read_bytes() == Path(here["boards"][row["net_index"]]["bitstream"]).read_bytes()
    assert all(row["bit_exact"] for row in there["rtl"]["rows"])
    assert there["pareto"] == [i for i, on in enumerate(bench.pareto_front(there["boards"])) if on]
    assert (tmp_path / "sweep.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_a_worker_killed_under_its_task_loses_no_row(tmp_path):
    with cluster(tmp_path) as dask:
        from distributed import Client

        bench = _bench(*SIM_SWEEP, "--lanes", "1", "2", "3", "--scheduler", dask.address, "--json")
        with Client(dask.address, timeout="20s") as client:
            deadline = time.monotonic() + 300
            busy = {}
            while not any(str(key).startswith("simulate-") for key in busy.get("w1", [])):
                assert time.monotonic() < deadline and bench.poll() is None, "w1 never ran a task"
                names = {address: info["name"] for address, info in client.scheduler_info()["workers"].items()}
                busy = {names.get(address): keys for address, keys in client.processing().items()}
                time.sleep(0.2)
        dask.processes["w1"].send_signal(signal.SIGKILL)
        out, err = bench.communicate(timeout=600)
    assert bench.returncode == 0, err
    figures = _last_json(out)
    rows = _all_rows(figures)
    assert len(rows) == 2 + 2 * 3 and all(row["problem"] is None for row in rows)
    assert all(row["bit_exact"] and row["samples"] == 3 for row in figures["rtl"]["rows"])
    assert "w2" in figures["tasks"]["workers"] and figures["tasks"]["failed"] == 0


def _entries(cache: Path) -> set:
    """The keys of the results in a cache directory."""
    return {path.stem for path in cache.glob("*.pickle") if not path.name.startswith(".")}


def test_an_interrupted_sweep_resumes_computing_only_the_missing_rows(tmp_path, capsys):
    cache = tmp_path / "cache"
    argv = [MLP, "--data", DATA, "--ticks", *map(str, range(2, 10)), "--samples", "0"]
    bench = _bench(*argv, "--cache", cache)
    deadline = time.monotonic() + 300
    while len(_entries(cache)) < 2:
        assert time.monotonic() < deadline and bench.poll() is None, "the sweep ended before it was interrupted"
        time.sleep(0.05)
    os.kill(bench.pid, signal.SIGKILL)
    bench.communicate(timeout=60)
    kept = _entries(cache)   # a write cut short leaves at most a hidden temporary file
    assert 2 <= len(kept) < 8 and all(Cache(cache).get(key) for key in kept)

    code, out, _ = run_cli(capsys, "bench", *argv, "--cache", cache, "--json")
    resumed = _last_json(out)
    assert code == 0
    assert f"cache {cache}: {len(kept)} of 8 tasks there, computing {8 - len(kept)} in this process" in out
    assert resumed["tasks"] | {"workers": None} == {"total": 8, "cached": len(kept), "computed": 8 - len(kept),
                                                    "failed": 0, "engine": "in this process", "workers": None}
    assert sum(row["task"]["cached"] for row in resumed["accuracy"]) == len(kept)
    assert len(_entries(cache)) == 8

    code, out, _ = run_cli(capsys, "bench", *argv, "--json")
    assert _figures(resumed["accuracy"]) == _figures(_last_json(out)["accuracy"])


def _board_row(accuracy, us, luts, fits=True):
    return {"snn_accuracy": accuracy, "us_per_inference": us, "fits": fits, "utilization": {"LUT": {"used": luts}},
            "board": "b", "lanes": 1, "ticks": [4, 4], "weight_bits": 8}


def test_the_pareto_front_is_the_rows_no_other_beats():
    rows = [_board_row(0.95, 50, 3000),   # front: fastest
            _board_row(0.95, 60, 3000),   # beaten by the first (slower, same otherwise)
            _board_row(0.97, 100, 3000),  # front: most accurate
            _board_row(0.90, 200, 1000),  # front: fewest LUTs
            _board_row(0.90, 200, 1000),  # its equal: neither beats the other
            _board_row(0.99, 10, 100, fits=False),   # does not fit: no figures to compare
            {**_board_row(0.99, None, 100)}]          # no latency (not simulated)
    assert bench.pareto_front(rows) == [True, False, True, True, True, False, False]


def test_the_plot_draws_the_rows_with_all_three_figures(tmp_path):
    rows = [_board_row(0.95, 50, 3000), _board_row(0.97, 100, 2000), _board_row(0.9, None, 10)]
    for row, on in zip(rows, bench.pareto_front(rows)):
        row["pareto"] = on
    path = bench.plot_front(rows, tmp_path / "front.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert bench.plot_front(rows[2:], tmp_path / "none.png") is None and not (tmp_path / "none.png").exists()


def test_a_scheduler_nobody_runs_is_one_line(capsys):
    address = f"tcp://127.0.0.1:{_free_port()}"
    code, out, err = run_cli(capsys, "bench", MLP, "--data", DATA, "--ticks", "4", "--samples", "0",
                             "--scheduler", address)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert f"--scheduler {address}: no Dask scheduler answered" in err, err


def test_nets_travel_as_bytes():
    net = random_net(np.random.default_rng(1), [6, 4, 3], 4, name="small")
    again = loads_net(dumps_net(net))
    assert again.name == "small" and again.ticks == net.ticks
    pixels = np.random.default_rng(2).integers(0, 256, (5, 6), dtype=np.uint8)
    assert np.array_equal(golden.run_batch(again, pixels).logits, golden.run_batch(net, pixels).logits)


def _double(x):
    return {"row": {"value": 2 * x}, "files": {}}


def _broken():
    raise RuntimeError("this build went wrong")


def _plus_one(result):
    return {"row": {"value": result["row"]["value"] + 1}, "files": {}}


def test_a_task_that_raises_is_a_row_with_its_problem_and_the_rest_go_on(tmp_path):
    tasks = [Task("a", "convert", _double, {"x": 3}, {"name": "a"}),
             Task("b", "build", _broken, {}, {"name": "b"}),
             Task("c", "simulate", _plus_one, {}, {"name": "c"}, ("a",))]
    cache = Cache(tmp_path)
    results, cached = run_tasks(tasks, cache=cache)
    rows = {key: result["row"] for key, result in results.items()}
    assert cached == 0 and (rows["a"]["value"], rows["c"]["value"]) == (6, 7)
    assert rows["b"]["name"] == "b" and rows["b"]["problem"] == "RuntimeError: this build went wrong"
    assert [results[k]["failed"] for k in "abc"] == [False, True, False]
    assert all(row["task"]["worker"] == "local" and row["task"]["seconds"] >= 0 for row in rows.values())
    # the failure is not kept: a re-run tries it again, the others come from the cache
    results, cached = run_tasks(tasks, cache=cache)
    assert cached == 2 and results["b"]["row"]["task"]["cached"] is False and results["a"]["row"]["task"]["cached"]


def test_workers_start_a_local_cluster_that_gives_the_same_rows(tmp_path, capsys):
    net = ttfs.save(random_net(np.random.default_rng(4), [12, 8, 4], 4, name="tiny"), tmp_path / "tiny.ttfs")
    data = tmp_path / "tiny.npz"
    np.savez(data, x=np.random.default_rng(5).random((16, 12)), y=np.arange(16) % 4)
    argv = ["bench", net, "--data", data, "--samples", "0", "--json"]
    code, out, _ = run_cli(capsys, *argv)
    here = _last_json(out)
    code, out, _ = run_cli(capsys, *argv, "--workers", "2")
    there = _last_json(out)
    assert code == 0 and _figures(there["accuracy"]) == _figures(here["accuracy"])
    assert there["tasks"]["workers"][0] in {"0", "1"} and there["tasks"]["engine"] == "on a local cluster of 2 workers"
