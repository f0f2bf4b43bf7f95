"""Each RTL block alone in Amaranth's simulator, under random gaps and back-pressure,
against the golden model / numpy."""

import numpy as np
import pytest
from amaranth.sim import Simulator

from hdlgen.geometry import DenseGeometry, InputGeometry
from hdlgen.golden import run_events, spikes_from_q
from hdlgen.rtl_templates.dense import COMPACT, RETIMED, DenseEngine, EngineTiming
from hdlgen.rtl_templates.encoder import TABLE_READ_PORTS, InputEncoder
from hdlgen.rtl_templates.readout import Readout
from hdlgen.rtl_templates.sorter_pair import TickSorterPair
from hdlgen.rtl_templates.spike_time import SpikeTimeBank
from hdlgen.rtl_templates.tick_sorter import TickSorter
from hdlgen.testing import random_net
from hdlgen.ttfs import IntDense, layer_bounds

from .helpers import bank_order, ends, events_of, simulate, split_images, transfers_of


@pytest.mark.parametrize("sorter", [TickSorter, TickSorterPair])
@pytest.mark.parametrize("gap", [0.0, 0.5])
@pytest.mark.parametrize("seed", range(4))
def test_tick_sorter_orders_by_tick_then_bank(seed, gap, sorter):
    rng = np.random.default_rng(seed)
    neurons, ticks = int(rng.integers(1, 14)), int(rng.integers(1, 6))
    banks = [1, neurons, int(rng.integers(1, neurons + 1)), min(neurons, 4)][seed]
    words = -(-neurons // banks)
    images, inputs = [], []
    for _ in range(4):
        fire = np.where(rng.random(neurons) < 0.6, rng.integers(0, ticks, neurons), ticks)
        images.append([(int(n), int(t)) for n, t in enumerate(fire) if t < ticks])
        padded = np.concatenate([fire, np.full(words * banks - neurons, ticks)]).reshape(words, banks)
        for w in range(words):
            if (padded[w] == ticks).all() and rng.random() < 0.5:
                continue                            # a word without spikes may be left out
            inputs.append({"word": int(w), "tick": [int(t) for t in padded[w]], "end": 0})
        inputs.append({"word": 0, "tick": [0] * banks, "end": 1})
    dut = sorter(neurons, ticks, banks)
    got = split_images(simulate(dut, inputs, dut.i, dut.o, ends(len(images)), rng, gap=gap))
    assert got == [bank_order(im, banks) for im in images]


@pytest.mark.parametrize("sorter, overlaps", [(TickSorter, False), (TickSorterPair, True)])
def test_a_sorter_pair_collects_the_next_image_while_it_emits(sorter, overlaps):
    """Images back to back, output always ready: a pair has taken all of image 2 before image 1's
    ``end`` leaves; one sorter takes no word of it before."""
    neurons, ticks = 6, 3
    dut = sorter(neurons, ticks)
    words = [(w, w % ticks, 0) for w in range(neurons)] + [(0, 0, 1)]
    taken_ends, left_ends = [], []      # the cycles in which each image's end went in and came out

    async def bench(ctx):
        ctx.set(dut.o.ready, 1)
        cycle, pending = 0, list(words * 3)
        while len(left_ends) < 3:
            if pending:
                word, tick, end = pending[0]
                ctx.set(dut.i.valid, 1)
                ctx.set(dut.i.payload, {"word": word, "tick": [tick], "end": end})
            else:
                ctx.set(dut.i.valid, 0)
            _, _, taken, left, left_end = await ctx.tick().sample(dut.i.ready, dut.o.valid, dut.o.payload.end)
            cycle += 1
            if left and left_end:
                left_ends.append(cycle)
            if pending and taken:
                if pending.pop(0)[2]:
                    taken_ends.append(cycle)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    assert (taken_ends[1] < left_ends[0]) == overlaps


@pytest.mark.parametrize("seed", range(3))
def test_input_encoder_matches_golden_input_spikes(seed):
    rng = np.random.default_rng(seed)
    size, t0 = int(rng.integers(1, 16)), int(rng.integers(1, 9))
    net = random_net(rng, [size, 3, 2], [t0, 2], weight_bits=4)
    images = rng.integers(0, 256, (3, size))
    images[0] = 0                                     # an image with no spikes at all
    per_transfer = [1, size, int(rng.integers(1, size + 1))][seed]
    dut = InputEncoder(InputGeometry(net.input, per_transfer))
    got = split_images(simulate(dut, transfers_of(images, per_transfer), dut.pixels, dut.o, ends(len(images)), rng))
    assert got == [bank_order(run_events(net, im).spikes[0], per_transfer) for im in images]


@pytest.mark.parametrize("per_transfer", [TABLE_READ_PORTS + 1, 2 * TABLE_READ_PORTS + 3])
def test_input_encoder_with_several_tick_tables_matches_golden(per_transfer):
    """More pixels per transfer than one copy of the tick table serves: each copy looks up its share."""
    rng = np.random.default_rng(per_transfer)
    net = random_net(rng, [2 * TABLE_READ_PORTS + 3, 3, 2], [7, 2], weight_bits=4)
    images = rng.integers(0, 256, (3, net.input.size))
    dut = InputEncoder(InputGeometry(net.input, per_transfer))
    got = split_images(simulate(dut, transfers_of(images, per_transfer), dut.pixels, dut.o, ends(len(images)), rng))
    assert got == [bank_order(run_events(net, im).spikes[0], per_transfer) for im in images]


@pytest.mark.parametrize("seed", range(4))
def test_input_encoder_without_a_sorter_sends_each_transfers_spikes_in_groups(seed):
    """Two spikes a group at most, never across a transfer, each transfer's in pixel order and as
    few groups as its spikes need: the golden spikes, each once, then ``end``."""
    rng = np.random.default_rng(seed)
    size, t0 = int(rng.integers(1, 20)), int(rng.integers(1, 9))
    net = random_net(rng, [size, 3, 2], [t0, 2], weight_bits=4)
    images = rng.integers(0, 256, (4, size))
    images[0] = 0                                     # an image with no spikes at all
    per_transfer = [1, size, int(rng.integers(1, size + 1)), 3][seed] if size >= 3 else 1
    dut = InputEncoder(InputGeometry(net.input, per_transfer, spikes_per_transfer=2))
    got = simulate(dut, transfers_of(images, per_transfer), dut.pixels, dut.o, ends(len(images)), rng)
    groups = split_images(got, empty_tick=t0)
    for want, sent in zip([run_events(net, im).spikes[0] for im in images], groups):
        assert all(1 <= len(group) <= 2 for group in sent)
        assert all(len({n // per_transfer for n, _ in group}) == 1 for group in sent)
        flat = [spike for group in sent for spike in group]
        assert [n for n, _ in flat] == sorted(n for n, _ in flat)
        assert sorted(flat) == sorted(want)
        per_transfer_spikes = np.bincount([n // per_transfer for n, _ in want], minlength=1)
        assert len(sent) == sum(-(-count // 2) for count in per_transfer_spikes)


@pytest.mark.parametrize("in_logic", [False, True])
def test_weight_product_in_logic_equals_the_multiplication(in_logic):
    from amaranth.hdl import Module, Signal, signed, unsigned

    from hdlgen.rtl_templates.dense import weight_product

    m = Module()
    weight, q = Signal(signed(5)), Signal(unsigned(4))
    product = Signal(signed(10))
    m.d.comb += product.eq(weight_product(weight, q, in_logic))
    sim = Simulator(m)
    seen = []

    async def sweep(ctx):
        for w in range(-16, 16):
            for v in range(16):
                ctx.set(weight, w)
                ctx.set(q, v)
                seen.append((w * v, ctx.get(product)))
    sim.add_testbench(sweep)
    sim.run()
    assert len(seen) == 32 * 16 and all(want == got for want, got in seen)


def words_of(values, lanes):
    """Potentials (neurons) → accumulator-word payloads, zero-padded, ``last`` on the final word."""
    words = -(-len(values) // lanes)
    padded = np.zeros(words * lanes, dtype=np.int64)
    padded[:len(values)] = values
    return [{"acc": [int(v) for v in padded[w * lanes:(w + 1) * lanes]], "last": int(w == words - 1)}
            for w in range(words)]


# every family's choice and the two mixed ones (hdlgen.boards.platforms.Family.engine_timing)
TIMINGS = [pytest.param(RETIMED, id="retimed"), pytest.param(COMPACT, id="compact"),
           pytest.param(EngineTiming(drain_fifo=False), id="no-fifo"),
           pytest.param(EngineTiming(registered_read_hit=False), id="transparent-read")]


def _random_engine_input(seed, images):
    """A random first layer and ``q`` of its inputs for ``images`` images, the second with no spikes."""
    rng = np.random.default_rng(seed)
    fan_in, fan_out = int(rng.integers(1, 10)), int(rng.integers(1, 10))
    net = random_net(rng, [fan_in, fan_out, 2], [int(rng.integers(1, 8)), 3])
    layer = net.layers[0]
    q = rng.integers(0, layer.ticks_in + 1, (images, fan_in))
    q[1] = 0                                          # no input spikes: the bias comes out
    return rng, layer, q


@pytest.mark.parametrize("timing", TIMINGS)
@pytest.mark.parametrize("seed", range(4))
def test_dense_engine_accumulates_and_resets_to_bias(seed, timing):
    rng, layer, q = _random_engine_input(seed, 4)
    fan_out = layer.fan_out
    lanes = int(rng.integers(1, fan_out + 1))
    images = [spikes_from_q(row, layer.ticks_in) for row in q]
    # the engine does not need tick order; shuffle one image to show it
    order = rng.permutation(len(images[2]))
    images[2] = [images[2][i] for i in order]
    dut = DenseEngine(DenseGeometry(layer, lanes))
    dut.timing = timing
    words = -(-fan_out // lanes)
    got = simulate(dut, events_of(images), dut.i, dut.o, lambda out: len(out) == words * len(images), rng)
    expect = layer.accumulate(q)
    for n in range(len(images)):
        image = got[n * words:(n + 1) * words]
        assert [int(p.last) for p in image] == [0] * (words - 1) + [1]
        potentials = [int(p.acc[l]) for p in image for l in range(lanes)]
        assert potentials[:fan_out] == list(expect[n])
        assert potentials[fan_out:] == [0] * (words * lanes - fan_out)


@pytest.mark.parametrize("timing", [pytest.param(RETIMED, id="retimed"), pytest.param(COMPACT, id="compact")])
@pytest.mark.parametrize("seed", range(3))
def test_dense_engine_taking_two_spikes_a_cycle_accumulates_both(seed, timing):
    """Groups of one or two spikes (a slot with tick T_in holds none): the same potentials."""
    rng, layer, q = _random_engine_input(seed, 3)
    fan_out = layer.fan_out
    payloads = []
    for row in q:
        spikes = spikes_from_q(row, layer.ticks_in)
        pending = [spikes[i] for i in rng.permutation(len(spikes))]
        while pending:
            take = int(rng.integers(1, 3))
            group, pending = pending[:take], pending[take:]
            group += [(0, layer.ticks_in)] * (2 - len(group))
            payloads.append({"neuron": [n for n, _ in group], "tick": [t for _, t in group], "end": 0})
        payloads.append({"neuron": [0, 0], "tick": [0, 0], "end": 1})
    dut = DenseEngine(DenseGeometry(layer, fan_out, spikes_per_cycle=2))
    dut.timing = timing
    got = simulate(dut, payloads, dut.i, dut.o, lambda out: len(out) == len(q), rng)
    assert [[int(v) for v in p.acc] for p in got] == [list(row) for row in layer.accumulate(q)]


@pytest.mark.parametrize("timing", [pytest.param(RETIMED, id="registered-gather"), pytest.param(COMPACT, id="compact")])
@pytest.mark.parametrize("shared_k", [True, False])
@pytest.mark.parametrize("seed", range(3))
def test_spike_time_bank_matches_floor_clamp_on_edge_values(seed, shared_k, timing):
    rng = np.random.default_rng(seed)
    fan_out, ticks = int(rng.integers(6, 14)), int(rng.integers(1, 9))
    k = np.full(fan_out, int(rng.integers(1, 9))) if shared_k else rng.integers(1, 9, fan_out)
    w = rng.integers(-7, 8, (fan_out, 3))
    layer = IntDense(w, rng.integers(-30, 30, fan_out), k, 4, ticks, 4, np.ones(fan_out))
    low, high = layer_bounds(layer)
    edges = [low, -1, 0, int(k[0]) - 1, int(k[0]), int(k[0]) * ticks - 1, int(k[0]) * ticks, high]
    images = [np.clip(np.array((edges * 2)[:fan_out]), low, high),
              rng.integers(low, high + 1, fan_out), rng.integers(low, high + 1, fan_out)]
    lanes = int(rng.integers(1, fan_out + 1))
    spike_lanes = [lanes, 1, int(rng.integers(1, lanes + 1))][seed]     # the bank keeps a divisor of it
    geometry = DenseGeometry(layer, lanes, spike_lanes)
    assert lanes % geometry.spike_lanes == 0 and geometry.spike_lanes <= spike_lanes
    dut = SpikeTimeBank(geometry)
    dut.timing = timing
    inputs = [word for potentials in images for word in words_of(potentials, lanes)]
    got = split_images(simulate(dut, inputs, dut.i, dut.o, ends(len(images)), rng))
    assert got == [bank_order(spikes_from_q(np.clip(a // k, 0, ticks), ticks), geometry.spike_lanes, 1, lanes)
                   for a in images]


@pytest.mark.parametrize("seed", range(3))
def test_readout_argmax_ties_to_lowest_index(seed):
    rng = np.random.default_rng(seed)
    classes = int(rng.integers(1, 12))
    layer = IntDense(rng.integers(-7, 8, (classes, 4)), rng.integers(-20, 20, classes), None, 4, 0, 4,
                     np.ones(classes))
    low, high = layer_bounds(layer)
    images = [rng.integers(low, high + 1, classes) for _ in range(3)]
    images.append(np.full(classes, low))                       # all tied
    images.append(rng.integers(-1, 1, classes))                # many ties
    lanes = int(rng.integers(1, classes + 1))
    dut = Readout(DenseGeometry(layer, lanes))
    inputs = [word for logits in images for word in words_of(logits, lanes)]
    got = simulate(dut, inputs, dut.i, dut.o, lambda out: len(out) == len(images), rng)
    for logits, result in zip(images, got):
        assert int(result.label) == int(np.argmax(logits))
        assert [int(result.logits[n]) for n in range(classes)] == list(logits)


def test_lanes_are_validated():
    net = random_net(np.random.default_rng(0), [4, 5, 3], [2, 2], weight_bits=4)
    for bad in (0, 6, 2.0, True):
        with pytest.raises(ValueError, match="lanes must be an integer from 1 to its fan-out 5"):
            DenseGeometry(net.layers[0], bad)


class _Family:
    """Just enough of a platform for WeightROM's banking: its FPGA family."""

    def __init__(self, family):
        self.family = family


@pytest.mark.parametrize("family, lanes", [("ice40", 1), ("ice40", 3), ("ecp5", 4), (None, 2)])
def test_banked_weight_rom_reads_each_row_two_cycles_later(family, lanes):
    """Latency-2 weight memory as a platform builds it (block-RAM banks, registered outputs):
    random addresses (``en`` high, as the engines keep it) give their ``init`` rows two cycles later."""
    from amaranth.hdl import Elaboratable, Fragment, Module

    from hdlgen.rtl_templates.dense import WeightROM

    rng = np.random.default_rng(lanes)
    fan_in, fan_out = 700, 5                      # rows = 700·ceil(5/lanes): several banks on either family
    layer = IntDense(rng.integers(-127, 128, (fan_out, fan_in)), np.zeros(fan_out, int), np.ones(fan_out, int),
                     4, 4, 8, np.ones(fan_out))
    rom = WeightROM(DenseGeometry(layer, lanes))
    assert rom.latency == 2

    class OnPlatform(Elaboratable):
        def elaborate(self, platform):
            m = Module()
            m.submodules.rom = Fragment.get(rom, _Family(family))   # elaborated for that family
            return m

    sim = Simulator(OnPlatform())
    sim.add_clock(1e-6)
    rows = len(rom.init)
    mask = (1 << rom.layout.size) - 1

    async def bench(ctx):
        issued = []
        ctx.set(rom.en, 1)
        for _ in range(300):
            issued.append(int(rng.integers(0, rows)))
            ctx.set(rom.addr, issued[-1])
            await ctx.tick()
            if len(issued) >= 2:   # this cycle's data: the address of two cycles ago
                assert ctx.get(rom.data.as_value()) & mask == rom.init[issued[-2]]

    sim.add_testbench(bench)
    sim.run()
