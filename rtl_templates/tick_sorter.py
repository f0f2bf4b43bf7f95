"""Reorder one image's spikes from neuron order into tick order, several appends per cycle."""

from amaranth.hdl import Array, Assert, Assume, Cat, Const, Module, Mux, Signal, Value
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from hdlgen.geometry import sorter_words

from .events import event_layout, fanout_copies, lane_ticks_layout, skid_buffer, times_constant
from .formal import anyconst, image_tracker, once_per_image, stream_ports

__all__ = ["TickSorter", "sorter_properties", "sorter_property"]


class TickSorter(wiring.Component):
    """Per-tick linked lists in ``banks`` banks that turn words of fire ticks into a tick-ordered
    spike stream.

    Collect phase: each input word carries one fire tick per bank (``ticks``: no spike), and
    the neuron of bank ``b`` in word ``w`` is appended to its bank's list of that tick – every
    bank appends once per cycle, and words are always accepted. Neurons are numbered as
    :func:`~hdlgen.geometry.sorter_words` says: word ``(c << k) | p`` holds channel
    ``c·banks + b`` at position ``p < positions`` in bank ``b``, neuron ``channel·positions + p``
    (so with ``positions = 1``, neuron ``w·banks + b``). Each bank keeps its lists in
    three small block RAMs – ``head`` and ``tail`` per tick, a ``next`` link per word – plus a
    ``filled`` bit per tick; an append reads ``tail[tick]`` (the read port is transparent, so
    back-to-back appends to one tick see each other) and writes ``next[tail]`` or
    ``head[tick]``, and ``tail[tick]``. The ``end`` event starts the emit phase: ticks
    ``0..T−1`` are walked in order; at each tick every bank's head and tail are read at once,
    and the banks with a list are emitted one after the other (lowest bank first, each list
    from head to tail, one event per cycle, no cycle lost between banks); then ``end`` is
    emitted and the sorter collects again. A list keeps its arrival order, so words that arrive
    in increasing order leave sorted by tick, and within a tick by ``(neuron mod banks,
    neuron)`` – by neuron when ``banks`` is 1.

    A bank's link memory is written at the appended tick's old tail and read at the walk's next
    word, each through an address of its own, so the walk's loop – link memory output → next
    link address – is one multiplexer; while emitting, head and tail are read at the next
    tick from a register, and the end of a list is a register too. Events leave through a skid buffer
    (:func:`~hdlgen.rtl_templates.events.skid_buffer`), so ``o.ready`` stops there.

    Cycles per image: words in + 1, then one per tick + events out + 1, and the last event
    reaches ``o`` a cycle later (the skid buffer).

    Parameters
    ----------
    neurons : int
        Number of distinct neuron indices (``0..neurons−1``); each may appear at most once per image.
    ticks : int
        Window ``T``; event ticks are ``0..T−1``.
    banks : int
        Neurons (lanes of an input word) appended per cycle, ``1..neurons``.
    positions : int
        Positions of a feature map (a divisor of ``neurons``; 1 for a dense layer or the input).

    Members
    -------
    i : In(stream.Signature(lane_ticks_layout(neurons, ticks, banks)))
        Words of one image (each at most once; one without spikes may be left out), then ``end``. ``ready`` is high for
        the whole collect phase and low while emitting.
    o : Out(stream.Signature(event_layout(neurons, ticks)))
        The spikes sorted by tick, then ``end``.
    """

    formal = frozenset()   # property kinds stated in elaborate (rtl_templates.formal)

    def __init__(self, neurons: int, ticks: int, banks: int = 1, positions: int = 1):
        neurons, ticks, banks, positions = int(neurons), int(ticks), int(banks), int(positions)
        if neurons < 1 or ticks < 1:
            raise ValueError(f"tick sorter needs ≥ 1 neuron and ≥ 1 tick, got {neurons} and {ticks}")
        if positions < 1 or neurons % positions:
            raise ValueError(f"tick sorter positions must divide its {neurons} neurons, got {positions}")
        if not 1 <= banks <= neurons // positions:
            raise ValueError(f"tick sorter banks must be from 1 to its {neurons // positions} channels, got {banks}")
        self.neurons, self.ticks, self.banks, self.positions = neurons, ticks, banks, positions
        self.words = sorter_words(neurons, banks, positions)
        super().__init__({"i": In(stream.Signature(lane_ticks_layout(self.words, ticks, banks))),
                          "o": Out(stream.Signature(event_layout(neurons, ticks)))})

    def elaborate(self, platform):
        m = Module()
        ticks, banks = self.ticks, self.banks
        index_shape = self.i.payload.word.shape()

        # The link read port is addressed with the value ``current`` takes next cycle, so its
        # data is always next[current]. While emitting, head and tail are read at ``tick + 1``:
        # the tick the next seek looks at, whatever this cycle decides (after a seek or a walk the
        # tick either stays and is walked, or moves on by one) – so the decision to leave a tick
        # never reaches a read address, and the head read's path into the link address starts
        # at a register.
        tick, tick_next = Signal(range(ticks + 1)), Signal(range(ticks + 1))
        tick_done = Signal()            # the walk moves on to the next tick
        starting = Signal()             # the end of the words: the walk starts at tick 0
        m.d.comb += tick_next.eq(Mux(starting, 0, Mux(tick_done, tick + 1, tick)))
        m.d.sync += tick.eq(tick_next)
        # the tick whose head and tail are read: a register, 0 while collecting, else tick + 1 –
        # both sums made from ``tick`` beside the decision, so no adder follows it
        # (a copy per bank: the banks' memories lie apart, and one register's route to all of them
        # was the critical path of a 16-bank sorter)
        collect_next = Signal()         # the phase is "collect" next cycle
        upcoming_next = Signal(range(ticks + 2))
        m.d.comb += upcoming_next.eq(Mux(collect_next, 0, Mux(starting, 1, Mux(tick_done, tick + 2, tick + 1))))
        upcomings = fanout_copies(m, upcoming_next, banks, "upcoming")
        # The bank being emitted (one-hot) and the banks of this tick still to come are registers,
        # so neither the choice of the next bank (a carry chain) nor its results sit on a path
        # from one cycle's decisions to the next one's read addresses.
        chosen = Signal(banks)
        queue = Signal(banks)
        # every bank loads its head and tail of the tick whenever a tick is sought, listed in it
        # or not (only a bank with a list is chosen): so the load waits for no OR over the banks
        seeking = Signal()
        walking, closing = Signal(), Signal()
        # an event leaves the walk this cycle; the chosen bank then follows its link unless it is
        # at its tail – decided in each bank from its own ``at_tail``, so no OR over the banks
        # sits in front of the link read addresses
        walk_moves = Signal()
        appending = Signal(banks)        # append, second cycle: the bank's tail[tick] has arrived
        append_word = Signal(index_shape)
        collecting = Signal(init=1)
        taken = self.i.valid & collecting & ~self.i.payload.end

        currents, at_tails, filled = [], [], []
        bank_parts = []                 # each bank's memories and registers, for the proof's invariants
        for b in range(banks):
            head = m.submodules[f"head{b}"] = Memory(shape=index_shape, depth=ticks, init=[])
            tail = m.submodules[f"tail{b}"] = Memory(shape=index_shape, depth=ticks, init=[])
            links = m.submodules[f"links{b}"] = Memory(shape=index_shape, depth=self.words, init=[])
            head_write, tail_write, link_write = head.write_port(), tail.write_port(), links.write_port()
            head_read = head.read_port(transparent_for=(head_write,))
            tail_read = tail.read_port(transparent_for=(tail_write,))
            link_read = links.read_port()
            bank_filled = Signal(ticks, name=f"filled{b}")
            current = Signal(index_shape, name=f"current{b}")
            walk_tail = Signal(index_shape, name=f"walk_tail{b}")   # tail[tick] while the list is walked
            append_tick = Signal(range(ticks), name=f"append_tick{b}")
            lane_tick = self.i.payload.tick[b]

            # ``current`` ends its list: a register, compared from the values ``current`` and
            # ``walk_tail`` take, so the walk's step starts at flip-flops
            at_tail = Signal(name=f"at_tail{b}", init=1)
            take_link = Signal(name=f"take_link{b}")
            m.d.comb += take_link.eq(walk_moves & chosen[b] & ~at_tail)
            # links are written while collecting (at the old tail of the appended tick) and read
            # while emitting (at the value ``current`` takes), through addresses of their own: the
            # walk's loop is the link memory's output through one multiplexer to its read address,
            # and no tail lookup sits in front of it
            current_next = Mux(take_link, link_read.data, Mux(seeking, head_read.data, current))
            m.d.comb += [
                link_read.addr.eq(current_next), link_write.addr.eq(tail_read.data),
                head_read.addr.eq(upcomings[b]),
                tail_read.addr.eq(Mux(taken, lane_tick, upcomings[b])),
            ]
            walk_tail_next = Mux(seeking, tail_read.data, walk_tail)
            m.d.sync += [current.eq(current_next), walk_tail.eq(walk_tail_next),
                         at_tail.eq(current_next == walk_tail_next)]
            with m.If(taken):
                m.d.sync += append_tick.eq(lane_tick)
            with m.If(appending[b]):
                with m.If(bank_filled.bit_select(append_tick, 1)):
                    m.d.comb += [link_write.data.eq(append_word), link_write.en.eq(1)]
                with m.Else():
                    m.d.comb += [head_write.addr.eq(append_tick), head_write.data.eq(append_word),
                                 head_write.en.eq(1)]
                m.d.comb += [tail_write.addr.eq(append_tick), tail_write.data.eq(append_word), tail_write.en.eq(1)]
                m.d.sync += bank_filled.bit_select(append_tick, 1).eq(1)
            m.d.sync += appending[b].eq(taken & (lane_tick < ticks))
            currents.append(current)
            at_tails.append(at_tail)
            filled.append(bank_filled)
            bank_parts.append(dict(head=head, tail=tail, links=links, head_read=head_read, tail_read=tail_read,
                                   link_read=link_read, current=current, walk_tail=walk_tail, at_tail=at_tail,
                                   append_tick=append_tick, filled=bank_filled, upcoming=upcomings[b]))
        with m.If(taken):
            m.d.sync += append_word.eq(self.i.payload.word)

        # While emitting, each ``filled`` shifts right in the cycle its tick is sought (bit 0 is
        # this tick's): no wide multiplexer sits between ``emit.ready`` and the next read
        # addresses, and the shift depends on the state alone.
        this_tick = Cat(f[0] for f in filled)

        def lowest(banks_set):
            return banks_set & (~banks_set + 1)
        word = Signal(index_shape)       # the chosen bank's current word, and the bank's number
        bank = Signal(range(banks))
        at_tail = Signal()
        m.d.comb += [word.eq(_select(chosen, currents)), at_tail.eq((chosen & Cat(at_tails)).any()),
                     bank.eq(_one_hot_index(chosen))]

        # Events leave through a skid buffer: ``emit.ready`` is a register, so the consumer's
        # ready (often a long chain through its own pipeline) stops at the buffer instead of
        # reaching the walk's next read addresses.
        emit = stream.Signature(event_layout(self.neurons, ticks)).create(path=("emit",))
        spare_valid, spare = skid_buffer(m, emit, self.o)
        neuron = _neuron(word, bank, banks, self.positions)

        # The walk's decisions, flat: each is one gate of the phase, ``emit.ready`` and the two
        # ORs over the banks (``at_tail``, ``queued``) before the registers it enables. Not at its
        # tail, the chosen bank steps (``take_link``); at it, the next bank is chosen or the tick ends.
        listed, queued = this_tick.any(), queue.any()
        bank_done = walk_moves & at_tail
        m.d.comb += tick_done.eq((seeking & ~listed) | (bank_done & ~queued))
        with m.If(seeking & listed):
            m.d.sync += [chosen.eq(lowest(this_tick)), queue.eq(this_tick & ~lowest(this_tick))]
        with m.Elif(bank_done & queued):
            m.d.sync += [chosen.eq(lowest(queue)), queue.eq(queue & ~lowest(queue))]

        # The phase is four one-hot registers, not an encoded state: ``seeking`` and ``walking``
        # select every bank's next link address, so each is a flip-flop's output with no decoding
        # in front of its fan-out to the banks. ``closing`` emits ``end`` after the last tick.
        last_tick = tick == ticks - 1
        with m.If(collecting):
            m.d.comb += [self.i.ready.eq(1), collect_next.eq(1)]
            with m.If(self.i.valid & self.i.payload.end):
                m.d.comb += [starting.eq(1), collect_next.eq(0)]
                m.d.sync += [collecting.eq(0), seeking.eq(1)]
        with m.If(seeking):
            m.d.sync += [f.eq(f >> 1) for f in filled]
            with m.If(listed):
                m.d.sync += [seeking.eq(0), walking.eq(1)]
            with m.Elif(last_tick):
                m.d.sync += [seeking.eq(0), closing.eq(1)]
        with m.If(walking):
            m.d.comb += [emit.valid.eq(1), emit.payload.neuron.eq(neuron), emit.payload.tick.eq(tick),
                         walk_moves.eq(emit.ready)]
            with m.If(bank_done & ~queued):
                m.d.sync += [walking.eq(0), closing.eq(last_tick), seeking.eq(~last_tick)]
        with m.If(closing):
            m.d.comb += [emit.valid.eq(1), emit.payload.end.eq(1)]
            with m.If(emit.ready):
                m.d.comb += collect_next.eq(1)
                m.d.sync += [closing.eq(0), collecting.eq(1)]
        if self.formal:
            sorter_properties(m, self, walk=dict(
                banks=bank_parts, appending=appending, append_word=append_word, tick=tick, collecting=collecting,
                seeking=seeking, walking=walking, closing=closing, chosen=chosen, queue=queue, emit=emit,
                walk_moves=walk_moves, spare_valid=spare_valid, spare=spare))
        return m


