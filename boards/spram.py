"""Layer weights in iCE40 UP5K single-port RAM (SPRAM), loaded over the host link.

The UP5K has 30 block RAMs (120 kbit) and 4 SPRAMs (``SB_SPRAM256KA``, 16384 × 16 bits each,
1 Mbit in all). A 784-128-10 net with 8-bit weights needs about 0.8 Mbit of weights, so its big
layers must live in SPRAM. SPRAM gets no contents from the bitstream (and yosys does not infer
it from an initialised memory), so after configuration the host writes the weights with LOAD
messages (:mod:`hdlgen.boards.link`) before classifying.

:class:`SPRAMWeights` takes the place of an engine's ``WeightROM`` (the boundary documented in
``rtl_templates/dense.py``: members ``addr``, ``en``, ``data``, the stage geometry's
``weight_latency`` cycles of read latency) and adds a write port. Rows of ``weight_bits × lanes ≤ 16``
bits are packed ``per_word`` to a 16-bit SPRAM word (``per_word`` a power of two), row ``r`` in word
``r >> log2(per_word)`` at slot ``r & (per_word − 1)``; words ``0..16383`` in SPRAM 0, the next 16384 in SPRAM 1, and so on.
:func:`spram_image` gives the words the host writes.
"""

import numpy as np
from amaranth import ClockSignal, Instance, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from ..errors import UserError
from ..geometry import ceil_div

__all__ = ["SPRAM_WORDS", "SPRAM_COUNT", "WeightWrite", "spram_shape", "spram_image", "SPRAMWeights", "spram_plan",
           "place_weights"]

SPRAM_WORDS = 16384      # 16-bit words per SB_SPRAM256KA
SPRAM_COUNT = 4          # on the iCE40 UP5K
WORD_BITS = 16

WeightWrite = data.StructLayout({"layer": unsigned(8), "addr": unsigned(16), "data": unsigned(WORD_BITS)})


