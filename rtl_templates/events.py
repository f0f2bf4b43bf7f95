"""Payload layouts shared by the pipeline stages.

Between spiking stages the payload is a spike event ``{neuron, tick, end}``: one image's events
come in non-decreasing tick order (ties in increasing neuron order), then one event with
``end = 1`` (its ``neuron``/``tick`` ignored) closes the image's window. Between a dense engine
and the stage reading its accumulators the payload is an accumulator word ``{acc, last}``.
"""

from amaranth.hdl import signed, unsigned
from amaranth.lib import data

from hdlgen.ttfs import unsigned_width

__all__ = ["event_layout", "acc_word_layout"]


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


def acc_word_layout(acc_width: int, lanes: int) -> data.StructLayout:
    """One accumulator word: ``lanes`` potentials (neurons ``word·lanes + lane``), ``last`` on the
    image's final word."""
    return data.StructLayout({
        "acc": data.ArrayLayout(signed(acc_width), lanes),
        "last": unsigned(1),
    })
