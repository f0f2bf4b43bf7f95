"""Quantization-aware-trained grids and how the integer TTFS contract keeps them (docs/qat.md).

A QAT importer (:mod:`hdlgen.importers.qonnx`) reads the grids a model was trained on – a weight
quantizer's integers and scale, a quantized ReLU's ``0..T`` and scale, the input quantizer's – into a
:class:`TrainedGrids` beside the float graph. The passes then use them instead of choosing their own:
:mod:`~hdlgen.passes.calibrate` takes the windows and scales, :mod:`~hdlgen.passes.quantize` the integer
weights and the ``K`` that :func:`lower_layer` derives, with a note for whatever it had to approximate.

A hidden layer computes, in the source model, ``q = clamp(round(y / s_out), 0, T)`` with
``y = σ·(n + β)``, ``n = Σ W·q_in`` the integer sum, ``σ = s_w·s_in`` and ``β = bias / σ``. With
``r = s_out / σ`` and weights multiplied by an integer ``m``, ``K = m·r`` and ``B = floor(m·β + K/2)``
give ``floor((m·n + B) / K) = floor((n + β)/r + 1/2)`` – the same integer, for any float ``β``, whenever
``m·r`` is an integer (power-of-two scales). Only exact ties differ: the source rounds them to even,
the comparator up.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .errors import UserError

__all__ = ["Grid", "TrainedGrids", "LoweredLayer", "lower_layer", "trained_windows", "MAX_MULTIPLIER_BITS",
           "SCALE_TOLERANCE"]

# a float-scale layer's weights may grow by at most this many bits to bring K/m closer to the trained ratio,
# until the scale error moves the top of the window by at most a quarter tick
MAX_MULTIPLIER_BITS = 4
TICK_ERROR = 0.25
# relative error of K/m against the trained scale ratio below which a layer counts as exact (float32 scales)
SCALE_TOLERANCE = 1e-6


@dataclass(frozen=True)
class Grid:
    """A trained quantizer's grid: ``value = scale·q`` with integer ``q ∈ low..high``.

    Parameters
    ----------
    scale : ndarray
        One scale (shape ``()``) or one per output channel (shape ``(channels,)``).
    low, high : int
        The integers the quantizer clamps to (``high`` is a quantized ReLU's window ``T``).
    source : str
        The quantizer node, for messages.
    """

    scale: np.ndarray
    low: int
    high: int
    source: str = ""

    @property
    def per_channel(self) -> bool:
        return np.ndim(self.scale) > 0 and np.size(self.scale) > 1

    @property
    def weight_bits(self) -> int:
        """Symmetric signed bits holding ``low..high`` (hdlgen's weights are ``±(2^(b−1) − 1)``)."""
        return max(2, int(max(abs(self.low), abs(self.high))).bit_length() + 1)


@dataclass
class TrainedGrids:
    """The grids of a QAT model, by IR layer name.

    Members
    -------
    input : Grid or None
        The input quantizer's (sets the pixel encoding); ``None``: the input is calibrated.
    weights : dict
        Weighted layer → its weight grid (its float weights are the grid's values).
    outputs : dict
        ReLU → its quantizer's grid (the window and scale of the layer that ReLU ends, also when that layer is
        the one a residual add is merged into).
    source : callable or None
        ``x ↦ {layer name: the source model's output}``: logits of the readout, ``q`` (integers) of
        each quantized layer – the model's own execution, for :mod:`hdlgen.passes.source`.
    """

    input: Grid | None = None
    weights: dict = field(default_factory=dict)
    outputs: dict = field(default_factory=dict)
    source: object = field(default=None, repr=False)


@dataclass
class LoweredLayer:
    """A weighted layer on its trained grid: integers for :mod:`hdlgen.ttfs`, and what was approximated."""

    weight: np.ndarray
    bias: np.ndarray
    k: np.ndarray | None
    scale: np.ndarray
    weight_bits: int
    notes: list


def _integers(weight, grid: Grid, where: str, notes: list):
    """``weight / scale`` as the integers it is; rounded, with a note, where folding moved it off the grid (a batch
    norm after the layer; a residual shortcut merged into it whose scale ratio is not an integer)."""
    scale = np.asarray(grid.scale, np.float64)
    per_row = scale.reshape(-1, *([1] * (weight.ndim - 1))) if grid.per_channel else scale
    ratio = weight / per_row
    integers = np.floor(ratio + 0.5)
    off = float(np.max(np.abs(ratio - integers), initial=0.0))
    if off > 1e-6:
        notes.append(f"{where}: weights off their trained grid after folding, rounded to it (up to {off:.3g} of a step)")
    return integers.astype(np.int64)


def _multiplier(ratio: np.ndarray, bits: int, ticks: int) -> int:
    """The smallest power of two ``m`` that brings ``m·ratio`` near enough to integers ≥ 1: exactly when the
    scales are powers of two, else within :data:`TICK_ERROR` of a tick at the top of a ``ticks`` window; the best
    one found when none does, weights growing by at most :data:`MAX_MULTIPLIER_BITS`."""
    best, best_error = 1, np.inf
    for shift in range(min(MAX_MULTIPLIER_BITS, 16 - bits) + 1):
        m = 1 << shift
        k = np.maximum(1, np.floor(m * ratio + 0.5))
        error = float(np.max(np.abs(k / (m * ratio) - 1)))
        if error < best_error - SCALE_TOLERANCE:
            best, best_error = m, error
        if best_error <= SCALE_TOLERANCE or best_error * ticks <= TICK_ERROR and np.all(m * ratio >= 1):
            break
    return best


def lower_layer(weight, bias, input_scale, grid: Grid, output: Grid | None, target_scale, ticks, where: str):
    """One weighted layer's integers from its trained weight ``grid``.

    ``weight`` (units, inputs) and ``bias`` are the float values the importer read (the grid's values),
    ``input_scale`` the real value of one input unit (one per input column, all equal on a trained
    input), ``output`` the quantized ReLU's grid after it (``None``: the readout, or a ReLU that was
    not quantized, whose calibrated ``target_scale`` and window ``ticks`` stand in).
    """
    notes = []
    integers = _integers(weight, grid, where, notes).reshape(len(weight), -1)
    column_scales = np.unique(np.asarray(input_scale, np.float64))
    if len(column_scales) > 1:
        raise UserError(f"{where}: its inputs have {len(column_scales)} different scales; supported: one "
                        "activation scale per quantized tensor")
    sigma = np.broadcast_to(np.asarray(grid.scale, np.float64) * column_scales[0], (len(weight),))
    beta = bias / sigma
    bits = max(grid.weight_bits, int(np.abs(integers).max(initial=1)).bit_length() + 1)
    if bits > grid.weight_bits:   # an identity shortcut merged in: its weight s_x/σ may exceed the trained range
        notes.append(f"{where}: {bits}-bit weights (trained {grid.weight_bits}): a merged shortcut's weight is larger")
    if target_scale is None:   # the readout: its integer potentials are the logits, in units of one σ
        # per-channel weight scales: each class's row ×(σ_i / min σ), so that the logits stay comparable
        rows = np.floor(sigma / sigma.min() + 0.5)
        if np.any(np.abs(rows * sigma.min() / sigma - 1) > SCALE_TOLERANCE):
            notes.append(f"{where}: readout rows rescaled to one scale by the nearest integers (up to "
                         f"{np.max(np.abs(rows * sigma.min() / sigma - 1)):.2%} off)")
        integers, beta = integers * rows.astype(np.int64)[:, None], beta * rows
        bits = max(bits, int(np.abs(integers).max(initial=1)).bit_length() + 1)
        b_int = np.floor(beta + 0.5).astype(np.int64)
        off = float(np.max(np.abs(b_int - beta), initial=0.0))
        if np.any(np.abs(b_int - beta) > 1e-5 * np.maximum(1, np.abs(beta))):   # beyond a float32 bias's precision
            notes.append(f"{where}: readout bias rounded to the accumulator grid (up to {off:.3g} of a unit; "
                         "quantize the bias in training, e.g. Brevitas Int32Bias, to keep it exact)")
        return LoweredLayer(integers, b_int, None, np.full(len(sigma), sigma.min()), bits, notes)
    ratio = np.broadcast_to(np.asarray(target_scale, np.float64), sigma.shape) / sigma
    m = _multiplier(ratio, bits, ticks)
    k = np.maximum(1, np.floor(m * ratio + 0.5)).astype(np.int64)
    error = float(np.max(np.abs(k / (m * ratio) - 1)))
    if m > 1:
        notes.append(f"{where}: weights ×{m} so that K/m meets the trained scale ratio ({bits} → "
                     f"{bits + m.bit_length() - 1} weight bits)")
        bits += m.bit_length() - 1
    if output is None:
        notes.append(f"{where}: its ReLU is not quantized in the model; window T={ticks} and scale calibrated")
    elif error > SCALE_TOLERANCE:
        notes.append(f"{where}: the trained scale ratio s_out/(s_w·s_in) is not an integer; K/m differs from it by up "
                     f"to {error:.2%} (power-of-two scales, e.g. Brevitas *FixedPoint quantizers, make it exact)")
    b_int = np.floor(m * beta + k / 2).astype(np.int64)
    return LoweredLayer(integers * m, b_int, k, k * sigma / m, bits, notes)


def trained_windows(stats: dict, relus: list, trained: TrainedGrids, x) -> list:
    """Set the calibrated ``stats`` (``ticks``, ``scales``, the input's ``input_offset`` and ``pixel_scale``) to the
    trained grids where there are any; ``relus`` names the graph's ReLUs in order (window ``w`` ends at ReLU
    ``w − 1``). Returns the notes on what stays calibrated."""
    for window, relu in enumerate(relus, 1):
        if relu in trained.outputs:
            stats["ticks"][window], stats["scales"][window] = trained.outputs[relu].high, float(trained.outputs[relu].scale)
    grid = trained.input
    if grid is None:
        return ["input: not quantized in the model; its encoding is calibrated (the first layer's K approximates)"]
    scale = float(grid.scale)
    # a signed grid on data with negative values: the grid shifted to start at 0, the offset folded into the bias
    low = grid.low if grid.low < 0 and float(np.min(x)) < 0 else 0
    if grid.high - low > 255:
        return [f"input: its {grid.high - low + 1}-level grid does not fit a pixel byte; its encoding is calibrated"]
    stats.update(input_offset=low * scale, pixel_scale=scale)
    stats["ticks"][0], stats["scales"][0] = grid.high - low, scale
    return []
