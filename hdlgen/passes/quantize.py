"""Quantize weights and biases, choose the integer threshold step K of every layer."""

import numpy as np

from .. import ir
from ..errors import UserError
from ..qat import lower_layer
from ..ttfs import INPUT, PIXEL_MAX, InputEncoding, IntConv2d, IntDense, IntMaxPool2d, TTFSNet

__all__ = ["Quantize", "input_encoding", "quantize_weights", "column_ranges", "column_scale", "output_windows",
           "input_offset_bias"]


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


def output_windows(graph: ir.Graph) -> dict:
    """Each hidden Dense/Conv2d's window: the number of its ReLU among the graph's ReLUs (from 1; 0 is
    the input's), which indexes the calibrated ``ticks`` and ``scales``."""
    relus = {n.name: w for w, n in enumerate((n for n in graph.nodes if isinstance(n, ir.ReLU)), 1)}
    return {relu.inputs[0]: w for relu_name, w in relus.items() for relu in [graph.node(relu_name)]}


def column_ranges(sizes, columns: int) -> list:
    """``(start, stop)`` of each input's weight columns, from the inputs' sizes: a convolution's
    columns are (channel, tap), a dense layer's its features, the inputs' in order."""
    stops = np.cumsum([columns * size // sum(sizes) for size in sizes])
    return [(int(stop) - columns * size // sum(sizes), int(stop)) for stop, size in zip(stops, sizes)]


def column_scale(source_scales, sizes, columns: int, repeat=np.repeat, join=np.concatenate):
    """The real value of one input unit of each of a layer's ``columns`` weight columns, from each
    input's scales (per channel, or per feature) and sizes: a convolution's columns are (channel,
    tap), a dense layer's its features, the inputs' in order. ``repeat``/``join`` are numpy's by
    default (fine-tuning passes torch's)."""
    fan_in = sum(sizes)
    return join([repeat(scale, columns * size // fan_in // len(scale)) for scale, size in zip(source_scales, sizes)])


def input_offset_bias(node, sources, sizes, encoding):
    """``node``'s float bias with the input offset folded in (``x = offset + x'``, exact); a zero-padded
    convolution of an input with an offset is refused (its padding would not mean "no spike")."""
    weight, bias = node.weight.reshape(len(node.weight), -1), node.bias
    if INPUT in sources and encoding.offset:
        if isinstance(node, ir.Conv2d) and any(node.padding):
            raise UserError(f"{node.where()}: the input has negative values (offset {encoding.offset:g}), so "
                            "zero padding would not mean 'no spike'; use padding 0 or inputs ≥ 0")
        for source, (start, stop) in zip(sources, column_ranges(sizes, weight.shape[1])):
            if source == INPUT:
                bias = bias + weight[:, start:stop].sum(axis=1) * encoding.offset
    return bias


class Quantize:
    """Lower the checked, calibrated graph to a :class:`TTFSNet`: each Dense/Conv2d (with the ReLU
    after it) and each MaxPool2d becomes one integer layer, reading the integer layers (or the
    input) its float inputs come from; a layer's window is its ReLU's (a max-pool keeps its input's)."""

    name = "quantize"

    def run(self, state):
        config, stats, graph = state.config, state.stats, state.graph
        ticks, scales = stats["ticks"], stats["scales"]
        encoding = input_encoding(stats.get("input_shape", graph.input_shape), stats["input_offset"],
                                  stats["pixel_scale"], scales[0], ticks[0])
        shapes = dict(zip((n.name for n in graph.nodes), graph.shapes()))
        windows = output_windows(graph)
        relu_after = {relu.inputs[0]: relu.name for relu in graph.nodes if isinstance(relu, ir.ReLU)}
        readout = max(i for i, n in enumerate(graph.nodes) if isinstance(n, (ir.Dense, ir.Conv2d)))
        origin = {graph.nodes[0].name: INPUT}      # float node → the integer layer (or input) whose spikes it carries
        window = {INPUT: 0}                          # integer source → its window's index
        scale_of = {INPUT: np.full(graph.input_shape[0], encoding.scale)}   # real value of one q unit, per channel
        size_of = {INPUT: encoding.size}
        layers = []
        for index, node in enumerate(graph.nodes[1:], 1):
            sources = tuple(origin[name] for name in node.inputs)
            if isinstance(node, (ir.ReLU, ir.Flatten)):
                origin[node.name] = sources[0]
                continue
            if not isinstance(node, (ir.Dense, ir.Conv2d, ir.MaxPool2d)):
                continue  # Output: nothing to lower
            in_shape = ir.concatenate([shapes[name] for name in node.inputs], node.where())
            used = sorted({ticks[window[s]] for s in sources})
            if len(used) > 1:
                raise UserError(f"{node.where()}: the branches it joins ({', '.join(node.inputs)}) have windows "
                                f"{used}; give them one window (--ticks)")
            if isinstance(node, ir.MaxPool2d):
                layer = IntMaxPool2d(in_shape, node.kernel, node.stride, node.padding, used[0], name=node.name,
                                     inputs=sources)
                scale_of[node.name], window[node.name] = scale_of[sources[0]], window[sources[0]]
            else:
                sizes = [size_of[s] for s in sources]
                out_window = windows.get(node.name)   # its ReLU's (None: the readout)
                columns = column_scale([scale_of[s] for s in sources], sizes, node.weight.reshape(len(node.weight), -1).shape[1])
                layer = self._weighted(node, index == readout, sources, sizes, in_shape, used[0], encoding, config,
                                       columns, out_window, ticks, scales, state, relu_after.get(node.name))
                scale_of[node.name], window[node.name] = layer.scale, out_window
            size_of[node.name] = layer.fan_out
            origin[node.name] = node.name
            layers.append(layer)
        meta = {"weight_bits": config.weight_bits, "per_channel": config.per_channel,
                "calibration": config.calibration, "rounding": config.rounding}
        if state.trained is not None:   # the grids of a QAT model, not the options, set the weights and windows
            meta.update(weight_bits=max(l.weight_bits for l in layers if l.has_weights), calibration="trained",
                        per_channel=any(grid.per_channel for grid in state.trained.weights.values()))
        if state.stats.get("notes"):   # what the importer dropped on purpose, e.g. a trailing softmax
            meta["notes"] = list(state.stats["notes"])
        state.net = TTFSNet(encoding, layers, state.name, meta, state.graph)

    @staticmethod
    def _weighted(node, last, sources, sizes, in_shape, ticks_in, encoding, config, columns_scale, out_window, ticks,
                  scales, state, relu):
        weight = node.weight.reshape(len(node.weight), -1)
        bias = input_offset_bias(node, sources, sizes, encoding)
        grid = state.trained.weights.get(node.name) if state.trained is not None else None
        if grid is None:
            w_int, b_int, k, scale = quantize_weights(weight, bias, columns_scale, None if last else scales[out_window],
                                                      config.weight_bits, config.per_channel, config.rounding)
            bits = config.weight_bits
        else:   # trained integer weights, kept as they are
            lowered = lower_layer(weight, bias, columns_scale, grid, state.trained.outputs.get(relu),
                                  None if last else scales[out_window], None if last else ticks[out_window], node.where())
            w_int, b_int, k, scale, bits = lowered.weight, lowered.bias, lowered.k, lowered.scale, lowered.weight_bits
            state.stats.setdefault("notes", []).extend(lowered.notes)
        common = (b_int, k, ticks_in, 0 if last else ticks[out_window], bits, scale)
        if isinstance(node, ir.Conv2d):
            return IntConv2d(w_int.reshape(node.weight.shape), *common, in_shape, node.stride, node.padding,
                             name=node.name, inputs=sources)
        return IntDense(w_int, *common, name=node.name, inputs=sources)
