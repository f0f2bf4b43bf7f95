"""Quantize weights and biases, choose the integer threshold step K of every layer."""

import numpy as np

from .. import ir
from ..errors import UserError
from ..ttfs import PIXEL_MAX, InputEncoding, IntConv2d, IntDense, IntMaxPool2d, TTFSNet

__all__ = ["Quantize", "input_encoding", "quantize_weights"]


def input_encoding(shape, offset, pixel_scale, scale, ticks) -> InputEncoding:
    """Byte → q0 table: ``q0 = clamp(round(pixel·pixel_scale / s0), 0, T0)``."""
    pixels = np.arange(PIXEL_MAX + 1, dtype=np.float64)
    table = np.clip(np.floor(pixels * pixel_scale / scale + 0.5), 0, ticks).astype(np.int64)
    return InputEncoding(shape, offset, pixel_scale, scale, ticks, table)


def quantize_weights(weight, bias, input_scale, target_scale, bits, per_channel, rounding):
    """One layer's ``(weight, bias, k, scale)`` in integers, ``weight`` as ``(units, inputs)``.

    ``weight``/``bias`` are float, ``input_scale`` the real value of one input unit (per input),
    ``target_scale`` the wished real value of one output tick (``None`` for the readout, whose
    ``k`` is ``None``). The effective output scale is ``K·σ`` exactly (σ the weight scale), so
    rounding K to an integer moves the scale instead of adding error; the next layer absorbs it.
    """
    effective = weight * np.asarray(input_scale)[None, :]  # maps input q to real
    limit = (1 << (bits - 1)) - 1
    peak = np.abs(effective).max(axis=1) if per_channel and target_scale is not None else np.full(
        len(bias), np.abs(effective).max(initial=0.0))
    sigma = np.where(peak > 0, peak / limit, 1.0)
    w_int = np.clip(np.floor(effective / sigma[:, None] + 0.5), -limit, limit).astype(np.int64)
    b_int = np.floor(bias / sigma + 0.5).astype(np.int64)
    if target_scale is None:
        return w_int, b_int, None, sigma
    k = np.maximum(1, np.floor(target_scale / sigma + 0.5)).astype(np.int64)
    if rounding:
        b_int = b_int + k // 2
    return w_int, b_int, k, k * sigma


class Quantize:
    """Lower the checked, calibrated graph to a :class:`TTFSNet`."""

    name = "quantize"

    def run(self, state):
        config, stats, graph = state.config, state.stats, state.graph
        ticks, scales = stats["ticks"], stats["scales"]
        encoding = input_encoding(stats.get("input_shape", graph.input_shape), stats["input_offset"],
                                  stats["pixel_scale"], scales[0], ticks[0])
        shapes = [graph.input_shape] + graph.shapes()[1:]
        readout = max(i for i, n in enumerate(graph.nodes) if isinstance(n, (ir.Dense, ir.Conv2d)))
        channel_scale = np.full(graph.input_shape[0], encoding.scale)  # real value of one q unit, per channel
        window, layers = 0, []
        for index, node in enumerate(graph.nodes[1:], 1):
            in_shape = shapes[index - 1]
            if isinstance(node, ir.MaxPool2d):
                layers.append(IntMaxPool2d(in_shape, node.kernel, node.stride, node.padding, ticks[window], name=node.name))
                continue
            if not isinstance(node, (ir.Dense, ir.Conv2d)):
                continue  # ReLU, Flatten, Output: nothing to lower
            weight = node.weight.reshape(len(node.weight), -1)
            column_scale = np.repeat(channel_scale, weight.shape[1] // len(channel_scale))
            bias = node.bias
            if not layers and encoding.offset:
                if isinstance(node, ir.Conv2d) and any(node.padding):
                    raise UserError(f"{node.where()}: the input has negative values (offset {encoding.offset:g}), so "
                                    "zero padding would not mean 'no spike'; use padding 0 or inputs ≥ 0")
                bias = bias + weight.sum(axis=1) * encoding.offset  # x = offset + x', folded exactly
            last = index == readout
            w_int, b_int, k, scale = quantize_weights(weight, bias, column_scale, None if last else scales[window + 1],
                                                      config.weight_bits, config.per_channel, config.rounding)
            common = (b_int, k, ticks[window], 0 if last else ticks[window + 1], config.weight_bits, scale)
            if isinstance(node, ir.Conv2d):
                layer = IntConv2d(w_int.reshape(node.weight.shape), *common, in_shape, node.stride, node.padding,
                                  name=node.name)
            else:
                layer = IntDense(w_int, *common, name=node.name)
            layers.append(layer)
            channel_scale = layer.scale
            window += 1
        meta = {"weight_bits": config.weight_bits, "per_channel": config.per_channel,
                "calibration": config.calibration, "rounding": config.rounding}
        if state.stats.get("notes"):   # what the importer dropped on purpose, e.g. a trailing softmax
            meta["notes"] = list(state.stats["notes"])
        state.net = TTFSNet(encoding, layers, state.name, meta, state.graph)
