"""Gowin boards (Tang Nano 9K): amaranth's Apicula flow through nextpnr-himbaechel, the report
parsed like the others, flashing with openFPGALoader; (slow) the digits MLP built."""

import json
from pathlib import Path

import pytest

from hdlgen.boards.build import bitstream_path, link_clock, parse_report
from hdlgen.boards.flash import loader_command
from hdlgen.boards.himbaechel import himbaechel_platform
from hdlgen.boards.platforms import boards, get_board
from hdlgen.cli import main
from hdlgen.errors import UserError

# nextpnr-himbaechel-gowin's --report of the digits MLP on the Tang Nano 9K (the bels that matter)
REPORT = {"utilization": {"ALU": {"available": 6480, "used": 558}, "BSRAM": {"available": 26, "used": 4},
                          "DFF": {"available": 6480, "used": 1332}, "LUT4": {"available": 8640, "used": 2291},
                          "MULT9X9": {"available": 40, "used": 2}, "IOB": {"available": 276, "used": 2}},
          "fmax": {"cd_sync.clk": {"achieved": 96.9, "constraint": 27}}}


def test_gowin_boards_are_listed_with_their_parts():
    table = boards()
    assert {"tangnano9k", "tangprimer20k"} <= set(table)
    nano = table["tangnano9k"]
    assert (nano.family, nano.device, nano.clock_hz, nano.leds) == ("gowin", "GW1NR-9C", 27e6, 3)
    assert table["tangprimer20k"].device == "GW2A-18C"


def test_the_apicula_flow_calls_nextpnr_himbaechel():
    platform_class = himbaechel_platform(get_board("tangnano9k").platform)
    platform = platform_class()
    assert "nextpnr-himbaechel" in platform.required_tools and "nextpnr-gowin" not in platform.required_tools
    pnr = next(t for t in platform.command_templates if "nextpnr" in t)
    assert "--vopt family={{platform._chipdb_device}}" in pnr and "--vopt cst={{name}}.cst" in pnr
    assert platform._chipdb_device == "GW1N-9C"


def test_gowin_report_is_parsed_like_the_others():
    usage, fmax = parse_report(REPORT, "gowin")
    assert (usage["LUT"].used, usage["FF"].used, usage["BRAM"].used, usage["DSP"].used) == (2291, 1332, 4, 2)
    assert usage["LUT"].available == 8640 and fmax == 96.9


def test_gowin_link_runs_at_the_board_clock():
    nano = get_board("tangnano9k")
    assert link_clock(nano) == (None, 27e6, 115200)
    with pytest.raises(UserError, match="--clock"):
        link_clock(nano, 50e6)


def test_gowin_flashing_takes_an_fs_file(tmp_path, capsys):
    nano = get_board("tangnano9k")
    assert bitstream_path("out", "top", "gowin").name == "top.fs"
    assert loader_command(Path("top.fs"), nano)[1:] == ["-b", "tangnano9k", "top.fs"]
    (tmp_path / "top.bin").write_bytes(b"x")
    assert main(["flash", str(tmp_path / "top.bin"), "--board", "tangnano9k"]) == 2
    assert "gowin bitstream is a .fs file" in capsys.readouterr().err


@pytest.mark.slow
def test_digits_mlp_builds_for_the_tang_nano_9k(tmp_path, capsys, digits_net):
    code = main(["build", str(digits_net), "--board", "tangnano9k", "-o", str(tmp_path / "out"), "--json"])
    out = capsys.readouterr().out
    assert code == 0, out
    report = json.loads(out.strip().splitlines()[-1])
    assert report["ok"] and report["baud"] == 115200 and report["clock_mhz"] == 27
    assert (tmp_path / "out" / "top.fs").stat().st_size > 100_000
    usage = report["utilization"]
    assert all(0 < usage[k]["used"] <= usage[k]["available"] for k in ("LUT", "FF", "BRAM"))
    assert report["fmax_mhz"] >= 27
    usage, fmax = parse_report(json.loads((tmp_path / "out" / "top.report.json").read_text()), "gowin")
    assert usage["LUT"].used == report["utilization"]["LUT"]["used"] and fmax == report["fmax_mhz"]
    assert report["problem"] is None
