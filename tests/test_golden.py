"""The two golden forms agree on every value; the batch form is the clamped floor of A/K."""

import numpy as np
import pytest

from hdlgen import golden
from hdlgen.testing import mixed_pixels, random_net
from hdlgen.ttfs import layer_bounds, signed_width


def _case(seed):
    rng = np.random.default_rng(seed)
    depth = int(rng.integers(1, 5))
    sizes = [int(rng.integers(1, 41)) for _ in range(depth + 1)]
    ticks = [int(rng.choice([1, 2, 3, 7, 16, 33, 64]))] + [int(rng.integers(1, 65)) for _ in range(depth - 1)]
    bits = int(rng.integers(2, 9))
    bias = ["random", "zero", "negative", "large"][seed % 4]
    net = random_net(rng, sizes, ticks, bits, bias, per_channel_k=bool(seed % 3 == 0))
    return net, mixed_pixels(rng, 6, sizes[0])


def assert_forms_agree(net, pixels):
    """Event form == batch form on every spike, logit and class."""
    batch = golden.run_batch(net, pixels)
    for i, image in enumerate(pixels):
        events = golden.run_events(net, image)
        np.testing.assert_array_equal(events.logits, batch.logits[i])
        assert events.label == batch.classes[i]
        for layer, (spikes, ticks) in enumerate(zip(events.spikes, net.ticks)):
            assert spikes == golden.spikes_from_q(batch.q[layer][i], ticks), f"image {i} layer {layer}"


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


@pytest.mark.parametrize("seed", range(10))
def test_accumulators_stay_within_derived_width_on_adversarial_inputs(seed):
    rng = np.random.default_rng(100 + seed)
    bits = int(rng.integers(2, 9))
    net = random_net(rng, [50, 30, 10], [64, 64], bits, ["large", "negative"][seed % 2])
    for layer in net.layers:
        low, high = layer_bounds(layer)
        width = layer.widths()["accumulator"]
        # the worst cases: every positive (negative) weight's input at full scale
        best = layer.bias + np.where(layer.weight > 0, layer.weight, 0).sum(1) * layer.ticks_in
        worst = layer.bias + np.where(layer.weight < 0, layer.weight, 0).sum(1) * layer.ticks_in
        assert best.max() == high or high == 0
        assert worst.min() == low or low == 0
        assert signed_width(int(worst.min()), int(best.max())) <= width
        q_full = np.full((1, layer.fan_in), layer.ticks_in)
        acc = golden.accumulate(layer, q_full)
        assert low <= acc.min() and acc.max() <= high


def test_accumulate_is_exact_beyond_float32():
    from hdlgen.ttfs import IntDense
    # reach 32767·10·64 > 2**24: float32 would round this odd sum, the float64 path must not
    big = IntDense(np.full((1, 10), 32767), np.array([1]), None, 64, 0, 16, np.ones(1))
    q = np.array([[64] * 9 + [63]])
    assert golden.accumulate(big, q)[0, 0] == 32767 * 639 + 1
