"""The verification campaign (``bench/verify.py``) and the tightness of the derived bounds.

Fast: :func:`hdlgen.testing.random_spec` gives valid, reproducible specs that cover the campaign's
ranges, and :func:`hdlgen.testing.extreme_case` drives each layer's accumulator to exactly the
bounds of :func:`hdlgen.ttfs.layer_bounds` in the golden model.

Slow: a seeded subset of the campaign is bit-exact in cocotb; at the extremes the core matches the
golden model, and a core whose accumulator at one layer is a bit narrower than derived is caught by
the same images, so the derived widths are tight (one bit fewer fails) and safe (they pass); the
same for the readout (its accumulators are the logits) and for the tick fields of the spike streams.

The narrow core is made without touching the RTL: every engine and the readout take their
accumulator width from ``DenseGeometry.acc_width``, set in ``DenseGeometry.__init__`` (a
convolution's geometry calls it too) from ``layer.widths()["accumulator"]``. The test wraps that
``__init__`` (pytest's ``monkeypatch``, undone after the test) to take one bit off for the chosen
layer. Only the Verilog generation in this process sees it; the testbench, which runs in the
simulator's process, and the golden model keep the derived widths.
"""

from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path

import numpy as np
import pytest

from hdlgen import golden
from hdlgen.cycles import dense_schedule
from hdlgen.geometry import DenseGeometry, NetGeometry
from hdlgen.simulate import simulate
from hdlgen.testing import (
    WINDOWS,
    campaign_pixels,
    extreme_case,
    extreme_ticks,
    net_from_spec,
    random_cnn,
    random_net,
    random_spec,
)
from hdlgen.ttfs import layer_bounds

from .helpers import require_simulator

SPECS = 50


