"""Images back to back: the interval between results against the throughput bound
(:func:`hdlgen.cycles.throughput_bound`), bit-exact while streaming, and the ``--stream`` options."""

from __future__ import annotations

import json

import numpy as np
import pytest

from hdlgen import golden, ttfs
from hdlgen.cli import main
from hdlgen.cycles import dense_throughput_bound, stage_cycles, throughput_bound
from hdlgen.simulate import simulate
from hdlgen.testing import random_cnn, random_net, random_pixels
from hdlgen.verilog import write_verilog


@pytest.fixture
def net():
    return random_net(np.random.default_rng(3), [10, 7, 6], [8, 4], name="small")


def _spikes(net, pixels):
    return [golden.run_events(net, image).spikes for image in pixels]


def test_stage_cycles_are_what_each_stage_spends_on_an_image(net):
    image = random_pixels(np.random.default_rng(0), 1, 10)[0]
    spikes = golden.run_events(net, image).spikes
    inputs, hidden = len(spikes[0]), len(spikes[1])
    assert inputs and hidden
    # lanes 1: the hidden engine pays 7 words a spike and reads 7 words out; the output engine 6 and 6,
    # which the readout takes a cycle each
    assert stage_cycles(net, spikes) == {"input": 10 + inputs + 8, "dense0 engine": 7 * inputs + 7,
                                         "dense0 sorter": 7 + hidden + 4, "dense1 engine": 6 * hidden + 6,
                                         "dense1 readout": 6}
    # lanes 4 and 5 pixels a transfer: 2 words each; the hidden bank's 4 ladders read 2 words out,
    # the readout takes the output engine's 2 words of 3 lanes one lane a cycle, and they wait in
    # its drain FIFO: the engine is free after reading them
    assert stage_cycles(net, spikes, lanes=4, pixels_per_transfer=5) == {
        "input": 2 + inputs + 8, "dense0 engine": 2 * inputs + 2, "dense0 sorter": 2 + hidden + 4,
        "dense1 engine": 2 * hidden + 2, "dense1 readout": 6}
    # one ladder: a word of 4 potentials takes 4 cycles into the sorter
    assert stage_cycles(net, spikes, lanes=4, spike_lanes=1)["dense0 sorter"] == 8 + hidden + 4


