"""Hardware geometry of a TTFS net: the one home of every number the core is built from.

Plain numpy, no Amaranth. The RTL (``rtl_templates``), the cycle model (:mod:`hdlgen.cycles`),
the sidecar (:mod:`hdlgen.verilog`), the SPRAM loader and the host (``boards``) and the
benchmarks all read these figures; none of them works one out again.

* :class:`NetGeometry` – the net at some ``lanes``: the input stage and one stage geometry per
  layer, each chosen by the layer's ``kind`` from :data:`STAGE_GEOMETRY`.
* A stage geometry (:class:`DenseGeometry`, :class:`ConvGeometry`, :class:`PoolGeometry`) gives
  the lanes the stage is built with, its accumulator words, the packed weight rows and bias
  words, the reach tables of a feature-map layer, its memories in bits and its cycle costs:
  what a spike on each input costs (:meth:`~DenseGeometry.input_costs`) and the most cycles it
  adds on top (:meth:`~DenseGeometry.overhead`). A new layer kind adds one class here.
"""

from __future__ import annotations

import math

import numpy as np

from .ttfs import TTFSNet, unsigned_width

__all__ = ["ceil_div", "check_count", "check_lanes", "axis_taps", "pack_words", "ladder_steps", "sorter_words",
           "sorter_memory_bits", "MAX_SPIKES_PER_CYCLE", "multi_issue_layer",
           "DenseGeometry", "ConvGeometry", "PoolGeometry", "InputGeometry", "NetGeometry", "SkipBuffer",
           "STAGE_GEOMETRY", "stage_geometry"]


def _is_sequence(value) -> bool:
    """Per-layer values (a list or tuple), not one number or ``None``."""
    return isinstance(value, (list, tuple))


