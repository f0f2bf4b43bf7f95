"""Event-driven convolution engine: each input spike updates the outputs of its receptive field."""

import numpy as np
from amaranth.hdl import Array, Assert, Assume, Const, Module, Mux, Signal, Value, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from hdlgen.geometry import ConvGeometry, ceil_div
from hdlgen.ttfs import unsigned_width

from .dense import WeightROM, accumulate_stage, weight_product
from .events import acc_word_layout, event_layout, times_constant
from .formal import anyconst, engine_properties, first_state, fsm_of, partial_sums_fit, stream_ports

__all__ = ["ConvEngine", "NeuronDecoder", "decoded_layout"]


def _reciprocal(divisor: int, limit: int) -> tuple:
    """``(m, s)`` with ``n // divisor == (n·m) >> s`` for every ``n`` in ``0..limit``, smallest ``s``
    (checked exhaustively, so no divider is built)."""
    n = np.arange(limit + 1, dtype=object)
    for shift in range(2 * max(limit, divisor).bit_length() + 2):
        m = ceil_div(1 << shift, divisor)
        if all((n * m) >> shift == n // divisor):
            return m, shift
    raise AssertionError(f"no reciprocal of {divisor} up to {limit}")  # 2·bits always suffices


def decoded_layout(shape, ticks: int) -> data.StructLayout:
    """A spike event on a ``(C, H, W)`` feature map with its neuron split: ``{channel, row,
    column, tick, end}``."""
    c, h, w = shape
    return data.StructLayout({"channel": unsigned(unsigned_width(c - 1)), "row": unsigned(unsigned_width(h - 1)),
                              "column": unsigned(unsigned_width(w - 1)),
                              "tick": unsigned(unsigned_width(ticks)), "end": unsigned(1)})


class NeuronDecoder(wiring.Component):
    """Split each event's feature-map neuron into ``(channel, row, column)``.

    Neurons are numbered ``(c·H + y)·W + x`` (PyTorch order). ``n // (H·W)`` and ``n // W`` are
    multiplications by a reciprocal and a shift, proven exact over the index range; the row and
    column follow by subtracting constant multiples (shift-adds). When ``H·W`` and ``W`` are
    powers of two this is wiring and the decoder passes events straight through (``latency``
    0). Otherwise the two multiplications (DSP blocks, slow) end at a register and the events
    queue in a 3-entry FIFO (``latency`` 2 cycles, one event per cycle); ``i.ready`` comes from
    a register (a count of free FIFO entries), so the consumer's ready does not reach the producer.

    Parameters
    ----------
    shape : tuple (C, H, W)
    ticks : int
        The events' window.

    Members
    -------
    i : In(stream.Signature(event_layout(C·H·W, ticks)))
    o : Out(stream.Signature(decoded_layout(shape, ticks)))
        The same events in the same order.
    """

    formal = frozenset()   # property kinds stated in elaborate (rtl_templates.formal)

    def __init__(self, shape, ticks: int):
        self.shape = tuple(int(v) for v in shape)
        if len(self.shape) != 3 or min(self.shape) < 1:
            raise ValueError(f"a feature map shape is (C, H, W) with each ≥ 1, got {shape!r}")
        c, h, w = self.shape
        self.latency = 0 if _power_of_two(h * w) and _power_of_two(w) else 2
        super().__init__({"i": In(stream.Signature(event_layout(c * h * w, ticks))),
                          "o": Out(stream.Signature(decoded_layout(self.shape, ticks)))})

    def elaborate(self, platform):
        m = Module()
        c, h, w = self.shape
        limit = c * h * w - 1
        plane_m, plane_s = _reciprocal(h * w, limit)
        line_m, line_s = _reciprocal(w, limit)
        payload = self.i.payload
        # the quotients: channel = n // (H·W), line = n // W = channel·H + row
        channel, line = (payload.neuron * plane_m) >> plane_s, (payload.neuron * line_m) >> line_s
        if self.latency == 0:
            neuron, tick, end = payload.neuron, payload.tick, payload.end
            m.d.comb += [self.o.valid.eq(self.i.valid), self.i.ready.eq(self.o.ready)]
            decoded = self.o.payload
        else:
            take = self.i.valid & self.i.ready
            valid = Signal()
            neuron, tick, end = Signal.like(payload.neuron), Signal.like(payload.tick), Signal()
            channel_q = Signal(range(c), name="channel_q")
            line_q = Signal(range(c * h), name="line_q")
            m.d.sync += [valid.eq(take), neuron.eq(payload.neuron), tick.eq(payload.tick), end.eq(payload.end),
                         channel_q.eq(channel), line_q.eq(line)]
            channel, line = channel_q, line_q
            depth = 3   # events in flight: the register, the FIFO write, the FIFO read
            m.submodules.queue = queue = SyncFIFO(width=self.o.payload.shape().size, depth=depth)
            decoded = Signal(self.o.payload.shape())
            free = Signal(range(depth + 1), init=depth)
            m.d.comb += [queue.w_en.eq(valid), queue.w_data.eq(decoded), self.i.ready.eq(free != 0),
                         self.o.valid.eq(queue.r_rdy), self.o.payload.eq(queue.r_data),
                         queue.r_en.eq(self.o.ready)]
            m.d.sync += free.eq(free - take + (self.o.valid & self.o.ready))
        m.d.comb += [decoded.channel.eq(channel), decoded.row.eq(line - times_constant(channel, h)),
                     decoded.column.eq(neuron - times_constant(line, w)), decoded.tick.eq(tick),
                     decoded.end.eq(end)]
        if self.formal:
            stream_ports(m, self)
        return m


def _power_of_two(n: int) -> bool:
    return n == 1 << ceil_log2(n)


class ConvEngine(wiring.Component):
    """Accumulate a convolution ``A = B + conv(q)`` spike by spike, then stream ``A`` out in neuron order.

    An input spike ``(c, y, x, τ)`` with ``q = T_in − τ`` adds ``W[o, c, ky, kx]·q`` to
    ``A[o, oy, ox]`` for every kernel tap that reaches an output position
    (``y + pad_y − ky = oy·stride_y`` with ``0 ≤ oy < OH``, the same for ``x``) and every output
    channel ``o``. Only reaching taps are visited (per-row and per-column tap tables), and each
    visit updates ``lanes`` output channels at once: a spike reaching ``P`` positions costs
    ``P·ceil(O/lanes)`` cycles, in the dense engine's 4-stage pipeline (read weight row →
    register it, read the accumulator → multiply, register the accumulator → add, write back;
    see :func:`~hdlgen.rtl_templates.dense.accumulate_stage` for why taps hitting one word back
    to back need no stall).

    Accumulators live in block RAM, word ``(oy·OW + ox)·words + w`` holding channels
    ``w·lanes + l`` of one position; weights in a :class:`~hdlgen.rtl_templates.dense.WeightROM`
    of the ``(O, C·KH·KW)`` matrix (:class:`~hdlgen.geometry.ConvGeometry`). On ``end`` the pipeline
    drains and the accumulator words are streamed out one per cycle, channel word ``w`` by
    channel word, each over the positions ``oy·OW + ox`` in order (the spike-time bank takes a
    word per cycle), each registered after the block RAM and reset to the bias behind its read.
    After reset the engine first writes the biases (``OH·OW·words`` cycles).

    Parameters
    ----------
    geometry : ConvGeometry
        The layer at its lanes (output channels updated per cycle, ``1..O``; the geometry checks
        them), its tap tables, weight rows and bias words.

    Members
    -------
    i : In(stream.Signature(event_layout(fan_in, ticks_in)))
        Input spikes of one image (any order), then ``end``.
    o : Out(stream.Signature(acc_word_layout(acc_width, lanes)))
        The image's ``OH·OW·words`` accumulator words in that order (lane ``l`` of channel word
        ``w`` holds channel ``w·lanes + l``, the bias 0 past the channels), ``last`` on the final one.

    Attributes
    ----------
    weights : component or None
        The weight memory, as a :class:`~hdlgen.rtl_templates.dense.DenseEngine`'s (latency 1).
    products_in_logic : bool
        As a :class:`~hdlgen.rtl_templates.dense.DenseEngine`'s.
    """

    submodule_name = "engine"

    formal = frozenset()   # property kinds stated in elaborate (rtl_templates.formal)

    def __init__(self, geometry: ConvGeometry):
        if not isinstance(geometry, ConvGeometry):
            raise TypeError(f"ConvEngine needs a ConvGeometry, got {type(geometry).__name__}")
        self.geometry = geometry
        self.layer, self.lanes, self.words, self.acc_width = geometry.layer, geometry.lanes, geometry.words, geometry.acc_width
        self.positions = geometry.positions
        self.weight_rows = geometry.weight_row_count
        self.weights = None
        self.products_in_logic = False
        super().__init__({
            "i": In(stream.Signature(event_layout(self.layer.fan_in, self.layer.ticks_in))),
            "o": Out(stream.Signature(acc_word_layout(self.acc_width, self.lanes))),
        })

    def _tap_tables(self, taps, weight_step, acc_step):
        """Per coordinate: the tap count, and per tap its weight-row and accumulator-word offsets."""
        width = max(1, max(len(t) for t in taps))
        counts = Array(Const(len(t), range(width + 1)) for t in taps)
        padded = [t + [(0, 0)] * (width - len(t)) for t in taps]
        weight_rows = Array(Array(Const(k * weight_step, range(self.weight_rows)) for k, _ in t)
                            for t in padded)
        acc_words = Array(Array(Const(o * acc_step, range(self.positions * self.words)) for _, o in t)
                          for t in padded)
        return counts, weight_rows, acc_words, width

    def elaborate(self, platform):
        m = Module()
        layer, lanes, words = self.layer, self.lanes, self.words
        channels, out_h, out_w = layer.out_shape
        kh, kw = layer.weight.shape[2:]
        acc_depth = self.positions * words
        bias_init = self.geometry.bias_words()
        word_layout = data.ArrayLayout(signed(self.acc_width), lanes)
        m.submodules.weights = weights = self.weights if self.weights is not None else WeightROM(self.geometry)
        m.submodules.accumulators = accumulators = Memory(
            shape=unsigned(word_layout.size), depth=acc_depth, init=bias_init * self.positions)
        m.submodules.bias = bias = Memory(shape=unsigned(word_layout.size), depth=words, init=bias_init)
        acc_write = accumulators.write_port()
        acc_read = accumulators.read_port(transparent_for=(acc_write,))
        bias_read = bias.read_port()
        acc_now = word_layout(acc_read.data)
        m.submodules.decoder = decoder = NeuronDecoder(layer.in_shape, layer.ticks_in)
        wiring.connect(m, wiring.flipped(self.i), decoder.i)
        spike = decoder.o

        row_count, row_weight, row_acc, row_width = self._tap_tables(self.geometry.row_taps, kw * words, out_w * words)
        col_count, col_weight, col_acc, col_width = self._tap_tables(self.geometry.column_taps, words, words)

        # decoded spike, waiting for the sequencer: channel's first weight row, row/column, q
        pending, pending_end = Signal(), Signal()
        pending_base = Signal(range(layer.in_shape[0] * kh * kw * words))
        pending_y, pending_x = Signal(range(layer.in_shape[1])), Signal(range(layer.in_shape[2]))
        pending_q = Signal(range(layer.ticks_in + 1))
        # sequencer: tap (row i, column j) and channel word ``word`` of the current spike
        busy = Signal()
        base = Signal.like(pending_base)
        y, x, q = Signal.like(pending_y), Signal.like(pending_x), Signal.like(pending_q)
        tap_row, tap_col = Signal(range(row_width)), Signal(range(col_width))
        word = Signal(range(words))
        last_row, last_col, last_word = tap_row + 1 == row_count[y], tap_col + 1 == col_count[x], word == words - 1
        last_step = busy & last_row & last_col & last_word
        weight_row = Signal(range(self.weight_rows))
        acc_word = Signal(range(acc_depth))
        m.d.comb += [weight_row.eq(base + row_weight[y][tap_row] + col_weight[x][tap_col] + word),
                     acc_word.eq(row_acc[y][tap_row] + col_acc[x][tap_col] + word)]

        # stage 1: weight row arrives (registered), read the accumulator; stage 2: multiply,
        # register the accumulator word; stage 3: add and write back – as in the dense engine
        s1_valid, s1_word, s1_q = Signal(), Signal(range(acc_depth)), Signal.like(q)
        weight_data = Signal(weights.layout)
        s2_valid, s2_word, s2_q = Signal(), Signal(range(acc_depth)), Signal.like(q)
        s3_valid, s3_word = Signal(), Signal(range(acc_depth))
        s3_product = Array(Signal(signed(layer.weight_bits + q.shape().width + 1), name=f"product{l}")
                           for l in range(lanes))
        m.d.comb += [weights.addr.eq(weight_row), weights.en.eq(1)]
        m.d.sync += [s1_valid.eq(busy), s1_word.eq(acc_word), s1_q.eq(q), weight_data.eq(weights.data),
                     s2_valid.eq(s1_valid), s2_word.eq(s1_word), s2_q.eq(s1_q),
                     s3_valid.eq(s2_valid), s3_word.eq(s2_word)]
        m.d.sync += [s3_product[l].eq(weight_product(weight_data[l], s2_q, self.products_in_logic))
                     for l in range(lanes)]
        summed = Signal(word_layout)
        held_enable = Signal()   # low when the read-out stalls (see "drain")
        m.d.comb += held_enable.eq(1)
        s3_acc = accumulate_stage(m, acc_now, summed, s1_word, (s2_valid, s2_word), held_enable)
        m.d.comb += [summed[l].eq(s3_acc[l] + s3_product[l]) for l in range(lanes)]

        # bias writes (after reset, and at each word's last read-out): issued one cycle ahead,
        # written when the bias ROM's data is there
        reset_pending, reset_addr = Signal(), Signal(range(acc_depth))
        m.d.sync += reset_pending.eq(0)
        with m.If(s3_valid):
            m.d.comb += [acc_write.addr.eq(s3_word), acc_write.data.eq(summed), acc_write.en.eq(1)]
        with m.Elif(reset_pending):
            m.d.comb += [acc_write.addr.eq(reset_addr), acc_write.data.eq(bias_read.data), acc_write.en.eq(1)]
        m.d.comb += [acc_read.addr.eq(s1_word), acc_read.en.eq(1)]

        # the sequencer takes the pending spike when idle or in its last step
        take_pending = pending & ~pending_end & (~busy | last_step)
        with m.If(take_pending):
            reaches = (row_count[pending_y] != 0) & (col_count[pending_x] != 0)
            m.d.sync += [busy.eq(reaches), base.eq(pending_base), y.eq(pending_y), x.eq(pending_x),
                         q.eq(pending_q), tap_row.eq(0), tap_col.eq(0), word.eq(0), pending.eq(0)]
        with m.Elif(busy):
            m.d.sync += word.eq(word + 1)
            with m.If(last_word):
                m.d.sync += [word.eq(0), tap_col.eq(tap_col + 1)]
                with m.If(last_col):
                    m.d.sync += [tap_col.eq(0), tap_row.eq(tap_row + 1)]
                    with m.If(last_row):
                        m.d.sync += busy.eq(0)

        # drain counters: word ``(position, channel word)``, channel word by channel word
        drain_word, drain_position = Signal(range(words)), Signal(range(self.positions))
        drain_addr, drained = Signal(range(acc_depth)), Signal()
        # read-out pipeline: the block RAM's output (``out_*``), then ``s3_acc`` (``held_*``), a register
        out_valid, out_last = Signal(), Signal()
        held_valid, held_last = Signal(), Signal()
        m.d.comb += [self.o.payload.acc.eq(s3_acc), self.o.payload.last.eq(held_last), self.o.valid.eq(held_valid)]

        with m.FSM(name="phase", init=first_state(self, ("overflow",), "accumulate")):
            with m.State("clear"):
                m.d.comb += bias_read.addr.eq(drain_word)
                m.d.sync += [reset_pending.eq(1), reset_addr.eq(drain_addr), drain_addr.eq(drain_addr + 1),
                             drain_word.eq(drain_word + 1)]
                with m.If(drain_word == words - 1):
                    m.d.sync += drain_word.eq(0)
                with m.If(drain_addr == acc_depth - 1):
                    m.d.sync += [drain_addr.eq(0), drain_word.eq(0)]
                    m.next = "accumulate"
            with m.State("accumulate"):
                m.d.comb += spike.ready.eq(~pending | take_pending)
                with m.If(spike.valid & spike.ready):
                    m.d.sync += [pending.eq(1), pending_end.eq(spike.payload.end),
                                 pending_base.eq(times_constant(spike.payload.channel, kh * kw * words)),
                                 pending_y.eq(spike.payload.row), pending_x.eq(spike.payload.column),
                                 pending_q.eq(layer.ticks_in - spike.payload.tick)]
                with m.If(pending & pending_end & ~busy):
                    m.d.sync += pending.eq(0)
                    m.next = "flush"
            with m.State("flush"):
                with m.If(~s1_valid & ~s2_valid & ~s3_valid):
                    m.next = "drain"
            with m.State("drain"):
                # both read-out registers advance when the held word leaves; each word is read
                # once and reset to the bias behind its read
                advance = ~held_valid | self.o.ready
                m.d.comb += [acc_read.addr.eq(drain_addr), acc_read.en.eq(advance),
                             bias_read.addr.eq(drain_word), held_enable.eq(advance)]
                with m.If(advance):
                    m.d.sync += [held_valid.eq(out_valid), held_last.eq(out_last), out_valid.eq(~drained),
                                 out_last.eq((drain_word == words - 1) & (drain_position == self.positions - 1))]
                    with m.If(~drained):
                        m.d.sync += [reset_pending.eq(1), reset_addr.eq(drain_addr),
                                     drain_position.eq(drain_position + 1), drain_addr.eq(drain_addr + words)]
                        with m.If(drain_position == self.positions - 1):
                            m.d.sync += [drain_position.eq(0), drain_word.eq(drain_word + 1),
                                         drain_addr.eq(drain_word + 1)]
                            with m.If(drain_word == words - 1):
                                m.d.sync += drained.eq(1)
                with m.If(held_valid & self.o.ready & held_last):
                    m.d.sync += [out_valid.eq(0), held_valid.eq(0), drained.eq(0), drain_word.eq(0),
                                 drain_addr.eq(0), drain_position.eq(0)]
                    m.next = "accumulate"
        if self.formal:
            # behind a decoder that is wiring, overflow is proved by invariants and an argument
            # (_overflow_invariants); behind a pipelined one it is a bounded check (hdlgen.prove)
            argued = "overflow" in self.formal and decoder.latency == 0
            seen = engine_properties(m, self, s3_valid, summed, s3_acc, s3_product, check_adds=not argued)
            if argued:
                self._overflow_invariants(
                    m, seen, spike=spike, pending=(pending, pending_end, pending_base, pending_y, pending_x, pending_q),
                    sequencer=(busy, take_pending, base, y, x, q, tap_row, tap_col, word, acc_word),
                    taps=(row_count, col_count), pipeline=[(s1_valid, s1_word, s1_q), (s2_valid, s2_word, s2_q),
                                                           (s3_valid, s3_word, None)],
                    weight_data=weight_data, products=s3_product, held_acc=s3_acc, accumulators=accumulators,
                    write=acc_write, reset=(reset_pending, reset_addr),
                    drain=(drain_word, drain_position, drain_addr, drained, out_valid, out_last, held_valid,
                           held_last))
            if "stream" in self.formal:
                # what makes the stream rules inductive: the read-out registers hold words only in
                # the drain (outside it ``s3_acc`` follows the adds)
                m.d.comb += Assert(fsm_of(m, "phase").ongoing("drain") | ~(out_valid | held_valid),
                                   "stream invariant: no word read out outside the drain")
        return m

    def _overflow_invariants(self, m, seen, *, spike, pending, sequencer, taps, pipeline, weight_data, products,
                             held_acc, accumulators, write, reset, drain):
        """No accumulator overflows, by k-induction over invariants for one accumulator word,
        ``star`` (position ``(oy*, ox*)``, channel word ``w*``: any, the solver picks them), and an
        argument – the dense engine's (:meth:`~hdlgen.rtl_templates.dense.DenseEngine._overflow_invariants`)
        over the word's receptive field.

        An input ``(c, y, x)`` reaches the word's position through one kernel tap at most, so it
        adds to the word once per spike. Ghost sets hold the inputs whose visit to the word the
        sequencer has issued this image (``given``) and whose product has been written
        (``written``). Proved: the sequencer issues the visit of an input not in ``given`` (the
        decoder's split is exact; each spike carries its channel in ghost registers beside the
        pending and current spike and the pipeline's stages; the current spike's input is in
        ``given`` exactly when its taps have passed the word's); a write to the word adds
        ``W[o, c, ky, kx]·q`` (``q`` in ``1..T_in``, the weights checked in the stage register
        against the layer's for ``ky = y + pad − oy*·stride``, then carried beside the multiplier) of
        an input in ``given`` and not in ``written`` (the pipeline's visits to the word are of
        distinct inputs) to the word as it is; and the drain writes the word's bias before an
        image's first visit (its counters say which words are read and reset). So the word is
        always ``B_o + Σ_{j∈S} W_o(j)·q_j`` modulo its width for a set ``S`` of distinct inputs of its
        receptive field, and every such sum lies between the bounds :func:`~.formal.partial_sums_fit`
        asserts fit the accumulator."""
        layer, lanes, words = self.layer, self.lanes, self.words
        channels_in, height, width = layer.in_shape
        channels, out_h, out_w = layer.out_shape
        kh, kw = layer.kernel
        (stride_y, stride_x), (pad_y, pad_x) = layer.stride, layer.padding
        positions, ticks, acc_depth = self.positions, layer.ticks_in, self.positions * words
        busy, take_pending, base, y, x, q, tap_row, tap_col, word, acc_word = sequencer
        pending_valid, pending_end, pending_base, pending_y, pending_x, pending_q = pending
        row_count, col_count = taps
        reset_pending, reset_addr = reset
        drain_word, drain_position, drain_addr, drained, out_valid, out_last, held_valid, held_last = drain

        star_oy = anyconst(m, self, range(max(out_h, 2)), "oy")
        star_ox = anyconst(m, self, range(max(out_w, 2)), "ox")
        star_w = anyconst(m, self, range(max(words, 2)), "word")
        m.d.comb += Assume((star_oy < out_h) & (star_ox < out_w) & (star_w < words))
        star_position = star_oy * out_w + star_ox
        star = Signal(range(acc_depth), name="star_addr")
        m.d.comb += star.eq(star_position * words + star_w)
        phase = fsm_of(m, "phase")
        accumulate, flush, draining = (phase.ongoing(state) for state in ("accumulate", "flush", "drain"))
        m.d.comb += Assert(accumulate | flush | draining, "overflow invariant: the clear is over")

        # the layer's numbers, output channels padded to the lanes' words
        weight = np.zeros((words * lanes, channels_in, kh, kw), dtype=np.int64)
        weight[:channels] = layer.weight
        bias = np.zeros(words * lanes, dtype=np.int64)
        bias[:channels] = layer.bias
        # per accumulator word (position, channel word) and lane: the bias and the sum of every input's
        # lowest and highest product over the inputs the position's window reaches
        low, high = np.zeros((acc_depth, lanes), dtype=np.int64), np.zeros((acc_depth, lanes), dtype=np.int64)
        for oy in range(out_h):
            for ox in range(out_w):
                window = np.zeros(words * lanes, dtype=np.int64), np.zeros(words * lanes, dtype=np.int64)
                for ky in range(kh):
                    for kx in range(kw):
                        if 0 <= oy * stride_y - pad_y + ky < height and 0 <= ox * stride_x - pad_x + kx < width:
                            products_max = weight[:, :, ky, kx] * ticks
                            window[0][:] += np.minimum(products_max, 0).sum(axis=1)
                            window[1][:] += np.maximum(products_max, 0).sum(axis=1)
                at = (oy * out_w + ox) * words
                low[at:at + words] = (bias + window[0]).reshape(words, lanes)
                high[at:at + words] = (bias + window[1]).reshape(words, lanes)
        partial_sums_fit(m, [Array(Const(int(v)) for v in low[:, l])[star] for l in range(lanes)],
                         [Array(Const(int(v)) for v in high[:, l])[star] for l in range(lanes)], self.acc_width)

        def neuron(c, row, column):
            return (c * height + row) * width + column

        def in_range(c, row, column):
            return (c < channels_in) & (row < height) & (column < width)

        # the decoder (wiring here) splits each input neuron exactly
        take = self.i.valid & self.i.ready & ~self.i.payload.end
        decoded = spike.payload
        m.d.comb += Assert(~take | (in_range(decoded.channel, decoded.row, decoded.column)
                                    & (neuron(decoded.channel, decoded.row, decoded.column) == self.i.payload.neuron)),
                           "overflow invariant: the decoder's split")

        # ghost channels beside the pending and current spike; (channel, row, column) and q beside the stages
        pending_c, busy_c = Signal(range(channels_in), name="ghost_pending_c"), Signal(range(channels_in), name="ghost_c")
        with m.If(spike.valid & spike.ready):
            m.d.sync += pending_c.eq(decoded.channel)
        with m.If(take_pending):
            m.d.sync += busy_c.eq(pending_c)
        stages = [(busy, acc_word, busy_c, y, x, q)]
        for n, (valid, addr, q_n) in enumerate(pipeline, 1):
            ghosts = [Signal.like(v, name=f"ghost_s{n}_{what}") for v, what in zip(stages[-1][2:5], "cyx")]
            m.d.sync += [g.eq(v) for g, v in zip(ghosts, stages[-1][2:5])]
            if q_n is None:    # the write stage's q (its product is there already)
                q_n = Signal.like(q, name=f"ghost_s{n}_q")
                m.d.sync += q_n.eq(stages[-1][5])
            stages.append((valid, addr, *ghosts, q_n))

        # the sets of inputs the word has been visited by (issued) and given the product of (written)
        given, written = Signal(layer.fan_in, name="ghost_given"), Signal(layer.fan_in, name="ghost_written")
        busy_j, pending_j = neuron(busy_c, y, x), neuron(pending_c, pending_y, pending_x)
        write_j = neuron(*stages[-1][2:5])
        issue_star = busy & (acc_word == star)
        to_star = pipeline[-1][0] & (pipeline[-1][1] == star)
        reset_star = ~pipeline[-1][0] & reset_pending & (reset_addr == star)   # the write port's priority
        with m.If(issue_star):
            m.d.sync += given.bit_select(busy_j, 1).eq(1)
        with m.Elif(reset_star):
            m.d.sync += given.eq(0)
        with m.If(to_star):
            m.d.sync += written.bit_select(write_j, 1).eq(1)
        with m.Elif(reset_star):
            m.d.sync += written.eq(0)
        m.d.comb += Assert(~to_star | ~written.bit_select(write_j, 1),
                           "overflow: a write adds the product of an input not yet added")
        m.d.comb += Assert((written & ~given) == 0, "overflow invariant: written inputs were issued")

        # the current spike: its taps in range, and its input in ``given`` once its taps passed the word's
        def star_taps(axis_taps, out, star_out):
            most = max(1, max(len(t) for t in axis_taps))
            index = [[next((i for i, (_, o) in enumerate(t) if o == target), most) for target in range(max(out, 2))]
                     for t in axis_taps]
            return Array(Array(Const(i, range(most + 1)) for i in row) for row in index), most
        row_star, rows_most = star_taps(self.geometry.row_taps, out_h, star_oy)
        col_star, cols_most = star_taps(self.geometry.column_taps, out_w, star_ox)
        star_row, star_col = row_star[y][star_oy], col_star[x][star_ox]
        passed = ((star_row != rows_most) & (star_col != cols_most)
                  & ((tap_row > star_row) | ((tap_row == star_row) & ((tap_col > star_col)
                                                                        | ((tap_col == star_col) & (word > star_w))))))
        spike_rows = channels_in * kh * kw * words
        m.d.comb += Assert(~busy | (in_range(busy_c, y, x) & (base == busy_c * (spike_rows // channels_in))
                                    & (tap_row < row_count[y]) & (tap_col < col_count[x]) & (word < words)
                                    & (q >= 1) & (q <= ticks) & (given.bit_select(busy_j, 1) == passed)),
                           "overflow invariant: the current spike")
        waiting = pending_valid & ~pending_end
        m.d.comb += Assert(~waiting | (in_range(pending_c, pending_y, pending_x)
                                       & (pending_base == pending_c * (spike_rows // channels_in))
                                       & (pending_q >= 1) & (pending_q <= ticks) & ~given.bit_select(pending_j, 1)
                                       & ~(busy & (busy_j == pending_j))),
                           "overflow invariant: the pending spike")
        # an image's inputs: seen, until its end is taken (then no input comes before the drain)
        open_image = accumulate & ~(pending_valid & pending_end)
        m.d.comb += Assert(~open_image | ((~busy | seen.bit_select(busy_j, 1)) & (~waiting | seen.bit_select(pending_j, 1))
                                          & ((given & ~seen) == 0)),
                           "overflow invariant: the inputs in flight were seen")
        m.d.comb += Assert(open_image | (seen == 0), "overflow invariant: an image's inputs close with its end")
        m.d.comb += Assert(accumulate | ~(busy | pending_valid), "overflow invariant: no spike past the end")

        # the stages: visits to the word are of inputs in ``given``, not yet written, distinct
        for n, (valid, addr, c_n, y_n, x_n, q_n) in enumerate(stages[1:], 1):
            j_n = neuron(c_n, y_n, x_n)
            m.d.comb += Assert(~valid | (in_range(c_n, y_n, x_n) & (q_n >= 1) & (q_n <= ticks) & ~draining
                                         & ((addr != star) | (given.bit_select(j_n, 1)
                                                              & ~written.bit_select(j_n, 1)))),
                               "overflow invariant: a visit in the pipeline")
            for later_valid, later_addr, *later in stages[n + 1:]:
                m.d.comb += Assert(~(valid & later_valid & (addr == star) & (later_addr == star))
                                   | (j_n != neuron(*later[:3])), "overflow invariant: one visit per input")

        # the weights at the multiplier are the layer's; the product is W·q; the add starts from the word
        _, s2_addr, c2, y2, x2, _ = stages[2]
        ky, kx = y2 + pad_y - star_oy * stride_y, x2 + pad_x - star_ox * stride_x
        in_kernel = (ky >= 0) & (ky < kh) & (kx >= 0) & (kx < kw)
        tap = ((star_w * channels_in + c2) * kh + ky[:max(1, (kh - 1).bit_length())]) * kw \
            + kx[:max(1, (kw - 1).bit_length())]
        s3_q = stages[3][5]
        read = accumulators.read_port(domain="comb")
        m.d.comb += read.addr.eq(star)
        m.d.comb += Assert(~to_star | (Value.cast(held_acc) == read.data),
                           "overflow invariant: the add stage starts from the word")
        word_layout = data.ArrayLayout(signed(self.acc_width), lanes)
        for l in range(lanes):
            table = Array(Const(int(v)) for v in weight[l::lanes].reshape(-1))
            expected = Mux(in_kernel, table[tap], 0)
            m.d.comb += Assert(~(pipeline[1][0] & (s2_addr == star)) | (weight_data[l] == expected),
                               "overflow invariant: the weight row")
            carried = Signal.like(weight_data[l], name=f"ghost_weight_{l}")
            m.d.sync += carried.eq(weight_data[l])
            m.d.comb += Assert(~to_star | (products[l] == carried * s3_q), "overflow invariant: the product")
            m.d.comb += Assert(~reset_star | (word_layout(write.data)[l] == Array(Const(int(v)) for v in bias[l::lanes])[star_w]),
                               "overflow invariant: the reset writes the bias")

        # the drain: words read in the order (channel word, position); each reset a cycle after its read
        order = Mux(drained, acc_depth, drain_word * positions + drain_position)
        m.d.comb += Assert(draining | ((drain_word == 0) & (drain_position == 0) & (drain_addr == 0) & ~drained
                                       & ~reset_pending & ~out_valid & ~held_valid),
                           "overflow invariant: no drain outside the drain")
        previous = Mux(drained, acc_depth - 1,
                       Mux(drain_position == 0, (positions - 1) * words + drain_word - 1,
                           (drain_position - 1) * words + drain_word))
        m.d.comb += Assert(~draining | (Mux(drained, drain_position == 0,
                                            (drain_position < positions) & (drain_word < words)
                                            & (drain_addr == drain_position * words + drain_word))
                                        & (~reset_pending | ((order >= 1) & (reset_addr == previous)))
                                        & (~(out_valid & out_last) | drained)
                                        & (~(held_valid & held_last) | (drained & ~reset_pending))),
                           "overflow invariant: the drain's counters")
        done = star_w * positions + star_position < order - reset_pending
        m.d.comb += Assert(~(draining & done) | ((given == 0) & (written == 0)),
                           "overflow invariant: a reset word holds its bias")
