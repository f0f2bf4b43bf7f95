"""hdlgen: trained ReLU network → integer TTFS spiking network → verified FPGA accelerator.

The package is three layers, each importing only those above it (README, "Layout"): the model
(importers, IR, passes, the integer net, the golden model, the geometry and cycle bounds – no
hardware), the hardware (``hdlgen.rtl_templates``, ``hdlgen.sim``, ``hdlgen.boards`` and their
drivers ``verilog``, ``simulate``, ``prove``), and the application (``cli``, ``commands``, ``bench``,
``sweep``, ``html_report``). What is exported here is the model layer's API.
"""

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
