"""Per-layer lanes (--lanes 64,8), the --lanes parser, and --lanes auto / --target-fps (hdlgen.folding)."""

import argparse
import json

import numpy as np
import pytest

from hdlgen import folding, ttfs
from hdlgen.boards.platforms import get_board
from hdlgen.cli import main
from hdlgen.geometry import NetGeometry
from hdlgen.simulate import simulate
from hdlgen.testing import random_net
from hdlgen.verilog import write_verilog

from .helpers import assert_matches_golden, require_simulator, shuffled_images


def test_lanes_option_takes_a_number_a_list_or_auto():
    assert folding.lanes_option("8") == 8
    assert folding.lanes_option("64,8") == (64, 8)
    assert folding.lanes_option("Auto") == folding.AUTO
    assert folding.counts_option("2,1") == (2, 1)
    for bad in ["", "8,", "x", "8;2", "1.5"]:
        with pytest.raises(argparse.ArgumentTypeError):
            folding.lanes_option(bad)
    with pytest.raises(argparse.ArgumentTypeError):
        folding.counts_option("auto")
    assert folding.lanes_label((64, 8)) == "64,8" and folding.lanes_label(4) == "4"


def test_per_layer_lanes_set_each_stage(digits_cnn):
    geometry = NetGeometry(digits_cnn, (2, 16, 3), spike_lanes=(1, 4, 1))
    assert geometry.lane_layers == [layer.name for layer in digits_cnn.layers if layer.has_weights]
    engines = [geometry.layers[i] for i in geometry.engines]
    # 3 lanes over the 10 classes would give 4 words; 3 lanes is already the fewest for 4 words
    assert [stage.lanes for stage in engines] == [2, 16, 3]
    assert [stage.spike_lanes for stage in engines] == [1, 4, 1]
    assert [s.lanes for s in geometry.layers if not s.layer.has_weights] == [1, 1]
    # one number for every layer and the same number per layer build the same stages
    assert NetGeometry(digits_cnn, 4).words == NetGeometry(digits_cnn, (4, 4, 4)).words


@pytest.mark.parametrize("lanes, spike_lanes, message", [
    ((8, 2, 3), None, "lanes must be one number or one per layer with lanes: the net has 2 (linear, linear_1), got 8,2,3"),
    ((8, 64), None, "lanes of layer 'linear_1' must be an integer from 1 to its fan-out 10, got 64"),
    ((8, 2), (4, 4), "spike lanes of layer 'linear_1' must be an integer from 1 to its lanes 2, got 4"),
    ((8, 2), 16, "spike lanes must be an integer from 1 to the lanes 8, got 16"),
])
def test_per_layer_lanes_out_of_range_say_which_layer(digits_net, lanes, spike_lanes, message):
    with pytest.raises(ValueError) as error:
        NetGeometry(ttfs.load(digits_net), lanes, spike_lanes=spike_lanes)
    assert str(error.value) == message


def test_lanes_past_the_first_layers_fan_out_take_two_spikes_a_cycle(digits_net, digits_cnn):
    net = ttfs.load(digits_net)                       # 64-32-10
    geometry = NetGeometry(net, (64, 10), 8)
    first = geometry.layers[0]
    assert (first.lanes, first.words, first.spikes_per_cycle, first.multipliers) == (32, 1, 2, 64)
    assert (geometry.input.sorters, geometry.input.spikes_per_transfer) == (0, 2)
    assert "sorter" not in geometry.memory_bits()["input"]
    assert first.weight_memory_bits == 2 * NetGeometry(net, (32, 10), 8).layers[0].weight_memory_bits
    # lanes short of two fan-outs buy no cycle: one spike a cycle, with the sorter pair
    assert [NetGeometry(net, 63).layers[0].spikes_per_cycle, NetGeometry(net, 63).input.sorters] == [1, 2]
    assert 64 in folding.lane_choices(net)[0] and max(folding.lane_choices(net)[1]) == 10
    for lanes, message in [(65, "lanes must be an integer from 1 to 2 times (input spikes a cycle) the first "
                                 "layer's fan-out 64, got 65"),
                           ((64, 20), "lanes of layer 'linear_1' must be an integer from 1 to its fan-out 10, got 20")]:
        with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
            NetGeometry(net, lanes)
    # a convolution first takes one spike a cycle: its lanes stop at its output channels
    with pytest.raises(ValueError, match="its output channels"):
        NetGeometry(digits_cnn, (2 * digits_cnn.layers[0].out_shape[0], 1, 1))


