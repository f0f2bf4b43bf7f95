"""Synthesis, place and route on iCEBreaker (iCE40 UP5K) and ULX3S-85F (ECP5) with the yowasp
tools, through `hdlgen build`: a small net, and the bundled digits CNN (slow: a minute or two each)."""

import json

import numpy as np
import pytest

from hdlgen import ttfs
from hdlgen.cli import main
from hdlgen.testing import random_net

from .helpers import tiny_net


@pytest.mark.slow
@pytest.mark.parametrize("board, clock, suffix", [("icebreaker", 18.0, ".bin"), ("ulx3s-85f", 50.0, ".bit")])
def test_build_small_net(tmp_path, capsys, board, clock, suffix):
    """Both through a PLL (the board clocks are 12 and 25 MHz); the default clock is covered below."""
    net_path = ttfs.save(tiny_net(), tmp_path / "tiny.ttfs")
    code = main(["build", str(net_path), "--board", board, "--clock", str(clock), "-o", str(tmp_path / "out"),
                 "--json"])
    out = capsys.readouterr().out
    report = json.loads(out.strip().splitlines()[-1])
    assert code == 0, out
    assert report["board"] == board and report["ok"] and report["problem"] is None
    bitstream = tmp_path / "out" / f"top{suffix}"
    assert report["bitstream"] == str(bitstream) and bitstream.stat().st_size > 10_000
    usage = report["utilization"]
    assert {"LUT", "FF", "BRAM", "DSP"} <= set(usage)
    assert all(0 < usage[k]["used"] <= usage[k]["available"] for k in ("LUT", "FF", "BRAM"))
    assert report["clock_mhz"] == clock
    assert report["fmax_mhz"] >= report["clock_mhz"]


@pytest.mark.slow
def test_build_with_16_pixels_per_transfer_on_the_ecp5(tmp_path, capsys):
    """16 pixels a transfer look up 16 fire ticks at once: one tick table with 16 read ports made
    yosys' memory mapping abort ("thrown Wasm exception"); two copies of 8 ports build."""
    net = random_net(np.random.default_rng(3), [32, 8, 4], [16, 16], weight_bits=8, name="wide_intake")
    net_path = ttfs.save(net, tmp_path / "wide_intake.ttfs")
    code = main(["build", str(net_path), "--board", "ulx3s-85f", "--pixels-per-transfer", "16", "--clock", "50",
                 "-o", str(tmp_path / "out"), "--json"])
    out = capsys.readouterr().out
    report = json.loads(out.strip().splitlines()[-1])
    assert code == 0 and report["ok"], out
    assert report["pixels_per_transfer"] == 16


@pytest.mark.slow
def test_build_with_router2(tmp_path, capsys):
    """--router router2 reaches nextpnr (its log says so) and the report records it."""
    net_path = ttfs.save(tiny_net(), tmp_path / "tiny.ttfs")
    code = main(["build", str(net_path), "--board", "ulx3s-85f", "--router", "router2", "-o", str(tmp_path / "out"),
                 "--json"])
    out = capsys.readouterr().out
    report = json.loads(out.strip().splitlines()[-1])
    assert code == 0 and report["ok"], out
    assert report["router"] == "router2" and report["route"]["router"] == "router2"
    assert "Running router2" in (tmp_path / "out" / "top.tim").read_text()


@pytest.mark.slow
def test_build_that_does_not_fit_says_what_is_short(tmp_path, capsys):
    """Logic too big for an iCEstick (iCE40 HX1K, 1280 logic cells, board clock): nextpnr gives up
    placing; exit 2 and one line naming the resource."""
    net_path = ttfs.save(tiny_net(), tmp_path / "tiny.ttfs")
    code = main(["build", str(net_path), "--board", "icestick", "--lanes", "2", "-o", str(tmp_path / "out")])
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("hdlgen")]
    assert code == 2 and len(err) == 1
    assert err[0].startswith("hdlgen build: does not fit icestick: LC ") and "fewer lanes (now 2)" in err[0]


@pytest.mark.slow
def test_build_past_the_dsp_blocks_multiplies_in_logic(tmp_path, capsys):
    """lanes 6 on the iCEBreaker: 6 + 4 products (8-bit weights × 5-bit q: wide enough for a
    DSP) for its 8 DSP blocks, so the readout engine's are built from adders and it still fits."""
    net = random_net(np.random.default_rng(2), [12, 6, 4], [16, 16], weight_bits=8, name="wide")
    net_path = ttfs.save(net, tmp_path / "wide.ttfs")
    code = main(["build", str(net_path), "--board", "icebreaker", "--lanes", "6", "-o", str(tmp_path / "out"),
                 "--json"])
    out = capsys.readouterr().out
    report = json.loads(out.strip().splitlines()[-1])
    assert code == 0, out
    assert report["products_in_logic"] == [1] and "engines [1] built in logic cells" in out
    assert report["utilization"]["DSP"] == {"used": 6, "available": 8}


@pytest.mark.slow
def test_build_with_weights_in_spram(tmp_path, capsys):
    """--spram on the iCEBreaker: the layers' weights become SB_SPRAM256KA instances."""
    net_path = ttfs.save(tiny_net(inputs=256, hidden=64, classes=10), tmp_path / "mid.ttfs")
    code = main(["build", str(net_path), "--board", "icebreaker", "--spram", "-o", str(tmp_path / "out"), "--json"])
    out = capsys.readouterr().out
    report = json.loads(out.strip().splitlines()[-1])
    assert code == 0, out
    assert report["spram_layers"] == [0, 1]
    assert report["utilization"]["SPRAM"] == {"used": 2, "available": 4}   # 4096 and 160 words: one SPRAM each


@pytest.mark.slow
@pytest.mark.parametrize("board", ["icebreaker", "ulx3s-85f"])
def test_digits_cnn_builds_at_the_board_clock(tmp_path, capsys, digits_cnn, board):
    """The bundled CNN (conv-BN-ReLU-maxpool ×2, linear) fits both boards and meets their default
    clocks (the ULX3S's: 30 MHz from the PLL, which makes the link's 3 Mbaud exactly); on the
    iCEBreaker its products go to the UltraPlus DSPs."""
    net_path = ttfs.save(digits_cnn, tmp_path / "digits_cnn.ttfs")
    code = main(["build", str(net_path), "--board", board, "-o", str(tmp_path / "out"), "--json"])
    out = capsys.readouterr().out
    report = json.loads(out.strip().splitlines()[-1])
    assert code == 0 and report["ok"] and report["problem"] is None, out
    usage = report["utilization"]
    assert all(0 < usage[k]["used"] <= usage[k]["available"] for k in ("LUT", "FF", "BRAM", "DSP"))
    assert report["fmax_mhz"] >= report["clock_mhz"]
    assert (report["clock_mhz"], report["baud"]) == ({"icebreaker": 12, "ulx3s-85f": 30}[board], 3_000_000)
