"""Event-driven dense layer engine: accumulators in block RAM, one weight word per cycle."""

from dataclasses import dataclass

import numpy as np
from amaranth.hdl import Array, Assert, Assume, Cat, Const, Module, Mux, Signal, Value, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from hdlgen.geometry import DenseGeometry, ceil_div

from .events import acc_word_layout, event_group_layout, event_layout, fanout_copies, times_constant
from .formal import anyconst, engine_properties, first_state, fsm_of, partial_sums_fit

__all__ = ["EngineTiming", "RETIMED", "COMPACT", "WeightROM", "DenseEngine", "accumulate_stage", "read_through",
           "weight_product"]


@dataclass(frozen=True)
class EngineTiming:
    """Structures a :class:`DenseEngine` and the spike-time bank after it spend flip-flops and
    logic cells on for a faster clock. Which ones pay is a fact of the FPGA family, so a board's
    family chooses (:attr:`hdlgen.boards.platforms.Family.engine_timing`); the results are the
    same bit for bit.

    Members
    -------
    drain_fifo : bool
        The drained accumulator words leave through a three-entry FIFO, so ``o.ready`` reaches
        its read pointer, not the enable of a word-wide register (at 64 lanes that enable reached
        2,304 flip-flops; ECP5 timing). Without it the accumulator read port's own register holds
        the leaving word and ``o.ready`` enables it: one drain cycle fewer and, on an iCE40 (no
        LUT RAM), three words fewer of flip-flops and the multiplexer after them.
    registered_read_hit : bool
        The accumulator read's hit on the word being written is registered beside the read
        (:func:`read_through`), so a wide engine's read register does not wait for the address
        compare and its fan-out to the whole word. Without it the read port is transparent to the
        write port, which an iCE40 block RAM makes with fewer cells.
    registered_gather : bool
        A spike-time bank with fewer ladders than lanes registers each accumulator word before
        its ladders take it part by part (:class:`~hdlgen.rtl_templates.spike_time.SpikeTimeBank`):
        a cycle more per image, and the word's path from the engine's memory into each ladder's
        part multiplexer is cut (at 128 lanes and 16 ladders it was a 10 ns route on ECP5).
        Without it the multiplexer takes the word as it arrives, with no flip-flop per lane and bit.
    """

    drain_fifo: bool = True
    registered_read_hit: bool = True
    registered_gather: bool = True


# lanes whose multipliers take q from one copy of its register in a wide engine (fanout_copies)
MULTIPLIER_GROUP = 8

RETIMED = EngineTiming()                                               # the default: for ECP5 timing
COMPACT = EngineTiming(drain_fifo=False, registered_read_hit=False, registered_gather=False)  # fewest cells (iCE40)


def weight_product(weight, q, in_logic: bool):
    """``weight · q``: a multiplication (a DSP block where the tools find one), or with
    ``in_logic`` one shifted copy of ``weight`` per bit of ``q`` added up, so it takes logic
    cells and no DSP (a board with fewer DSP blocks than multiplying lanes)."""
    if not in_logic:
        return weight * q
    terms = [Mux(q[bit], weight << bit, 0) for bit in range(len(q))]
    return sum(terms[1:], terms[0])


def accumulate_stage(m, read_data, summed, issue_word, ahead, enable=1):
    """The accumulator word the add stage starts from, as a register (returned).

    The engines read an accumulator word two stages before they add to it: the read is issued
    with ``issue_word``, its data (``read_data``) arrives a cycle later and is registered here,
    and the add stage writes ``summed`` back a cycle after that. So the block RAM's slow output
    only reaches a register, and the adder starts from flip-flops. Of the writes the read
    misses, the one in the read's own cycle comes through the read port (transparent to the
    write port); the one a cycle later – of the update just ahead, ``ahead = (valid, word)`` at
    issue time – is forwarded: when it hits the same word, ``summed`` replaces ``read_data``.
    The register keeps its value while ``enable`` is low (a conv engine's read-out stalls it)."""
    ahead_valid, ahead_word = ahead
    hit, held = Signal(), Signal.like(summed, name="held_acc")
    m.d.sync += hit.eq(ahead_valid & (issue_word == ahead_word))
    with m.If(enable):
        m.d.sync += held.eq(Mux(hit, summed, read_data))
    return held