def test_a_first_layer_taking_two_spikes_a_cycle_pays_per_group(net):
    """Lanes twice the first layer's fan-out: two input spikes a cycle, sent by an encoder without a
    tick sorter in groups of a transfer's spikes as the transfers come."""
    image = random_pixels(np.random.default_rng(0), 1, 10)[0]
    spikes = golden.run_events(net, image).spikes
    per_transfer = np.bincount([n // 5 for n, _ in spikes[0]], minlength=2)
    groups = [-(-int(count) // 2) for count in per_transfer]
    hidden = len(spikes[1])
    assert stage_cycles(net, spikes, lanes=(14, 6), pixels_per_transfer=5) == {
        "input": max(2, sum(max(1, g) for g in groups)), "dense0 engine": sum(groups) + 1,
        "dense0 sorter": 1 + hidden + 4, "dense1 engine": hidden + 1, "dense1 readout": 6}
    # with every input spiking: 3 groups a transfer of 5, in the encoder and the engine
    every = stage_cycles(net, [[(n, 0) for n in range(10)], *spikes[1:]], lanes=(14, 6), pixels_per_transfer=5)
    assert (every["input"], every["dense0 engine"]) == (2 * 3, 2 * 3 + 1)


def test_the_bound_is_the_busiest_stages_mean(net):
    spike_lists = _spikes(net, random_pixels(np.random.default_rng(2), 6, 10))
    per_image = [stage_cycles(net, spikes, lanes=2) for spikes in spike_lists]
    bound, stage = throughput_bound(net, spike_lists, lanes=2)
    assert bound == max(np.mean([p[s] for p in per_image]) for s in per_image[0])
    assert bound == np.mean([p[stage] for p in per_image])
    assert bound <= np.mean([max(p.values()) for p in per_image])
    assert bound <= dense_throughput_bound(net, lanes=2)


def test_the_sidecar_has_the_nets_throughput_bound(net, tmp_path):
    _, sidecar = write_verilog(net, tmp_path, lanes=2)
    assert json.loads(sidecar.read_text())["throughput"]["dense_bound"] == dense_throughput_bound(net, lanes=2)


@pytest.mark.parametrize("count,stream,blocks", [(10, 9, (0, 1, 9)), (20, 8, (0, 12, 8)), (3, 2, (0, 1, 2))])
def test_a_stream_of_n_images_is_the_last_n(count, stream, blocks):
    from hdlgen.sim.testbench import image_modes  # imports cocotb
    modes = image_modes(count, stream)
    assert (modes.count("stress"), modes.count("isolated"), modes.count("stream")) == blocks
    assert modes == sorted(modes, key=["stress", "isolated", "stream"].index)


@pytest.mark.parametrize("args,message", [
    (["--stream", "3"], "--stream 3: needs 2 to 2 images of the 3 simulated"),
    (["--stream", "1"], "--stream 1: needs 2 to 2 images"),
    (["--clock", "0"], "--clock must be > 0 MHz"),
    (["--build", "nowhere"], "no build record"),
])
def test_sim_stream_options_are_checked_before_the_work(net, tmp_path, capsys, args, message):
    ttfs.save(net, tmp_path / "n.ttfs")
    np.savez(tmp_path / "d.npz", x=np.zeros((3, 10)), y=np.zeros(3, np.int64))
    assert main(["sim", str(tmp_path / "n.ttfs"), "--data", str(tmp_path / "d.npz"), *args]) == 2
    assert message in capsys.readouterr().err


def _check_stream(report):
    assert report.passed, report.mismatches[:3]
    assert report.throughput_bound <= report.initiation_interval, (report.throughput_bound, report.bottleneck)
    assert report.interval_min <= report.initiation_interval <= report.interval_max


FOLDINGS = [  # sizes, ticks, lanes, pixels per transfer, spike lanes
    ([24, 12, 5], [8, 6], 1, 1, None),
    ([24, 12, 5], [8, 6], 4, 3, None),
    ([30, 16, 9, 4], [6, 8, 5], 8, 1, 2),
    ([20, 24, 6], [16, 4], 24, 20, None),
    ([24, 12, 5], [8, 6], (24, 5), 5, None),       # two input spikes a cycle
    ([20, 24, 6], [16, 4], 48, 7, 4),
]


@pytest.mark.slow
@pytest.mark.parametrize("sizes,ticks,lanes,per_transfer,spike_lanes", FOLDINGS)
def test_streamed_images_stay_bit_exact_between_bound_and_latency(sizes, ticks, lanes, per_transfer, spike_lanes):
    """The same images alone, then back to back: the interval lies between the bound and their latency."""
    rng = np.random.default_rng(sum(sizes) + (sum(lanes) if isinstance(lanes, tuple) else lanes))
    net = random_net(rng, sizes, ticks, name="streamed")
    images = random_pixels(rng, 7, sizes[0])
    report = simulate(net, np.concatenate([images, images]), lanes=lanes, pixels_per_transfer=per_transfer,
                      spike_lanes=spike_lanes, stream=7)
    assert (report.isolated, report.streamed) == (7, 7)
    _check_stream(report)
    assert report.initiation_interval <= report.cycles_mean


@pytest.mark.slow
@pytest.mark.parametrize("lanes", [1, 4])
def test_a_cnn_streams_bit_exact_between_bound_and_latency(lanes):
    rng = np.random.default_rng(7)
    net = random_cnn(rng)
    images = random_pixels(rng, 5, net.input.size)
    report = simulate(net, np.concatenate([images, images]), lanes=lanes, stream=5)
    _check_stream(report)
    assert report.initiation_interval <= report.cycles_mean


def test_sim_prints_the_interval_its_bound_and_images_per_second():
    from hdlgen.commands.sim import _format
    from hdlgen.simulate import SimReport

    report = SimReport(samples=80, mismatches=[], accuracy=None, predicted=[0] * 80, cycles_mean=700.0, cycles_max=720,
                       isolated=4, initiation_interval=400.0, lower_bound_mean=650.0, dense_cycles_mean=900.0,
                       upper_bound_mean=800.0, intake=64, lanes=1, pixels_per_transfer=1, simulator="icarus",
                       streamed=64, interval_std=12.5, interval_min=380, interval_max=430, throughput_bound=320.0,
                       bottleneck="dense0 engine", dense_throughput_bound=500)
    text = _format(report, 50.0, "at 50 MHz")
    assert "interval               400.0 cycles (std 12.5, min 380, max 430) (the 64 images fed back to back" in text
    assert "320.0 cycles  (the busiest stage's mean cycles per image of the stream: dense0 engine; interval 1.25×; " \
           "500 with every input spiking)" in text
    assert "images per second      125,000 at 50 MHz" in text
    assert "images per second      2,500.0 per MHz of clock" in _format(report)
    assert "(over the 4 of 80 images run alone in an empty core; 64 back to back, 12 with gaps and back-pressure)" \
        in _format(report)


def test_overlapped_stages_take_the_longer_phase(net):
    spikes = golden.run_events(net, random_pixels(np.random.default_rng(0), 1, 10)[0]).spikes
    inputs, hidden = len(spikes[0]), len(spikes[1])
    assert stage_cycles(net, spikes, overlapped=True) == {
        "input": max(10, inputs + 8), "dense0 engine": max(7 * inputs, 7), "dense0 sorter": max(7, hidden + 4),
        "dense1 engine": max(6 * hidden, 6), "dense1 readout": 6}


def test_report_shows_interval_and_bound_against_lanes(net, tmp_path):
    pytest.importorskip("matplotlib")
    pytest.importorskip("jinja2")
    from .test_report_html import Page, decode_png

    ttfs.save(net, tmp_path / "n.ttfs")
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "d.npz", x=rng.random((8, 10)), y=rng.integers(0, 6, 8))
    row = {"lanes": 1, "pixels_per_transfer": 1, "samples": 8, "simulator": "icarus", "cycles_mean": 300.0,
           "lower_bound_mean": 280.0, "ratio_to_lower_bound": 300 / 280, "dense_cycles_mean": 400.0,
           "initiation_interval": 250.0, "bit_exact": True}
    streamed = {**row, "lanes": 4, "cycles_mean": 120.0, "initiation_interval": 90.0, "throughput_bound": 80.0,
                "interval_to_bound": 90 / 80}
    (tmp_path / "bench.json").write_text(json.dumps({"rtl": {"rows": [row, streamed]}}))   # row: a bench before the bound
    assert main(["report", str(tmp_path / "n.ttfs"), "--data", str(tmp_path / "d.npz"), "--bench",
                 str(tmp_path / "bench.json"), "-o", str(tmp_path / "r.html")]) == 0
    page = Page((tmp_path / "r.html").read_text())
    assert page.cells["interval"] == ["250.0", "90.0"]
    assert "Latency and interval vs lanes" in (tmp_path / "r.html").read_text()
    for src in page.images:
        decode_png(src)
