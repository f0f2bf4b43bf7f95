"""Subcommands of the hdlgen CLI, one module each (see hdlgen.cli)."""

import json
import tempfile
from pathlib import Path

from ..errors import UserError

__all__ = ["as_option", "check_output", "check_output_dir", "check_core_options", "check_windows"]


def as_option(error: Exception, options: dict, where: str | None = None) -> UserError:
    """``error`` as a :class:`UserError` that names the command-line option first: the library's
    messages start with the parameter's name (``"lanes must be …"``), ``options`` maps such names
    to flags (``{"lanes": "--lanes"}``); ``where`` (a file) goes before that."""
    text = str(error)
    flag = next((flag for name, flag in options.items() if text.startswith(f"{name} ")), None)
    text = f"{flag}: {text}" if flag else text
    return UserError(f"{where}: {text}" if where else text)


def check_output(path, flag: str = "-o") -> None:
    """Refuse an output file that cannot be written, before any long work: a directory, a parent that
    is missing or a file, a directory hdlgen may not write in. An existing file is fine: outputs are
    written beside it and renamed onto it (:func:`hdlgen.files.write_atomically`)."""
    path = Path(path)
    if path.is_dir():
        raise UserError(f"{flag} {path}: is a directory; give a file name")
    if path.parent.exists() and not path.parent.is_dir():
        raise UserError(f"{flag} {path}: {path.parent} is a file, not a directory")
    if not path.parent.is_dir():
        raise UserError(f"{flag} {path}: no directory {path.parent}")
    _check_writable(path.parent, path, flag)


def check_output_dir(path, flag: str = "-o", what: str = "a directory") -> None:
    """Refuse an output directory that cannot be made or written before any long work: an existing
    file, a file on its way (missing directories are made), a place hdlgen may not write in
    (``None``: the default, nothing to check)."""
    if path is None:
        return
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UserError(f"{flag} {path}: is a file; give {what}")
    existing = next(p for p in [path, *path.parents] if p.exists() or p == Path(p.anchor))
    if not existing.is_dir():
        raise UserError(f"{flag} {path}: {existing} is a file, not a directory")
    _check_writable(existing, path, flag)


def _check_writable(directory: Path, path: Path, flag: str) -> None:
    """Create and drop a nameless file in ``directory``: the one test that permissions, read-only
    file systems and special file systems all answer truthfully (also for root)."""
    try:
        tempfile.TemporaryFile(dir=directory).close()
    except OSError as e:
        raise UserError(f"{flag} {path}: cannot write in {directory}: {e.strerror}") from None


def check_windows(ticks, where: str) -> None:
    """Refuse windows longer than the generated core takes (:data:`hdlgen.ttfs.MAX_TICKS`), naming ``where``."""
    from ..ttfs import MAX_TICKS

    if max(ticks) > MAX_TICKS:
        raise UserError(f"{where}: a window of {max(ticks)} ticks; the hardware takes at most {MAX_TICKS} (each tick sorter "
                        f"keeps a flip-flop per tick in every bank and walks the window tick by tick; accuracy stops "
                        f"growing long before)")


CORE_OPTIONS = {"lanes": "--lanes", "pixels per transfer": "--pixels-per-transfer", "spike lanes": "--spike-lanes"}


def check_core_options(net, path, lanes: int, pixels_per_transfer: int = 1, spike_lanes: int | None = None) -> None:
    """The core's ``--lanes``, ``--pixels-per-transfer`` and ``--spike-lanes`` for ``net`` (read from
    ``path``), and its windows, checked before anything is generated: a :class:`UserError` naming the option."""
    from ..geometry import NetGeometry

    check_windows(net.ticks, str(path))
    try:
        NetGeometry(net, lanes, pixels_per_transfer, spike_lanes)
    except ValueError as e:
        raise as_option(e, CORE_OPTIONS, path) from None


def print_json(obj: dict):
    """The last stdout line of a ``--json`` run: one JSON object."""
    print(json.dumps(obj, sort_keys=True))
