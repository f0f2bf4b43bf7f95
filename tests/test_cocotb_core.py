"""The generated core, simulated with cocotb, is bit-exact with the golden model.

Random dense nets cover layer sizes 1..300, depth 1..4, windows 1..64, weight bits 2..8,
lanes 1..16 or the widest fan-out, 1, 4 or 8 pixels per transfer, zero/negative/large biases,
per-layer and per-neuron K, and images with no spike at all or saturating every pixel; each
runs ≥ 20 images under random input gaps and back-pressure. Mutants (a core built from a
slightly different net) must be caught, and the digits example must run on 200 test images.
"""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest

from hdlgen import golden, ttfs, verilog
from hdlgen.cli import main
from hdlgen.cycles import dense_schedule, overhead_bound, serial_cycles
from hdlgen.rtl_templates.dense import COMPACT, RETIMED
from hdlgen.simulate import simulate
from hdlgen.testing import random_net, random_pixels

from .helpers import assert_matches_golden, require_simulator, shuffled_images

pytestmark = pytest.mark.slow

IMAGES = 20
# Keeps every net's run within a few seconds of Icarus: cycles of the dense schedule × images.
CYCLE_BUDGET = 150_000


# (sizes input → classes, windows of the spiking layers, weight bits, lanes, bias): the corners
CORNERS = [
    ([1, 1], [1], 2, 1, "zero"),                     # smallest possible net, readout only
    ([300, 3], [64], 8, 16, "random"),               # widest input, longest window
    ([5, 300, 4], [8, 3], 4, 16, "large"),           # widest hidden layer, big biases
    ([20, 1, 6], [16, 1], 8, 1, "random"),           # one hidden neuron, T = 1
    ([30, 25, 20, 15, 10], [4, 6, 8, 5], 3, 3, "negative"),  # depth 4, negative biases
    ([64, 32, 10], [64, 64], 8, 16, "random"),       # long windows at both layers
    ([9, 17, 2], [2, 1], 2, 16, "random"),           # lanes > the readout's fan-out
    ([200, 64, 10], [16, 16], 8, 8, "zero"),
]


def _random_spec(rng):
    depth = int(rng.integers(1, 5))
    big = rng.random() < 0.15
    sizes = [int(rng.integers(1, 300 if big else 40) + 1) for _ in range(depth + 1)]
    ticks = [int(rng.choice([1, 2, 3, 4, 8, 16, 32, 64])) for _ in range(depth)]
    return sizes, ticks, int(rng.integers(2, 9)), int(rng.integers(1, 17)), \
        str(rng.choice(["random", "zero", "negative", "large"]))


def _cases():
    """Every net with the engines the ECP5 and Gowin builds make (``RETIMED``, as ``hdlgen verilog``
    writes them), and the corners again with the iCE40 builds' (``COMPACT``)."""
    rng = np.random.default_rng(2024)
    specs = CORNERS + [_random_spec(rng) for _ in range(24)]
    timings = [(RETIMED, "")] * len(specs) + [(COMPACT, "-compact")] * len(CORNERS)
    return [pytest.param(i % len(specs), *spec, timing,
                         id=f"net{i % len(specs):02d}-{'x'.join(map(str, spec[0]))}-T{'.'.join(map(str, spec[1]))}"
                            f"-w{spec[2]}-l{spec[3]}-{spec[4]}{suffix}")
            for i, (spec, (timing, suffix)) in enumerate(zip(specs + CORNERS, timings))]


def _assert_matches_golden(report, net, pixels, lanes, pixels_per_transfer=1):
    """Also: images back to back follow each other no slower than the worst case of one alone."""
    assert_matches_golden(report, net, pixels)
    worst = serial_cycles(net, None, lanes, pixels_per_transfer) + overhead_bound(net, lanes, pixels_per_transfer)
    assert report.initiation_interval is not None and report.initiation_interval <= worst


@pytest.mark.parametrize("index,sizes,ticks,weight_bits,lanes,bias,timing", _cases())
def test_random_net_is_bit_exact(index, sizes, ticks, weight_bits, lanes, bias, timing, tmp_path):
    require_simulator()
    rng = np.random.default_rng(index)
    net = random_net(rng, sizes, ticks, weight_bits, bias, per_channel_k=bool(index % 2), name=f"net{index}")
    widest = max(sizes[1:])
    while dense_schedule(net, min(lanes, widest)) * IMAGES > CYCLE_BUDGET and lanes < 16:
        lanes = min(16, 2 * lanes)  # big nets with few lanes would take minutes in Icarus
    lanes = widest if index % 5 == 4 else min(lanes, widest)  # at most the widest fan-out; some at it
    per_transfer = min(sizes[0], [1, 4, 8][index % 3])
    pixels = shuffled_images(rng, sizes[0], IMAGES)
    report = simulate(net, pixels, lanes=lanes, pixels_per_transfer=per_transfer, build_dir=tmp_path, seed=index,
                      engine_timing=timing)
    _assert_matches_golden(report, net, pixels, lanes, per_transfer)


