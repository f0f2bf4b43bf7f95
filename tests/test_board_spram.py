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
from hdlgen.boards.spram import SPRAM_WORDS, SPRAMLayout, place_weights, spram_segments
from hdlgen.errors import UserError
from hdlgen.geometry import DenseGeometry
from hdlgen.rtl_templates.top import NetworkTop

from .helpers import serial_link, tiny_net


def _rows_from_segments(segments, layout):
    """The weight rows an SPRAM image holds, read back by the addressing SPRAMLayout documents."""
    memory = {start + k: int(word) for start, words in segments for k, word in enumerate(words)}
    mask = (1 << layout.row_bits) - 1
    rows = []
    for r in range(layout.rows):
        if layout.stripes == 1:
            word = memory.get(r // layout.per_word, 0)
            rows.append(word >> (r % layout.per_word * layout.row_bits) & mask)
        else:
            bank, local = divmod(r, SPRAM_WORDS)
            rows.append(sum(memory.get((bank * layout.stripes + s) * SPRAM_WORDS + local, 0) << (16 * s)
                            for s in range(layout.stripes)) & mask)
    return rows


def _check_image(layer, lanes):
    geometry = DenseGeometry(layer, lanes)
    init = geometry.weight_rows()    # the rows the block-RAM core holds
    layout = SPRAMLayout(geometry.row_bits, len(init))
    segments = spram_segments(geometry)
    assert layout.sprams <= 4 or len(init) > 2 * SPRAM_WORDS
    assert all(start % SPRAM_WORDS + len(words) <= SPRAM_WORDS for start, words in segments)  # no run crosses an SPRAM
    rows = _rows_from_segments(segments, layout)
    assert rows == list(init)
    # and each row holds W[w·lanes + l, j] in lane l, as the engine reads it
    bits = layer.weight_bits
    mask = (1 << bits) - 1
    for j in range(layer.fan_in):
        for w in range(geometry.words):
            for lane in range(geometry.lanes):
                neuron = w * geometry.lanes + lane
                want = int(layer.weight[neuron, j]) & mask if neuron < layer.fan_out else 0
                assert rows[j * geometry.words + w] >> (lane * bits) & mask == want


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 50), st.integers(2, 8), st.integers(1, 10))
def test_image_unpacks_to_the_rom_rows(seed, weight_bits, lanes):
    net = tiny_net(seed=seed, hidden=10)
    layer = net.layers[0]
    layer.weight_bits = weight_bits
    layer.weight = np.clip(layer.weight, -(2 ** (weight_bits - 1) - 1), 2 ** (weight_bits - 1) - 1)
    if weight_bits * lanes > 64:     # more than the four SPRAMs side by side
        with pytest.raises(UserError, match="weight bits × lanes ≤ 64"):
            spram_segments(DenseGeometry(layer, lanes))
        return
    _check_image(layer, lanes)


def test_striped_rows_deeper_than_one_spram_take_two_banks():
    net = tiny_net(seed=3, inputs=2100, hidden=16)   # 2100 × 8 rows of 2 × 4 bits... at lanes 2; of 32 bits at lanes 8
    layout = SPRAMLayout(32, 2100 * 2)
    assert (layout.stripes, layout.banks, layout.sprams) == (2, 1, 2)
    deep = SPRAMLayout(32, 2 * SPRAM_WORDS + 5)
    assert (deep.stripes, deep.banks, deep.sprams) == (2, 3, 6)
    _check_image(net.layers[0], 8)


# layer 0's rows: 8 bits (one SPRAM), 32 bits (two striped), 64 bits (all four: the readout stays in block RAM)
@pytest.mark.parametrize("lanes, hidden, placed", [(2, 6, [0, 1]), (8, 16, [0, 1]), (16, 16, [0])])
def test_weights_load_over_the_link_then_classify_matches_golden(lanes, hidden, placed):
    net = tiny_net(seed=5, hidden=hidden)
    core = NetworkTop(net, lanes=lanes)
    assert place_weights(core) == placed
    _, _, port = serial_link(net, core)
    device = Device(port)
    info = device.check(net)
    assert info.lanes == lanes and info.layers_to_load == placed

    pixels = np.random.default_rng(6).integers(0, 256, (4, net.input.size), dtype=np.uint8)
    unloaded = device.classify(pixels[:1])
    if placed == [0, 1]:   # SPRAM starts empty: every weight reads 0, so the logits are the readout biases
        assert list(unloaded[0].logits) == list(net.layers[-1].bias)

    words = device.load_weights(net, info)
    assert words == sum(len(w) for i in placed for _, w in spram_segments(core.engines[i].weights.geometry))
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


