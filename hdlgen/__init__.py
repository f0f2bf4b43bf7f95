"""hdlgen: trained ReLU network → integer TTFS spiking network → verified FPGA accelerator."""

from . import golden, ir, ttfs
from .errors import UserError
from .importers import from_torch, load_model
from .passes import ConvertConfig, convert
from .ttfs import TTFSNet, load, save

__all__ = ["golden", "ir", "ttfs", "UserError", "from_torch", "load_model", "ConvertConfig", "convert",
           "TTFSNet", "load", "save", "Device"]


def __getattr__(name):
    if name == "Device":  # the board host driver; imported on first use (pyserial, the link code)
        from .boards.host import Device
        return Device
    raise AttributeError(f"module 'hdlgen' has no attribute {name!r}")