def sorter_properties(m, sorter, image_bits: int = 2, walk=None):
    """The properties of a tick sorter (a :class:`TickSorter` or a pair of them) at its ports: the
    stream rules, each word at most once an image with ticks up to ``T`` (assumed of the
    producer), and with ``sorter`` among ``sorter.formal`` :func:`sorter_property` (images in it
    at once: fewer than ``2 ** image_bits``) – with ``walk`` (a :class:`TickSorter`'s memories and
    registers) and :func:`_sorter_invariants`, which make it inductive."""
    stream_ports(m, sorter)
    taken = sorter.i.valid & sorter.i.ready & ~sorter.i.payload.end
    seen = once_per_image(m, sorter.i, "word", sorter.words)
    m.d.comb += [Assume(~taken | (tick <= sorter.ticks)) for tick in sorter.i.payload.tick]
    # the words taken this image, at most ``words``: implied by "each word at most once", stated so an
    # induction step cannot start with more (it would take a count of the ones in ``seen`` to know)
    taken_words = Signal(range(sorter.words + 1), name="taken_words")
    with m.If(sorter.i.valid & sorter.i.ready & sorter.i.payload.end):
        m.d.sync += taken_words.eq(0)
    with m.Elif(taken):
        m.d.sync += taken_words.eq(taken_words + 1)
        m.d.comb += Assume(taken_words < sorter.words)
    if "sorter" in sorter.formal:
        watched = sorter_property(m, sorter, image_bits)
        if walk is not None:
            _sorter_invariants(m, sorter, walk, seen, taken_words, watched)


