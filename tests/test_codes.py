"""AMOS and rate coding (hdlgen.codes) and ``hdlgen compare``: known answers, the two golden forms
against each other, the spike budgets of each code, the command's files and its refusals."""

import json

import numpy as np
import pytest

from hdlgen import golden
from hdlgen.codes import amos, rate
from hdlgen.passes.quantize import input_encoding
from hdlgen.testing import mixed_pixels, random_cnn, random_graph, random_net
from hdlgen.ttfs import IntDense, TTFSNet

from .helpers import DIGITS, run_cli

CNN_BLOCKS = (("conv", 3, 3, 1, 1), ("pool", 2, 2), ("conv", 4, 3, 2, 0))


def _one_layer(rng, steps, inputs=6, neurons=3000):
    """A net with one hidden layer of random integers at ``steps``, whose neurons' saturated drive
    ``T·Σ_j W_ij + B_i`` spreads over ``−K·T..2K·T`` (below zero, every count, clipped); (net, W, B, K)."""
    w = rng.integers(-3, 4, (neurons, inputs))
    k = rng.integers(1, 12, neurons)
    b = rng.integers(-k * steps, 2 * k * steps + 1) - steps * w.sum(axis=1)
    hidden = IntDense(w, b, k, steps, steps, 6, np.ones(neurons), name="hidden")
    readout = IntDense(rng.integers(-20, 21, (3, neurons)), np.zeros(3), None, steps, 0, 6, np.ones(3), name="readout")
    return TTFSNet(input_encoding((inputs,), 0.0, 1 / 255, 1 / steps, steps), [hidden, readout]), w, b, k