def read_through(m, memory, write):
    """A read port on ``memory`` whose data is ``write``'s in the cycles they hit one address, as
    a port transparent to ``write`` gives, with the hit kept in a register.

    Yosys makes a transparent port on LUT RAM with the address compare in front of every data
    bit's register: a wide engine's read then waits for the compare and its fan-out to the whole
    word. Here the compare and the written word are registered beside the read, and one
    multiplexer after it picks. Returns ``(read_port, data)``."""
    read = memory.read_port()
    hit, written = Signal(), Signal.like(write.data, name=f"{read.data.name}_written")
    with m.If(read.en):
        m.d.sync += [hit.eq(write.en & (write.addr == read.addr)), written.eq(write.data)]
    return read, Mux(hit, written, read.data)


class WeightROM(wiring.Component):
    """The weight memory of one engine, behind a plain synchronous read port.

    Its rows are the stage geometry's :meth:`~hdlgen.geometry.DenseGeometry.weight_rows`: row
    ``j·words + w`` holds ``W[w·lanes + l, j]`` in lane ``l`` (zero past the fan-out), so a
    spike on input ``j`` reads ``words`` consecutive rows. This is the boundary a board may
    replace (e.g. by SPRAM with a load path): same members and ``latency``.

    With ``latency=2`` (the geometry's ``weight_latency``: a dense engine's) the rows are split
    into banks of ``bank_rows`` (one block RAM's depth at this row width, when a board's family
    asks for it; one bank otherwise) and each bank's output is registered before the bank
    multiplexer: a large layer's memory is many block RAMs, and their slow clock-to-output plus
    the multiplexer and its routing would otherwise set the clock. With ``latency=1`` (a conv
    engine's) it is one memory.

    Parameters
    ----------
    geometry : DenseGeometry or ConvGeometry
        The engine's stage geometry (:mod:`hdlgen.geometry`).
    bank_rows : int or None
        Rows per bank with ``latency=2`` (None: one bank).

    Members
    -------
    addr : In(range(rows))
    en : In(1)
        Read enable; ``data`` keeps its value while low.
    data : Out(ArrayLayout(signed(weight_bits), lanes))
        The row at ``addr`` of ``latency`` cycles before (the engines keep ``en`` high; a
        cycle with ``en`` low reads nothing and leaves the pipeline's data as it was).
    """

    def __init__(self, geometry: DenseGeometry, bank_rows: int | None = None):
        self.geometry = geometry
        self.bank_rows = bank_rows
        self.latency = geometry.weight_latency
        self.init = geometry.weight_rows()
        self.layout = data.ArrayLayout(signed(geometry.layer.weight_bits), geometry.lanes)
        super().__init__({
            "addr": In(range(len(self.init))),
            "en": In(1),
            "data": Out(self.layout),
        })

    def elaborate(self, platform):
        m = Module()
        width, depth = self.layout.size, len(self.init)
        if self.latency == 1:
            m.submodules.rows = rows = Memory(shape=unsigned(width), depth=depth, init=self.init)
            read = rows.read_port()
            m.d.comb += [read.addr.eq(self.addr), read.en.eq(self.en), self.data.eq(read.data)]
            return m
        bank_rows = min(self.bank_rows or depth, depth)
        banks = ceil_div(depth, bank_rows)
        shift = (bank_rows - 1).bit_length() if banks > 1 else 0
        en_held, bank_held, bank_out = Signal(), Signal(range(banks)), Signal(range(banks))
        m.d.sync += en_held.eq(self.en)
        with m.If(self.en):
            m.d.sync += bank_held.eq(self.addr >> shift)
        with m.If(en_held):
            m.d.sync += bank_out.eq(bank_held)
        outputs = []
        for b in range(banks):
            part = self.init[b * bank_rows:(b + 1) * bank_rows]
            rows = m.submodules[f"rows{b}"] = Memory(shape=unsigned(width), depth=len(part), init=part)
            read = rows.read_port()
            out = Signal(width, name=f"bank{b}_out")
            m.d.comb += [read.addr.eq(self.addr[:shift] if banks > 1 else self.addr), read.en.eq(self.en)]
            with m.If(en_held):
                m.d.sync += out.eq(read.data)
            outputs.append(out)
        m.d.comb += self.data.eq(Array(outputs)[bank_out] if banks > 1 else outputs[0])
        return m


