"""Convolutional cores, simulated with cocotb, are bit-exact with the golden model.

Random CNNs cover input 5..16 px with 1..3 channels, 1..16 output channels, kernels 1/3/5,
stride 1/2, padding 0/1/2, max-pools (overlapping when the stride is below the kernel), windows
1..16, weight bits 2..8, zero/negative/large biases, lanes 1..16 and, in some, a hidden dense
layer after the convolutions, plus a padded pool; each runs 10 images (with no-spike and saturating ones) under
random input gaps and back-pressure. A core with one conv weight changed must be caught at
that layer, and the digits CNN example must run bit-exact on 100 test images.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest

from hdlgen import golden
from hdlgen.cycles import overhead_bound, serial_cycles
from hdlgen.simulate import simulate
from hdlgen.testing import random_cnn, random_pixels
from hdlgen.ttfs import IntConv2d, IntDense, IntMaxPool2d, TTFSNet

from .helpers import assert_matches_golden, require_simulator, shuffled_images

pytestmark = pytest.mark.slow

IMAGES = 10
NETS = 22
# Keeps every net's run within a few seconds of Icarus: (dense schedule + overhead) × images.
CYCLE_BUDGET = 40_000
DIGITS = 100


def _conv_block(rng, size):
    kernel, stride, padding = int(rng.choice([1, 3, 5])), int(rng.integers(1, 3)), int(rng.integers(0, 3))
    if (size + 2 * padding - kernel) // stride + 1 < 1:
        kernel, stride = 1, 1
    return ("conv", int(rng.integers(1, 17)), kernel, stride, padding), (size + 2 * padding - kernel) // stride + 1


def _random_spec(rng):
    """(input shape, blocks, ticks, weight bits, bias kind, lanes, hidden dense width or 0)."""
    size = int(rng.integers(5, 17))
    in_shape = (int(rng.integers(1, 4)), size, size)
    blocks = []
    for _ in range(int(rng.integers(1, 3))):
        block, size = _conv_block(rng, size)
        blocks.append(block)
        if size >= 2 and rng.random() < 0.7:
            kernel = int(rng.integers(2, min(3, size) + 1))
            stride = int(rng.integers(1, kernel + 1))
            blocks.append(("pool", kernel, stride))
            size = (size - kernel) // stride + 1
    return (in_shape, blocks, int(rng.choice([1, 4, 8, 16])), int(rng.integers(2, 9)),
            str(rng.choice(["random", "zero", "negative", "large"])), int(rng.choice([1, 2, 4, 16])),
            int(rng.choice([0, 0, 6, 12])))


def _with_hidden_dense(rng, net: TTFSNet, width: int) -> TTFSNet:
    """``net`` with its readout replaced by a random hidden dense layer of ``width`` and a new readout."""
    readout = net.layers[-1]
    ticks, bits, classes = readout.ticks_in, readout.weight_bits, readout.fan_out
    limit = (1 << (bits - 1)) - 1
    spread = max(1, int(np.sqrt(readout.fan_in) * limit * ticks / 2))
    hidden = IntDense(rng.integers(-limit, limit + 1, (width, readout.fan_in)),
                      rng.integers(-spread, spread + 1, width),
                      rng.integers(1, 2 * max(1, spread // ticks) + 1, width), ticks, ticks, bits, np.ones(width),
                      name="hidden")
    last = IntDense(rng.integers(-limit, limit + 1, (classes, width)), rng.integers(-50, 50, classes), None,
                    ticks, 0, bits, np.ones(classes), name="readout")
    return TTFSNet(net.input, net.layers[:-1] + [hidden, last], net.name)


def _net(index, spec):
    in_shape, blocks, ticks, weight_bits, bias, _, hidden = spec
    rng = np.random.default_rng(index)
    net = random_cnn(rng, in_shape, blocks, int(rng.integers(2, 8)), ticks, weight_bits, bias, name=f"cnn{index}")
    return _with_hidden_dense(rng, net, hidden) if hidden else net


def _cost(net, lanes):
    """Cycles of a run at most: (dense schedule + overhead) × images."""
    return (serial_cycles(net, None, lanes) + overhead_bound(net, lanes)) * IMAGES


def _cases():
    """Corner nets, then random ones; a random spec whose run would exceed the cycle budget even
    with 16 lanes is drawn again (big maps with many channels take minutes in Icarus)."""
    rng = np.random.default_rng(606)
    specs = [((16, 5, 5), [("conv", 16, 3, 1, 1), ("pool", 3, 1)], 4, 8, "random", 16, 0),  # widest, overlapping pool
             ((1, 16, 16), [("conv", 2, 5, 2, 0), ("conv", 3, 1, 1, 2)], 16, 3, "large", 1, 0),
             ((2, 7, 7), [("conv", 5, 3, 2, 1), ("pool", 2, 2), ("conv", 4, 1, 1, 0)], 8, 6, "random", 2, 8)]
    while len(specs) < NETS:
        spec = _random_spec(rng)
        if _cost(_net(len(specs), spec), 16) <= CYCLE_BUDGET:
            specs.append(spec)
    return [pytest.param(i, spec, id=f"cnn{i:02d}-{'x'.join(map(str, spec[0]))}-"
                                     f"{'-'.join(''.join(map(str, b)) for b in spec[1])}-T{spec[2]}-l{spec[5]}")
            for i, spec in enumerate(specs)]


@pytest.mark.parametrize("index,spec", _cases())
def test_random_cnn_is_bit_exact(index, spec, tmp_path):
    require_simulator()
    net = _net(index, spec)
    lanes = spec[5]
    while _cost(net, lanes) > CYCLE_BUDGET and lanes < 16:
        lanes *= 2  # wide layers with few lanes would take minutes in Icarus
    rng = np.random.default_rng(1000 + index)
    pixels = shuffled_images(rng, net.input.size, IMAGES, 1)
    report = simulate(net, pixels, lanes=lanes, build_dir=tmp_path, seed=index)
    assert_matches_golden(report, net, pixels)


def test_padded_pool_is_bit_exact(tmp_path):
    """A 3×3 max-pool with stride 2 and padding 1 (random_cnn makes unpadded pools only)."""
    require_simulator()
    rng = np.random.default_rng(77)
    conv_net = random_cnn(rng, (2, 9, 9), [("conv", 3, 3, 1, 0)], 4, 8, 6, "random", name="padded_pool")
    conv = conv_net.layers[0]
    pool = IntMaxPool2d(conv.out_shape, (3, 3), (2, 2), (1, 1), conv.ticks, name="pool")
    readout = IntDense(rng.integers(-31, 32, (4, pool.fan_out)), rng.integers(-50, 50, 4), None, pool.ticks, 0, 6,
                       np.ones(4), name="readout")
    net = TTFSNet(conv_net.input, [conv, pool, readout], "padded_pool")
    pixels = shuffled_images(rng, net.input.size, IMAGES, 1)
    report = simulate(net, pixels, lanes=2, build_dir=tmp_path, seed=77)
    assert_matches_golden(report, net, pixels)


def test_changed_conv_weight_is_caught_at_its_layer(tmp_path):
    require_simulator()
    rng = np.random.default_rng(7)
    net = random_cnn(rng, (1, 6, 6), [("conv", 3, 3, 1, 1), ("pool", 2, 2)], 4, 8, 6, "random", name="cnn_mutant")
    pixels = random_pixels(rng, 4, net.input.size)
    mutant = copy.deepcopy(net)
    conv = mutant.layers[0]
    assert isinstance(conv, IntConv2d)
    conv.weight[1, 0, 1, 1] += 1 if conv.weight[1, 0, 1, 1] < 0 else -1
    assert any(golden.run_events(net, p).spikes[1] != golden.run_events(mutant, p).spikes[1] for p in pixels)
    report = simulate(net, pixels, hardware_net=mutant, lanes=2, build_dir=tmp_path, seed=3)
    assert report.mismatches and report.mismatches[0].startswith("image ") and "layer 1: " in report.mismatches[0]


def test_digits_cnn_on_100_test_images(digits_cnn, digits_test, tmp_path):
    require_simulator()
    net = digits_cnn
    x, y = digits_test.x[:DIGITS], digits_test.y[:DIGITS]
    pixels = net.input.pixels(x)
    lanes = 8  # conv2d_1 has 16 channels, but a narrower core simulates faster in Icarus
    report = simulate(net, pixels, labels=y, lanes=lanes, build_dir=tmp_path)
    assert_matches_golden(report, net, pixels)
    assert report.samples == DIGITS
    assert report.accuracy == pytest.approx(np.mean(golden.run_batch(net, pixels).classes == y))
