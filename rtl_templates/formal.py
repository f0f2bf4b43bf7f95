"""Building blocks of the components' formal properties (proved by ``hdlgen prove``).

Every component has a ``formal`` attribute, the set of property kinds it states in its
``elaborate`` (empty by default: synthesis, simulation and ``hdlgen verilog`` builds get no
properties and no extra logic, so their Verilog is byte-identical). The kinds are
:data:`PROPERTIES`; docs/rtl-interface.md ("Properties") states each one in words. A component
built for a proof is the top of its own design: its inputs are free, constrained by ``Assume``
to what its producer promises, and its outputs are checked with ``Assert``.
"""

from amaranth.hdl import Assert, Assume, Signal, Value

__all__ = ["PROPERTIES", "past", "stream_rules", "stream_ports", "once_per_image"]

# property kind → what it says (the one-line form of docs/rtl-interface.md's table)
PROPERTIES = {
    "stream": "every output stream holds valid with a stable payload until ready",
    "spike_time": "fire tick = T − clamp(floor(A / K), 0, T) for every A the layer's bounds allow",
    "overflow": "no accumulator overflows: every add equals its exact sum",
    "sorter": "every appended event leaves exactly once, in non-decreasing tick order",
    "maxpool": "exactly the earliest spike of each window passes",
    "receiver": "no frame with a wrong CRC or length is accepted; the receiver always returns to idle",
}


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


def stream_ports(m, component, inputs=("i",), outputs=("o",)):
    """The stream rules of ``component``'s ports: assumed of its ``inputs`` whenever it states a
    property, asserted of its ``outputs`` when it states ``"stream"``."""
    for name in inputs:
        stream_rules(m, getattr(component, name), name, output=False)
    if "stream" in component.formal:
        for name in outputs:
            stream_rules(m, getattr(component, name), name, output=True)
