"""Building blocks of the components' formal properties (proved by ``hdlgen prove``).

Every component has a ``formal`` attribute, the set of property kinds it states in its
``elaborate`` (empty by default: synthesis, simulation and ``hdlgen verilog`` builds get no
properties and no extra logic, so their Verilog is byte-identical). The kinds are
:data:`hdlgen.prove.PROPERTIES`; docs/rtl-interface.md ("Properties") states each one in words. A component
built for a proof is the top of its own design: its inputs are free, constrained by ``Assume``
to what its producer promises, and its outputs are checked with ``Assert``.
"""

from amaranth.hdl import Assert, Assume, Mux, Signal, Value, signed

__all__ = ["past", "stream_rules", "stream_ports", "once_per_image", "anyconst", "image_tracker",
           "in_order", "no_overflow", "partial_sums_fit", "engine_properties", "first_state", "fsm_of"]


def first_state(component, kinds, after_clear: str):
    """The initial state of a component's ``phase`` machine: ``None`` (its first, ``clear``), or,
    in a proof of one of ``kinds``, ``after_clear`` – the state the clear after reset leads to. The
    clear writes into a memory the values the memory starts with (biases, or zero fired bits), so
    starting after it is the same design, and a bounded check spends its steps on spikes instead
    of one step per memory word (hundreds for a convolution)."""
    return after_clear if component.formal & set(kinds) else None


def fsm_of(m, name: str):
    """The FSM called ``name`` that ``m`` has built (its ``ongoing(state)``), for invariants
    stated after it: the synthesised code keeps no handle on it."""
    return m._generated[name]


def past(m, value, name: str):
    """A register holding ``value`` of the cycle before (its reset value in the first cycle)."""
    held = Signal.like(value, name=f"past_{name}", init=0)
    m.d.sync += held.eq(value)
    return held


def stream_rules(m, port, name: str, *, output: bool):
    """The stream rules on ``port``: once ``valid`` is high without ``ready``, ``valid`` stays high
    and ``payload`` stays as it was until the transfer. Asserted on an ``output``, assumed of an
    input (what its producer promises)."""
    waiting = past(m, port.valid & ~port.ready, f"{name}_waiting")
    value = Value.cast(port.payload)
    payload = past(m, value, f"{name}_payload")
    check = Assert if output else Assume
    m.d.comb += check(~waiting | (port.valid & (value == payload)), f"{name}: stream rules")


def once_per_image(m, port, name: str, words: int):
    """Assume each of ``words`` indices comes at most once per image on an event ``port``
    (``word``/``neuron`` field given by ``name``; ``end`` closes the image) and that ticks come
    in non-decreasing order: what a layer's producer promises. Returns ``seen``, the indices
    of the image so far."""
    seen = Signal(words, name=f"seen_{name}")
    index = getattr(port.payload, name)
    take = port.valid & port.ready
    with m.If(take & port.payload.end):
        m.d.sync += seen.eq(0)
    with m.Elif(take):
        m.d.sync += seen.bit_select(index, 1).eq(1)
        m.d.comb += Assume(index < words)
        m.d.comb += Assume(~seen.bit_select(index, 1))
    return seen


def groups_once_per_image(m, port, words: int, ticks: int):
    """:func:`once_per_image` for groups of events (``event_group_layout``): slot 0 holds a spike,
    a slot holds one when its tick is below ``ticks``, and each index comes at most once per
    image, across slots too. Returns ``seen``."""
    seen = Signal(words, name="seen_neuron")
    take = port.valid & port.ready
    slots = list(zip(port.payload.neuron, port.payload.tick))
    with m.If(take & port.payload.end):
        m.d.sync += seen.eq(0)
    with m.Elif(take):
        m.d.comb += Assume(slots[0][1] < ticks)
        for s, (neuron, tick) in enumerate(slots):
            with m.If(tick < ticks):
                m.d.sync += seen.bit_select(neuron, 1).eq(1)
                m.d.comb += Assume((neuron < words) & ~seen.bit_select(neuron, 1))
                m.d.comb += [Assume((other_tick == ticks) | (other != neuron)) for other, other_tick in slots[s + 1:]]
    return seen


def stream_ports(m, component, inputs=("i",), outputs=("o",)):
    """The stream rules of ``component``'s ports: assumed of its ``inputs`` whenever it states a
    property, asserted of its ``outputs`` when it states ``"stream"``."""
    for name in inputs:
        stream_rules(m, getattr(component, name), name, output=False)
    if "stream" in component.formal:
        for name in outputs:
            stream_rules(m, getattr(component, name), name, output=True)


def anyconst(m, component, shape, name: str):
    """A value the solver chooses once and keeps (e.g. which neuron a property watches): an
    input of the proof's design, listed in ``component.formal_inputs``, held from cycle to cycle."""
    value = Signal(shape, name=f"any_{name}")
    component.__dict__.setdefault("formal_inputs", []).append(value)
    started = Signal(name=f"any_{name}_started")
    m.d.sync += started.eq(1)
    m.d.comb += Assume(~started | (value == past(m, value, f"any_{name}")))
    return value


