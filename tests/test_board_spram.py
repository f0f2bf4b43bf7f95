"""Weights in SPRAM: packing, and loading them over the host link before classifying
(simulated; the SPRAMs are Amaranth memories without a platform)."""

import numpy as np
import pytest
from amaranth.sim import Simulator
from hypothesis import given, settings, strategies as st

from hdlgen import golden
from hdlgen.boards.gateware import HostLink
from hdlgen.boards.host import Device
from hdlgen.boards.sim import SimulatedSerial
from hdlgen.boards.spram import SPRAM_WORDS, place_weights, spram_image, spram_shape
from hdlgen.errors import UserError
from hdlgen.rtl_templates.dense import WeightROM
from hdlgen.rtl_templates.top import NetworkTop

from .test_board_top import BAUD, CLK, tiny_net


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 50), st.integers(2, 8), st.integers(1, 4))
def test_image_unpacks_to_the_rom_rows(seed, weight_bits, lanes):
    net = tiny_net(seed=seed, hidden=5)
    layer = net.layers[0]
    layer.weight_bits = weight_bits
    layer.weight = np.clip(layer.weight, -(2 ** (weight_bits - 1) - 1), 2 ** (weight_bits - 1) - 1)
    rom = WeightROM(layer, min(lanes, layer.fan_out))
    row_bits = rom.layout.size
    if row_bits > 16:
        with pytest.raises(UserError, match="weight bits × lanes ≤ 16"):
            spram_image(rom)
        return
    per_word, words, sprams = spram_shape(row_bits, len(rom.init))
    image = spram_image(rom)
    assert len(image) == words and sprams == -(-words // SPRAM_WORDS) and per_word * row_bits <= 16
    rows = [(int(image[r // per_word]) >> (r % per_word * row_bits)) & ((1 << row_bits) - 1)
            for r in range(len(rom.init))]
    assert rows == list(rom.init)


def test_weights_load_over_the_link_then_classify_matches_golden():
    net = tiny_net(seed=5)
    core = NetworkTop(net, lanes=2)
    assert place_weights(core) == [0, 1]
    top = HostLink(net, core, clk_freq=CLK, baud=BAUD, timeout=2e-3)
    sim = Simulator(top)
    sim.add_clock(1 / CLK)
    device = Device(SimulatedSerial(sim, top.rx, top.tx, divisor=top.divisor, clk_freq=CLK, timeout=5e-3))
    info = device.check(net)
    assert info.lanes == 2 and info.layers_to_load == [0, 1]

    pixels = np.random.default_rng(6).integers(0, 256, (4, net.input.size), dtype=np.uint8)
    unloaded = device.classify(pixels[:1])
    # SPRAM starts empty: every weight reads 0, so the logits are the readout biases
    assert list(unloaded[0].logits) == list(net.layers[-1].bias)

    words = device.load_weights(net, info)
    assert words == sum(len(spram_image(engine.weights.rom)) for engine in core.engines)
    results = device.classify(pixels)
    ref = golden.run_batch(net, pixels)
    assert [r.label for r in results] == list(ref.classes)
    assert [list(r.logits) for r in results] == ref.logits.tolist()


def test_place_weights_largest_first_within_the_sprams():
    net = tiny_net(inputs=40, hidden=8)
    core = NetworkTop(net)
    assert place_weights(core, sprams=1) == [0]    # 320 rows: layer 0 is larger than layer 1
    assert type(core.engines[1].weights) is WeightROM
