"""Quantize weights and biases, choose the integer threshold step K of every layer."""

import numpy as np

from .. import ir
from ..ttfs import InputEncoding, IntDense, TTFSNet, PIXEL_MAX

__all__ = ["Quantize", "input_encoding", "quantize_dense"]


def input_encoding(shape, offset, pixel_scale, scale, ticks) -> InputEncoding:
    """Byte → q0 table: ``q0 = clamp(round(pixel·pixel_scale / s0), 0, T0)``."""
    pixels = np.arange(PIXEL_MAX + 1, dtype=np.float64)
    table = np.clip(np.floor(pixels * pixel_scale / scale + 0.5), 0, ticks).astype(np.int64)
    return InputEncoding(shape, offset, pixel_scale, scale, ticks, table)


def quantize_dense(weight, bias, input_scale, target_scale, ticks_in, ticks, bits, per_channel, rounding, name):
    """One dense layer in integers.

    ``weight``/``bias`` are float, ``input_scale`` the real value of one input unit (per input),
    ``target_scale`` the wished real value of one output tick (``None`` for the readout).
    The effective output scale is ``K·σ`` exactly (σ the weight scale), so rounding K to an
    integer moves the scale instead of adding error; the next layer absorbs it.
    """
    effective = weight * np.asarray(input_scale)[None, :]  # maps input q to real
    limit = (1 << (bits - 1)) - 1
    peak = np.abs(effective).max(axis=1) if per_channel and target_scale is not None else np.full(
        len(bias), np.abs(effective).max(initial=0.0))
    sigma = np.where(peak > 0, peak / limit, 1.0)
    w_int = np.clip(np.floor(effective / sigma[:, None] + 0.5), -limit, limit).astype(np.int64)
    b_int = np.floor(bias / sigma + 0.5).astype(np.int64)
    if target_scale is None:
        return IntDense(w_int, b_int, None, ticks_in, 0, bits, sigma, name=name)
    k = np.maximum(1, np.floor(target_scale / sigma + 0.5)).astype(np.int64)
    if rounding:
        b_int = b_int + k // 2
    return IntDense(w_int, b_int, k, ticks_in, ticks, bits, k * sigma, name=name)


class Quantize:
    """Lower the checked, calibrated graph to a :class:`TTFSNet`."""

    name = "quantize"

    def run(self, state):
        config, stats = state.config, state.stats
        ticks, scales = stats["ticks"], stats["scales"]
        dense = [n for n in state.graph.nodes if isinstance(n, ir.Dense)]
        encoding = input_encoding(stats.get("input_shape", state.graph.input_shape), stats["input_offset"],
                                  stats["pixel_scale"], scales[0], ticks[0])
        input_scale = np.full(dense[0].weight.shape[1], encoding.scale)
        layers = []
        for i, node in enumerate(dense):
            bias = node.bias + (node.weight.sum(axis=1) * encoding.offset if i == 0 else 0.0)
            readout = i == len(dense) - 1
            layer = quantize_dense(node.weight, bias, input_scale, None if readout else scales[i + 1],
                                   ticks[i], 0 if readout else ticks[i + 1], config.weight_bits,
                                   config.per_channel, config.rounding, node.name)
            layers.append(layer)
            input_scale = layer.scale
        meta = {"weight_bits": config.weight_bits, "per_channel": config.per_channel,
                "calibration": config.calibration, "rounding": config.rounding}
        state.net = TTFSNet(encoding, layers, state.name, meta, state.graph)