@pytest.mark.parametrize("sizes, spram, bram", [
    ([784, 128, 10], [0], [1]),       # Fashion: layer 0 (784 × 128 bytes, 196 blocks) cannot be in block RAM
    ([64, 32, 10], [], [0, 1]),       # digits: 5 blocks of weights, all in block RAM
    ([200, 160, 150, 10], [0, 1], [2]),   # 63 + 47 + 3 blocks: without layer 0 still 50, without 1 too: 3
])
def test_placement_takes_spram_only_for_what_block_ram_cannot_hold(sizes, spram, bram):
    from hdlgen.boards.build import weight_bram_blocks, weight_precheck
    from hdlgen.boards.platforms import get_board
    from hdlgen.boards.spram import fitting_plan
    from hdlgen.geometry import NetGeometry
    from hdlgen.testing import random_net

    board = get_board("icebreaker")
    geometry = NetGeometry(random_net(np.random.default_rng(0), sizes, 8, weight_bits=8), 1)
    blocks = weight_bram_blocks(geometry, board)
    plan = fitting_plan(geometry, blocks, board.fpga_device.bram_blocks)
    assert plan == spram and plan == sorted(plan)
    left = sum(b for i, b in enumerate(blocks) if i not in plan)
    assert (left <= 30) == (weight_precheck(geometry, board, plan) is None)
    assert [i for i in range(len(blocks)) if i not in plan] == bram


def test_placed_by_what_fits_the_net_simulates_bit_exact():
    """Block RAM for 2 blocks of weights: layer 0 (12 × 64 weights of 4 bits, 1 block) and the
    readout (1 block) fit, so nothing moves; with room for 1, layer 0 (the larger) goes to SPRAM,
    is loaded over the link, and the board answers as the golden model."""
    from hdlgen.boards.spram import fitting_plan

    net = tiny_net(seed=7, hidden=64)
    core = NetworkTop(net)
    assert fitting_plan(core.geometry, [1, 1], 2) == []
    plan = fitting_plan(core.geometry, [1, 1], 1)
    assert plan == [0] and place_weights(core, engines=plan) == [0]
    assert core.engines[1].weights is None
    _, _, port = serial_link(net, core, port_timeout=30e-3)   # a LOAD of 192 words takes 16 ms at 250 kbaud
    device = Device(port)
    info = device.check(net)
    assert info.layers_to_load == [0]
    device.load_weights(net, info)
    pixels = np.random.default_rng(8).integers(0, 256, (4, net.input.size), dtype=np.uint8)
    results = device.classify(pixels)
    ref = golden.run_batch(net, pixels)
    assert [(r.label, list(r.logits)) for r in results] == list(zip(ref.classes, ref.logits.tolist()))


def test_a_build_that_overfills_block_ram_moves_what_the_rest_of_the_design_leaves_no_room_for():
    from hdlgen.boards.build import Utilization, _more_spram
    from hdlgen.boards.platforms import get_board
    from hdlgen.geometry import NetGeometry
    from hdlgen.testing import random_net

    board = get_board("icebreaker")
    geometry = NetGeometry(random_net(np.random.default_rng(0), [200, 160, 150, 10], 8, weight_bits=8), 1)
    # weights 63 + 47 + 3 blocks; layers 0 and 1 went to SPRAM, yet 32 of 30 blocks were asked for:
    # 29 are the rest of the design's, so 1 is left and layer 2 (3 blocks) must move too
    assert _more_spram(geometry, board, Utilization(32, 30), [0, 1]) == [0, 1, 2]
    # 28 for the rest leave 2 blocks: still short of 3, layer 2 moves
    assert _more_spram(geometry, board, Utilization(31, 30), [0, 1]) == [0, 1, 2]
    # all in SPRAM already: nothing more to move
    assert _more_spram(geometry, board, Utilization(40, 30), [0, 1, 2]) is None
