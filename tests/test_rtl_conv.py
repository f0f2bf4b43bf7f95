# amaranth: UnusedElaboratable=no
# (a component refused in its constructor is never used)
"""The convolution engine and the max-pool unit alone in Amaranth's simulator, under random
gaps and back-pressure, against the golden model."""


import numpy as np
import pytest
from amaranth.hdl import Module, Signal

from hdlgen import golden
from hdlgen.geometry import ConvGeometry, DenseGeometry, PoolGeometry, axis_taps
from hdlgen.rtl_templates.conv import ConvEngine, NeuronDecoder
from hdlgen.rtl_templates.maxpool import MaxPoolUnit
from hdlgen.testing import mixed_pixels, random_cnn
from hdlgen.ttfs import IntMaxPool2d

from .helpers import assert_spikes_in_emitted_order, ends, events_of, run_top, simulate, split_images


def _conv_case(seed):
    """A one-conv net (random geometry) and the golden spikes into and out of its conv layer."""
    rng = np.random.default_rng(seed)
    channels, size = int(rng.integers(1, 4)), int(rng.integers(3, 9))
    kernel, stride, padding = int(rng.choice([1, 3, 5])), int(rng.integers(1, 3)), int(rng.integers(0, 3))
    if (size + 2 * padding - kernel) // stride + 1 < 1:
        kernel, padding = 1, 0
    ticks = int(rng.choice([1, 4, 8]))
    net = random_cnn(rng, (channels, size, size), [("conv", int(rng.integers(1, 6)), kernel, stride, padding)],
                     3, ticks, int(rng.integers(2, 7)), ["random", "zero", "large"][seed % 3])
    pixels = mixed_pixels(rng, 3, net.input.size)
    return rng, net, pixels


