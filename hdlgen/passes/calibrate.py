"""Calibration: activation scales from representative data."""

import numpy as np

from .. import ir
from ..errors import UserError
from ..qat import trained_windows

__all__ = ["Calibrate", "activation_statistic"]


def activation_statistic(values: np.ndarray, percentile: float) -> float:
    """The value the top of a window stands for: max or a percentile of the positive values."""
    positive = values[values > 0]
    if positive.size == 0:
        return 1.0  # a layer that never fires: any scale is exact
    return float(np.max(positive) if percentile >= 100 else np.percentile(positive, percentile))


class Calibrate:
    """Run the float net on the calibration data and set, per spiking layer, the real value one
    tick of activation stands for: ``s = statistic / T``.

    The input gets an ``offset`` (its minimum when negative, so inputs normalised to negative
    values still start at "no spike"; the offset folds exactly into the first layer's bias),
    a ``pixel_scale`` mapping its range onto bytes 0..255, and a max-based scale (clipping
    pixels only loses information).
    """

    name = "calibrate"

    def run(self, state):
        graph, config = state.graph, state.config
        x = state.calibration_data.reshape((len(state.calibration_data), *graph.input_shape))
        if len(x) == 0:
            raise UserError("calibration data is empty; give at least one representative sample")
        spiking = [n for n in graph.nodes if isinstance(n, ir.ReLU)]
        ticks = config.ticks_for(1 + len(spiking))
        offset = min(float(x.min()), 0.0)
        span = float(x.max()) - offset
        span = span if span > 0 else 1.0
        stats = {"ticks": ticks, "input_offset": offset, "pixel_scale": span / 255, "scales": [span / ticks[0]]}
        outputs = graph.forward(x, collect=True)
        percentile = config.percentile()
        for node, out in zip(graph.nodes[1:], outputs):
            if isinstance(node, ir.ReLU):
                stats["scales"].append(activation_statistic(out, percentile) / ticks[len(stats["scales"])])
        if state.trained is not None:   # a QAT model: the windows and scales it was trained on
            stats["notes"] = state.stats.get("notes", []) + trained_windows(stats, [n.name for n in spiking], state.trained, x)
        state.stats.update(stats)