def sorter_property(m, sorter, image_bits: int = 2):
    """Assert that a neuron appended with a tick leaves once, with that tick, before its image's
    ``end``, that no neuron leaves that was not appended, and that ticks never fall within an
    image; images leave in the order they came (numbered by their ends on each side). The watched
    neuron is any one the solver picks (``word``, ``bank``). Images are numbered modulo
    ``2 ** image_bits``: more than the sorter holds at once (one with its ``end`` in the skid
    buffer, one collected, one coming in – twice that in a pair). Returns what it watches and
    keeps (a dict), for the invariants."""
    ticks, banks, positions = sorter.ticks, sorter.banks, sorter.positions
    word = anyconst(m, sorter, range(sorter.words), "word") if sorter.words > 1 else Const(0, 1)
    bank = anyconst(m, sorter, range(banks), "bank") if banks > 1 else Const(0, 1)
    shift = (positions - 1).bit_length()
    neuron = (word[shift:] * banks + bank) * positions + word[:shift]
    i, o = sorter.i, sorter.o
    left = o.valid & o.ready
    image_in, image_out = image_tracker(m, i.valid & i.ready & i.payload.end, left & o.payload.end, "sorter",
                                         image_bits)
    # per image number: the watched neuron was appended, and its tick (more than one image may be
    # in the sorter: the next one's words come while the last one's end is still leaving)
    expected = Signal(1 << image_bits)
    expected_ticks = Array(Signal(range(ticks + 1), name=f"expected_tick{n}") for n in range(1 << image_bits))
    emitted = Signal()
    last_tick = Signal(range(ticks + 1))
    cex_neuron = Signal(range(sorter.neurons), name="cex_neuron", attrs={"keep": 1})
    cex_tick = Signal(range(ticks + 1), name="cex_tick", attrs={"keep": 1})
    m.d.comb += [cex_neuron.eq(o.payload.neuron), cex_tick.eq(o.payload.tick)]
    this_image = expected.bit_select(image_out, 1)
    with m.If(left & ~o.payload.end):
        m.d.comb += Assert(o.payload.tick >= last_tick, "sorter: ticks in non-decreasing order")
        m.d.comb += Assert(o.payload.tick < ticks, "sorter: ticks in the window")
        m.d.sync += last_tick.eq(o.payload.tick)
        with m.If(o.payload.neuron == neuron):
            m.d.comb += Assert(this_image & ~emitted & (o.payload.tick == expected_ticks[image_out]),
                               "sorter: an appended event leaves once, with its tick")
            m.d.sync += emitted.eq(1)
    with m.If(left & o.payload.end):
        m.d.comb += Assert(emitted == this_image, "sorter: every appended event leaves before end")
        m.d.sync += [last_tick.eq(0), emitted.eq(0), expected.bit_select(image_out, 1).eq(0)]
    tick = i.payload.tick[bank]
    with m.If(i.valid & i.ready & ~i.payload.end & (i.payload.word == word) & (tick < ticks)):
        m.d.sync += [expected.bit_select(image_in, 1).eq(1), expected_ticks[image_in].eq(tick)]
    return dict(word=word, bank=bank, neuron=neuron, image_in=image_in, image_out=image_out, expected=expected,
                expected_ticks=expected_ticks, emitted=emitted, last_tick=last_tick)