@pytest.mark.parametrize("seed", range(8))
def test_conv_engine_streams_channel_words_over_positions_and_resets_to_bias(seed):
    rng, net, pixels = _conv_case(seed)
    layer = net.layers[0]
    channels, positions = layer.out_shape[0], layer.out_shape[1] * layer.out_shape[2]
    lanes = int(rng.integers(1, channels + 1))
    words = -(-channels // lanes)
    engine = ConvEngine(ConvGeometry(layer, lanes))
    spikes = [golden.run_events(net, image).spikes[0] for image in pixels]
    received = simulate(engine, events_of(spikes), engine.i, engine.o,
                        lambda out: sum(int(p.last) for p in out) == len(pixels), rng)
    assert [int(p.last) for p in received] == ([0] * (words * positions - 1) + [1]) * len(pixels)
    # word (w, position) holds channels w·lanes + l of that position, lanes past the channels 0
    got = np.array([[int(p.acc[l]) for l in range(lanes)] for p in received])
    got = got.reshape(len(pixels), words, positions, lanes).transpose(0, 1, 3, 2).reshape(len(pixels), -1, positions)
    want = layer.accumulate(net.input.q(pixels)).reshape(len(pixels), channels, positions)
    np.testing.assert_array_equal(got[:, :channels], want)
    assert not got[:, channels:].any()


@pytest.mark.parametrize("seed", range(8))
def test_max_pool_passes_first_spike_per_window(seed):
    rng = np.random.default_rng(100 + seed)
    channels, size = int(rng.integers(1, 4)), int(rng.integers(2, 9))
    kernel = int(rng.integers(1, min(size, 3) + 1))
    stride, padding = int(rng.integers(1, 4)), int(rng.integers(0, kernel // 2 + 1))
    ticks = int(rng.choice([1, 3, 8]))
    pool = IntMaxPool2d((channels, size, size), (kernel,) * 2, (stride,) * 2, (padding,) * 2, ticks)
    fan_in = pool.fan_in
    images = []
    for _ in range(4):
        q = rng.integers(0, ticks + 1, fan_in) * (rng.random(fan_in) < 0.7)
        images.append(golden.spikes_from_q(q, ticks))
    unit = MaxPoolUnit(PoolGeometry(pool))
    received = simulate(unit, events_of(images), unit.i, unit.o, ends(len(images)), rng)
    got = split_images(received)
    for spikes, have in zip(images, got):
        want = pool.events(spikes)
        assert [t for _, t in have] == sorted(t for _, t in have), "ticks out of order"
        assert sorted(have, key=lambda s: (s[1], s[0])) == want


def test_axis_taps_skip_border_and_stride_offsets():
    # 5 inputs, kernel 3, stride 2, padding 1 → outputs 0..2 at input 2·o − 1 + k
    assert axis_taps(5, 3, 2, 1, 3) == [[(1, 0)], [(0, 1), (2, 0)], [(1, 1)], [(0, 2), (2, 1)], [(1, 2)]]


@pytest.mark.parametrize("shape, latency", [((3, 5, 7), 2), ((2, 4, 8), 0)])
@pytest.mark.parametrize("gap, stall", [(0.0, 0.0), (0.3, 0.5)])
def test_neuron_decoder_is_exact_in_order(shape, latency, gap, stall):
    rng = np.random.default_rng(sum(shape) + int(10 * stall))
    dut = NeuronDecoder(shape, 7)
    assert dut.latency == latency
    neurons = list(range(int(np.prod(shape)))) + list(rng.permutation(int(np.prod(shape))))
    inputs = [{"neuron": int(n), "tick": int(n) % 8, "end": int(n % 5 == 0)} for n in neurons]
    top = Module()      # a clock domain even when the decoder is only wiring
    top.submodules.dut = dut
    top.d.sync += Signal().eq(1)
    got = simulate(top, inputs, dut.i, dut.o, lambda out: len(out) == len(inputs), rng, gap=gap, stall=stall)
    want = [tuple(int(v) for v in np.unravel_index(n, shape)) + (int(n) % 8, int(n % 5 == 0)) for n in neurons]
    assert [(int(p.channel), int(p.row), int(p.column), int(p.tick), int(p.end)) for p in got] == want


def test_neuron_decoder_takes_one_event_per_cycle():
    dut = NeuronDecoder((3, 5, 7), 7)
    inputs = [{"neuron": n, "tick": 0, "end": 0} for n in range(40)]
    cycles = []

    def done(out):
        cycles.append(len(out))
        return len(out) == len(inputs)

    simulate(dut, inputs, dut.i, dut.o, done, np.random.default_rng(0), gap=0.0, stall=0.0)
    assert len(cycles) <= len(inputs) + dut.latency + 2


@pytest.mark.parametrize("seed", range(4))
def test_cnn_top_matches_golden_spike_for_spike(seed):
    """Conv, max-pool (overlapping windows) and dense layers chained in one NetworkTop, at
    several lanes, pixels per transfer and spike lanes (seed 3: 3 lanes, one ladder per bank)."""
    from hdlgen.cycles import cycle_counts

    rng = np.random.default_rng(300 + seed)
    blocks = [("conv", 3, 3, 1 + seed % 2, 1), ("pool", 2, 1), ("conv", 2, 1, 1, 0)]
    net = random_cnn(rng, (2, 6, 6), blocks, 3, 4, 5, "random")
    images = mixed_pixels(rng, 2, net.input.size)
    lanes, per_transfer, spike_lanes = [(1, 1, None), (2, 4, None), (3, 8, None), (3, 5, 1)][seed]
    options = {"lanes": lanes, "pixels_per_transfer": per_transfer, "spike_lanes": spike_lanes}
    gold = [golden.run_events(net, im) for im in images]
    results, spikes, _, measured = run_top(net, images, rng, gap=0.3, stall=0.4, **options)
    assert_spikes_in_emitted_order(net, gold, spikes, lanes, per_transfer, spike_lanes)
    for g, r in zip(gold, results):
        assert [int(r.logits[n]) for n in range(net.classes)] == list(g.logits)
        assert int(r.label) == g.label
    assert [int(r.cycles) for r in results] == measured
    alone, _, _, _ = run_top(net, images[:1], rng, **options)
    bounds = cycle_counts(net, gold[0], lanes, per_transfer, spike_lanes)
    assert bounds["event_lower_bound"] <= int(alone[0].cycles) <= bounds["upper_bound"]


def test_verilog_command_writes_a_cnn_core_and_its_sidecar(tmp_path, capsys):
    import json

    from hdlgen import ttfs
    from hdlgen.cli import main
    from hdlgen.cycles import dense_schedule

    net = random_cnn(np.random.default_rng(5), (1, 6, 6), [("conv", 4, 3, 2, 1), ("pool", 2, 1)], 3, 4, 4, "random",
                     name="tiny_cnn")
    ttfs.save(net, tmp_path / "tiny_cnn.ttfs")
    assert main(["verilog", str(tmp_path / "tiny_cnn.ttfs"), "-o", str(tmp_path), "--lanes", "3"]) == 0
    assert "max-pool" in capsys.readouterr().out
    side = json.loads((tmp_path / "tiny_cnn.json").read_text())
    conv, pool, readout = side["layers"]
    # 4 channels at 3 lanes take 2 words, and 2 lanes give the same 2 words
    assert (conv["kind"], conv["lanes"], conv["words"], conv["kernel"], conv["stride"]) == \
        ("conv2d", 2, 2, [3, 3], [2, 2])
    assert (pool["kind"], pool["lanes"], pool["out_shape"]) == ("maxpool2d", 1, [4, 2, 2])
    assert readout["lanes"] == 3
    assert side["memories"]["pool1"] == {"fired": 16}
    assert side["latency"]["dense_schedule"] == dense_schedule(net, 3)
    assert (tmp_path / "tiny_cnn.v").read_text().startswith("/* Generated by Amaranth")


def test_conv_lanes_are_validated_against_output_channels():
    net = random_cnn(np.random.default_rng(0), (1, 5, 5), [("conv", 3, 3, 1, 0)], 2, 4, 4)
    with pytest.raises(ValueError, match="output channels 3"):
        ConvGeometry(net.layers[0], 4)
    with pytest.raises(TypeError, match="ConvGeometry"):
        ConvEngine(DenseGeometry(net.layers[-1], 1))


@pytest.mark.parametrize("delay", [5, 120, 200, 260])
def test_reset_part_way_leaves_a_clean_cnn_core(delay):
    """A reset while the first image is in the conv engine, its read-out or the max-pool loses
    that image; the next ones come out exact (accumulators back to the bias, fired bits cleared)."""
    from amaranth.hdl import ClockDomain, Module
    from amaranth.sim import Simulator

    from hdlgen.rtl_templates.top import NetworkTop

    rng = np.random.default_rng(9)
    net = random_cnn(rng, (1, 5, 5), [("conv", 2, 3, 1, 1), ("pool", 2, 1)], 3, 4, 5, "large")
    images = rng.integers(1, 256, (3, net.input.size))
    top = NetworkTop(net, lanes=2)
    m = Module()
    m.domains.sync = sync = ClockDomain()
    m.submodules.top = top
    results = []
    sim = Simulator(m)
    sim.add_clock(1e-6)

    async def send_image(ctx, image):
        for p in image:
            ctx.set(top.pixels.valid, 1)
            ctx.set(top.pixels.payload, int(p))
            await ctx.tick().until(top.pixels.ready)
        ctx.set(top.pixels.valid, 0)

    async def bench(ctx):
        ctx.set(top.result.ready, 1)
        await send_image(ctx, images[0])
        await ctx.tick().repeat(delay)
        ctx.set(sync.rst, 1)
        await ctx.tick()
        ctx.set(sync.rst, 0)
        for image in images[1:]:
            await send_image(ctx, image)
            payload, = await ctx.tick().sample(top.result.payload).until(top.result.valid)
            results.append(payload)

    sim.add_testbench(bench)
    sim.run()
    for image, result in zip(images[1:], results):
        assert [int(result.logits[n]) for n in range(net.classes)] == list(golden.run_events(net, image).logits)