def test_cli_refuses_bad_lanes_in_one_line(digits_net, tmp_path, capsys):
    assert main(["verilog", str(digits_net), "-o", str(tmp_path), "--lanes", "64,8,3"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "hdlgen verilog: error:" in err
    assert "--lanes: lanes must be one number or one per layer with lanes: the net has 2 (linear, linear_1)" in err
    with pytest.raises(SystemExit) as exit_:
        main(["verilog", str(digits_net), "-o", str(tmp_path), "--lanes", "8,x"])
    assert exit_.value.code == 2
    assert "expected a number, one per layer with lanes (e.g. 64,8) or auto, got '8,x'" in capsys.readouterr().err
    for args, message in [(["--lanes", "auto"], "--lanes auto needs --board"),
                          (["--lanes", "4", "--target-fps", "100"], "--target-fps comes with --lanes auto"),
                          (["--target-fps", "0", "--board", "icebreaker"], "--target-fps must be a positive number")]:
        assert main(["verilog", str(digits_net), "-o", str(tmp_path), *args]) == 2
        assert message in capsys.readouterr().err


def test_the_same_lanes_per_layer_make_the_same_verilog(digits_net, tmp_path):
    net = ttfs.load(digits_net)
    one, _ = write_verilog(net, tmp_path / "one", lanes=4, name="core")
    each, sidecar = write_verilog(net, tmp_path / "each", lanes=(4, 4), name="core")
    assert one.read_bytes() == each.read_bytes()
    assert json.loads(sidecar.read_text())["lanes"] == [4, 4]
    _, narrow = write_verilog(net, tmp_path / "narrow", lanes=(8, 2), spike_lanes=(2, 1), name="core")
    layers = json.loads(narrow.read_text())["layers"]
    assert [(layer["lanes"], layer["spike_lanes"], layer["words"]) for layer in layers] == [(8, 2, 4), (2, 1, 5)]


@pytest.mark.slow
def test_per_layer_lanes_are_bit_exact_on_a_random_net():
    require_simulator("verilator")
    rng = np.random.default_rng(28)
    net = random_net(rng, [40, 24, 12, 6], [8, 5, 4], weight_bits=5)
    pixels = shuffled_images(rng, net.input.size, 20)
    report = simulate(net, pixels, lanes=(8, 1, 3), spike_lanes=(2, 1, 3), pixels_per_transfer=4, simulator="verilator")
    assert_matches_golden(report, net, pixels)


@pytest.mark.slow
def test_digits_mlp_at_lanes_8_2_is_bit_exact(digits_net, digits_test):
    require_simulator("verilator")
    net = ttfs.load(digits_net)
    pixels = net.input.pixels(digits_test.x[:20])
    report = simulate(net, pixels, labels=digits_test.y[:20], lanes=(8, 2), spike_lanes=(2, 1), simulator="verilator")
    assert_matches_golden(report, net, pixels)
    assert report.lanes == (8, 2)


def _brute_force(found, clock_hz, target_fps):
    """The choice by the rule, over every candidate (no Pareto front)."""
    fitting = [c for c in found if c.fits]
    reaching = [c for c in fitting if c.fps(clock_hz) >= target_fps]
    return min(reaching, key=lambda c: (c.cost, c.cycles)) if reaching else None


@pytest.mark.parametrize("target_fps", [None, 500, 1500, 4000, 10 ** 6])
def test_auto_picks_a_folding_of_the_digits_cnn_that_fits_the_icebreaker(digits_cnn, target_fps):
    board, clock_hz = get_board("icebreaker"), 30e6
    choice = folding.choose(digits_cnn, board, clock_hz, target_fps)
    found = folding.candidates(digits_cnn, board)
    chosen, capacity = choice.chosen, folding.resources.capacity(board)
    assert chosen.fits and all(chosen.resources.total[kind] <= capacity[kind] for kind in capacity.used)
    fastest = min(c.cycles for c in found if c.fits)
    expected = None if target_fps is None else _brute_force(found, clock_hz, target_fps)
    if expected is not None:
        assert (chosen.cost, chosen.cycles) == (expected.cost, expected.cycles)
        assert chosen.fps(clock_hz) >= target_fps
    else:       # out of reach: the cheapest of the fastest that fit
        assert chosen.cycles <= fastest * (1 + folding.SAME_SPEED)
        assert chosen.cost == min(c.cost for c in found if c.fits and c.cycles <= fastest * (1 + folding.SAME_SPEED))
    # the step-down: ever slower, ever cheaper, all fitting
    for above, below in zip(choice.order, choice.order[1:]):
        assert below.fits and below.cycles > above.cycles and below.cost < above.cost
    lines = folding.describe(choice, board)
    assert lines[0].startswith(f"lanes auto: --lanes {folding.lanes_label(chosen.lanes)} ")
    assert "limited by" in lines[2]


def test_auto_says_when_nothing_fits(digits_cnn):
    board = get_board("icebreaker")
    huge = random_net(np.random.default_rng(1), [784, 512, 10], 16, 8)     # 3.2 Mbit of weights
    with pytest.raises(folding.UserError, match="no folding of .* fits icebreaker"):
        folding.choose(huge, board, 30e6)


def test_verilog_lanes_auto_prints_the_choice_and_builds_it(digits_net, tmp_path, capsys):
    assert main(["verilog", str(digits_net), "-o", str(tmp_path), "--target-fps", "2000", "--board", "icebreaker",
                 "--name", "core", "--json"]) == 0
    out = capsys.readouterr().out
    assert "lanes auto: --lanes" in out and "the cheapest folding that reaches 2000 images/s" in out
    summary = json.loads(out.strip().splitlines()[-1])
    choice = folding.choose(ttfs.load(digits_net), get_board("icebreaker"), 12e6, 2000)
    assert tuple(summary["lanes"]) == choice.chosen.lanes
    assert summary["pixels_per_transfer"] == choice.chosen.pixels_per_transfer


@pytest.mark.slow
def test_build_lanes_auto_of_the_digits_cnn_fits_the_icebreaker(digits_cnn, tmp_path, capsys):
    """A folding for 1000 images/s (--lanes 1,2,1 at 12 MHz; its 26 of 30 block RAMs do not always place with
    nextpnr's default seed, and then the build steps down to --lanes 1,1,1): what is built fits. The fastest
    folding that fits (--lanes auto alone) fills the board to its last block RAM, and three foldings of it
    in a row could not be placed."""
    path = tmp_path / "digits_cnn.ttfs"
    ttfs.save(digits_cnn, path)
    code = main(["build", str(path), "--board", "icebreaker", "--lanes", "auto", "--target-fps", "1000",
                 "-o", str(tmp_path / "b"), "--json"])
    out = capsys.readouterr().out
    assert "lanes auto:" in out
    report = json.loads(out.strip().splitlines()[-1])
    assert code == 0 and report["ok"], report["problem"]
    assert all(u["used"] <= u["available"] for u in report["utilization"].values())


def test_build_steps_down_when_the_choice_does_not_fit(digits_cnn, tmp_path, capsys, monkeypatch):
    """The build loop of --lanes auto, its builds stood in for: the first is too big, the second fits."""
    from hdlgen.boards.build import BuildReport, Utilization
    from hdlgen.commands import build as build_command

    built = []

    def fake_build(net, board, out_dir, *, lanes, pixels_per_transfer, spike_lanes, **options):
        built.append((lanes, pixels_per_transfer, spike_lanes))
        logic = 6000 if len(built) == 1 else 4000
        return BuildReport(board.name, {"LC": Utilization(logic, 5280), "BRAM": Utilization(20, 30)}, 40.0, 12.0,
                           bitstream=tmp_path / "top.bin", seconds=1.0)

    monkeypatch.setattr(build_command, "build", fake_build)
    path = tmp_path / "digits_cnn.ttfs"
    ttfs.save(digits_cnn, path)
    code = main(["build", str(path), "--board", "icebreaker", "--lanes", "auto", "-o", str(tmp_path / "b"), "--json"])
    captured = capsys.readouterr()
    order = folding.choose(digits_cnn, get_board("icebreaker"), 12e6).order
    assert code == 0 and len(built) == 2
    assert [(lanes, p) for lanes, p, _ in built] == [(c.lanes, c.pixels_per_transfer) for c in order[:2]]
    assert all(spike_lanes == 1 for _, _, spike_lanes in built)        # an iCE40 build's ladders, as modelled
    assert f"does not fit; stepping down to {order[1].options()}" in captured.err
    assert json.loads(captured.out.strip().splitlines()[-1])["lanes"] == list(order[1].lanes)


def test_the_link_info_tells_the_lanes_of_the_spram_layers(digits_net):
    """A per-layer core's INFO carries the lanes of its SPRAM engines: all the host rebuilds to load them."""
    from types import SimpleNamespace

    from hdlgen.boards.host_link import _info_lanes

    geometry = NetGeometry(ttfs.load(digits_net), (8, 2))
    spram = [SimpleNamespace(geometry=geometry.layers[0])]
    assert _info_lanes(4, []) == 4
    assert _info_lanes((8, 2), spram) == 8
    assert NetGeometry(ttfs.load(digits_net), 8).layers[0].weight_rows() == geometry.layers[0].weight_rows()
    assert _info_lanes((8, 2), spram + [SimpleNamespace(geometry=geometry.layers[1])]) == 0     # the host refuses
    assert _info_lanes((8, 2), []) == 0


# -- --lanes auto --workers N: the foldings built at once on a local Dask cluster ------------------------

# how long the stand-in builds of the first three foldings take: the choice (too big) settles last
STAND_IN_SECONDS = [3.0, 0.5, None]     # None: builds until stopped


def _stand_in_build(net, board, out_dir, *, lanes, pixels_per_transfer, spike_lanes, stop=None, **options):
    """A build on a worker, stood in for: the choice does not fit, the next one fits and meets timing, the
    one after it routes until it is stopped. Its bitstream names its folding; the report, its process."""
    import os
    import time
    from pathlib import Path

    from hdlgen.boards.build import BuildReport, Utilization

    order = folding.choose(net, board, 12e6).order
    index = [(c.lanes, c.pixels_per_transfer) for c in order].index((tuple(lanes), pixels_per_transfer))
    seconds = STAND_IN_SECONDS[index] if index < len(STAND_IN_SECONDS) else 0.5
    deadline = time.monotonic() + (60 if seconds is None else seconds)
    while time.monotonic() < deadline and not (seconds is None and stop()):
        time.sleep(0.05)
    bitstream = Path(out_dir) / "top.bin"
    bitstream.write_text(folding.lanes_label(lanes))
    extra = {"pid": os.getpid()} | ({"route": {"verdict": "stopped"}} if seconds is None else {})
    return BuildReport(board.name, {"LC": Utilization(6000 if index == 0 else 4000, 5280),
                                    "BRAM": Utilization(20, 30)}, 40.0, 12.0, bitstream=bitstream,
                       seconds=seconds or 0.0, extra=extra)


def _install_stand_in():
    """Run on every worker: its builds are the stand-in's."""
    from hdlgen.boards import seeds

    seeds.build = _stand_in_build


def test_build_lanes_auto_on_workers_keeps_the_fastest_folding_that_fits(digits_cnn, tmp_path, capsys, monkeypatch):
    """Three foldings at once on three worker processes: the choice does not fit, the next fits and meets
    timing (and stops the slower third at once), so the second is kept – once the choice has settled."""
    import contextlib
    import os

    from hdlgen import tasks
    from hdlgen.commands import build as build_command

    @contextlib.contextmanager
    def engine_with_stand_in(workers):
        with tasks.engine(workers) as client:
            client.run(_install_stand_in)
            yield client

    monkeypatch.setattr(build_command, "engine", engine_with_stand_in)
    monkeypatch.setattr(build_command, "prepare_tools", lambda families: {})   # no real tool runs
    path = tmp_path / "digits_cnn.ttfs"
    ttfs.save(digits_cnn, path)
    out = tmp_path / "b"
    code = main(["build", str(path), "--board", "icebreaker", "--lanes", "auto", "--workers", "3", "-o", str(out),
                 "--json"])
    captured = capsys.readouterr()
    order = folding.choose(digits_cnn, get_board("icebreaker"), 12e6).order
    assert len(order) >= 3
    report = json.loads(captured.out.strip().splitlines()[-1])
    assert code == 0 and report["ok"], captured.err
    assert (tuple(report["lanes"]), report["pixels_per_transfer"]) == (order[1].lanes, order[1].pixels_per_transfer)
    assert [c["outcome"] for c in report["candidates"]] == ["does not fit", "built", "stopped"]
    assert [(tuple(c["lanes"]), c["pixels_per_transfer"]) for c in report["candidates"]] == \
        [(c.lanes, c.pixels_per_transfer) for c in order[:3]]
    # each folding built on a worker process of its own, not in this one
    workers = [c["worker"] for c in report["candidates"]]
    assert len(set(workers)) == 3 and set(workers) <= {"0", "1", "2"}
    assert report["pid"] != os.getpid()
    # the kept build is the build directory's; every folding's is in its own subdirectory
    assert (out / "top.bin").read_text() == folding.lanes_label(order[1].lanes)
    for candidate in order[:3]:
        assert (out / build_command.candidate_dir(candidate) / "top.bin").read_text() == \
            folding.lanes_label(candidate.lanes)
    lines = captured.out.splitlines()
    tried = [line for line in lines if line.startswith("  --lanes ")]
    assert len(tried) == 3 and tried[1].endswith("← kept") and "does not fit" in tried[0] and "stopped" in tried[2]


def test_build_workers_without_seeds_or_auto_and_with_both_are_refused(digits_net, tmp_path, capsys):
    for argv, message in [(["--workers", "2"], "--workers must be ≥ 1 and comes with --seeds or --lanes auto"),
                          (["--workers", "2", "--lanes", "auto", "--seeds", "2"], "not both")]:
        assert main(["build", str(digits_net), "--board", "icebreaker", "-o", str(tmp_path / "b"), *argv]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and message in err, err
