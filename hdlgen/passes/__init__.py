"""Conversion passes: float IR graph → integer TTFS net.

Each pass does one thing and can be run and tested alone; :data:`FLOW` names them in order
and :func:`convert` runs them on a :class:`Conversion` (the state they share).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .. import ir
from ..errors import UserError
from ..ttfs import TTFSNet
from .calibrate import Calibrate
from .fold_bn import FoldBatchNorm
from .pools import FoldAvgPool, PoolAfterReLU
from .quantize import Quantize
from .residual import MergeAdd
from .selfcheck import CheckFolding, CheckImport
from .source import CheckSource
from .structure import CheckActivations, CheckStructure, DropFlatten
from .widths import DeriveWidths

__all__ = ["ConvertConfig", "Conversion", "FLOW", "FOLDING", "convert", "CheckActivations",
           "PoolAfterReLU", "FoldBatchNorm", "FoldAvgPool", "DropFlatten",
           "CheckStructure", "Calibrate", "Quantize", "DeriveWidths", "CheckImport", "CheckFolding", "MergeAdd",
           "CheckSource"]


@dataclass
class ConvertConfig:
    """Conversion settings.

    Parameters
    ----------
    ticks : int or list of int
        Window ``T`` of every spiking layer (input first); one int sets them all.
    weight_bits : int
        Symmetric signed weight width, 2..16.
    per_channel : bool
        One weight scale (and K) per output neuron instead of one per layer. The readout always
        uses one scale so its logits stay comparable.
    calibration : str
        ``"max"`` or ``"pXX.X"`` (percentile of the positive ReLU outputs) for the activation scales.
    rounding : bool
        Add ``floor(K/2)`` to every bias so the comparator rounds to nearest instead of flooring.
    """

    ticks: int | list = 16
    weight_bits: int = 8
    per_channel: bool = False
    calibration: str = "p99.9"
    rounding: bool = True

    def __post_init__(self):
        ticks = [self.ticks] if np.isscalar(self.ticks) else list(self.ticks)
        if not ticks or any(int(t) != t or t < 1 for t in ticks):
            raise UserError(f"ticks must be integers ≥ 1, got {self.ticks!r}")
        if not 2 <= self.weight_bits <= 16:
            raise UserError(f"weight bits must be 2..16, got {self.weight_bits}")
        self.percentile()

    def percentile(self) -> float:
        """The calibration percentile (100 for ``max``)."""
        if self.calibration == "max":
            return 100.0
        try:
            value = float(self.calibration.removeprefix("p"))
        except ValueError:
            value = -1
        if not self.calibration.startswith("p") or not 50 <= value <= 100:
            raise UserError(f"calibration must be 'max' or a percentile like 'p99.9' (50..100), got {self.calibration!r}")
        return value

    def ticks_for(self, spiking_layers: int) -> list:
        ticks = [self.ticks] if np.isscalar(self.ticks) else list(self.ticks)
        if len(ticks) == 1:
            return [int(ticks[0])] * spiking_layers
        if len(ticks) != spiking_layers:
            raise UserError(f"--ticks lists {len(ticks)} windows but the net has {spiking_layers} spiking layers "
                            f"(input + hidden); give one value or {spiking_layers}")
        return [int(t) for t in ticks]


@dataclass
class Conversion:
    """What the passes share: the graph they rewrite, the calibration data, their results."""

    graph: ir.Graph
    calibration_data: np.ndarray
    config: ConvertConfig
    name: str = "net"
    stats: dict = field(default_factory=dict)
    net: TTFSNet | None = None
    trained: object = None   # a QAT model's grids (hdlgen.qat.TrainedGrids), kept from the imported graph

    def __post_init__(self):
        if self.trained is None:
            self.trained = self.graph.trained


# CheckImport / CheckFolding: the imported graph against the framework's own output, the folded one against it;
# CheckSource: a QAT net's integers against the quantized model's own execution.
# FOLDING is also the AMOS comparison's front end for nets with other activations (hdlgen.codes.amos_gates).
FOLDING = [CheckImport(), PoolAfterReLU(), FoldBatchNorm(), FoldAvgPool(), MergeAdd(), DropFlatten(), CheckFolding()]
FLOW = [*FOLDING, CheckActivations(), CheckStructure(), Calibrate(), Quantize(), DeriveWidths(), CheckSource()]


def convert(graph: ir.Graph, calibration_data, config: ConvertConfig | None = None, name: str = "net",
            flow=FLOW) -> TTFSNet:
    """Run the conversion flow and return the integer TTFS net."""
    data = np.asarray(calibration_data, dtype=np.float64)
    if data.ndim < 2 or data.shape[1:] != tuple(graph.input_shape) and data.shape[1:] != (int(np.prod(graph.input_shape)),):
        raise UserError(f"calibration data has shape {data.shape[1:]} per sample, the model takes {tuple(graph.input_shape)}")
    state = Conversion(graph, data.reshape((len(data), *graph.input_shape)), config or ConvertConfig(), name)
    for step in flow:
        step.run(state)
    return state.net