@pytest.mark.parametrize("steps", [1, 2, 3, 4, 7, 16])
def test_rate_count_under_constant_input_is_the_quantized_clipped_relu(steps):
    rng = np.random.default_rng(steps)
    net, w, b, k = _one_layer(rng, steps)
    saturated = np.full((1, net.input.size), 255, np.uint8)   # q0 = T: every input spikes every step
    # Deng & Gu's units: a spike carries θ_in = T (one input tick each), so the constant drive is
    # z = Σ_j W_ij·T + B_i; θ = T·K
    z = w.sum(axis=1) * steps + b
    theta = steps * k
    counts = {}
    for shift, soft in [(True, True), (False, True), (True, False)]:
        counts[shift, soft] = rate.run_batch(rate.RateNet(net, shift, soft), saturated).counts[1][0]
    assert np.array_equal(counts[True, True], np.clip(np.floor((z + theta / (2 * steps)) / (theta / steps)), 0, steps))
    assert np.array_equal(counts[False, True], np.clip(np.floor(z / (theta / steps)), 0, steps))
    # hard reset: the potential starts from 0 after each spike, so one spike every ceil(θ / c) steps
    c = z + theta / (2 * steps)
    period = np.ceil(theta / np.where(c > 0, c, 1))
    assert np.array_equal(counts[True, False], np.where(c > 0, np.minimum(steps // period, steps), 0))


def test_rate_input_sends_q0_spikes():
    rng = np.random.default_rng(1)
    net, *_ = _one_layer(rng, 5)
    pixels = mixed_pixels(rng, 20, net.input.size)
    assert np.array_equal(rate.run_batch(rate.RateNet(net), pixels).counts[0], net.input.q(pixels))


@pytest.mark.parametrize("bits", [1, 3, 8, 20])
def test_amos_units_with_the_binary_solution_floor_to_k_bits(bits):
    rng = np.random.default_rng(bits)
    k = rng.integers(1, 1000, 300)
    potential = rng.integers(-5000, (1 << bits) * 1100, (4, 300))
    z = amos.fire(potential, k, bits)
    assert z.shape == (4, 300, bits) and z.dtype == bool     # each unit: a spike or none
    value = (z * (1 << np.arange(bits - 1, -1, -1))).sum(axis=-1)
    assert np.array_equal(value, np.clip(potential // k, 0, (1 << bits) - 1))
    assert np.array_equal(amos.spike_counts(value), z.sum(axis=-1))


def _nets(kind, ticks, rng):
    if kind == "mlp":
        return random_net(rng, [12, 9, 7, 4], ticks, weight_bits=6)
    if kind in ("residual-mlp", "resnet"):     # graph nets: skip inputs (and a subsample) on every layer they can
        shape, widths = ((12,), (9, 7, 8)) if kind == "residual-mlp" else ((2, 6, 6), (3, -4, 4))
        return random_graph(rng, shape, widths, classes=4, ticks=ticks, skips=1.0)
    return random_cnn(rng, (2, 7, 7), CNN_BLOCKS, classes=4, ticks=ticks)


KINDS = ["mlp", "cnn", "residual-mlp", "resnet"]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("bits", [2, 4])
def test_amos_event_form_equals_batch_form(kind, bits):
    rng = np.random.default_rng(bits)
    coded = amos.AMOSNet(_nets(kind, amos.window(bits), rng))
    pixels = mixed_pixels(rng, 6, coded.net.input.size)
    batch = golden.run_batch(coded.net, pixels)
    for image, px in enumerate(pixels):
        events = amos.run_events(coded, px)
        assert np.array_equal(events.logits, batch.logits[image]) and events.label == batch.classes[image]
        for spikes, q in zip(events.spikes, batch.q):
            assert len(set(spikes)) == len(spikes) and all(0 <= step < bits for _, step in spikes)  # ≤ 1 per unit
            value = np.zeros(q.shape[1], dtype=np.int64)
            for neuron, step in spikes:
                value[neuron] += 1 << (bits - 1 - step)
            assert np.array_equal(value, q[image])
            assert spikes == sorted(spikes, key=lambda s: (s[1], s[0]))


@pytest.mark.parametrize("kind", KINDS)
def test_ttfs_spikes_at_most_once_per_neuron(kind):
    rng = np.random.default_rng(3)
    net = _nets(kind, 6, rng)
    for px in mixed_pixels(rng, 5, net.input.size):
        for spikes in golden.run_events(net, px).spikes:
            neurons = [n for n, _ in spikes]
            assert len(set(neurons)) == len(neurons)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("shift, soft_reset", [(True, True), (False, True), (True, False)])
def test_rate_event_form_equals_batch_form(kind, shift, soft_reset):
    rng = np.random.default_rng(int(shift) + 2 * int(soft_reset))
    coded = rate.RateNet(_nets(kind, 5, rng), shift, soft_reset)
    pixels = mixed_pixels(rng, 5, coded.net.input.size)
    batch = rate.run_batch(coded, pixels)
    for image, px in enumerate(pixels):
        events = rate.run_events(coded, px)
        assert np.array_equal(events.logits, batch.logits[image]) and events.label == batch.classes[image]
        for spikes, counts in zip(events.spikes, batch.counts):
            assert len(set(spikes)) == len(spikes) and all(0 <= step < coded.steps for _, step in spikes)  # ≤ 1 a step
            assert np.array_equal(np.bincount([n for n, _ in spikes], minlength=counts.shape[1]), counts[image])


def test_rate_ablations_differ_from_the_default_at_small_t():
    rng = np.random.default_rng(5)
    net = random_net(rng, [30, 40, 5], 3, weight_bits=6)
    pixels = mixed_pixels(rng, 40, 30)
    default = rate.run_batch(rate.RateNet(net), pixels).counts[1]
    for shift, soft_reset in [(False, True), (True, False)]:
        assert not np.array_equal(rate.run_batch(rate.RateNet(net, shift, soft_reset), pixels).counts[1], default)


def test_codes_refuse_nets_they_cannot_run():
    rng = np.random.default_rng(0)
    from hdlgen.errors import UserError
    with pytest.raises(UserError, match="2\\^K − 1"):
        amos.AMOSNet(random_net(rng, [4, 3, 2], 6))
    with pytest.raises(UserError, match="same T"):
        rate.RateNet(random_net(rng, [4, 3, 2], [4, 8]))
    with pytest.raises(UserError, match="units per neuron"):
        amos.window(amos.MAX_BITS + 1)


# -- the command -----------------------------------------------------------------------------------

def test_compare_writes_json_and_plots(tmp_path, capsys):
    from hdlgen import ConvertConfig, convert, load_model
    from hdlgen.data import load_dataset
    from hdlgen.evaluate import evaluate

    out = tmp_path / "cmp.json"
    code, stdout, _ = run_cli(capsys, "compare", DIGITS / "digits_cnn.pt2", "--data", DIGITS / "digits_test.npz",
                              "--calibration-data", DIGITS / "digits_train.npz", "--steps", "4", "2",
                              "--samples", "120", "--cycle-samples", "4", "--lanes", "4", "-o", out, "--json")
    assert code == 0
    result = json.loads(out.read_text())
    assert json.loads(stdout.strip().splitlines()[-1]) == result
    assert set(result["methods"]) == {"ttfs", "amos", "rate"} and result["samples"] == 120
    for method, rows in result["methods"].items():
        assert [r["steps"] for r in rows] == [2, 4]
        for r in rows:
            assert len(r["spikes_per_neuron"]) == 5       # input, conv, pool, conv, pool
            assert 0 < r["accuracy"] <= 1 and 0 < r["agreement"] <= 1
            assert r["synaptic_events"] > 0 and r["cycles_estimate"] > 0 and r["has_rtl"] == (method == "ttfs")
    ttfs, amos_rows, rate_rows = (result["methods"][m] for m in ("ttfs", "amos", "rate"))
    assert [r["latency_ticks"] for r in ttfs] == [2 * 3, 4 * 3]          # input and two conv windows
    assert [r["latency_ticks"] for r in amos_rows] == [2 * 3, 4 * 3] and [r["latency_ticks"] for r in rate_rows] == [2, 4]
    assert all(s <= 1 for r in ttfs for s in r["spikes_per_neuron"])
    assert all(s <= r["steps"] for r in amos_rows + rate_rows for s in r["spikes_per_neuron"])
    # the TTFS row is what `hdlgen eval` reports for the same conversion
    graph = load_model(DIGITS / "digits_cnn.pt2")
    data = load_dataset(DIGITS / "digits_test.npz", graph.input_shape).head(120)
    train = load_dataset(DIGITS / "digits_train.npz", graph.input_shape)
    reference = evaluate(convert(graph, train.x[:2000], ConvertConfig(ticks=4)), data)
    assert ttfs[1]["accuracy"] == reference["snn_accuracy"] and result["ann_accuracy"] == reference["ann_accuracy"]
    assert ttfs[1]["spikes_per_neuron"] == pytest.approx(reference["spikes_per_neuron"])
    assert sorted(result["plots"]) == sorted(str(tmp_path / f"cmp_{k}.png") for k in ("accuracy", "spikes", "cycles"))
    for path in result["plots"]:
        assert open(path, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    assert "float accuracy" in stdout and "~" in stdout


def test_compare_rate_ablation_and_skipped_amos(capsys):
    code, stdout, _ = run_cli(capsys, "compare", DIGITS / "digits_mlp.pt2", "--data", DIGITS / "digits_test.npz",
                              "--steps", "2", "40", "--methods", "amos", "rate", "--hard-reset", "--no-shift",
                              "--samples", "50", "--cycle-samples", "2", "--json")
    result = json.loads(stdout.strip().splitlines()[-1])
    assert code == 0 and set(result["methods"]) == {"amos", "rate"}
    assert [r["steps"] for r in result["methods"]["amos"]] == [2]
    assert result["skipped"][0]["steps"] == 40 and "at most 32" in result["skipped"][0]["reason"]
    assert all(not r["shift"] and not r["soft_reset"] for r in result["methods"]["rate"])
    assert "hard reset, no θ/2T shift" in stdout


@pytest.mark.parametrize("argv, message", [
    (["--steps", "0"], "--steps must be ≥ 1"),
    (["--lanes", "0"], "--lanes must be ≥ 1"),
    (["--lanes", "100000"], "--lanes: lanes must be an integer from 1 to 2 times (input spikes a cycle) the first"),
    (["--rate-threshold", "median"], "--rate-threshold must be"),
    (["--cycle-samples", "0"], "--cycle-samples must be ≥ 1"),
    (["-o", "/nonexistent/dir/c.json"], "no directory"),
    (["--weight-bits", "1"], "weight bits must be 2..16"),
])
def test_compare_refuses_bad_input_in_one_line(capsys, argv, message):
    code, _, err = run_cli(capsys, "compare", DIGITS / "digits_mlp.npz", "--data", DIGITS / "digits_test.npz",
                           "--steps", "2", "--methods", "ttfs", "--samples", "10", *argv)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and message in lines[0], err


def test_compare_refuses_a_converted_net_and_missing_data(tmp_path, capsys):
    for argv, message in [([tmp_path / "n.ttfs", "--data", DIGITS / "digits_test.npz"], "not a converted .ttfs"),
                          ([DIGITS / "digits_mlp.npz", "--data", tmp_path / "none.npz"], "no such data file")]:
        code, _, err = run_cli(capsys, "compare", *argv)
        assert code == 2 and len(err.strip().splitlines()) == 1 and message in err, err
