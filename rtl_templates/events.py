"""Payload layouts shared by the pipeline stages.

Between spiking stages the payload is a spike event ``{neuron, tick, end}``: one image's events
come in non-decreasing tick order (ties in increasing neuron order), then one event with
``end = 1`` (its ``neuron``/``tick`` ignored) closes the image's window. Between a dense engine
and the stage reading its accumulators the payload is an accumulator word ``{acc, last}``.
"""

from amaranth.hdl import Mux, Signal, signed, unsigned
from amaranth.lib import data

from hdlgen.ttfs import unsigned_width

__all__ = ["event_layout", "lane_ticks_layout", "acc_word_layout", "skid_buffer", "times_constant"]


def event_layout(neurons: int, ticks: int) -> data.StructLayout:
    """Spike event of a layer with ``neurons`` outputs and a ``ticks``-tick window.

    Widths match :meth:`hdlgen.ttfs.IntDense.widths` of the consuming layer (``index`` and
    ``input_tick``), so producer and consumer agree without adapters.
    """
    return data.StructLayout({
        "neuron": unsigned(unsigned_width(neurons - 1)),
        "tick": unsigned(unsigned_width(ticks)),
        "end": unsigned(1),
    })


def lane_ticks_layout(words: int, ticks: int, lanes: int) -> data.StructLayout:
    """One word of fire ticks for a tick sorter with ``words`` words of ``lanes`` lanes:
    ``tick[l]`` of lane ``l``'s neuron (``ticks``: no spike), or ``end``."""
    return data.StructLayout({
        "word": unsigned(unsigned_width(words - 1)),
        "tick": data.ArrayLayout(unsigned(unsigned_width(ticks)), lanes),
        "end": unsigned(1),
    })


def acc_word_layout(acc_width: int, lanes: int) -> data.StructLayout:
    """One accumulator word: ``lanes`` potentials (neurons ``word·lanes + lane``), ``last`` on the
    image's final word."""
    return data.StructLayout({
        "acc": data.ArrayLayout(signed(acc_width), lanes),
        "last": unsigned(1),
    })


def skid_buffer(m, i, o):
    """Pass stream ``i`` on to stream ``o`` through two registers: ``i.ready`` is a register (no
    path from ``o.ready``), and one transfer per cycle goes through with a cycle of latency.
    Returns the spare register ``(valid, payload)`` (``o``'s are the other), for a proof's invariants."""
    layout = i.payload.shape()
    spare_valid, spare = Signal(), Signal(layout, name="spare")
    out_valid, out = Signal(), Signal(layout, name="out")
    m.d.comb += [i.ready.eq(~spare_valid), o.valid.eq(out_valid), o.payload.eq(out)]
    with m.If(~out_valid | o.ready):
        m.d.sync += [out_valid.eq(spare_valid | i.valid), out.eq(Mux(spare_valid, spare, i.payload)),
                     spare_valid.eq(0)]
    with m.Elif(i.valid & ~spare_valid):
        m.d.sync += [spare_valid.eq(1), spare.eq(i.payload)]
    return spare_valid, spare


def times_constant(value, constant: int):
    """``value · constant`` as a sum of shifted copies of ``value``, one per set bit of the
    constant: a row base computed in the cycle a spike arrives stays a few adders instead of
    a multiplier (which the tools may map to a slow DSP block)."""
    terms = [value << bit for bit in range(int(constant).bit_length()) if constant >> bit & 1]
    return sum(terms[1:], terms[0]) if terms else value * 0


# Registers named with this are copies of one value, each near the logic it feeds; a board build
# tells yosys to keep them (hdlgen.boards.build), which would otherwise merge them back into one.
FANOUT_COPY = "fanout_copy"


def fanout_copies(m, value, copies: int, name: str) -> list:
    """``copies`` registers that each take ``value`` every cycle (one register when ``copies`` is 1):
    a register read in many places far apart drives each place from a copy of its own, so no
    route from one flip-flop spans them all."""
    if copies == 1:
        register = Signal.like(value, name=name)
        m.d.sync += register.eq(value)
        return [register]
    registers = [Signal.like(value, name=f"{name}_{FANOUT_COPY}{n}") for n in range(copies)]
    m.d.sync += [register.eq(value) for register in registers]
    return registers