def _mutant_case(rng):
    net = random_net(rng, [24, 16, 12, 6], [16, 8, 8], 6, "random", name="mutant")
    return net, random_pixels(rng, IMAGES, 24)


def _differs(net, mutant, pixels):
    return any(golden.run_events(net, p).spikes != golden.run_events(mutant, p).spikes
               or list(golden.run_events(net, p).logits) != list(golden.run_events(mutant, p).logits) for p in pixels)


@pytest.mark.parametrize("mutation", ["k_plus_one", "hidden_bias_minus_one", "readout_bias_plus_one", "input_table"])
def test_wrong_core_is_caught(mutation, tmp_path):
    """A core built from a net that differs by one integer must be reported at the first
    layer where the difference shows."""
    require_simulator()
    net, pixels = _mutant_case(np.random.default_rng(6))
    mutant = copy.deepcopy(net)
    first_layer = {"k_plus_one": 2, "hidden_bias_minus_one": 1, "input_table": 0}
    if mutation == "k_plus_one":
        mutant.layers[1].k = mutant.layers[1].k + 1
    elif mutation == "hidden_bias_minus_one":
        mutant.layers[0].bias = mutant.layers[0].bias - 1
    elif mutation == "readout_bias_plus_one":
        mutant.layers[2].bias = mutant.layers[2].bias + 1
    else:
        table = mutant.input.table.copy()
        table[128:] = np.minimum(table[128:] + 1, mutant.input.ticks)
        mutant.input.table = table
    assert _differs(net, mutant, pixels), "the mutation must change the golden output of these images"
    report = simulate(net, pixels, hardware_net=mutant, build_dir=tmp_path, seed=1)
    assert report.mismatches
    if mutation == "readout_bias_plus_one":
        assert all("logit" in m for m in report.mismatches)
    else:
        assert f"layer {first_layer[mutation]}: " in report.mismatches[0] and "spike" in report.mismatches[0]


def test_digits_example_on_200_test_images(digits_net, digits_test, tmp_path):
    require_simulator()
    net = ttfs.load(digits_net)
    x, y = digits_test.x[:200], digits_test.y[:200]
    pixels = net.input.pixels(x)
    report = simulate(net, pixels, labels=y, lanes=2, build_dir=tmp_path)
    _assert_matches_golden(report, net, pixels, 2)
    assert report.samples == 200
    assert report.accuracy == pytest.approx(np.mean(golden.run_batch(net, pixels).classes == y))


def test_verilator_runs_the_core(tmp_path):
    require_simulator("verilator")
    rng = np.random.default_rng(11)
    net = random_net(rng, [16, 12, 5], [8, 8], 8, "random", name="verilated")
    pixels = shuffled_images(rng, 16, IMAGES)
    report = simulate(net, pixels, lanes=4, simulator="verilator", build_dir=tmp_path, seed=2)
    _assert_matches_golden(report, net, pixels, 4)


def test_sim_command_json_and_exit_code(tmp_path, capsys, monkeypatch):
    """``hdlgen sim --json``: exit 0 and the summary as the last stdout line; exit 1 when the
    core (here built from a mutant) disagrees with the golden model."""
    require_simulator()
    net, pixels = _mutant_case(np.random.default_rng(6))
    ttfs.save(net, tmp_path / "net.ttfs")
    x = pixels.astype(np.float64) * net.input.pixel_scale + net.input.offset  # pixels(x) gives these bytes back
    np.savez(tmp_path / "data.npz", x=x, y=golden.run_batch(net, pixels).classes)
    argv = ["sim", str(tmp_path / "net.ttfs"), "--data", str(tmp_path / "data.npz"), "--samples", "8", "--lanes", "3",
            "--json", "--build-dir", str(tmp_path / "build")]
    assert main(argv) == 0
    out = capsys.readouterr().out
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["samples"] == 8 and summary["mismatches"] == [] and summary["accuracy"] == 1.0
    assert summary["lower_bound_mean"] <= summary["cycles_mean"] <= summary["cycles_max"]
    assert summary["dense_cycles_mean"] > 0 and out.startswith("PASS")

    mutant = copy.deepcopy(net)
    mutant.layers[0].bias = mutant.layers[0].bias - 1
    build = verilog.write_verilog
    monkeypatch.setattr(verilog, "write_verilog", lambda net, out_dir, **kw: build(mutant, out_dir, **kw))
    assert main(argv) == 1
    out = capsys.readouterr().out
    assert out.startswith("FAIL") and json.loads(out.strip().splitlines()[-1])["mismatches"]
