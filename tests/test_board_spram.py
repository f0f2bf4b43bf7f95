"""Weights in SPRAM: packing, and loading them over the host link before classifying
(simulated; the SPRAMs are Amaranth memories without a platform)."""

import numpy as np
import pytest
from amaranth.hdl import Fragment
from hypothesis import given, settings
from hypothesis import strategies as st

from hdlgen import golden
from hdlgen.boards import link
from hdlgen.boards.host import ClassifyStats, Device
from hdlgen.boards.spram import SPRAM_WORDS, place_weights, spram_image, spram_shape
from hdlgen.errors import UserError
from hdlgen.geometry import DenseGeometry
from hdlgen.rtl_templates.top import NetworkTop

from .helpers import serial_link, tiny_net


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 50), st.integers(2, 8), st.integers(1, 4))
def test_image_unpacks_to_the_rom_rows(seed, weight_bits, lanes):
    net = tiny_net(seed=seed, hidden=5)
    layer = net.layers[0]
    layer.weight_bits = weight_bits
    layer.weight = np.clip(layer.weight, -(2 ** (weight_bits - 1) - 1), 2 ** (weight_bits - 1) - 1)
    geometry = DenseGeometry(layer, min(lanes, layer.fan_out))
    init = geometry.weight_rows()    # the rows the block-RAM core holds
    row_bits = geometry.row_bits
    if row_bits > 16:
        with pytest.raises(UserError, match="weight bits × lanes ≤ 16"):
            spram_image(geometry)
        return
    per_word, words, sprams = spram_shape(row_bits, len(init))
    image = spram_image(geometry)
    assert len(image) == words and sprams == -(-words // SPRAM_WORDS) and per_word * row_bits <= 16
    rows = [(int(image[r // per_word]) >> (r % per_word * row_bits)) & ((1 << row_bits) - 1)
            for r in range(len(init))]
    assert rows == list(init)
    # and each row holds W[w·lanes + l, j] in lane l, as the engine reads it
    mask = (1 << weight_bits) - 1
    for j in range(layer.fan_in):
        for w in range(geometry.words):
            for lane in range(geometry.lanes):
                neuron = w * geometry.lanes + lane
                want = int(layer.weight[neuron, j]) & mask if neuron < layer.fan_out else 0
                assert rows[j * geometry.words + w] >> (lane * weight_bits) & mask == want


def test_weights_load_over_the_link_then_classify_matches_golden():
    net = tiny_net(seed=5)
    core = NetworkTop(net, lanes=2)
    assert place_weights(core) == [0, 1]
    _, _, port = serial_link(net, core)
    device = Device(port)
    info = device.check(net)
    assert info.lanes == 2 and info.layers_to_load == [0, 1]

    pixels = np.random.default_rng(6).integers(0, 256, (4, net.input.size), dtype=np.uint8)
    unloaded = device.classify(pixels[:1])
    # SPRAM starts empty: every weight reads 0, so the logits are the readout biases
    assert list(unloaded[0].logits) == list(net.layers[-1].bias)

    words = device.load_weights(net, info)
    assert words == sum(len(spram_image(engine.weights.geometry)) for engine in core.engines)
    results = device.classify(pixels)
    ref = golden.run_batch(net, pixels)
    assert [r.label for r in results] == list(ref.classes)
    assert [list(r.logits) for r in results] == ref.logits.tolist()


def test_place_weights_largest_first_within_the_sprams():
    net = tiny_net(inputs=40, hidden=8)
    core = NetworkTop(net)
    assert place_weights(core, sprams=1) == [0]    # 320 rows: layer 0 is larger than layer 1
    assert core.engines[1].weights is None         # the block-RAM ROM, built at elaboration
    Fragment.get(core, None)                       # and the core still elaborates


def test_a_damaged_load_is_repeated_until_a_clean_pass():
    """A LOAD whose offset is damaged writes its words to the wrong place before the CRC fails:
    the driver reloads everything, and the net then classifies exactly."""
    net = tiny_net(seed=8, inputs=60, hidden=40)        # layer 0: 600 words in three LOADs, layer 1: 40
    core = NetworkTop(net)
    place_weights(core)
    # a 256-word LOAD is 12.8 ms on this line: wait longer than that for its answer
    _, _, port = serial_link(net, core, port_timeout=0.03)
    device = Device(port)
    info = device.check(net)
    real_write = port.write
    damaged = []

    def write(frame):
        if frame[2] == link.MessageType.LOAD and frame[9] == 1 and not damaged:   # the LOAD at offset 256
            frame = frame[:9] + bytes([0]) + frame[10:]                       # ... now writes at 0
            damaged.append(True)
        return real_write(frame)

    port.write = write
    stats = ClassifyStats()
    device.load_weights(net, info, stats=stats)
    assert damaged and stats.errors == {"BAD_CRC": 1}
    assert stats.sent == (4 + 1) + 4         # pass 1: 4 LOADs and the resend; pass 2: clean
    pixels = np.random.default_rng(9).integers(0, 256, (3, net.input.size), dtype=np.uint8)
    results = device.classify(pixels)
    assert [list(r.logits) for r in results] == golden.run_batch(net, pixels).logits.tolist()