def _verify_module():
    """``bench/verify.py`` (bench/ is not a package)."""
    path = Path(__file__).parents[1] / "bench" / "verify.py"
    spec = importlib.util.spec_from_file_location("bench_verify", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _specs(seed=15, count=SPECS):
    rng = np.random.default_rng(seed)
    return [random_spec(rng) for _ in range(count)]


def _tightness_nets():
    """A 4-layer MLP (per-neuron K) and a CNN with a padded conv, a pool, a hidden dense layer and
    per-layer K; windows and weight bits differ per net."""
    mlp = random_net(np.random.default_rng(5), [10, 6, 5, 3], [4, 8, 3], 6, "random", per_channel_k=True, name="mlp")
    cnn = random_cnn(np.random.default_rng(6), (2, 6, 6), [("conv", 3, 3, 1, 1), ("pool", 2, 2), ("dense", 4)], 3,
                     [4, 8, 3], 5, "random", "cnn", per_channel_k=False)
    return [mlp, cnn]


def _extreme_cases():
    return [pytest.param(net, index, id=f"{net.name}-{layer.name}")
            for net in _tightness_nets() for index, layer in enumerate(net.layers) if layer.has_weights]


# -- fast ----------------------------------------------------------------------------------------

def test_specs_are_valid_and_cover_the_ranges():
    specs = _specs()
    nets = [net_from_spec(spec) for spec in specs]
    for spec, net in zip(specs, nets):
        NetGeometry(net, spec["lanes"], spec["pixels_per_transfer"])  # lanes and P in range
        assert set(net.ticks) == set(spec["ticks"]) <= set(WINDOWS)  # a pool repeats its input window
    layers = [layer for net in nets for layer in net.layers]
    weighted = [layer for layer in layers if layer.has_weights]
    convs = [layer for layer in layers if layer.kind == "conv2d"]
    assert {spec["kind"] for spec in specs} == {"mlp", "cnn"}
    assert {len(net.layers) for net in nets} == {1, 2, 3, 4, 5}
    assert max(net.input.size for net in nets) == 784
    assert {min(t for net in nets for t in net.ticks), max(t for net in nets for t in net.ticks)} == {1, 64}
    assert {layer.weight_bits for layer in weighted} >= {2, 12}
    hidden = [layer for layer in weighted if not layer.readout]
    assert any(layer.shared_k for layer in hidden if len(layer.k) > 1) and not all(layer.shared_k for layer in hidden)
    assert any(layer.kind == "maxpool2d" for layer in layers)
    assert any(max(layer.stride) > 1 for layer in convs) and any(max(layer.padding) > 0 for layer in convs)
    # the most lanes any stage can use: a dense layer's fan-out, a convolution's output channels
    widest = [max(stage.lane_limit(stage.layer) for stage in NetGeometry(net).layers) for net in nets]
    assert any(spec["lanes"] == 1 for spec in specs) and any(1 < spec["lanes"] == w for spec, w in zip(specs, widest))
    assert any(1 < spec["lanes"] < w for spec, w in zip(specs, widest))
    assert any(spec["pixels_per_transfer"] > 1 for spec in specs)
    assert {spec["bias"] for spec in specs} == {"random", "zero", "negative", "large"}


def test_specs_and_nets_are_deterministic_by_seed():
    assert _specs(7) == _specs(7) and _specs(7) != _specs(8)
    spec = _specs(7, 1)[0]
    first, second = net_from_spec(spec), net_from_spec(spec)
    assert all(np.array_equal(a.weight, b.weight) and np.array_equal(a.bias, b.bias)
               for a, b in zip(first.layers, second.layers) if a.has_weights)


def test_campaign_pixels_hold_every_kind():
    pixels = campaign_pixels(np.random.default_rng(0), 200, 30)
    lit = (pixels > 0).sum(axis=1)
    assert pixels.shape == (200, 30) and pixels.dtype == np.uint8
    assert (lit == 0).sum() >= 2 and (pixels == 255).all(axis=1).sum() >= 2 and (lit == 1).sum() >= 20


@pytest.mark.parametrize("net,index", _extreme_cases())
def test_extreme_case_reaches_the_derived_bounds(net, index):
    extreme, pixels = extreme_case(net, index)
    layer = extreme.layers[index]
    sums = layer.accumulate(golden.run_batch(extreme, pixels).q[index])
    assert (min(int(sums.min()), 0), max(int(sums.max()), 0)) == layer_bounds(layer)


def test_extreme_case_reaches_the_bounds_of_random_specs():
    """Over the campaign's specs: every layer the construction accepts reaches both bounds."""
    reached = 0
    for spec in _specs():
        net = net_from_spec(spec)
        for index, layer in enumerate(net.layers):
            if not layer.has_weights:
                continue
            try:
                extreme, pixels = extreme_case(net, index)
            except ValueError:  # a single unit, or a convolution with no window inside the map
                continue
            target = extreme.layers[index]
            sums = target.accumulate(golden.run_batch(extreme, pixels).q[index])
            assert (min(int(sums.min()), 0), max(int(sums.max()), 0)) == layer_bounds(target), (spec, index)
            reached += 1
    assert reached >= 50


# -- slow: cocotb ----------------------------------------------------------------------------------

CI_NETS, CI_VECTORS = 6, 20
# Icarus cycles per net at most (dense schedule × vectors), so the subset stays within a few minutes.
CI_CYCLES = 60_000


@pytest.mark.slow
def test_seeded_campaign_subset_is_bit_exact():
    require_simulator()
    verify = _verify_module()
    specs = [spec for spec in verify.campaign_specs(200, 2026)
             if dense_schedule(net_from_spec(spec), spec["lanes"], spec["pixels_per_transfer"]) * CI_VECTORS
             <= CI_CYCLES][:CI_NETS]
    assert len(specs) == CI_NETS and {spec["kind"] for spec in specs} == {"mlp", "cnn", "graph"}
    rows = [verify.run_net(spec, CI_VECTORS, "icarus", i) for i, spec in enumerate(specs)]
    assert [row["mismatches"] for row in rows] == [[]] * CI_NETS


def _narrowed(monkeypatch, layer):
    """Make ``DenseGeometry`` give ``layer`` an accumulator one bit narrower than derived."""
    derived = DenseGeometry.__init__

    def narrow(self, target, *args, **kwargs):
        derived(self, target, *args, **kwargs)
        if target is layer:
            self.acc_width -= 1

    monkeypatch.setattr(DenseGeometry, "__init__", narrow)


@pytest.mark.slow
@pytest.mark.parametrize("net,index", _extreme_cases())
def test_derived_accumulator_is_safe_and_one_bit_fewer_is_caught(net, index, monkeypatch, tmp_path):
    require_simulator()
    extreme, pixels = extreme_case(net, index)
    pixels = np.concatenate([pixels, campaign_pixels(np.random.default_rng(index), 6, net.input.size)])
    report = simulate(extreme, pixels, lanes=2, build_dir=tmp_path / "derived", seed=index)
    assert report.mismatches == []
    _narrowed(monkeypatch, extreme.layers[index])
    narrow = simulate(extreme, pixels, lanes=2, build_dir=tmp_path / "narrow", seed=index)
    assert any(m.startswith(("image 0:", "image 0,")) for m in narrow.mismatches), narrow.mismatches


def _tick_net():
    """An MLP whose input window (6) is no power of two, so a tick field a bit narrower than
    derived cannot hold its last ticks; no other window, neuron index or word count is 6."""
    return random_net(np.random.default_rng(8), [10, 6, 5, 3], [6, 5, 3], 6, "random", name="ticks")


def test_extreme_ticks_span_the_input_window():
    net = _tick_net()
    ticks = {tick for _, tick in golden.run_events(net, extreme_ticks(net)[0]).spikes[0]}
    assert ticks == {0, net.input.ticks - 1}


@pytest.mark.slow
def test_derived_tick_width_is_safe_and_one_bit_fewer_is_caught(monkeypatch, tmp_path):
    """The tick fields of the spike streams (``hdlgen.rtl_templates.events``: a spike's tick, and ``T``
    for "no spike" in the tick sorters) are ``unsigned_width(T)`` bits. The narrow core comes from
    wrapping ``unsigned_width`` as that module sees it, for the value 6 only (the input window)."""
    require_simulator()
    net = _tick_net()
    pixels = np.concatenate([extreme_ticks(net), campaign_pixels(np.random.default_rng(8), 6, net.input.size)])
    assert simulate(net, pixels, lanes=2, build_dir=tmp_path / "derived", seed=8).mismatches == []
    events = importlib.import_module("hdlgen.rtl_templates.events")  # amaranth loads only for this test
    derived = events.unsigned_width
    monkeypatch.setattr(events, "unsigned_width", lambda value: derived(value) - (value == net.input.ticks))
    narrow = simulate(net, pixels, lanes=2, build_dir=tmp_path / "narrow", seed=8)
    assert any(m.startswith("image 0, layer 0:") for m in narrow.mismatches), narrow.mismatches
