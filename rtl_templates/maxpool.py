"""Max-pool of spikes: the first spike of each window passes, later ones are dropped."""

from amaranth.hdl import Array, Assert, Assume, Cat, Const, Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from hdlgen.geometry import PoolGeometry

from .conv import NeuronDecoder
from .events import event_layout, skid_buffer, times_constant
from .formal import anyconst, first_state, fsm_of, image_tracker, once_per_image, stream_ports

__all__ = ["MaxPoolUnit"]

# the max-pool property counts images modulo 2**IMAGE_BITS (rtl_templates.formal.image_tracker)
IMAGE_BITS = 3


class MaxPoolUnit(wiring.Component):
    """Pass the earliest spike of every pooling window (``q = max(window)`` in time-to-first-spike).

    An input spike ``(c, y, x, τ)`` belongs to the windows ``(c, oy, ox)`` with
    ``0 ≤ y + pad_y − oy·stride_y < KH`` (the same for ``x``); windows overlap when the stride
    is below the kernel. The unit visits those windows one per cycle (per-row and per-column
    tables of the first window and the count, so uncovered border pixels cost no window
    cycles) and keeps a fired bit per window in block RAM: a window not yet fired emits
    ``(window, τ)`` and is marked. Inputs arrive in tick order, so the first spike to reach a
    window is its earliest; ties within one tick go to whichever arrives first, which fires the
    window at the same tick. Outputs keep the tick order of the inputs, but within one tick they
    follow the input order, not window order (the next layer does not depend on the order
    within a tick; docs/rtl-interface.md).

    The read of a window's bit and its write are one cycle apart; the read port is transparent,
    so back-to-back visits of one window see the new bit. Events leave through a skid buffer
    (one cycle later), and a visit advances whenever the buffer has room, whether its window
    emits or not: neither the fired bit's block RAM output nor ``o.ready`` reaches the
    sequencer. The input's neurons are split into ``(c, y, x)`` by a :class:`NeuronDecoder`
    (0 or 2 cycles). After ``end`` passes on, the bits are
    cleared (one window per cycle) while the next stage works; after reset they are cleared first.

    Parameters
    ----------
    geometry : PoolGeometry
        The layer and its per-row and per-column window tables.

    Members
    -------
    i : In(stream.Signature(event_layout(fan_in, ticks)))
        Input spikes of one image in tick order, then ``end``.
    o : Out(stream.Signature(event_layout(fan_out, ticks)))
        The windows' first spikes in tick order, then ``end``.
    """

    submodule_name = "pool"

    formal = frozenset()   # property kinds stated in elaborate (rtl_templates.formal)

    def __init__(self, geometry: PoolGeometry):
        if not isinstance(geometry, PoolGeometry):
            raise TypeError(f"MaxPoolUnit needs a PoolGeometry, got {type(geometry).__name__}")
        self.geometry = geometry
        self.layer = layer = geometry.layer
        self.row_windows, self.column_windows = geometry.row_windows, geometry.column_windows
        super().__init__({
            "i": In(stream.Signature(event_layout(layer.fan_in, layer.ticks))),
            "o": Out(stream.Signature(event_layout(layer.fan_out, layer.ticks))),
        })

    def elaborate(self, platform):
        m = Module()
        layer = self.layer
        fan_out = layer.fan_out
        _, out_h, out_w = layer.out_shape
        m.submodules.fired = fired = Memory(shape=1, depth=fan_out, init=[])
        fired_write = fired.write_port()
        fired_read = fired.read_port(transparent_for=(fired_write,))
        m.submodules.decoder = decoder = NeuronDecoder(layer.in_shape, layer.ticks)
        wiring.connect(m, wiring.flipped(self.i), decoder.i)
        spike = decoder.o

        # per input row/column: first window offset and how many windows (a contiguous range)
        row_count = Array(Const(len(ws), range(layer.kernel[0] + 1)) for ws in self.row_windows)
        row_first = Array(Const(min(ws, default=0) * out_w, range(fan_out)) for ws in self.row_windows)
        col_count = Array(Const(len(ws), range(layer.kernel[1] + 1)) for ws in self.column_windows)
        col_first = Array(Const(min(ws, default=0), range(out_w)) for ws in self.column_windows)

        window_shape = range(fan_out)
        tick_shape = self.i.payload.tick.shape()
        # the decoded input event, waiting for the sequencer
        pending, pending_end = Signal(), Signal()
        pending_base = Signal(window_shape)
        pending_y, pending_x = Signal(range(layer.in_shape[1])), Signal(range(layer.in_shape[2]))
        pending_tick = Signal(tick_shape)
        # sequencer (stage 1): the window whose bit is read now
        busy, s1_end, closing = Signal(), Signal(), Signal()
        window, row_start = Signal(window_shape), Signal(window_shape)
        rows, cols = Signal(range(layer.kernel[0] + 1)), Signal(range(layer.kernel[1] + 1))
        tap_row, tap_col = Signal.like(rows), Signal.like(cols)
        tick = Signal(tick_shape)
        # stage 2: the window's bit has arrived; emit if it was not fired
        s2_valid, s2_end, s2_window, s2_tick = Signal(), Signal(), Signal(window_shape), Signal(tick_shape)
        # Emitted events leave through a skid buffer, and the stage advances whenever the buffer
        # has room, emitting or not: the fired bit (a block RAM's slow output) then only decides
        # ``emitted.valid``, and neither it nor the consumer's ready reaches the sequencer.
        emitted = stream.Signature(self.o.payload.shape()).create(path=("emitted",))
        spare = skid_buffer(m, emitted, self.o)
        advance = ~s2_valid | emitted.ready
        m.d.comb += [emitted.valid.eq(s2_valid & (s2_end | ~fired_read.data)),
                     emitted.payload.neuron.eq(s2_window), emitted.payload.tick.eq(s2_tick),
                     emitted.payload.end.eq(s2_end), fired_read.addr.eq(window), fired_read.en.eq(advance)]

        last_tap = (tap_row + 1 == rows) & (tap_col + 1 == cols)
        load = Signal()
        m.d.comb += load.eq(advance & pending & ~closing & (~busy | last_tap))

        with m.FSM(name="phase", init=first_state(self, ("maxpool",), "pass")):
            with m.State("clear"):
                clear_addr = Signal(window_shape)
                m.d.comb += [fired_write.addr.eq(clear_addr), fired_write.data.eq(0), fired_write.en.eq(1)]
                m.d.sync += clear_addr.eq(clear_addr + 1)
                with m.If(clear_addr == fan_out - 1):
                    m.d.sync += [clear_addr.eq(0), closing.eq(0)]
                    m.next = "pass"
            with m.State("pass"):
                m.d.comb += spike.ready.eq(~pending | load)
                m.d.comb += [fired_write.addr.eq(s2_window), fired_write.data.eq(1),
                             fired_write.en.eq(s2_valid & ~s2_end & advance)]
                with m.If(advance):
                    m.d.sync += [s2_valid.eq(busy | s1_end), s2_end.eq(s1_end), s2_window.eq(window),
                                 s2_tick.eq(tick), s1_end.eq(0)]
                    with m.If(load):
                        reaches = (row_count[pending_y] != 0) & (col_count[pending_x] != 0)
                        first = pending_base + row_first[pending_y] + col_first[pending_x]
                        m.d.sync += [busy.eq(~pending_end & reaches), s1_end.eq(pending_end),
                                     closing.eq(pending_end), pending.eq(0),
                                     window.eq(first), row_start.eq(first), tick.eq(pending_tick),
                                     rows.eq(row_count[pending_y]), cols.eq(col_count[pending_x]),
                                     tap_row.eq(0), tap_col.eq(0)]
                    with m.Elif(busy & last_tap):
                        m.d.sync += busy.eq(0)
                    with m.Elif(busy & (tap_col + 1 == cols)):
                        m.d.sync += [tap_col.eq(0), tap_row.eq(tap_row + 1), window.eq(row_start + out_w),
                                     row_start.eq(row_start + out_w)]
                    with m.Elif(busy):
                        m.d.sync += [tap_col.eq(tap_col + 1), window.eq(window + 1)]
                with m.If(spike.valid & spike.ready):
                    m.d.sync += [pending.eq(1), pending_end.eq(spike.payload.end),
                                 pending_base.eq(times_constant(spike.payload.channel, out_h * out_w)),
                                 pending_y.eq(spike.payload.row), pending_x.eq(spike.payload.column),
                                 pending_tick.eq(spike.payload.tick)]
                with m.If(s2_end & emitted.ready):
                    m.d.sync += s2_valid.eq(0)
                    m.next = "clear"
        if self.formal:
            stream_ports(m, self)
            self._input_promises(m)
            if "maxpool" in self.formal:
                watched = self._earliest_property(m)
                if decoder.latency == 0:
                    # behind a decoder that is wiring the property is proved by invariants
                    # (_earliest_invariants); behind a pipelined one it is a bounded check (hdlgen.prove)
                    self._earliest_invariants(
                        m, watched, spike=spike, fired=(fired, fired_read), clear_addr=clear_addr,
                        pending=(pending, pending_end, pending_base, pending_y, pending_x, pending_tick),
                        sequencer=(busy, s1_end, closing, window, row_start, rows, cols, tap_row, tap_col, tick),
                        taps=(row_count, row_first, col_count, col_first), load=load,
                        stage2=(s2_valid, s2_end, s2_window, s2_tick), spare=spare)
        return m

    def _input_promises(self, m):
        """Assume what the producer promises: ticks in the window and in non-decreasing order
        within an image, each input neuron at most once per image."""
        i, ticks = self.i, self.layer.ticks
        taken = i.valid & i.ready & ~i.payload.end
        once_per_image(m, i, "neuron", self.layer.fan_in)
        last = Signal.like(i.payload.tick, name="last_input_tick")
        m.d.comb += Assume(~taken | (i.payload.tick < ticks) & (i.payload.tick >= last))
        with m.If(i.valid & i.ready):
            m.d.sync += last.eq(Mux(i.payload.end, 0, i.payload.tick))

    def _earliest_property(self, m):
        """Assert that a window (any one: the solver picks it) emits once per image, with the tick of
        the first input spike inside it, and not at all when none is; ``cex_*`` is the event out.
        Returns what the invariants name: ``(c, oy, ox)``, the window, the images in and out, and
        per image number whether a spike reached the window and its tick; whether it has left."""
        layer, i, o = self.layer, self.i, self.o
        channels, height, width = layer.in_shape
        _, out_h, out_w = layer.out_shape
        (kh, kw), (sy, sx), (py, px) = layer.kernel, layer.stride, layer.padding
        c, oy, ox = (anyconst(m, self, range(n), name) for n, name in
                     [(max(channels, 2), "channel"), (max(out_h, 2), "row"), (max(out_w, 2), "column")])
        m.d.comb += Assume((c < channels) & (oy < out_h) & (ox < out_w))
        window = (c * out_h + oy) * out_w + ox
        # the input neurons of the window, compared one by one: no division of the neuron number
        # (a divider on every step of a bounded check costs the solver more than the whole pool)
        n = i.payload.neuron
        taps = []
        for dy in range(kh):
            for dx in range(kw):
                y, x = oy * sy + (dy - py), ox * sx + (dx - px)
                taps.append((y >= 0) & (y < height) & (x >= 0) & (x < width) & (n == (c * height + y) * width + x))
        inside = Cat(taps).any()
        left = o.valid & o.ready
        # 3 bits: up to 4 ends are in flight (pending, a stage or the clear, the skid buffer's two)
        image_in, image_out = image_tracker(m, i.valid & i.ready & i.payload.end, left & o.payload.end, "pool",
                                            bits=IMAGE_BITS)
        first = Signal(1 << IMAGE_BITS)   # per image number: a spike reached the window, and its tick
        first_ticks = Array(Signal.like(i.payload.tick, name=f"first_tick{k}") for k in range(1 << IMAGE_BITS))
        emitted = Signal()
        cex_neuron = Signal.like(o.payload.neuron, name="cex_neuron", attrs={"keep": 1})
        cex_tick = Signal.like(o.payload.tick, name="cex_tick", attrs={"keep": 1})
        m.d.comb += [cex_neuron.eq(o.payload.neuron), cex_tick.eq(o.payload.tick)]
        this_image = first.bit_select(image_out, 1)
        with m.If(left & ~o.payload.end & (o.payload.neuron == window)):
            m.d.comb += Assert(this_image & ~emitted & (o.payload.tick == first_ticks[image_out]),
                               "maxpool: a window passes once, its earliest spike")
            m.d.sync += emitted.eq(1)
        with m.If(left & o.payload.end):
            m.d.comb += Assert(emitted == this_image, "maxpool: every reached window passes before end")
            m.d.sync += [emitted.eq(0), first.bit_select(image_out, 1).eq(0)]
        with m.If(i.valid & i.ready & ~i.payload.end & inside & ~first.bit_select(image_in, 1)):
            m.d.sync += [first.bit_select(image_in, 1).eq(1), first_ticks[image_in].eq(i.payload.tick)]
        return (c, oy, ox), window, (image_in, image_out), (first, first_ticks), emitted

    def _earliest_invariants(self, m, watched, *, spike, fired, clear_addr, pending, sequencer, taps, load,
                             stage2, spare):
        """The max-pool property by k-induction over invariants for the watched window ``w``.

        Every place an event can be is given its image by the ends ahead of it: the skid buffer's
        output register holds image ``out`` (the property's count), its spare ``out`` plus the
        output's end, stage 2 and the sequencer ``k`` (``out`` plus the buffer's ends), the pending
        spike ``k`` plus an end in stage 1 or 2, and the input's next spike ``k`` plus those and a
        pending end. Per image the property's ghost (a spike reached ``w``) holds exactly when ``w``'s
        event has left stage 2 (for image ``k``: ``w``'s fired bit, read through a port of its own), is
        in stage 2, is still ahead of the sequencer (its taps, in raster order, not yet past
        ``w``'s: ghost channel, row and column beside the pending and current spike) or is the
        pending spike's; the first of those carries the image's first tick, and ``w`` is in the
        buffer and gone at most once an image. Stage 2's fired bit is ``w``'s bit as it is; the clear
        runs between images (``closing``), from address 0, and has zeroed the bits below its
        address."""
        (c, oy, ox), w, (image_in, image_out), (first, first_ticks), emitted = watched
        fired, fired_read = fired
        pending_valid, pending_end, pending_base, pending_y, pending_x, pending_tick = pending
        busy, s1_end, closing, window, row_start, rows, cols, tap_row, tap_col, tick = sequencer
        row_count, row_first, col_count, col_first = taps
        s2_valid, s2_end, s2_window, s2_tick = stage2
        spare_valid, spare = spare
        layer, o = self.layer, self.o
        channels, height, width = layer.in_shape
        _, out_h, out_w = layer.out_shape
        plane = out_h * out_w
        phase = fsm_of(m, "phase")
        passing, clearing = phase.ongoing("pass"), phase.ongoing("clear")

        def invariant(condition, what):
            m.d.comb += Assert(condition, f"maxpool invariant: {what}", src_loc_at=1)

        # the watched window's fired bit, read as it is
        peek = fired.read_port(domain="comb")
        m.d.comb += peek.addr.eq(w)
        fired_w = peek.data

        # per input row (column): the windows it is in (a bit per output row), and the first
        row_reach = Array(Const(sum(1 << o for o in ws), max(out_h, 2)) for ws in self.row_windows)
        col_reach = Array(Const(sum(1 << o for o in ws), max(out_w, 2)) for ws in self.column_windows)
        row_low = Array(Const(min(ws, default=0), range(max(out_h, 2))) for ws in self.row_windows)
        col_low = Array(Const(min(ws, default=0), range(max(out_w, 2))) for ws in self.column_windows)

        def reaches(channel, y, x):
            return (channel == c) & row_reach[y].bit_select(oy, 1) & col_reach[x].bit_select(ox, 1)

        # ghost channels beside the pending spike, and (channel, row, column) beside the sequencer's
        pending_c = Signal(range(max(channels, 2)), name="ghost_pending_c")
        busy_c, busy_y, busy_x = (Signal.like(v, name=f"ghost_{n}") for v, n in
                                  [(pending_c, "c"), (pending_y, "y"), (pending_x, "x")])
        with m.If(spike.valid & spike.ready):
            m.d.sync += pending_c.eq(spike.payload.channel)
        with m.If(load):
            m.d.sync += [busy_c.eq(pending_c), busy_y.eq(pending_y), busy_x.eq(pending_x)]

        invariant(passing | clearing, "two phases")
        invariant(~spare_valid | o.valid, "the spare register fills behind the output")
        invariant(~clearing | (~busy & ~s1_end & ~s2_valid & closing & (clear_addr < layer.fan_out)),
                  "the clear runs between images")
        invariant(~s2_end | s2_valid, "stage 2's end is valid")
        s2_closing = s2_valid & s2_end
        invariant(~passing | ((clear_addr == 0) & (closing == (s1_end | s2_closing))), "closing: an end ahead")
        invariant(~s1_end | ~busy, "stage 1 holds a spike or an end")
        invariant(~s2_closing | (~busy & ~s1_end), "nothing follows an end in stage 2")
        invariant(~pending_valid | pending_end | ((pending_c < channels) & (pending_y < height) & (pending_x < width)
                                                  & (pending_base == pending_c * plane)),
                  "the pending spike's split")
        first_window = busy_c * plane + row_first[busy_y] + col_first[busy_x]
        invariant(~busy | ((busy_c < channels) & (busy_y < height) & (busy_x < width)
                           & (rows == row_count[busy_y]) & (cols == col_count[busy_x])
                           & (tap_row < rows) & (tap_col < cols)
                           & (row_start == first_window + tap_row * out_w) & (window == row_start + tap_col)),
                  "the sequencer walks the current spike's windows")

        # where the watched window's event of an image can be
        at_out = o.valid & ~o.payload.end & (o.payload.neuron == w)
        at_spare = spare_valid & ~spare.end & (spare.neuron == w)
        at_s2 = s2_valid & ~s2_end & (s2_window == w)
        at_row, at_col = row_low[busy_y] + tap_row, col_low[busy_x] + tap_col
        ahead = busy & reaches(busy_c, busy_y, busy_x) & ((oy > at_row) | ((oy == at_row) & (ox >= at_col)))
        at_pending = pending_valid & ~pending_end & reaches(pending_c, pending_y, pending_x)
        # images by the ends ahead: offsets from the output's image
        out_end, spare_end = o.valid & o.payload.end, spare_valid & spare.end
        sequencer_off = Signal(range(3), name="ghost_sequencer_image")
        pending_off = Signal(range(5), name="ghost_pending_image")
        m.d.comb += [sequencer_off.eq(out_end + spare_end), pending_off.eq(sequencer_off + s1_end + s2_closing)]
        invariant(image_in == (image_out + pending_off + (pending_valid & pending_end))[:len(image_in)],
                  "the images in flight")

        def image(offset):
            return (image_out + offset)[:len(image_out)]

        invariant(~at_s2 | (fired_read.data == fired_w), "stage 2 reads the watched bit as it is")
        invariant(~clearing | (clear_addr <= w) | ~fired_w, "the clear zeroes the bits below its address")
        invariant(~(emitted & at_out), "the output holds no second event of the window")
        invariant(~(at_spare & ~out_end & (emitted | at_out)), "the spare holds no second event of the window")
        gone = [((d == 0) & (emitted | at_out)) | ((out_end == d) & at_spare) for d in range(3)]
        sequencer_gone = Array(gone)[sequencer_off]
        invariant(Mux(passing, fired_w == sequencer_gone, ~sequencer_gone), "the fired bit: the window's event left")
        later = ahead | (at_pending & (pending_off == sequencer_off))
        for d in range(1 << len(image_out)):
            expected = Mux(d < sequencer_off, gone[d] if d < 3 else 0,
                           Mux(d == sequencer_off, (gone[d] if d < 3 else 0) | at_s2 | later,
                               (d == pending_off) & at_pending))
            invariant(first.bit_select(image(d), 1) == expected, "a spike reached the window: it passes or is on its way")
        invariant(~at_out | (o.payload.tick == first_ticks[image_out]), "the output's tick")
        invariant(~at_spare | (spare.tick == first_ticks[image(out_end)]), "the spare's tick")
        sequencer_tick = first_ticks[image(sequencer_off)]
        invariant(~at_s2 | fired_w | (s2_tick == sequencer_tick), "stage 2's tick")
        invariant(~ahead | fired_w | at_s2 | (tick == sequencer_tick), "the sequencer's tick")
        invariant(~at_pending | ((pending_off == sequencer_off) & ((passing & fired_w) | at_s2 | ahead))
                  | (pending_tick == first_ticks[image(pending_off)]), "the pending spike's tick")
