"""Rows as tasks, run in this process or on a Dask cluster, cached by content so an
interrupted run resumes (``hdlgen bench``'s sweep, :mod:`hdlgen.sweep`, and a build's seeds,
:mod:`hdlgen.boards.seeds`).

A :class:`Task` is one row: a module-level function (so any Dask worker can run it), its keyword
options and the keys of the tasks whose results it takes first. Every result is
``{"row": dict, "files": {name: bytes}}``: files travel as bytes (a converted ``.ttfs`` net, a
build's bitstream and logs), so workers share no disk with the client. A task that raises is a
row with its ``problem``; a worker lost under a task is retried on another (Dask reschedules it,
``retries`` covers errors raised while it was lost) and after that is a row saying so.

A task's key is a content key (:func:`content_key`) of what it reads and computes with, so a result
in a :class:`Cache` stands for the row as long as none of these changed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import pickle
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from tqdm import tqdm

from .errors import UserError
from .files import write_atomically

__all__ = ["Task", "Cache", "content_key", "file_digest", "dumps_net", "loads_net", "run_task", "engine", "run_tasks",
           "BUILD_DIR_TOKEN", "write_files"]

RETRIES = 2
# stands for the build directory in a build row's paths until the client writes the files there
BUILD_DIR_TOKEN = "<build-dir>"
CONNECT_SECONDS = 10


def write_files(files: dict, place: Path) -> None:
    """A task's files (name → bytes, as a build task brings them back) into ``place``, the paths in
    them (:data:`BUILD_DIR_TOKEN`) pointing there."""
    place.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        (place / name).write_bytes(content.replace(BUILD_DIR_TOKEN.encode(), str(place).encode()))



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


# -- running one task (on whichever worker) ---------------------------------------------------------

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
