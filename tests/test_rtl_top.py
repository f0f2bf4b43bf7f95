"""The whole NetworkTop in Amaranth's simulator against hdlgen.golden.run_events:
every layer's spikes (trace), logits, class and cycle count."""

import numpy as np
import pytest
from amaranth.hdl import ClockDomain, Module
from amaranth.sim import Simulator

from hdlgen.cycles import cycle_counts
from hdlgen.golden import run_events
from hdlgen.rtl_templates.top import NetworkTop
from hdlgen.testing import random_net

from .helpers import assert_spikes_in_emitted_order, run_top

CASES = [  # sizes, ticks, lanes, pixels per transfer, spike lanes, shared K
    ([12, 9, 4], [5, 4], 1, 1, None, True),
    ([7, 5, 6, 3], [3, 8, 2], 2, 4, None, False),
    ([20, 16, 11, 10], [8, 1, 6], 4, 8, 2, True),
    ([1, 1, 1], [1, 1], 1, 1, None, False),
    ([9, 13, 5], [6, 7], 3, 4, 1, False),
    ([16, 12, 7], [4, 5], 12, 16, None, True),    # lanes = fan-out: one word, a bank per neuron
    ([16, 12, 7], [4, 5], 12, 3, 4, False),       # 4 ladders per bank: words in 3 parts
    ([20, 33, 9], [6, 5], 16, 8, None, False),    # a wide engine: registers around its multipliers
    ([10, 20, 5], [4, 5], 20, 4, 4, True),        # a wide engine whose q copies serve 8, 8 and 4 lanes
]


@pytest.mark.parametrize("sizes, ticks, lanes, per_transfer, spike_lanes, shared_k", CASES)
def test_network_matches_golden_spike_for_spike(sizes, ticks, lanes, per_transfer, spike_lanes, shared_k):
    rng = np.random.default_rng(sum(sizes) * 31 + lanes)
    net = random_net(rng, sizes, ticks, per_channel_k=not shared_k, weight_bits=4)
    images = rng.integers(0, 256, (4, sizes[0]))
    images[1] = 0
    gold = [run_events(net, im) for im in images]
    results, spikes, _, measured = run_top(net, images, rng, lanes=lanes, pixels_per_transfer=per_transfer,
                                           spike_lanes=spike_lanes, gap=0.3, stall=0.4)
    assert_spikes_in_emitted_order(net, gold, spikes, lanes, per_transfer, spike_lanes)
    for g, r in zip(gold, results):
        assert [int(r.logits[n]) for n in range(net.classes)] == list(g.logits)
        assert int(r.label) == g.label
    assert [int(r.cycles) for r in results] == measured


@pytest.mark.parametrize("lanes, per_transfer, spike_lanes", [(1, 1, None), (3, 1, None), (3, 4, 1), (12, 8, None),
                                                             (12, 8, 2)])
def test_cycles_within_bounds_for_an_idle_core(lanes, per_transfer, spike_lanes):
    rng = np.random.default_rng(lanes)
    net = random_net(rng, [16, 12, 6], [6, 5], weight_bits=4)
    image = rng.integers(0, 256, (1, 16))
    results, _, _, _ = run_top(net, image, rng, lanes=lanes, pixels_per_transfer=per_transfer, spike_lanes=spike_lanes)
    bounds = cycle_counts(net, run_events(net, image[0]), lanes, per_transfer, spike_lanes)
    assert bounds["event_lower_bound"] <= int(results[0].cycles) <= bounds["upper_bound"]


def test_images_overlap_in_the_pipeline():
    """Back to back, the next image is taken while the previous one is in a later layer, so
    a batch finishes sooner than its images one after another, and each result still matches."""
    rng = np.random.default_rng(7)
    net = random_net(rng, [10, 12, 12, 5], [4, 4, 4], weight_bits=4)
    images = rng.integers(0, 256, (4, 10))
    results, _, batch, _ = run_top(net, images, rng)
    serial = sum(run_top(net, im[None], rng)[2] for im in images)
    assert [int(r.label) for r in results] == [run_events(net, im).label for im in images]
    assert batch < 0.8 * serial


@pytest.mark.parametrize("seed", range(6))
def test_random_nets_match_golden(seed):
    rng = np.random.default_rng(1000 + seed)
    depth = int(rng.integers(2, 4))
    sizes = [int(s) for s in rng.integers(1, 21, depth + 1)]
    ticks = [int(t) for t in rng.integers(1, 9, depth)]
    net = random_net(rng, sizes, ticks, weight_bits=int(rng.integers(2, 9)), per_channel_k=not bool(seed % 2))
    lanes = int(rng.integers(1, max(sizes[1:]) + 1))
    per_transfer = int(rng.integers(1, sizes[0] + 1))
    images = rng.integers(0, 256, (3, sizes[0]))
    gold = [run_events(net, im) for im in images]
    results, spikes, _, measured = run_top(net, images, rng, lanes=lanes, pixels_per_transfer=per_transfer,
                                           gap=0.2, stall=0.2)
    assert_spikes_in_emitted_order(net, gold, spikes, lanes, per_transfer)
    assert [[int(r.logits[n]) for n in range(net.classes)] for r in results] == [list(g.logits) for g in gold]
    assert [int(r.label) for r in results] == [g.label for g in gold]
    assert [int(r.cycles) for r in results] == measured


def test_reset_in_the_middle_of_an_image_leaves_a_clean_core():
    """A synchronous reset part-way through (pixels taken, spikes accumulated) loses that image;
    the next images come out exact – the engines rewrite their biases after reset."""
    rng = np.random.default_rng(5)
    net = random_net(rng, [10, 8, 4], [4, 4], weight_bits=4)
    images = rng.integers(1, 256, (3, 10))
    top = NetworkTop(net)
    m = Module()
    m.domains.sync = sync = ClockDomain()
    m.submodules.top = top
    results = []
    sim = Simulator(m)
    sim.add_clock(1e-6)

    async def bench(ctx):
        ctx.set(top.result.ready, 1)
        for p in images[0]:  # the first image, then a reset while layer 1 accumulates it
            ctx.set(top.pixels.valid, 1)
            ctx.set(top.pixels.payload, int(p))
            await ctx.tick().until(top.pixels.ready)
        ctx.set(top.pixels.valid, 0)
        await ctx.tick().repeat(20)
        ctx.set(sync.rst, 1)
        await ctx.tick()
        ctx.set(sync.rst, 0)
        for image in images[1:]:
            for p in image:
                ctx.set(top.pixels.valid, 1)
                ctx.set(top.pixels.payload, int(p))
                await ctx.tick().until(top.pixels.ready)
            ctx.set(top.pixels.valid, 0)
            payload, = await ctx.tick().sample(top.result.payload).until(top.result.valid)
            results.append(payload)

    sim.add_testbench(bench)
    sim.run()
    for image, result in zip(images[1:], results):
        gold = run_events(net, image)
        assert [int(result.logits[n]) for n in range(net.classes)] == list(gold.logits)