class DenseEngine(wiring.Component):
    """Accumulate ``A = B + W·q`` event by event, then stream the accumulators out.

    Per input spike ``(j, τ)`` with ``q = T_in − τ``, each of the ``words = ceil(fan_out/lanes)``
    accumulator words gets ``W[n, j]·q`` added in each lane, one word per cycle in a pipeline:
    read the weight row (``weights.latency`` cycles, 2: banked block RAMs with registered
    outputs) → register it → register it with ``q`` at the multipliers, read the accumulator
    → multiply (registered) → register the product, register the accumulator → add, write back
    (the second registers of the row and of the product only with the geometry's
    ``multiplier_stages``: a cycle of its own for each route to and from the DSP columns of a
    wide engine). The
    accumulator is read two stages ahead of its write and a word written in between is forwarded
    (:func:`accumulate_stage`), so back-to-back spikes need no stall even with one word. A spike
    costs ``words`` cycles; the next spike is accepted in its last cycle.

    On ``end`` the pipeline drains, then the accumulator words are streamed out on ``o`` and
    each is reset to the bias as it is read. They leave through a FIFO of the geometry's
    ``drain_depth`` words, and the next image starts once the last word is read into it; or
    from the accumulator read port's own register, and the next image starts once the last
    word has left (``timing``, :class:`EngineTiming`: the family's choice).
    After reset the engine first writes the biases (``words`` cycles).

    Accumulators are ``layer.widths()["accumulator"]`` bits, derived from
    :func:`hdlgen.ttfs.layer_bounds`, so no partial sum can overflow.

    Parameters
    ----------
    geometry : DenseGeometry
        The layer at its lanes (accumulators updated per cycle, ``1..fan_out``; the geometry
        checks them), words, weight rows and bias words.

    Members
    -------
    i : In(stream.Signature(event_layout(fan_in, ticks_in)))
        Input spikes of one image (any order), then ``end``.
    o : Out(stream.Signature(acc_word_layout(acc_width, lanes)))
        The image's ``words`` accumulator words in order (neuron ``w·lanes + l`` in lane ``l``,
        lanes past the fan-out hold the bias 0), ``last`` on the final one.

    Attributes
    ----------
    weights : component or None
        The weight memory; ``None`` builds a :class:`WeightROM` at elaboration. A board may put
        any component with the same members and the geometry's ``weight_latency`` (2 cycles)
        here before elaboration (e.g. SPRAM with a load path filled from the geometry's
        ``weight_rows()``).
    products_in_logic : bool
        Build the lanes' ``W·q`` products from adders instead of multipliers (no DSP blocks;
        :func:`weight_product`); a board sets it before elaboration when it has too few DSPs.
    timing : EngineTiming
        The structures spent on timing (:data:`RETIMED` unless set before elaboration, e.g. by
        :class:`~hdlgen.rtl_templates.top.NetworkTop`'s ``engine_timing``).
    weight_bank_rows : int or None
        Rows per bank of the :class:`WeightROM` (a board sets its block RAM's depth at the row
        width before elaboration; None: one memory).
    registered_multiplier : callable or None
        With the geometry's ``multiplier_stages``, a board may set a function
        ``(weight, q, width) -> (block, product)`` building one lane's multiplier with both of
        those stages inside its DSP block (the product two cycles after the factors), e.g.
        :func:`hdlgen.boards.dsp.ecp5_registered_multiplier`; ``None``: fabric registers around
        a multiplication.
    """

    submodule_name = "engine"

    formal = frozenset()   # property kinds stated in elaborate (rtl_templates.formal)

    def __init__(self, geometry: DenseGeometry):
        if type(geometry) is not DenseGeometry:
            raise TypeError(f"DenseEngine needs a DenseGeometry, got {type(geometry).__name__}")
        self.geometry = geometry
        self.layer, self.lanes, self.words, self.acc_width = geometry.layer, geometry.lanes, geometry.words, geometry.acc_width
        self.weights = None
        self.products_in_logic = False
        self.timing = RETIMED
        self.weight_bank_rows = None
        self.registered_multiplier = None
        self.slots = geometry.spikes_per_cycle
        events = (event_layout(self.layer.fan_in, self.layer.ticks_in) if self.slots == 1
                  else event_group_layout(self.layer.fan_in, self.layer.ticks_in, self.slots))
        super().__init__({
            "i": In(stream.Signature(events)),
            "o": Out(stream.Signature(acc_word_layout(self.acc_width, self.lanes))),
        })

    def elaborate(self, platform):
        m = Module()
        layer, lanes, words = self.layer, self.lanes, self.words
        bias_init = self.geometry.bias_words()
        word_layout = data.ArrayLayout(signed(self.acc_width), lanes)
        m.submodules.weights = weights = (self.weights if self.weights is not None
                                          else WeightROM(self.geometry, self.weight_bank_rows))
        m.submodules.accumulators = accumulators = Memory(
            shape=unsigned(word_layout.size), depth=words, init=bias_init)
        m.submodules.bias = bias = Memory(shape=unsigned(word_layout.size), depth=words, init=bias_init)
        acc_write = accumulators.write_port()
        if self.timing.registered_read_hit:
            acc_read, acc_data = read_through(m, accumulators, acc_write)
        else:
            acc_read = accumulators.read_port(transparent_for=(acc_write,))
            acc_data = acc_read.data
        bias_read = bias.read_port()
        acc_now = word_layout(acc_data)

        # stage 0: issue the weight row of word ``word`` of the current spike
        busy = Signal()
        last_word = Signal()    # ``word`` is the spike's last: kept in a register for a short ``ready``
        row = Signal(range(layer.fan_in * words))
        word = Signal(range(words))
        q = Signal(range(layer.ticks_in + 1))
        # the other spikes taken at once (geometry's spikes_per_cycle; one word): their rows and q
        slot_rows = [Signal(range(layer.fan_in), name=f"slot{s}_row") for s in range(1, self.slots)]
        slot_q = [Signal(range(layer.ticks_in + 1), name=f"slot{s}_q") for s in range(1, self.slots)]
        # stages 1.. (valid, word, q): stage 2 has the weight row, registered after the block RAM,
        # and the product is registered a stage later. A wide engine's multipliers (DSP blocks)
        # sit in columns far from its logic, so there (the geometry's ``multiplier_stages``) the
        # route to them and the one back each get a stage of their own: the row is registered
        # again with q at the multipliers, and the product once more. The accumulator word is
        # read two stages before the product is there, where it is added and written back.
        extra = self.geometry.multiplier_stages
        stages = [(busy, word, q)]
        for n in range(1, 4 + extra):
            stages.append((Signal(name=f"s{n}_valid"), Signal(range(words), name=f"s{n}_word"),
                           Signal(range(layer.ticks_in + 1), name=f"s{n}_q")))
        product_width = layer.weight_bits + q.shape().width + 1
        weight_row = Signal(weights.layout)
        m.d.comb += [weights.addr.eq(row), weights.en.eq(1)]
        # the word and q travel with their row for the weight memory's latency
        issued = [stages[0]]
        for n in range(1, self.geometry.weight_latency):
            delayed = (Signal(name=f"fetch{n}_valid"), Signal(range(words), name=f"fetch{n}_word"),
                       Signal(range(layer.ticks_in + 1), name=f"fetch{n}_q"))
            m.d.sync += [to.eq(frm) for to, frm in zip(delayed, issued[-1])]
            issued.append(delayed)
        for later, earlier in zip(stages[1:], [issued[-1]] + stages[1:-1]):
            m.d.sync += [to.eq(frm) for to, frm in zip(later, earlier)]
        m.d.sync += weight_row.eq(weights.data)
        products = [Signal(signed(product_width), name=f"product{l}") for l in range(lanes)]
        slot_products, slot_weight_rows = self._other_slots(m, slot_rows, slot_q, len(issued), product_width)
        self._lane_products(m, products, weight_row, stages[1][2], stages[2][2])
        # a lane's products of the spikes taken at once, added up (in the result register when there is one)
        result_width = product_width + (self.slots - 1).bit_length()
        lane_sums = [sum((slot[l] for slot in slot_products), products[l]) for l in range(lanes)]
        if extra:
            results = [Signal(signed(result_width), name=f"result{l}") for l in range(lanes)]
            m.d.sync += [result.eq(lane_sum) for result, lane_sum in zip(results, lane_sums)]
            products = results
        elif slot_products:
            products = [Signal(signed(result_width), name=f"lane_sum{l}") for l in range(lanes)]
            m.d.comb += [product.eq(lane_sum) for product, lane_sum in zip(products, lane_sums)]
        (_, read_word, _), (ahead_valid, ahead_word, _), (write_valid, write_word, _) = stages[-3:]
        summed = Signal(word_layout)
        held_acc = accumulate_stage(m, acc_now, summed, read_word, (ahead_valid, ahead_word))
        m.d.comb += [summed[l].eq(held_acc[l] + products[l]) for l in range(lanes)]

        # bias reset (after reset and while draining): the row read at ``reset_word`` is written
        # back one cycle later, when the bias ROM's data is there
        reset_word = Signal(range(words + 1))
        reset_pending, reset_pending_word = Signal(), Signal(range(words))
        if self.timing.drain_fifo:
            # the drain's words: read from the accumulators (``in_flight``), then queued in ``leaving``
            # (the geometry's ``drain_depth`` entries)
            in_flight, in_flight_last = Signal(name="in_flight"), Signal(name="in_flight_last")
            m.d.sync += in_flight.eq(0)     # but in the drain, below
            m.submodules.leaving = leaving = SyncFIFO(width=len(self.o.payload.as_value()), depth=self.geometry.drain_depth)
            m.d.comb += [leaving.w_en.eq(in_flight), leaving.w_data.eq(Cat(acc_data, in_flight_last)),
                         self.o.payload.eq(leaving.r_data), self.o.valid.eq(leaving.r_rdy),
                         leaving.r_en.eq(self.o.ready)]
        else:
            # the accumulator read port's register is the leaving word
            out_valid, out_last = Signal(), Signal()
            m.d.comb += [self.o.payload.acc.eq(acc_now), self.o.payload.last.eq(out_last),
                         self.o.valid.eq(out_valid)]
        # the write enable is a register of its own (``write_valid | reset_pending``, made a cycle
        # early): a one-word engine's accumulators are flip-flops, thousands of them on this enable
        reset_pending_next, write_enable = Signal(), Signal()
        m.d.sync += [reset_pending.eq(reset_pending_next), write_enable.eq(ahead_valid | reset_pending_next)]
        with m.If(write_valid):
            m.d.comb += [acc_write.addr.eq(write_word), acc_write.data.eq(summed)]
        with m.Else():
            m.d.comb += [acc_write.addr.eq(reset_pending_word), acc_write.data.eq(bias_read.data)]
        m.d.comb += [acc_write.en.eq(write_enable), acc_read.addr.eq(read_word), acc_read.en.eq(1)]

        with m.FSM(name="phase", init=first_state(self, ("overflow",), "accumulate")):
            with m.State("clear"):
                m.d.comb += bias_read.addr.eq(reset_word)
                m.d.comb += reset_pending_next.eq(1)
                m.d.sync += [reset_pending_word.eq(reset_word), reset_word.eq(reset_word + 1)]
                with m.If(reset_word == words - 1):
                    m.d.sync += reset_word.eq(0)
                    m.next = "accumulate"
            with m.State("accumulate"):
                m.d.comb += self.i.ready.eq(~busy | last_word)
                take = self.i.valid & self.i.ready
                with m.If(take & ~self.i.payload.end):
                    neuron, tick = self.i.payload.neuron, self.i.payload.tick
                    if self.slots > 1:
                        (neuron, *others), (tick, *other_ticks) = list(neuron), list(tick)
                        m.d.sync += [r.eq(n) for r, n in zip(slot_rows, others)]
                        m.d.sync += [sq.eq(layer.ticks_in - t) for sq, t in zip(slot_q, other_ticks)]
                    m.d.sync += [busy.eq(1), word.eq(0), last_word.eq(words == 1),
                                 row.eq(times_constant(neuron, words)),
                                 q.eq(layer.ticks_in - tick)]
                with m.Elif(busy):
                    m.d.sync += [word.eq(word + 1), last_word.eq(word + 2 == words), row.eq(row + 1)]
                    with m.If(last_word):
                        m.d.sync += busy.eq(0)
                with m.If(take & self.i.payload.end):
                    m.next = "flush"
            with m.State("flush"):
                with m.If(~busy & ~Cat(valid for valid, _, _ in issued[1:] + stages[1:]).any()):
                    m.next = "drain"
            with m.State("drain"):
                m.d.comb += [acc_read.addr.eq(reset_word), bias_read.addr.eq(reset_word)]
                if self.timing.drain_fifo:
                    # a word is read while the FIFO has room for it and for the one in flight; once
                    # the last is read the next image may start (its words queue behind these)
                    issue = leaving.level + in_flight < leaving.depth
                    m.d.sync += [in_flight.eq(issue), in_flight_last.eq(reset_word == words - 1)]
                    with m.If(issue & (reset_word == words - 1)):
                        m.next = "accumulate"
                else:
                    # the read register advances when its word leaves (or is empty)
                    advance = ~out_valid | self.o.ready
                    issue = advance & (reset_word != words)
                    m.d.comb += [acc_read.en.eq(advance), bias_read.en.eq(advance)]
                    with m.If(advance):
                        m.d.sync += [out_valid.eq(reset_word != words), out_last.eq(reset_word == words - 1)]
                with m.If(issue):
                    m.d.comb += reset_pending_next.eq(1)
                    m.d.sync += [reset_word.eq(Mux(reset_word == words - 1, 0, reset_word + 1)) if self.timing.drain_fifo
                                 else reset_word.eq(reset_word + 1), reset_pending_word.eq(reset_word)]
                if not self.timing.drain_fifo:
                    with m.If(self.o.valid & self.o.ready & self.o.payload.last):
                        m.d.sync += [reset_word.eq(0), out_valid.eq(0)]
                        m.next = "accumulate"
        if self.formal:
            # with the drain FIFO, overflow is proved by invariants and an argument (_overflow_invariants)
            argued = "overflow" in self.formal and self.timing.drain_fifo
            seen = engine_properties(m, self, write_valid, summed, held_acc, products, check_adds=not argued)
            if argued:
                self._overflow_invariants(m, seen, pipeline=issued + stages[1:], row=row, last_word=last_word,
                                          weight_row=weight_row, products=products, held_acc=held_acc,
                                          accumulators=accumulators, write=acc_write,
                                          reset=(reset_word, reset_pending, reset_pending_word),
                                          drain=(in_flight, in_flight_last),
                                          slots=list(zip(slot_rows, slot_q, slot_weight_rows)))
        return m

    def _lane_products(self, m, products, weight_row, q_stage1, q_stage2, prefix=""):
        """Drive ``products`` (a register per lane) with ``W·q`` of one spike's ``weight_row``, two
        stages after the row is registered: ``q`` as it is at pipeline stages 1 and 2 (``q_stage1``,
        ``q_stage2``); names of the registers and blocks made here start with ``prefix``.

        With the geometry's ``multiplier_stages`` and a board's ``registered_multiplier`` the block
        registers the row and q at its inputs and the product at its output; q reaches them from a
        copy per MULTIPLIER_GROUP lanes (the blocks are spread over the device: one register's route
        to 128 of them took 13.6 ns). Otherwise a multiplication (or adders, ``products_in_logic``)
        into the register, its row and q registered once more before it with ``multiplier_stages``."""
        extra, lanes, width = self.geometry.multiplier_stages, self.lanes, len(products[0])
        if extra and self.registered_multiplier is not None and not self.products_in_logic:
            q_copies = fanout_copies(m, q_stage1, ceil_div(lanes, MULTIPLIER_GROUP), f"{prefix}multiplier_q")
            for l in range(lanes):
                block, products[l] = self.registered_multiplier(weight_row[l], q_copies[l // MULTIPLIER_GROUP], width)
                m.submodules[f"{prefix}multiplier{l}"] = block
            return
        factors, factor_q = weight_row, [q_stage2] * lanes
        if extra:
            factors = Signal(weight_row.shape(), name=f"{prefix}mult_weights")
            m.d.sync += factors.eq(weight_row)
            copies = fanout_copies(m, q_stage2, ceil_div(lanes, MULTIPLIER_GROUP), f"{prefix}mult_q")
            factor_q = [copies[l // MULTIPLIER_GROUP] for l in range(lanes)]
        m.d.sync += [product.eq(weight_product(factors[l], factor_q[l], self.products_in_logic))
                     for l, product in enumerate(products)]

    def _other_slots(self, m, rows, qs, fetch_stages, product_width) -> tuple:
        """Per spike taken at once beside the first (``rows``, ``qs``: its stage-0 registers), a lane's
        products, each a register in the cycle the first spike's products are: its own weight memory,
        row register, and ``q`` delayed beside the pipeline. Returns per spike its lanes' products, and
        its row registers."""
        lanes = self.lanes
        slot_products, weight_rows = [], []
        for s, (row, q) in enumerate(zip(rows, qs), start=1):
            m.submodules[f"weights{s}"] = weights = WeightROM(self.geometry, self.weight_bank_rows)
            m.d.comb += [weights.addr.eq(row), weights.en.eq(1)]
            delayed = [q]   # q at pipeline stage n: the fetch stages, then stages 1, 2
            for n in range(1, fetch_stages + 2):
                delayed.append(Signal.like(q, name=f"slot{s}_q{n}"))
                m.d.sync += delayed[-1].eq(delayed[-2])
            weight_row = Signal(weights.layout, name=f"slot{s}_weight_row")
            m.d.sync += weight_row.eq(weights.data)
            products = [Signal(signed(product_width), name=f"slot{s}_product{l}") for l in range(lanes)]
            self._lane_products(m, products, weight_row, delayed[fetch_stages], delayed[fetch_stages + 1], f"slot{s}_")
            slot_products.append(products)
            weight_rows.append(weight_row)
        return slot_products, weight_rows

    def _overflow_invariants(self, m, seen, *, pipeline, row, last_word, weight_row, products, held_acc, accumulators,
                             write, reset, drain, slots=()):
        """No accumulator overflows, by k-induction over invariants for one accumulator word,
        ``star`` (any: the solver picks it, so every word is covered), and an argument.

        A ghost set ``written`` holds the inputs whose product the word has been given this image.
        Proved: a write to the word adds ``W[n, j]·q`` (``q`` in ``1..T_in``; the weights checked in
        the row register against the layer's, then carried beside the multiplier) of an input ``j``
        not in the set (the pipeline's spikes each carry their input in ghost registers beside
        ``(valid, word, q)``; distinct spikes have distinct inputs, all seen this image; a spike
        whose word has not passed ``star`` is not in the set) to the word as it is (the add stage
        starts from it), and the drain writes the word's bias before an image's first write (it
        reads the words in order and ends with the last; that one's bias is written in the next
        image's first cycle, before any of its spikes reach the add stage). So the word is always
        ``B_n + Σ_{j∈S} W[n, j]·q_j`` modulo its width, for a set ``S`` of distinct inputs; every
        such sum lies between ``B_n + Σ_j min(0, W[n, j]·T_in)`` and ``B_n + Σ_j max(0, W[n, j]·T_in)``,
        and those are asserted to fit the accumulator: the sum is exact, no add wraps. (The bound of
        the sum over the symbolic set as an invariant took Boolector 15 s at 16 inputs and did not
        finish in 10 minutes at 64.) The other spikes an engine takes at once (``slots``: each one's
        stage-0 row and q, and its row register; one word) carry their inputs and ``q`` in ghost
        registers too; a slot with ``q = 0`` holds none; every input in flight, of any slot, is distinct,
        and a write adds each present slot's ``W·q`` and puts its input in the set."""
        layer, lanes, words, fan_in, ticks = self.layer, self.lanes, self.words, self.layer.fan_in, self.layer.ticks_in
        row_position = self.geometry.weight_latency + 1     # the pipeline position of ``weight_row``
        reset_word, reset_pending, reset_pending_word = reset
        in_flight, in_flight_last = drain
        star = anyconst(m, self, range(max(words, 2)), "word")   # a bit at least: the trace's VCD
        m.d.comb += Assume(star < words)
        phase = fsm_of(m, "phase")
        accumulate, flush, draining = (phase.ongoing(state) for state in ("accumulate", "flush", "drain"))
        m.d.comb += Assert(accumulate | flush | draining, "overflow invariant: the clear is over")

        matrix = np.zeros((words * lanes, fan_in), dtype=np.int64)
        matrix[:layer.fan_out] = layer.weight_matrix()
        bias = np.zeros(words * lanes, dtype=np.int64)
        bias[:layer.fan_out] = layer.bias

        def at_star(column, lane):
            return Array(Const(int(v)) for v in column[lane::lanes])[star]

        # the arithmetic: every partial sum of the word's neurons fits the accumulator
        lows, highs = (bias + bound(matrix * ticks, 0).sum(axis=1) for bound in (np.minimum, np.maximum))
        partial_sums_fit(m, [at_star(lows, l) for l in range(lanes)], [at_star(highs, l) for l in range(lanes)],
                         self.acc_width)

        def ghost_chain(first, name):
            """``first`` (stage 0's) and its ghost copies down the pipeline, one per position."""
            chain = [first]
            for n in range(1, len(pipeline)):
                chain.append(Signal.like(first, name=f"{name}{n}"))
                m.d.sync += chain[n].eq(chain[n - 1])
            return chain

        taken = self.i.valid & self.i.ready & ~self.i.payload.end
        given = list(self.i.payload.neuron) if slots else [self.i.payload.neuron]
        neuron_chains = []      # per slot, its input at each pipeline position
        for s, given_neuron in enumerate(given):
            first = Signal(range(fan_in), name=f"ghost_slot{s}_neuron0" if s else "ghost_neuron0")
            with m.If(taken):
                m.d.sync += first.eq(given_neuron)
            neuron_chains.append(ghost_chain(first, f"ghost_slot{s}_neuron" if s else "ghost_neuron"))
        neurons = neuron_chains[0]
        # per slot, q at each position (slot 0's travels in the pipeline itself)
        q_chains = [[q for _, _, q in pipeline]] + [ghost_chain(q, f"ghost_slot{s}_q") for s, (_, q, _) in
                                                     enumerate(slots, start=1)]
        write_valid, write_word, write_q = pipeline[-1]
        pending_star = reset_pending & (reset_pending_word == star)
        to_star = write_valid & (write_word == star)
        reset_star = ~write_valid & pending_star   # the write port's priority
        written = Signal(fan_in, name="ghost_written")
        with m.If(to_star):
            for chain, qs in zip(neuron_chains, q_chains):
                with m.If(qs[-1] != 0):
                    m.d.sync += written.bit_select(chain[-1], 1).eq(1)
        with m.Elif(reset_star):
            m.d.sync += written.eq(0)

        # a write adds W·q of its input to the word as it is; a reset writes the bias
        word_layout = data.ArrayLayout(signed(self.acc_width), lanes)
        read = accumulators.read_port(domain="comb")
        m.d.comb += read.addr.eq(star)
        m.d.comb += Assert(~to_star | (Value.cast(held_acc) == read.data),
                           "overflow invariant: the add stage starts from the word")
        row_registers = [weight_row] + [slot_row for _, _, slot_row in slots]
        for l in range(lanes):
            # the row registers hold the inputs' weights; the write adds them times q
            row_valid, row_word, _ = pipeline[row_position]
            added = []
            for s, (rows, chain, qs) in enumerate(zip(row_registers, neuron_chains, q_chains)):
                weight = Array(Const(int(v)) for v in matrix[l::lanes].T.reshape(-1))[chain[row_position] * words + star]
                m.d.comb += Assert(~(row_valid & (row_word == star) & (qs[row_position] != 0)) | (rows[l] == weight),
                                   "overflow invariant: the weight row")
                carried = rows[l]
                for n in range(row_position + 1, len(pipeline)):
                    carried, earlier = Signal.like(rows[l], name=f"ghost_weight{n}_{l}" + (f"_slot{s}" if s else "")), carried
                    m.d.sync += carried.eq(earlier)
                added.append(carried * qs[-1])
            m.d.comb += Assert(~to_star | (products[l] == sum(added[1:], added[0])), "overflow invariant: the product")
            m.d.comb += Assert(~reset_star | (word_layout(write.data)[l] == at_star(bias, l)),
                               "overflow invariant: the reset writes the bias")

        # the pipeline: each spike's input seen, distinct, not yet in ``written`` before ``star``
        busy, word, _ = pipeline[0]
        m.d.comb += Assert(~busy | ((row == neurons[0] * words + word) & (last_word == (word == words - 1))),
                           "overflow invariant: the row of the spike's input")
        for p, ((valid, word_p, q_p), neuron) in enumerate(zip(pipeline, neurons)):
            m.d.comb += Assert(~valid | ((word_p < words) & (q_p >= 1) & (q_p <= ticks) & (neuron < fan_in) & ~draining
                                         & ~reset_pending
                                         & (~accumulate | seen.bit_select(neuron, 1))
                                         & ((word_p > star) | ~written.bit_select(neuron, 1))),
                               "overflow invariant: a spike in the pipeline")
            for r in range(p + 1, len(pipeline)):
                later_valid, later_word, _ = pipeline[r]
                m.d.comb += Assert(~(valid & later_valid & (neuron == neurons[r])) | (word_p == later_word + (r - p)),
                                   "overflow invariant: one spike per input")
        # the other slots (one word: star is it): present ones seen, not written, distinct from every other in flight
        for s, (stage0_row, _, _) in enumerate(slots, start=1):
            m.d.comb += Assert(~busy | (stage0_row == neuron_chains[s][0]), "overflow invariant: the row of the spike's input")
            for p, (valid, _, _) in enumerate(pipeline):
                neuron, q = neuron_chains[s][p], q_chains[s][p]
                m.d.comb += Assert(~(valid & (q != 0)) | ((q <= ticks) & (neuron < fan_in)
                                                          & (~accumulate | seen.bit_select(neuron, 1))
                                                          & ~written.bit_select(neuron, 1)),
                                   "overflow invariant: a spike in the pipeline")
                for r, (later_valid, _, _) in enumerate(pipeline):
                    for t in range(len(neuron_chains)):
                        if (r, t) == (p, s) or (t >= 1 and (r, t) < (p, s)):
                            continue        # each pair of other slots once
                        present = later_valid & ((q_chains[t][r] != 0) if t else 1)
                        m.d.comb += Assert(~(valid & (q != 0) & present) | (neuron != neuron_chains[t][r]),
                                           "overflow invariant: one spike per input")
        m.d.comb += Assert(~accumulate | pending_star | ((written & ~seen) == 0),
                           "overflow invariant: written inputs were seen")
        m.d.comb += Assert(accumulate | (seen == 0), "overflow invariant: an image's inputs close with its end")

        # the drain: words below ``reset_word`` read (and reset, once not pending); the last one read
        # ends it, and its reset is pending in the next image's first cycle (its spikes are not written yet)
        m.d.comb += Assert(draining | (reset_word == 0), "overflow invariant: no drain outside the drain")
        m.d.comb += Assert((reset_word < words) & (reset_pending == in_flight)
                           & (~reset_pending | (reset_pending_word + 1 == Mux(draining, reset_word, words)))
                           & (~in_flight | (in_flight_last == ~draining)),
                           "overflow invariant: the drain's counts")
        done = (star < reset_word) & ~pending_star
        m.d.comb += Assert(~(draining & done) | (written == 0), "overflow invariant: a reset word holds its bias")
