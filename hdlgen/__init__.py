"""hdlgen: trained ReLU network → integer TTFS spiking network → verified FPGA accelerator."""

from . import golden, ir, ttfs
from .errors import UserError
from .importers import from_torch, load_model
from .passes import ConvertConfig, convert
from .ttfs import TTFSNet, load, save

__all__ = ["golden", "ir", "ttfs", "UserError", "from_torch", "load_model", "ConvertConfig", "convert",
           "TTFSNet", "load", "save"]