def image_tracker(m, taken_end, left_end, name: str, bits: int = 2):
    """Image numbers modulo ``2**bits`` on each side, counted by each image's ``end``: ``(in,
    out)``; an event taken while ``in`` equals ``out`` belongs to the image leaving now (a stage
    holds fewer than ``2**bits`` images at once: its input may run ahead by the ends in its
    output buffers)."""
    image_in, image_out = Signal(bits, name=f"{name}_image_in"), Signal(bits, name=f"{name}_image_out")
    with m.If(taken_end):
        m.d.sync += image_in.eq(image_in + 1)
    with m.If(left_end):
        m.d.sync += image_out.eq(image_out + 1)
    return image_in, image_out


def in_order(m, pick, taken, value, left, out, name: str):
    """Assert that what leaves (``left``, payload ``out``) is what was taken (``taken``, ``value``),
    in order, each once: the ``pick``-th to leave (any: the solver picks it) is the ``pick``-th
    taken – this cycle's too, for a stage that passes an event on in the cycle it takes it – and
    no more leave than were taken. The counts wrap at ``2 ** len(pick)``: a bounded check, for
    fewer cycles than that. Returns the counts so far ``(taken, left)``."""
    bits = len(pick) + 1
    taken_count, left_count = Signal(bits, name=f"{name}_taken"), Signal(bits, name=f"{name}_left")
    picked = Signal.like(value, name=f"{name}_picked")
    now = taken & (taken_count == pick)
    m.d.sync += [taken_count.eq(taken_count + taken), left_count.eq(left_count + left)]
    with m.If(now):
        m.d.sync += picked.eq(value)
    m.d.comb += Assert(~left | (left_count < taken_count + taken), f"{name}: nothing leaves that was not taken")
    m.d.comb += Assert(~left | (left_count != pick) | (out == Mux(now, value, picked)),
                       f"{name}: events leave in order, each once")
    return taken_count, left_count


def no_overflow(m, valid, summed, held, products):
    """Assert that every lane an engine writes back (``valid``) is its exact sum, the word read
    plus the product (Amaranth widens both sides, so a wrapped lane differs); the first lane
    that wraps is ``cex_value`` (its exact sum) and ``cex_lane``."""
    lanes = len(products)
    cex_lane = Signal(range(max(lanes, 2)), name="cex_lane", attrs={"keep": 1})
    cex_value = Signal(signed(len(summed[0]) + 2), name="cex_value", attrs={"keep": 1})
    for l in reversed(range(lanes)):
        exact = held[l] + products[l]
        with m.If(valid & (summed[l] != exact)):
            m.d.comb += [cex_lane.eq(l), cex_value.eq(exact)]
        m.d.comb += Assert(~valid | (summed[l] == exact), "overflow: the accumulator holds the exact sum")


def partial_sums_fit(m, lows, highs, acc_width: int):
    """Assert that every lane's partial sums fit a signed ``acc_width``-bit accumulator: its lowest
    (``lows``, the bias and every negative product at the full ``q``) and highest (``highs``) sum,
    one value per lane (for the word a proof watches). The counterexample's ``cex_value`` is the
    sum that does not fit."""
    cex_value = Signal(signed(acc_width + 2), name="cex_value", attrs={"keep": 1})
    low_end, high_end = -(1 << (acc_width - 1)), (1 << (acc_width - 1)) - 1
    for low, high in zip(lows, highs):
        with m.If(low < low_end):
            m.d.comb += cex_value.eq(low)
        with m.If(high > high_end):
            m.d.comb += cex_value.eq(high)
        m.d.comb += Assert((low >= low_end) & (high <= high_end), "overflow: every partial sum fits")


def engine_properties(m, engine, write_valid, summed, held, products, *, check_adds=True):
    """A dense or conv engine's properties: its stream rules, each input neuron at most once an
    image with a tick inside its window (assumed of the producer), and with ``overflow`` among
    ``engine.formal`` :func:`no_overflow` of the lanes it writes back (unless ``check_adds`` is
    off: an engine whose invariants prove it by an argument). Returns the inputs seen so far this
    image (:func:`once_per_image`)."""
    layer = engine.layer
    stream_ports(m, engine)
    taken = engine.i.valid & engine.i.ready & ~engine.i.payload.end
    if getattr(engine, "slots", 1) > 1:     # several spikes at once: ticks up to the window (an empty slot)
        seen = groups_once_per_image(m, engine.i, layer.fan_in, layer.ticks_in)
        m.d.comb += [Assume(~taken | (tick <= layer.ticks_in)) for tick in engine.i.payload.tick]
    else:
        seen = once_per_image(m, engine.i, "neuron", layer.fan_in)
        m.d.comb += Assume(~taken | (engine.i.payload.tick < layer.ticks_in))
    if "overflow" in engine.formal and check_adds:
        no_overflow(m, write_valid, summed, held, products)
    return seen
