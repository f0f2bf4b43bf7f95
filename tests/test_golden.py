"""The two golden forms agree on every value; the batch form is the clamped floor of A/K."""

import itertools

import numpy as np
import pytest

from hdlgen import golden
from hdlgen.testing import mixed_pixels, random_net
from hdlgen.ttfs import IntConv2d, IntDense, layer_bounds, signed_width

from .helpers import assert_forms_agree


def _case(seed):
    rng = np.random.default_rng(seed)
    depth = int(rng.integers(1, 5))
    sizes = [int(rng.integers(1, 41)) for _ in range(depth + 1)]
    ticks = [int(rng.choice([1, 2, 3, 7, 16, 33, 64]))] + [int(rng.integers(1, 65)) for _ in range(depth - 1)]
    bits = int(rng.integers(2, 9))
    bias = ["random", "zero", "negative", "large"][seed % 4]
    net = random_net(rng, sizes, ticks, bits, bias, per_channel_k=bool(seed % 3 == 0))
    return net, mixed_pixels(rng, 6, sizes[0])


@pytest.mark.parametrize("seed", range(60))
def test_event_form_equals_batch_form(seed):
    assert_forms_agree(*_case(seed))


def test_batch_form_is_clamped_floor_and_argmax_ties_go_low():
    net, pixels = _case(5)
    batch = golden.run_batch(net, pixels)
    q = batch.q[0]
    for layer, q_next in zip(net.layers, batch.q[1:]):
        acc = layer.bias + q @ layer.weight.T
        expected = np.clip(np.floor(acc / layer.k), 0, layer.ticks).astype(np.int64)
        np.testing.assert_array_equal(q_next, expected)
        q = q_next
    tied = np.array([[3, 7, 7, 1], [0, 0, 0, 0]])
    assert list(golden._argmax_lowest(tied)) == [1, 0]


def test_spike_ticks_follow_the_contract():
    # q = T − τ: the largest activation fires first, q = 0 never fires.
    assert golden.spikes_from_q(np.array([0, 5, 16, 5, 1]), 16) == [(2, 0), (1, 11), (3, 11), (4, 15)]


def _small_layer(seed):
    """A dense layer or a convolution with at most 4 weights per neuron (small T and fan-out): its
    partial sums can be enumerated. Odd seeds give convolutions; half the seeds give weights and
    biases of one sign only (≥ 0 or ≤ 0), so that the bounds' clamp with 0 is exercised."""
    rng = np.random.default_rng(300 + seed)
    bits, ticks_in, units = int(rng.integers(2, 6)), int(rng.integers(1, 5)), int(rng.integers(1, 4))
    limit = (1 << (bits - 1)) - 1
    if seed % 2:   # a conv: (in_c, kh, kw) with in_c·kh·kw ≤ 4 on an input as large as its kernel
        shape = [(1, 1, 1), (1, 2, 2), (2, 1, 2), (1, 1, 3), (4, 1, 1), (1, 2, 1)][seed // 2 % 6]
        shape_w = (units, *shape)
    else:
        shape_w = (units, int(rng.integers(1, 5)))
    sign = [None, None, 1, -1][seed // 2 % 4]
    weight = rng.integers(-limit, limit + 1, shape_w)
    if sign is not None:
        weight = sign * np.abs(weight)
    spread = limit * ticks_in * 4
    bias = rng.integers(-spread, spread + 1, units) if sign is None else sign * rng.integers(0, spread + 1, units)
    readout = seed % 3 == 0 and not seed % 2
    k = None if readout else rng.integers(1, 6, units)
    ticks = 0 if readout else int(rng.integers(1, 5))
    if seed % 2:
        return IntConv2d(weight, bias, k, ticks_in, ticks, bits, np.ones(units), in_shape=shape)
    return IntDense(weight, bias, k, ticks_in, ticks, bits, np.ones(units))


@pytest.mark.parametrize("seed", range(48))
def test_layer_bounds_are_the_extreme_partial_sums_by_brute_force(seed):
    """Every q ∈ {0..ticks_in}^taps is enumerated (q_j = 0 leaves input j out of the sum, so this
    covers every subset S and every value on it): ``layer_bounds`` is exactly the least and
    greatest ``B_i + Σ_{j∈S} W_ij·q_j`` over all neurons, each clamped with 0, and its signed
    width holds both while one bit less does not."""
    layer = _small_layer(seed)
    w = layer.weight.reshape(len(layer.weight), -1)
    assert w.shape[1] <= 4
    q = np.array(list(itertools.product(range(layer.ticks_in + 1), repeat=w.shape[1])), dtype=np.int64)
    sums = layer.bias[None, :] + q @ w.T                       # (every q vector, every neuron)
    expected = (min(int(sums.min()), 0), max(int(sums.max()), 0))
    assert layer_bounds(layer) == expected

    low, high = expected
    width = signed_width(low, high)
    assert layer.widths()["accumulator"] == width
    assert -(1 << (width - 1)) <= low and high <= (1 << (width - 1)) - 1
    if width > 1:   # (one bit holds −1..0: nothing is narrower)
        narrower = width - 1
        assert not (-(1 << (narrower - 1)) <= low and high <= (1 << (narrower - 1)) - 1)


def test_accumulate_is_exact_beyond_float32():
    # reach 32767·10·64 > 2**24: float32 would round this odd sum, the float64 path must not
    big = IntDense(np.full((1, 10), 32767), np.array([1]), None, 64, 0, 16, np.ones(1))
    q = np.array([[64] * 9 + [63]])
    assert big.accumulate(q)[0, 0] == 32767 * 639 + 1