def ceil_div(a: int, b: int) -> int:
    """``ceil(a / b)`` for integers, exactly."""
    return -(-a // b)


def check_count(value, limit: int, name: str, what: str) -> int:
    """``value`` as an int in ``1..limit``, else a :class:`ValueError` saying that ``name`` must
    be one and ``what`` (e.g. "its fan-out") is the limit."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 1 <= value <= limit:
        raise ValueError(f"{name} must be an integer from 1 to {what} {limit}, got {value!r}")
    return int(value)


def check_lanes(lanes, limit: int, what: str) -> int:
    """``lanes`` as an int in ``1..limit`` (:func:`check_count`)."""
    return check_count(lanes, limit, "lanes", what)


def axis_taps(size: int, kernel: int, stride: int, padding: int, out: int) -> list:
    """Per input coordinate ``0..size−1`` along one axis, the ``(kernel offset, output coordinate)``
    pairs that reach an output: ``coordinate + padding − offset = output·stride`` with the output
    in ``0..out−1`` (offsets on the border or between strides reach nothing)."""
    taps = []
    for pos in range(size):
        reach = []
        for k in range(kernel):
            o, r = divmod(pos + padding - k, stride)
            if r == 0 and 0 <= o < out:
                reach.append((k, o))
        taps.append(reach)
    return taps


def _reach(row_taps, column_taps, channels: int) -> np.ndarray:
    """Per input neuron (channel, row, column), the product of what its row and its column reach."""
    rows, cols = [len(t) for t in row_taps], [len(t) for t in column_taps]
    return np.tile(np.outer(rows, cols).reshape(-1), channels)


def pack_words(values: np.ndarray, width: int) -> list:
    """Rows of signed integers → one unsigned int per row, element ``l`` at bits ``l·width``."""
    mask = (1 << width) - 1
    return [sum((int(v) & mask) << (lane * width) for lane, v in enumerate(row)) for row in values]


def ladder_steps(ticks: int) -> int:
    """Compare-subtract stages of a spike-time bank's ladder after its ``A ≥ K·T`` stage: one
    per bit of ``q < T``."""
    return (ticks - 1).bit_length()


def sorter_words(neurons: int, banks: int = 1, positions: int = 1) -> int:
    """The word indices of each bank of a tick sorter: word ``(w << k) | p`` (``2^k ≥ positions``)
    holds channel ``w·banks + bank`` at position ``p`` – neuron ``channel·positions + p`` – so
    its neuron is a few shifts and adds away, and a bank's words are ``ceil(channels / banks)``
    blocks of ``2^k`` (``neurons // banks`` rounded up for a dense layer, ``positions = 1``)."""
    return ceil_div(neurons // positions, banks) << (positions - 1).bit_length()


def sorter_memory_bits(neurons: int, ticks: int, banks: int = 1, positions: int = 1) -> int:
    """Bits of a tick sorter's memories: per bank a link per word, a head and a tail per tick."""
    words = sorter_words(neurons, banks, positions)
    return banks * (words + 2 * ticks) * unsigned_width(words - 1)


# input spikes a dense engine fed by the input encoder takes at once (NetGeometry: its lanes asked
# for as that many times its fan-out)
MAX_SPIKES_PER_CYCLE = 2


class DenseGeometry:
    """A dense layer's engine (and its spike-time bank or readout) at ``lanes``.

    Accumulator word ``w`` holds neurons ``w·lanes + l`` in lane ``l``; weight row
    ``j·words + w`` holds ``W[w·lanes + l, j]`` (zero past the fan-out), so a spike on input
    ``j`` reads ``words`` consecutive rows and costs ``words`` cycles. With ``spikes_per_cycle``
    ``S > 1`` (a one-word layer fed by the input encoder, :class:`NetGeometry`) the engine takes
    ``S`` spikes at once, each through a copy of the weight memory and a product per lane of its
    own: a cycle for up to ``S`` spikes.

    Raises :class:`ValueError` unless ``lanes`` is an integer in ``1..``:meth:`lane_limit`, and
    ``spikes_per_cycle`` is 1 or the layer is dense with one word and it is at most
    :data:`MAX_SPIKES_PER_CYCLE`.
    """

    kind = "dense"
    limit_name = "its fan-out"
    weight_latency = 2     # cycles from a weight row's address to its data: banked block RAMs, registered
    # engine: flush, drain (through its FIFO) and stream handshakes; one fewer without the FIFO (an iCE40
    # build's EngineTiming), so the overhead stays a bound for both
    handshake_cycles = 11
    wide_lanes = 16             # from this many lanes the multipliers get pipeline stages of their own
    drain_depth = 3             # words the engine's drain FIFO holds: the one in flight, one being taken, one refused

    def __init__(self, layer, lanes: int = 1, spike_lanes: int | None = None, spikes_per_cycle: int = 1):
        self.layer = layer
        try:
            self.lanes = check_lanes(lanes, self.lane_limit(layer), self.limit_name)
        except ValueError as e:
            raise ValueError(f"layer {layer.name!r}: {e}") from None
        self.words = ceil_div(self.lane_limit(layer), self.lanes)
        # input spikes taken at once, each with a weight memory and a product per lane of its own
        if spikes_per_cycle != 1 and (self.kind != "dense" or self.words != 1
                                      or spikes_per_cycle not in range(1, MAX_SPIKES_PER_CYCLE + 1)):
            raise ValueError(f"layer {layer.name!r}: only a dense layer with one word (lanes = its fan-out) takes "
                             f"1 to {MAX_SPIKES_PER_CYCLE} spikes a cycle, got {spikes_per_cycle!r}")
        self.spikes_per_cycle = spikes_per_cycle
        self.acc_width = layer.widths()["accumulator"]
        # ladders of the spike-time bank: a divisor of the lanes, so a word splits into equal parts
        self.spike_lanes = self.lanes if spike_lanes is None else math.gcd(self.lanes, spike_lanes)

    @staticmethod
    def lane_limit(layer) -> int:
        """The most lanes the stage can use: the neurons one weight row can update at once."""
        return layer.fan_out

    @property
    def positions(self) -> int:
        """Output positions that share the weight rows (1: every neuron has its own column)."""
        return 1

    @property
    def out_words(self) -> int:
        """Accumulator words per image on the engine's output stream: ``words`` per position."""
        return self.positions * self.words

    @property
    def multiplier_stages(self) -> int:
        """Extra pipeline stages around the engine's multipliers: a register on the route to
        them and one on the route back, from :attr:`wide_lanes` lanes on (so many DSP blocks
        spread over columns far from the engine's logic; a narrow engine keeps its flip-flops,
        which a small FPGA is short of)."""
        return 2 if self.lanes >= self.wide_lanes else 0

    @property
    def keeps_neuron_order(self) -> bool:
        """Spikes of one tick leave in increasing neuron order: the spike-time bank's sorter
        has one bank per ladder, and lists in arrival order (channel word, position, part)."""
        return self.spike_lanes == 1 and (self.positions == 1 or self.lanes == 1)

    @property
    def row_bits(self) -> int:
        return self.layer.weight_bits * self.lanes

    @property
    def multipliers(self) -> int:
        """Products the engine makes per cycle: a lane's for each spike it takes at once."""
        return self.lanes * self.spikes_per_cycle

    def weight_rows(self) -> list:
        """The weight memory's rows as unsigned ints (lane ``l`` at bits ``l·weight_bits``)."""
        matrix = self.layer.weight_matrix()
        padded = np.zeros((self.words * self.lanes, matrix.shape[1]), dtype=np.int64)
        padded[:len(matrix)] = matrix
        # rows ordered (input j, word w), lanes inside a row
        return pack_words(padded.T.reshape(matrix.shape[1] * self.words, self.lanes), self.layer.weight_bits)

    @property
    def weight_row_count(self) -> int:
        return self.layer.weight_matrix().shape[1] * self.words

    @property
    def weight_memory_bits(self) -> int:
        """Bits of the weight memories: one copy per spike taken at once."""
        return self.weight_row_count * self.row_bits * self.spikes_per_cycle

    def bias_words(self) -> list:
        """One accumulator word per ``words`` holding its lanes' biases (0 past the units)."""
        bias = np.zeros(self.words * self.lanes, dtype=np.int64)
        bias[:len(self.layer.bias)] = self.layer.bias
        return pack_words(bias.reshape(self.words, self.lanes), self.acc_width)

    @property
    def fires(self) -> bool:
        """A spike-time bank follows (every weighted layer but the readout)."""
        return not self.layer.readout

    @property
    def shared_k(self) -> bool:
        return self.fires and self.layer.shared_k

    def memory_bits(self) -> dict:
        """Bits of each memory of the stage and of its spike-time bank."""
        word = self.acc_width * self.lanes
        bits = {"weights": self.weight_memory_bits, "accumulators": self.positions * self.words * word,
                "bias": self.words * word}
        if self.fires:
            k_bits = 0 if self.shared_k else self.layer.fan_out * unsigned_width(int(self.layer.k.max()))
            bits.update(k=k_bits, sorter=sorter_memory_bits(self.layer.fan_out, self.layer.ticks, self.spike_lanes,
                                                            self.positions))
        return bits

    def reach(self) -> np.ndarray:
        """Per input neuron, the output positions it reaches, (fan_in,)."""
        return np.ones(self.layer.fan_in, dtype=np.int64)

    def input_costs(self) -> np.ndarray:
        """Engine cycles a spike on each input costs, (fan_in,): a word per position reached."""
        return self.reach() * self.words

    @property
    def walked_ticks(self) -> int:
        """Ticks of the window the stage walks (its spike-time bank's; 0 for the readout)."""
        return self.layer.ticks

    def read_out_cycles(self) -> int:
        """Cycles the engine spends streaming its accumulators out: ``spike_lanes`` neurons per
        cycle into a spike-time bank, one per cycle into the readout."""
        return self.out_words * (self.lanes // self.spike_lanes) if self.fires else self.words * self.lanes

    def drain_cycles(self) -> int:
        """Cycles of its read-out the engine spends before it can take the next image's spikes.
        It reads a word a cycle into its drain FIFO while the FIFO has room (:attr:`drain_depth`
        words) and the bank or readout after it takes a word in ``read_out_cycles() / out_words``
        cycles; once the last word is read it is free. (An engine without the FIFO, an iCE40
        build's, waits for its last word to be taken: longer, so this stays a bound for both.)"""
        read_out = DenseGeometry.read_out_cycles(self)
        return max(self.out_words, read_out - self.drain_depth * (read_out // self.out_words))

    def overhead(self) -> int:
        """Most cycles the stage adds to an image beyond its input costs and walked ticks: one
        seek cycle per non-empty input tick, the read-out, the multiplier stages, handshakes;
        and, before a spike-time bank, its ladder."""
        cycles = self.layer.ticks_in + self.read_out_cycles() + self.multiplier_stages + self.handshake_cycles
        if self.fires:
            # and the word's register before the ladders take it part by part (EngineTiming's
            # registered_gather; counted for either timing, so the overhead stays a bound for both)
            cycles += ladder_steps(self.layer.ticks) + 4 + (self.spike_lanes < self.lanes)
        return cycles

    def describe(self) -> dict:
        """The stage's entries in the sidecar's ``layers`` list beyond the layer's own."""
        return {"weight_bits": self.layer.weight_bits, "accumulator_width": self.acc_width,
                "weight_memory_bits": self.weight_memory_bits, "spikes_per_cycle": self.spikes_per_cycle}


class ConvGeometry(DenseGeometry):
    """A convolution's engine at ``lanes``: the lanes run over output channels.

    Accumulator word ``(oy·OW + ox)·words + w`` holds channels ``w·lanes + l`` of one position;
    the weight rows are those of the ``(O, C·KH·KW)`` matrix (row ``tap·words + w``). A spike
    costs ``words`` cycles per output position it reaches (:attr:`row_taps`,
    :attr:`column_taps`); the accumulators leave a word per cycle, channel word by channel
    word, each over every position.
    """

    kind = "conv2d"
    limit_name = "its output channels"
    weight_latency = 1
    handshake_cycles = 12
    multiplier_stages = 0       # the conv engine's products are always registered once

    def __init__(self, layer, lanes: int = 1, spike_lanes: int | None = None):
        super().__init__(layer, lanes, spike_lanes)
        (_, h, w), (kh, kw), (_, out_h, out_w) = layer.in_shape, layer.kernel, layer.out_shape
        self.row_taps = axis_taps(h, kh, layer.stride[0], layer.padding[0], out_h)
        self.column_taps = axis_taps(w, kw, layer.stride[1], layer.padding[1], out_w)

    @staticmethod
    def lane_limit(layer) -> int:
        return layer.out_shape[0]

    @property
    def positions(self) -> int:
        return self.layer.out_shape[1] * self.layer.out_shape[2]

    def reach(self) -> np.ndarray:
        return _reach(self.row_taps, self.column_taps, self.layer.in_shape[0])

    def read_out_cycles(self) -> int:
        # as a dense engine's, and a cycle for each input spike that reaches no output
        return super().read_out_cycles() + int((self.reach() == 0).sum())

    def drain_cycles(self) -> int:
        # the conv engine's read-out registers wait for each word to be taken
        return DenseGeometry.read_out_cycles(self)

    def describe(self) -> dict:
        return {**super().describe(), **self.layer.window()}


class PoolGeometry:
    """A max-pool unit: no lanes, no weights; it visits every window an input spike is in
    (:attr:`row_windows`, :attr:`column_windows`) in the shadow of the next engine."""

    kind = "maxpool2d"
    lanes = 1
    spike_lanes = 1
    spikes_per_cycle = 1
    words = 0
    fires = False
    walked_ticks = 0
    keeps_neuron_order = False   # one tick's windows leave in input order (docs/rtl-interface.md)

    def __init__(self, layer, lanes: int = 1, spike_lanes: int | None = None):
        self.layer = layer
        (_, h, w), (_, out_h, out_w) = layer.in_shape, layer.out_shape
        self.row_windows = [[o for _, o in taps] for taps in
                            axis_taps(h, layer.kernel[0], layer.stride[0], layer.padding[0], out_h)]
        self.column_windows = [[o for _, o in taps] for taps in
                               axis_taps(w, layer.kernel[1], layer.stride[1], layer.padding[1], out_w)]

    @staticmethod
    def lane_limit(layer) -> int:
        return 1

    def memory_bits(self) -> dict:
        return {"fired": self.layer.fan_out}

    def reach(self) -> np.ndarray:
        """Per input neuron, the windows it is in, (fan_in,)."""
        return _reach(self.row_windows, self.column_windows, self.layer.in_shape[0])

    def input_costs(self) -> np.ndarray:
        return np.zeros(self.layer.fan_in, dtype=np.int64)

    def overhead(self) -> int:
        """Every window of every input spike (all of them, at most), a cycle per input in none."""
        reach = self.reach()
        return int(reach.sum()) + int((reach == 0).sum()) + 8

    def describe(self) -> dict:
        return {"weight_bits": None, "accumulator_width": None, "weight_memory_bits": 0, **self.layer.window()}


STAGE_GEOMETRY = {cls.kind: cls for cls in (DenseGeometry, ConvGeometry, PoolGeometry)}


def stage_geometry(layer, lanes: int = 1, spike_lanes: int | None = None, spikes_per_cycle: int = 1):
    """The geometry of ``layer``'s stage at ``lanes`` and ``spike_lanes`` (ladders of a
    spike-time bank: the largest divisor of the stage's lanes that divides it; ``None``: the
    lanes), taking ``spikes_per_cycle`` input spikes at once.

    The stage gets the fewest lanes that keep the words ``lanes`` would give it: a spike costs
    one cycle per word, so lanes past that (10 neurons at 8 lanes need only 5) are logic that
    buys no cycle."""
    cls = STAGE_GEOMETRY[layer.kind]
    limit = cls.lane_limit(layer)
    lanes = min(lanes, limit)
    if spikes_per_cycle == 1:
        return cls(layer, ceil_div(limit, ceil_div(limit, lanes)), spike_lanes)
    return cls(layer, lanes, spike_lanes, spikes_per_cycle)


class InputGeometry:
    """The input encoder: ``pixels_per_transfer`` pixels per transfer of the pixel stream, a
    256-entry tick table (one read port per pixel of a transfer) and a tick sorter with a bank
    per pixel of a transfer – or ``sorters = 2`` of them taking images in turn, so the next
    image's pixels come in while this one's spikes leave – or, with ``spikes_per_transfer``
    ``S > 1`` (for a first engine that takes ``S`` spikes a cycle), no sorter: each transfer's
    spiking pixels leave ``S`` at a time in pixel order, as they come (:class:`NetGeometry`
    decides; an engine takes its spikes in any order).

    Raises :class:`ValueError` unless ``pixels_per_transfer`` is an integer in ``1..`` the
    image's pixels.
    """

    def __init__(self, encoding, pixels_per_transfer: int = 1, sorters: int = 1, spikes_per_transfer: int = 1):
        self.encoding = encoding
        self.pixels_per_transfer = check_count(pixels_per_transfer, encoding.size, "pixels per transfer",
                                               "the image's pixels")
        self.transfers = ceil_div(encoding.size, self.pixels_per_transfer)
        if sorters not in (1, 2):
            raise ValueError(f"the input encoder has 1 or 2 tick sorters, got {sorters!r}")
        check_count(spikes_per_transfer, MAX_SPIKES_PER_CYCLE, "the encoder's spikes per transfer", "the most")
        self.spikes_per_transfer = spikes_per_transfer
        self.sorters = sorters if spikes_per_transfer == 1 else 0
        self.walked_ticks = encoding.ticks if self.sorters else 0

    @property
    def keeps_neuron_order(self) -> bool:
        """Spikes of one tick leave in increasing pixel order (one sorter bank)."""
        return self.pixels_per_transfer == 1 and bool(self.sorters)

    @property
    def keeps_tick_order(self) -> bool:
        """An image's spikes leave in tick order (through a tick sorter)."""
        return bool(self.sorters)

    def groups(self, spiked: np.ndarray, least: int = 1) -> int:
        """The groups of up to ``spikes_per_transfer`` spikes an encoder without a sorter sends for
        an image whose pixels ``spiked`` spike (none crosses a transfer), counting ``least`` for a
        transfer with no spike: with ``least = 1`` its cycles to send them (``end`` aside)."""
        per_transfer = np.bincount(np.asarray(spiked, dtype=np.int64) // self.pixels_per_transfer,
                                   minlength=self.transfers)
        return int(np.maximum(least, -(-per_transfer // self.spikes_per_transfer)).sum())

    @property
    def intake(self) -> int:
        """Cycles the pixel stream takes for one image, one transfer per cycle at best."""
        return self.transfers

    def memory_bits(self) -> dict:
        enc, per_transfer = self.encoding, self.pixels_per_transfer
        bits = {"table": 256 * unsigned_width(enc.ticks) * per_transfer}
        if self.sorters:
            bits["sorter"] = self.sorters * sorter_memory_bits(enc.size, enc.ticks, per_transfer)
        return bits

    def overhead(self) -> int:
        """A few handshakes (the intake is part of the event lower bound)."""
        return 4


def multi_issue_layer(net: TTFSNet) -> int | None:
    """The layer that may take several input spikes a cycle (its lanes asked for as that many times its
    fan-out): a dense one reading the input encoder alone, which sends them straight from the pixels."""
    readers = net.consumers(0)
    first = readers[0][0]
    alone = len(readers) == 1 and len(net.sources(first)) == 1
    return first if alone and net.layers[first].kind == "dense" else None


class NetGeometry:
    """Every stage of ``net``'s core at ``lanes``.

    Members
    -------
    lanes : int or tuple of int
        As asked: one number for every layer (``1..`` the largest fan-out), or one per layer with
        lanes – the weighted layers (dense, conv) in net order, :attr:`lane_layers`; max-pool
        stages have none – each ``1..`` that layer's limit. Each stage uses the fewest lanes that
        give it the words its lanes would (:func:`stage_geometry`).
    input : InputGeometry
        With ``pixels_per_transfer`` (``1..`` the input size).
    spike_lanes : int, tuple of int or None
        Ladders per spike-time bank asked for: one number (``1..`` the most lanes of any layer) or
        one per layer with lanes (``1..`` its lanes); ``None``: every bank has one per lane.
    layers : list
        One stage geometry per layer of ``net``.
    engines : list of int
        Indices of the layers with a weight memory (the engines a board may give other memories).
    buffers : list of SkipBuffer
        The graph's buffered edges (:class:`SkipBuffer`): a source read by several layers sends its
        spikes straight to the first and through a buffer to each other one.

    Raises :class:`ValueError` if ``lanes``, ``pixels_per_transfer`` or ``spike_lanes`` is out
    of range.
    """

    def __init__(self, net: TTFSNet, lanes: int = 1, pixels_per_transfer: int = 1, spike_lanes: int | None = None):
        self.net = net
        self.lane_layers = [layer.name for layer in net.layers if layer.has_weights]
        first = net.consumers(0)[0][0]
        self.multi_issue_layer = multi_issue_layer(net)
        limits = [(STAGE_GEOMETRY[layer.kind].lane_limit(layer), STAGE_GEOMETRY[layer.kind].limit_name)
                  for layer in net.layers if layer.has_weights]
        widest = (max(layer.fan_out for layer in net.layers), "the largest fan-out")
        if self.multi_issue_layer is not None:
            position = self.lane_layers.index(net.layers[first].name)
            limits[position] = (MAX_SPIKES_PER_CYCLE * limits[position][0],
                                f"{MAX_SPIKES_PER_CYCLE} times (input spikes a cycle) its fan-out")
            widest = max(widest, (limits[position][0], f"{MAX_SPIKES_PER_CYCLE} times (input spikes a cycle) the "
                                                       "first layer's fan-out"))
        if _is_sequence(lanes):
            self.lanes = self._per_layer(lanes, "lanes", limits)
        else:
            self.lanes = check_lanes(lanes, *widest)
        if _is_sequence(spike_lanes):
            spike_lanes = self._per_layer(spike_lanes, "spike lanes", [(n, "its lanes") for n in self._each(self.lanes)])
        elif spike_lanes is not None:
            check_count(spike_lanes, max(self._each(self.lanes)), "spike lanes", "the lanes")
        self.spike_lanes = spike_lanes
        lanes_of, spike_lanes_of = iter(self._each(self.lanes)), iter(self._each(spike_lanes))
        self.layers = []
        for index, layer in enumerate(net.layers):
            if not layer.has_weights:
                self.layers.append(stage_geometry(layer))
                continue
            asked = next(lanes_of)
            # lanes past the fan-out of the layer reading the input: whole fan-outs of spikes a cycle
            spikes = max(1, min(asked // layer.fan_out, MAX_SPIKES_PER_CYCLE)) if index == self.multi_issue_layer else 1
            self.layers.append(stage_geometry(layer, asked, next(spike_lanes_of), spikes))
        # An engine that pays one cycle per input spike keeps pace with the encoder's walk, so on a
        # stream the encoder's time to take the next image's pixels in is what limits it: two
        # sorters taking images in turn hide it. One that takes several a cycle takes them as the
        # encoder looks them up, with no sorter.
        first = self.layers[first]
        keeps_pace = bool(first.words) and int(first.input_costs().max()) <= 1
        self.input = InputGeometry(net.input, pixels_per_transfer, sorters=2 if keeps_pace else 1,
                                   spikes_per_transfer=first.spikes_per_cycle)
        self.engines = [i for i, layer in enumerate(net.layers) if layer.has_weights]
        self.buffers = [SkipBuffer(net, source, layer, position)
                        for source in range(len(net.layers)) for layer, position in net.consumers(source)[1:]]

    def _each(self, value) -> list:
        """``value`` (one number, ``None`` or one per layer with lanes) for each layer with lanes."""
        return list(value) if _is_sequence(value) else [value] * len(self.lane_layers)

    def _per_layer(self, values, name: str, limits: list) -> tuple:
        """``values``, one per layer with lanes, each checked against its layer's ``(limit, what it is)``."""
        if len(values) != len(limits):
            raise ValueError(f"{name} must be one number or one per layer with lanes: the net has {len(limits)} "
                             f"({', '.join(self.lane_layers)}), got {','.join(map(str, values))}")
        return tuple(check_count(value, limit, f"{name} of layer {layer!r}", what)
                     for layer, value, (limit, what) in zip(self.lane_layers, values, limits))

    @property
    def layer_lanes(self) -> list:
        return [stage.lanes for stage in self.layers]

    @property
    def words(self) -> list:
        return [stage.words for stage in self.layers]

    def input_costs(self) -> list:
        """Per layer, the engine cycles a spike on each of its inputs costs, (fan_in,) each."""
        return [stage.input_costs() for stage in self.layers]

    @property
    def walked_ticks(self) -> int:
        """``Σ T`` of the stages that walk their window (input encoder, dense and conv layers)."""
        return self.input.walked_ticks + sum(stage.walked_ticks for stage in self.layers)

    def overhead(self) -> int:
        return (self.input.overhead() + sum(stage.overhead() for stage in self.layers)
                + sum(buffer.overhead() for buffer in self.buffers))

    def memory_bits(self) -> dict:
        """Bits of every block-RAM-sized memory, by stage (``input`` and each layer's name; a layer's
        skip buffers under its name too)."""
        bits = {"input": self.input.memory_bits(), **{stage.layer.name: stage.memory_bits() for stage in self.layers}}
        for buffer in self.buffers:
            bits[buffer.layer.name][f"skip_{buffer.position}"] = buffer.memory_bits
        return bits


class SkipBuffer:
    """The buffer on a graph edge from ``source`` (0: the input encoder, ``j + 1``: layer ``j``)
    into input ``position`` of layer ``layer``: every spike event of one image and its ``end``
    (``depth``: the source's neurons + 1), so the source never waits for the consumer while the
    consumer's other inputs are still being made. Its events enter the layer before those of the
    layer's first input (:class:`~hdlgen.rtl_templates.graph.Join`)."""

    def __init__(self, net: TTFSNet, source: int, layer: int, position: int):
        self.source, self.layer, self.position = source, net.layers[layer], position
        self.index = layer
        self.depth = net.sizes[source] + 1
        self.width = unsigned_width(net.sizes[source] - 1) + unsigned_width(net.window(source)) + 1   # neuron, tick, end

    @property
    def memory_bits(self) -> int:
        return self.depth * self.width

    def overhead(self) -> int:
        """The buffer's read latency and the cycle the join spends on its ``end``."""
        return 4
