"""Subcommands of the hdlgen CLI, one module each (see hdlgen.cli)."""

from pathlib import Path

from ..errors import UserError

__all__ = ["as_option", "check_output", "check_output_dir", "check_core_options"]


def as_option(error: Exception, options: dict, where: str | None = None) -> UserError:
    """``error`` as a :class:`UserError` that names the command-line option first: the library's
    messages start with the parameter's name (``"lanes must be …"``), ``options`` maps such names
    to flags (``{"lanes": "--lanes"}``); ``where`` (a file) goes before that."""
    text = str(error)
    flag = next((flag for name, flag in options.items() if text.startswith(f"{name} ")), None)
    text = f"{flag}: {text}" if flag else text
    return UserError(f"{where}: {text}" if where else text)


def check_output(path, flag: str = "-o") -> None:
    """Refuse an output file that cannot be written, before any long work."""
    path = Path(path)
    if not path.parent.is_dir():
        raise UserError(f"{flag} {path}: no directory {path.parent}")
    if path.is_dir():
        raise UserError(f"{flag} {path}: is a directory; give a file name")


def check_output_dir(path, flag: str = "-o", what: str = "a directory") -> None:
    """Refuse an output directory that is an existing file (``None``: the default, nothing to check)."""
    if path is not None and Path(path).exists() and not Path(path).is_dir():
        raise UserError(f"{flag} {path}: is a file; give {what}")


CORE_OPTIONS = {"lanes": "--lanes", "pixels per transfer": "--pixels-per-transfer", "spike lanes": "--spike-lanes"}


def check_core_options(net, path, lanes: int, pixels_per_transfer: int = 1, spike_lanes: int | None = None) -> None:
    """The core's ``--lanes``, ``--pixels-per-transfer`` and ``--spike-lanes`` for ``net`` (read from
    ``path``), checked before anything is generated: a :class:`UserError` naming the option."""
    from ..geometry import NetGeometry

    try:
        NetGeometry(net, lanes, pixels_per_transfer, spike_lanes)
    except ValueError as e:
        raise as_option(e, CORE_OPTIONS, path) from None