def spram_shape(row_bits: int, rows: int) -> tuple[int, int, int]:
    """``(per_word, words, sprams)`` for ``rows`` rows of ``row_bits`` bits."""
    if not 1 <= row_bits <= WORD_BITS:
        raise UserError(f"SPRAM weights need weight bits × lanes ≤ {WORD_BITS}, got {row_bits}; use fewer lanes")
    per_word = 1 << (WORD_BITS // row_bits).bit_length() - 1
    words = ceil_div(rows, per_word)
    return per_word, words, ceil_div(words, SPRAM_WORDS)


def spram_image(geometry) -> np.ndarray:
    """The 16-bit words to write for an engine's weights (its stage geometry's
    ``weight_rows()``, packed as above): what the host sends in LOADs."""
    rows = geometry.weight_rows()
    per_word, words, _ = spram_shape(geometry.row_bits, len(rows))
    rows = rows + [0] * (words * per_word - len(rows))
    return np.array([sum(rows[w * per_word + s] << (s * geometry.row_bits) for s in range(per_word))
                     for w in range(words)], dtype=np.uint16)


def spram_plan(geometry, sprams: int = SPRAM_COUNT) -> list:
    """The engines (indices into ``geometry.engines``) whose weights go to SPRAM: the largest
    first, while the SPRAMs last."""
    stages = [geometry.layers[layer] for layer in geometry.engines]
    chosen = []
    for index in sorted(range(len(stages)), key=lambda i: -stages[i].weight_memory_bits):
        stage = stages[index]
        if stage.row_bits > WORD_BITS:
            continue
        _, _, needed = spram_shape(stage.row_bits, stage.weight_row_count)
        if needed <= sprams:
            sprams -= needed
            chosen.append(index)
    return sorted(chosen)


def place_weights(core, sprams: int = SPRAM_COUNT) -> list:
    """Move the largest engines' weights into SPRAM (:func:`spram_plan`); returns their indices.

    Gives ``core.engines[i].weights`` (before the core is elaborated) a :class:`SPRAMWeights`.
    """
    chosen = spram_plan(core.geometry, sprams)
    for index in chosen:
        core.engines[index].weights = SPRAMWeights(core.geometry.layers[core.geometry.engines[index]], index)
    return chosen


class SPRAMWeights(wiring.Component):
    """A layer's weight rows in SPRAM: ``WeightROM``'s read members plus a write port.

    Reads: ``data`` is the row at ``addr`` of the cycle ``latency`` (the geometry's
    ``weight_latency``, 1 or 2) cycles before, with ``en`` high. Writes: a ``write`` transfer whose ``layer`` is this one's
    stores the 16-bit ``data`` at word ``addr`` one cycle later (always ready; the transfer is
    registered first, so the host link's frame logic does not reach the SPRAM pins in one
    path; a write and a read in the same cycle: the write wins, the read returns stale data –
    loading happens before classifying).
    Without a platform (simulation) the SPRAMs are an Amaranth memory of the same shape.

    Parameters
    ----------
    geometry : DenseGeometry or ConvGeometry
        The engine's stage geometry: row layout, rows (for :func:`spram_image`) and read latency.
    layer : int
        Index of the engine, matched against ``write.payload.layer``.
    """

    def __init__(self, geometry, layer: int):
        self.geometry = geometry
        self.layer = layer
        self.row_bits = geometry.row_bits
        rows = geometry.weight_row_count
        self.per_word, self.spram_words, self.sprams = spram_shape(self.row_bits, rows)
        self.latency = geometry.weight_latency
        self.layout = data.ArrayLayout(signed(geometry.layer.weight_bits), geometry.lanes)
        super().__init__({
            "addr": In(range(rows)),
            "en": In(1),
            "data": Out(self.layout),
            "write": In(stream.Signature(WeightWrite)),
        })

    def elaborate(self, platform):
        m = Module()
        slot_bits = ceil_log2(self.per_word)
        word = Signal(range(max(2, self.sprams * SPRAM_WORDS)))
        slot = Signal(max(1, slot_bits))
        slot_read = Signal.like(slot)
        bank_read = Signal(range(max(2, self.sprams)))
        writing = Signal()
        write_addr, write_data = Signal(16), Signal(WORD_BITS)
        m.d.sync += [writing.eq(self.write.valid & (self.write.payload.layer == self.layer)
                                & (self.write.payload.addr < self.sprams * SPRAM_WORDS)),
                     write_addr.eq(self.write.payload.addr), write_data.eq(self.write.payload.data)]
        m.d.comb += [
            self.write.ready.eq(1),
            word.eq(Mux(writing, write_addr, self.addr >> slot_bits)),
            slot.eq(self.addr[:slot_bits] if slot_bits else 0),
        ]
        with m.If(self.en & ~writing):
            m.d.sync += [slot_read.eq(slot), bank_read.eq(word >> 14)]

        outputs = []
        for bank in range(self.sprams):
            out = Signal(WORD_BITS, name=f"spram{bank}_out")
            selected = (word >> 14) == bank
            if platform is None:
                memory = m.submodules[f"spram{bank}"] = Memory(shape=WORD_BITS, depth=SPRAM_WORDS, init=[])
                read = memory.read_port()
                write = memory.write_port()
                m.d.comb += [read.addr.eq(word[:14]), read.en.eq(self.en & selected & ~writing), out.eq(read.data),
                             write.addr.eq(word[:14]), write.data.eq(write_data),
                             write.en.eq(writing & selected)]
            else:
                m.submodules[f"spram{bank}"] = Instance(
                    "SB_SPRAM256KA",
                    i_ADDRESS=word[:14], i_DATAIN=write_data, i_MASKWREN=0b1111,
                    i_WREN=writing & selected, i_CHIPSELECT=(self.en | writing) & selected, i_CLOCK=ClockSignal("sync"),
                    i_STANDBY=0, i_SLEEP=0, i_POWEROFF=1, o_DATAOUT=out)
            outputs.append(out)
        chosen = Signal(WORD_BITS)
        with m.Switch(bank_read):
            for bank, out in enumerate(outputs):
                with m.Case(bank):
                    m.d.comb += chosen.eq(out)
        row = chosen.word_select(slot_read, self.row_bits) if self.per_word > 1 else chosen
        if self.latency == 1:
            m.d.comb += self.data.eq(row)
        else:   # registered: the SPRAM's output and the bank multiplexer take a cycle of their own
            read_done = Signal()
            m.d.sync += read_done.eq(self.en & ~writing)
            with m.If(read_done):
                m.d.sync += self.data.eq(row)
        return m
