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
``r >> log2(per_word)`` at slot ``r & (per_word − 1)``; words ``0..16383`` in SPRAM 0, the next 16384 in
SPRAM 1, and so on. Wider rows (up to 64 bits: 8 lanes of 8-bit weights) are striped by neuron over
SPRAMs read side by side, one row per word (:class:`SPRAMLayout`), so many lanes still read one row a
cycle. :func:`spram_segments` gives the words the host writes.
"""

from dataclasses import dataclass

import numpy as np
from amaranth import Cat, ClockSignal, Instance, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from ..errors import UserError
from ..geometry import ceil_div

__all__ = ["SPRAM_WORDS", "SPRAM_COUNT", "WeightWrite", "SPRAMLayout", "spram_segments", "SPRAMWeights", "spram_plan",
           "fitting_plan", "place_weights"]

SPRAM_WORDS = 16384      # 16-bit words per SB_SPRAM256KA
SPRAM_COUNT = 4          # on the iCE40 UP5K
WORD_BITS = 16

WeightWrite = data.StructLayout({"layer": unsigned(8), "addr": unsigned(16), "data": unsigned(WORD_BITS)})


@dataclass(frozen=True)
class SPRAMLayout:
    """Where ``rows`` weight rows of ``row_bits`` bits go in SPRAM.

    A row of at most 16 bits lives in one SPRAM, ``per_word`` rows (a power of two) to a 16-bit
    word; a wider row is striped over ``stripes`` SPRAMs read side by side (bits ``16·s…`` of the
    row in stripe ``s``), one row per word. ``banks`` SPRAMs (or groups of ``stripes``) deep
    hold the words; SPRAM ``bank·stripes + s`` is the ``sprams``-th in the write address space,
    whose word ``a`` is word ``a mod 16384`` of SPRAM ``a // 16384``.
    """

    row_bits: int
    rows: int

    def __post_init__(self):
        if not 1 <= self.row_bits <= WORD_BITS * SPRAM_COUNT:
            raise UserError(f"SPRAM weights need weight bits × lanes ≤ {WORD_BITS * SPRAM_COUNT}, got {self.row_bits}; "
                            "use fewer lanes")

    @property
    def stripes(self) -> int:
        return ceil_div(self.row_bits, WORD_BITS)

    @property
    def per_word(self) -> int:
        return 1 << (WORD_BITS // self.row_bits).bit_length() - 1 if self.stripes == 1 else 1

    @property
    def words(self) -> int:
        """16-bit words in each stripe."""
        return ceil_div(self.rows, self.per_word)

    @property
    def banks(self) -> int:
        return ceil_div(self.words, SPRAM_WORDS)

    @property
    def sprams(self) -> int:
        return self.stripes * self.banks


def spram_segments(geometry) -> list:
    """What the host writes for an engine's weights (its stage geometry's ``weight_rows()``,
    laid out as :class:`SPRAMLayout` says): ``(first word address, 16-bit words)`` per run of
    consecutive addresses – one run unless the rows are striped."""
    rows = geometry.weight_rows()
    layout = SPRAMLayout(geometry.row_bits, len(rows))
    per_word, stripes = layout.per_word, layout.stripes
    rows = rows + [0] * (layout.words * per_word - len(rows))
    packed = [sum(rows[w * per_word + s] << (s * geometry.row_bits) for s in range(per_word))
              for w in range(layout.words)]
    if stripes == 1:
        return [(0, np.array(packed, dtype=np.uint16))]
    segments = []
    for bank in range(layout.banks):
        part = packed[bank * SPRAM_WORDS:(bank + 1) * SPRAM_WORDS]
        for stripe in range(stripes):
            words = np.array([row >> (WORD_BITS * stripe) & 0xFFFF for row in part], dtype=np.uint16)
            segments.append(((bank * stripes + stripe) * SPRAM_WORDS, words))
    return segments


def spram_plan(geometry, sprams: int = SPRAM_COUNT) -> list:
    """The engines (indices into ``geometry.engines``) whose weights go to SPRAM: the largest
    first, while the SPRAMs last (:func:`fitting_plan` with no block RAM for weights)."""
    return fitting_plan(geometry, [1] * len(geometry.engines), 0, sprams)


def fitting_plan(geometry, bram_blocks: list, bram_available: int, sprams: int = SPRAM_COUNT) -> list:
    """The engines whose weights go to SPRAM when block RAM cannot hold them all: while the
    engines left in block RAM need more than ``bram_available`` blocks (``bram_blocks[i]``:
    engine ``i``'s weight blocks), the largest engine that fits the SPRAMs left moves there.
    Empty when block RAM holds every engine's weights."""
    stages = [geometry.layers[layer] for layer in geometry.engines]
    chosen = []
    in_bram = sum(bram_blocks)
    for index in sorted(range(len(stages)), key=lambda i: -stages[i].weight_memory_bits):
        if in_bram <= bram_available:
            break
        stage = stages[index]
        if stage.row_bits > WORD_BITS * SPRAM_COUNT:
            continue
        needed = SPRAMLayout(stage.row_bits, stage.weight_row_count).sprams
        if needed <= sprams:
            sprams -= needed
            in_bram -= bram_blocks[index]
            chosen.append(index)
    return sorted(chosen)


def place_weights(core, sprams: int = SPRAM_COUNT, engines=None) -> list:
    """Move engines' weights into SPRAM: ``engines`` (indices into ``core.engines``), by default
    the largest while the SPRAMs last (:func:`spram_plan`); returns their indices.

    Gives ``core.engines[i].weights`` (before the core is elaborated) a :class:`SPRAMWeights`.
    """
    chosen = spram_plan(core.geometry, sprams) if engines is None else sorted(engines)
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
        The engine's stage geometry: row layout, rows (for :func:`spram_segments`) and read latency.
    layer : int
        Index of the engine, matched against ``write.payload.layer``.
    """

    def __init__(self, geometry, layer: int):
        self.geometry = geometry
        self.layer = layer
        self.row_bits = geometry.row_bits
        rows = geometry.weight_row_count
        self.spram_layout = SPRAMLayout(self.row_bits, rows)
        self.per_word, self.stripes, self.sprams = self.spram_layout.per_word, self.spram_layout.stripes, self.spram_layout.sprams
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
        banks, stripes = self.spram_layout.banks, self.stripes
        bank_read = Signal(range(max(2, banks)))
        writing = Signal()
        write_addr, write_data = Signal(16), Signal(WORD_BITS)
        m.d.sync += [writing.eq(self.write.valid & (self.write.payload.layer == self.layer)
                                & (self.write.payload.addr < self.sprams * SPRAM_WORDS)),
                     write_addr.eq(self.write.payload.addr), write_data.eq(self.write.payload.data)]
        # reads address a row's bank (of ``stripes`` SPRAMs side by side); a write, one SPRAM
        read_word = self.addr >> slot_bits
        m.d.comb += [
            self.write.ready.eq(1),
            word.eq(Mux(writing, write_addr, read_word if stripes == 1 else read_word[:14])),
            slot.eq(self.addr[:slot_bits] if slot_bits else 0),
        ]
        read_bank = word >> 14 if stripes == 1 else read_word >> 14
        with m.If(self.en & ~writing):
            m.d.sync += [slot_read.eq(slot), bank_read.eq(read_bank)]

        outputs = []
        for index in range(self.sprams):
            bank = index // stripes
            out = Signal(WORD_BITS, name=f"spram{index}_out")
            selected = (word >> 14) == index
            read_selected = selected if stripes == 1 else read_bank == bank
            if platform is None:
                memory = m.submodules[f"spram{index}"] = Memory(shape=WORD_BITS, depth=SPRAM_WORDS, init=[])
                read = memory.read_port()
                write = memory.write_port()
                m.d.comb += [read.addr.eq(word[:14]), read.en.eq(self.en & read_selected & ~writing), out.eq(read.data),
                             write.addr.eq(word[:14]), write.data.eq(write_data),
                             write.en.eq(writing & selected)]
            else:
                chip_select = Mux(writing, selected, self.en & read_selected)
                m.submodules[f"spram{index}"] = Instance(
                    "SB_SPRAM256KA",
                    i_ADDRESS=word[:14], i_DATAIN=write_data, i_MASKWREN=0b1111,
                    i_WREN=writing & selected, i_CHIPSELECT=chip_select if stripes > 1 else (self.en | writing) & selected,
                    i_CLOCK=ClockSignal("sync"), i_STANDBY=0, i_SLEEP=0, i_POWEROFF=1, o_DATAOUT=out)
            outputs.append(out)
        chosen = Signal(WORD_BITS * stripes)
        with m.Switch(bank_read):
            for bank in range(banks):
                with m.Case(bank):
                    m.d.comb += chosen.eq(Cat(outputs[bank * stripes:(bank + 1) * stripes]))
        row = chosen.word_select(slot_read, self.row_bits) if self.per_word > 1 else chosen[:self.row_bits]
        if self.latency == 1:
            m.d.comb += self.data.eq(row)
        else:   # registered: the SPRAM's output and the bank multiplexer take a cycle of their own
            read_done = Signal()
            m.d.sync += read_done.eq(self.en & ~writing)
            with m.If(read_done):
                m.d.sync += self.data.eq(row)
        return m