def _sorter_invariants(m, sorter, walk, seen, taken_words, watched):
    """Invariants that make :func:`sorter_property` inductive (at depth 1), over ghost state of the
    watched bank; ``walk``: the sorter's memories and registers, ``seen`` and ``taken_words``: the
    producer's words this image, ``watched``: what :func:`sorter_property` keeps.

    The ghost state names each list entry by its *slot* ``(t, k)`` – the ``k``-th word appended
    with tick ``t`` this image: ``order[t, k]`` is its word, ``slot_of[word]`` the inverse,
    ``count[t]`` the length of tick ``t``'s list, ``done`` the words appended. A live slot's word
    knows its slot, was appended, and links to the next slot's word (``slot_holds``); a tick's head
    and tail are its first and last slot's words (``tick_holds``). Each fact is about one slot or
    tick, so it is asserted at one the solver picks – hence at every one – and assumed a cycle later
    at those the appends and the walk used (the walk follows a link to a word no other fact
    mentions). That is sound as an induction over time: at the first cycle a fact fails at any
    slot, the assumptions – about the cycle before – hold, and the solver may pick that slot. Then
    the walk is at slot ``(tick, walk_k)``; the watched word's slot is ahead of the walk until it is
    emitted and behind it after; per image number the watched neuron is in exactly one place (its
    list, the skid buffer, gone out) if it was appended, else nowhere; the image numbers differ by
    the ends between them; ticks pass the skid buffer in order, not behind the walk."""
    ticks, words, banks = sorter.ticks, sorter.words, len(walk["banks"])
    word, bank, neuron = watched["word"], watched["bank"], watched["neuron"]
    image_in, image_out, expected = watched["image_in"], watched["image_out"], watched["expected"]
    expected_ticks, emitted, last_tick = watched["expected_ticks"], watched["emitted"], watched["last_tick"]
    bits = len(image_in)
    k_bits, t_bits = max(1, (words - 1).bit_length()), max(1, (ticks - 1).bit_length())
    index_shape = sorter.i.payload.word.shape()

    def watched_bank(values):
        return Array(values)[bank] if banks > 1 else values[0]

    def bank_part(name):
        return watched_bank([part[name] for part in walk["banks"]])

    def read(memory, addr):
        port = memory.read_port(domain="comb")
        m.d.comb += port.addr.eq(addr)
        return port.data

    def bank_read(name, addr):
        return watched_bank([read(part[name], addr) for part in walk["banks"]])

    def check(condition, what):
        m.d.comb += Assert(condition, f"sorter invariant: {what}", src_loc_at=1)

    tick, collecting, seeking, walking, closing = (walk[n] for n in ("tick", "collecting", "seeking", "walking",
                                                                      "closing"))
    chosen, queue, emit = walk["chosen"], walk["queue"], walk["emit"]
    appending = walk["appending"].bit_select(bank, 1)
    append_word, append_tick = walk["append_word"], bank_part("append_tick")
    current, walk_tail, at_tail = bank_part("current"), bank_part("walk_tail"), bank_part("at_tail")
    filled, upcoming = bank_part("filled"), bank_part("upcoming")
    head_data, tail_data = bank_part("head_read").data, bank_part("tail_read").data
    link_data = bank_part("link_read").data
    is_chosen, is_queued = chosen.bit_select(bank, 1), queue.bit_select(bank, 1)
    release = closing & emit.ready              # the end goes out: the next image is collected

    # ghost state: the watched bank's lists by slot
    done = Signal(words, name="ghost_done")
    count = Array(Signal(range(words + 1), name=f"ghost_count{t}") for t in range(ticks))
    total = Signal(range(words + 1), name="ghost_total")
    order = m.submodules.ghost_order = Memory(shape=index_shape, depth=ticks << k_bits, init=[])
    slot_of = m.submodules.ghost_slot = Memory(shape=k_bits + t_bits, depth=words, init=[])
    order_write, slot_write = order.write_port(), slot_of.write_port()

    def field(value, width):
        value = Value.cast(value)
        return Cat(value[:width], Const(0, max(0, width - len(value))))

    def slot(t, k):
        return Cat(field(k, k_bits), field(t, t_bits))

    with m.If(appending):
        new = slot(append_tick, count[append_tick])
        m.d.comb += [order_write.addr.eq(new), order_write.data.eq(append_word), order_write.en.eq(1),
                     slot_write.addr.eq(append_word), slot_write.data.eq(new), slot_write.en.eq(1)]
        m.d.sync += [done.bit_select(append_word, 1).eq(1), count[append_tick].eq(count[append_tick] + 1),
                     total.eq(total + 1)]
    with m.If(release):
        m.d.sync += [done.eq(0), total.eq(0), *[c.eq(0) for c in count]]
    # the walk's slot in the watched bank's list: (tick, walk_k)
    walk_k = Signal(k_bits + 1, name="ghost_walk_k")
    with m.If(seeking):
        m.d.sync += walk_k.eq(0)
    with m.Elif(walk["walk_moves"] & is_chosen & ~at_tail):
        m.d.sync += walk_k.eq(walk_k + 1)
    # the watched neuron left the walk this image
    walked = Signal(name="ghost_walked")
    with m.If(emit.valid & emit.ready & ~emit.payload.end & (emit.payload.neuron == neuron)):
        m.d.sync += walked.eq(1)
    with m.If(release):
        m.d.sync += walked.eq(0)

    def slot_holds(t, k):
        """The facts of slot ``(t, k)`` (true of a slot not live)."""
        t, k = Value.cast(t), Value.cast(k)
        held = read(order, slot(t, k))
        length = count[t]
        return ((t >= ticks) | (k < 0) | (k >= length)
                | ((read(slot_of, held) == slot(t, k)) & done.bit_select(held, 1)
                   & ((k + 1 >= length) | (bank_read("links", held) == read(order, slot(t, k + 1))))))

    def tick_holds(t):
        """The facts of tick ``t``'s list: its head and tail are its first and last slot's words."""
        return (count[t] == 0) | ((bank_read("head", t) == read(order, slot(t, Const(0, k_bits))))
                                  & (bank_read("tail", t) == read(order, slot(t, count[t] - 1))))

    # one slot and one tick the solver picks: every slot's and tick's facts hold
    any_tick = anyconst(m, sorter, range(ticks), "slot_tick") if ticks > 1 else Const(0, 1)
    any_k = anyconst(m, sorter, range(1 << k_bits), "slot_k")
    check(slot_holds(any_tick, any_k), "a live slot's word knows its slot and links to the next")
    check(tick_holds(any_tick), "head and tail: the first and last slot's words")
    # ... so they may be assumed a cycle later where the appends and the walk use them
    used = (~appending | (tick_holds(append_tick) & slot_holds(append_tick, count[append_tick] - 1))) & (
        ~(seeking | walking) | (tick_holds(tick) & slot_holds(tick, 0) & slot_holds(tick, count[tick] - 1)
                                & slot_holds(tick, walk_k) & slot_holds(tick, walk_k + 1)))
    held_before = Signal(name="ghost_slots_held", init=1)
    m.d.sync += held_before.eq(used)
    m.d.comb += Assume(held_before)

    # phase
    check(Cat(collecting, seeking, walking, closing).any()
          & ((Cat(collecting, seeking, walking, closing) & (Cat(collecting, seeking, walking, closing) - 1)) == 0),
          "one phase")
    check(~(seeking | walking) | (tick < ticks), "the walk's tick in the window")
    check(~closing | (tick == ticks), "closing after the last tick")
    check(~walking | (chosen.any() & ((chosen & (chosen - 1)) == 0) & ((chosen & queue) == 0)),
          "one bank chosen, not queued")
    check(~appending | collecting, "appends while collecting")
    check(Mux(collecting, upcoming == 0, ~(seeking | walking) | (upcoming == tick + 1)), "the next tick's reads")
    check(~seeking | ((head_data == bank_read("head", tick)) & (tail_data == bank_read("tail", tick))),
          "head and tail read at the tick sought")
    nonempty = Cat(c != 0 for c in count)
    shifts = Mux(collecting, 0, Mux(walking, tick + 1, tick))
    check(filled == (nonempty >> shifts), "filled: the ticks with a list not yet sought")
    # no list is longer than the appends this image, and they are fewer than the words taken (so
    # no count wraps)
    check(Cat(c <= total for c in count).all() & (total <= words), "every list within the words appended")
    check((taken_words <= words) & Mux(collecting, total + appending <= taken_words, taken_words == 0),
          "no more appends than words")
    check(~collecting | ((done & ~seen) == 0), "appended words came this image")
    check(~appending | (seen.bit_select(append_word, 1) & ~done.bit_select(append_word, 1)
                        & (append_tick < ticks)), "an append is of a new word")
    tail_read = ~filled.bit_select(append_tick, 1) | (tail_data == bank_read("tail", append_tick))
    check(~appending | tail_read, "an append reads its tick's tail")
    listed = walking & (is_chosen | is_queued)
    length = count[tick]
    check(~listed | ((length != 0) & (walk_k < length) & (current == read(order, slot(tick, walk_k)))
                     & (walk_tail == read(order, slot(tick, length - 1))) & (at_tail == (walk_k == length - 1))
                     & (link_data == bank_read("links", current)) & (~is_queued | (walk_k == 0))),
          "the walk at slot (tick, walk_k)")

    # the watched word: its slot (a register: a read of ``slot_of`` would address ``order`` and be
    # addressed by it, a loop between the two memories), ahead of the walk until it leaves it
    where = Signal(k_bits + t_bits, name="ghost_watched_slot")
    with m.If(appending & (append_word == word)):
        m.d.sync += where.eq(slot(append_tick, count[append_tick]))
    word_tick, word_k = where[k_bits:], where[:k_bits]
    appended = done.bit_select(word, 1)
    pending = appended & ~walked
    check(~appended | ((word_tick < ticks) & (word_k < count[word_tick])
                       & (read(order, slot(word_tick, word_k)) == word)), "the watched word knows its slot")
    check(~appended | (read(slot_of, word) == where), "the watched word's slot")
    check(~pending | ~seeking | (word_tick >= tick), "the watched word not yet passed")
    check(~pending | ~walking | (word_tick > tick) | ((word_tick == tick) & (is_chosen | is_queued)
                                                       & (walk_k <= word_k)), "the watched word not yet walked")
    check(~pending | ~closing, "the watched word walked before the end")
    check(~walked | (appended & ~collecting), "walked: appended this image")
    check(~walked | ~seeking | (word_tick < tick), "walked: the walk is past it")
    check(~walked | ~walking | (word_tick < tick) | ((word_tick == tick) & ~is_queued
                                                      & (~is_chosen | (walk_k > word_k))), "walked: once")

    # where the watched neuron is: exactly one place per image that has it
    o, spare_valid, spare = sorter.o, walk["spare_valid"], walk["spare"]
    out_end, spare_end = o.valid & o.payload.end, spare_valid & spare.end
    out_event, spare_event = o.valid & ~o.payload.end, spare_valid & ~spare.end
    spare_image = (image_out + out_end)[:bits]
    current_image = (image_in - ~collecting)[:bits]
    check(~spare_valid | o.valid, "the skid buffer fills from its output")
    check(((image_in - image_out)[:bits] == (~collecting + out_end + spare_end)[:bits]), "images by their ends")
    check(~collecting | ~(out_event & (image_out == image_in)) & ~(spare_event & (spare_image == image_in)),
          "no event of the image being collected has left")
    in_out = out_event & (o.payload.neuron == neuron)
    in_spare = spare_event & (spare.neuron == neuron)
    in_append = appending & (append_word == word)
    in_lists = pending | in_append
    for n in range(1 << bits):
        places = ((emitted & (image_out == n)) + (in_out & (image_out == n)) + (in_spare & (spare_image == n))
                  + (in_lists & (current_image == n)))
        check(places == expected[n], "the watched neuron in one place per image that has it")
    check(expected.bit_select(current_image, 1) == (appended | in_append), "expected: appended this image")
    check(~in_out | (o.payload.tick == expected_ticks[image_out]), "the watched neuron's tick (out)")
    check(~in_spare | (spare.tick == expected_ticks[spare_image]), "the watched neuron's tick (spare)")
    check(~appended | (word_tick == expected_ticks[current_image]), "the watched word's tick")
    check(~in_append | (append_tick == expected_ticks[current_image]), "the watched word's tick (appending)")
    # ticks: in order through the skid buffer and behind the walk
    check(~out_event | ((o.payload.tick >= last_tick) & (o.payload.tick < ticks)), "the output's tick")
    check(~spare_event | ((spare.tick < ticks) & (~out_event | (spare.tick >= o.payload.tick))), "the spare's tick")
    check(collecting | ((~spare_event | (spare_image != current_image) | (spare.tick <= tick))
                        & (~out_event | (image_out != current_image) | (o.payload.tick <= tick))
                        & ((image_out != current_image) | (last_tick <= tick))), "the walk's tick: not behind")
    check(~collecting | (image_out != image_in) | ((last_tick == 0) & ~emitted), "an image not yet out")


def _neuron(word, bank, banks, positions):
    """The neuron of ``bank``'s ``word`` (:func:`~hdlgen.geometry.sorter_words`): shifts and adds."""
    shift = (positions - 1).bit_length()
    block = word[shift:]
    channel = Cat(bank, block) if banks & (banks - 1) == 0 else times_constant(block, banks) + bank
    if positions == 1:
        return channel
    return times_constant(channel, positions) + word[:shift]


def _select(one_hot, values):
    """The value whose bit is set in ``one_hot`` (an AND-OR multiplexer; 0 when none is)."""
    selected = 0
    for b, value in enumerate(values):
        selected = selected | Mux(one_hot[b], value, 0)
    return selected


def _one_hot_index(one_hot):
    """The index of the set bit of ``one_hot``: bit ``k`` is the OR of the positions with bit ``k``."""
    if len(one_hot) == 1:
        return Const(0, 1)
    return Cat(Cat(one_hot[b] for b in range(len(one_hot)) if b >> k & 1).any()
               for k in range((len(one_hot) - 1).bit_length()))
