"""Board table, nextpnr report parsing and the fit/timing verdict (no tools run here)."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hdlgen.boards.build import BuildReport, Utilization, check_report, parse_log_utilization, parse_report
from hdlgen.boards.platforms import FAMILIES, board_name, boards, get_board
from hdlgen.errors import UserError

from .helpers import tiny_net

# Shapes as nextpnr-ice40 / nextpnr-ecp5 0.7+ write them with --report (trimmed).
ICE40_REPORT = {
    "utilization": {"ICESTORM_LC": {"available": 5280, "used": 2289}, "ICESTORM_RAM": {"available": 30, "used": 3},
                    "ICESTORM_SPRAM": {"available": 4, "used": 2}, "ICESTORM_DSP": {"available": 8, "used": 0},
                    "SB_IO": {"available": 39, "used": 5}},
    "fmax": {"cd_sync.clk": {"achieved": 22.083, "constraint": 12.0}},
}
ECP5_REPORT = {
    "utilization": {"TRELLIS_COMB": {"available": 83640, "used": 1579}, "TRELLIS_FF": {"available": 83640, "used": 837},
                    "DP16KD": {"available": 208, "used": 1}, "MULT18X18D": {"available": 156, "used": 3}},
    "fmax": {"cd_sync.clk": {"achieved": 88.04, "constraint": 25.0}, "other": {"achieved": 120.0, "constraint": 25.0}},
}
ICE40_LOG = """\
Info: Packing constants..
Info: Device utilisation:
Info: 	         ICESTORM_LC:    6001/   5280   113%
Info: 	        ICESTORM_RAM:      12/     30    40%
Info: 	               SB_IO:       5/     39    12%

Info: Placed 6 cells based on constraints.
ERROR: Unable to place cell 'x', no BELs remaining to implement cell type 'ICESTORM_LC'
"""


def test_ice40_report():
    usage, fmax = parse_report(ICE40_REPORT, "ice40", netlist_cells={"SB_LUT4": 1575, "SB_DFF": 100, "SB_DFFE": 1003,
                                                                     "SB_CARRY": 50})
    assert usage["LC"] == Utilization(2289, 5280)
    assert usage["LUT"] == Utilization(1575, 5280) and usage["FF"] == Utilization(1103, 5280)
    assert usage["BRAM"] == Utilization(3, 30) and usage["SPRAM"] == Utilization(2, 4)
    assert usage["DSP"] == Utilization(0, 8)
    assert fmax == pytest.approx(22.083)


def test_ecp5_report_takes_the_slowest_clock():
    usage, fmax = parse_report(ECP5_REPORT, "ecp5")
    assert usage["LUT"] == Utilization(1579, 83640) and usage["FF"] == Utilization(837, 83640)
    assert usage["BRAM"] == Utilization(1, 208) and usage["DSP"] == Utilization(3, 156)
    assert usage["SPRAM"] == Utilization(0, 0)
    assert fmax == pytest.approx(88.04)


def test_log_utilisation_survives_a_failed_placement():
    bels = parse_log_utilization(ICE40_LOG)
    assert bels == {"ICESTORM_LC": {"used": 6001, "available": 5280}, "ICESTORM_RAM": {"used": 12, "available": 30},
                    "SB_IO": {"used": 5, "available": 39}}
    usage, fmax = parse_report({"utilization": bels}, "ice40")
    report = BuildReport("icebreaker", usage, fmax, 12.0)
    message = check_report(report, lanes=4, weight_bits=8)
    assert message.startswith("does not fit icebreaker: LC 6001/5280")
    assert "fewer lanes (now 4)" in message and "weight bits (now 8)" in message and "\n" not in message


def test_placement_failure_under_the_limit_names_the_fullest_resource():
    usage, _ = parse_report({"utilization": {"ICESTORM_LC": {"used": 5028, "available": 5280},
                                             "ICESTORM_RAM": {"used": 24, "available": 30}}}, "ice40")
    report = BuildReport("icebreaker", usage, None, 12.0, None, 60.0,
                         {"error": "Unable to find legal placement for all cells"})
    message = check_report(report, lanes=1, weight_bits=8)
    assert message.startswith("does not fit icebreaker: LC 5028/5280 (too full to place)")
    assert "bigger board" in message


usages = st.dictionaries(st.sampled_from(list(FAMILIES["ice40"].bels)),
                         st.tuples(st.integers(0, 10_000), st.integers(0, 10_000)).map(lambda t: Utilization(*t)))


@given(usages, st.one_of(st.none(), st.floats(1, 500)), st.floats(1, 200))
def test_verdict_is_none_exactly_when_it_fits_and_meets_timing(usage, fmax, clock):
    message = check_report(BuildReport("b", usage, fmax, clock), lanes=1)
    fits = all(u.used <= u.available for u in usage.values())
    meets = fmax is None or fmax >= clock
    assert (message is None) == (fits and meets)
    if not fits:
        assert message.startswith("does not fit")
    elif not meets:
        assert message.startswith("misses timing") and "--clock" in message


def test_board_table():
    table = boards()
    assert {"icebreaker", "ulx3s-85f", "ulx3s-12f", "icestick"} <= set(table)
    assert table["icebreaker"].family == "ice40" and table["icebreaker"].clock_hz == 12e6
    assert table["ulx3s-85f"].family == "ecp5" and table["ulx3s-85f"].device == "LFE5U-85F"
    assert all(b.family in ("ice40", "ecp5", "gowin") for b in table.values())
    assert table["tangnano9k"].family == "gowin" and table["tangnano9k"].clock_hz == 27e6
    for b in table.values():
        assert ("uart", 0) in {(r.name, r.number) for r in b.platform().resources.values()}
        assert b.name == b.name.lower() and " " not in b.name and "_" not in b.name


def test_board_names():
    assert board_name(type("ULX3S_85F_Platform", (), {})) == "ulx3s-85f"
    assert board_name(type("ICEBreakerPlatform", (), {})) == "icebreaker"


def test_unknown_board_lists_choices():
    with pytest.raises(UserError, match="unknown board 'nope'; choose one of: .*icebreaker"):
        get_board("nope")


@given(st.sampled_from(["ice40", "ecp5"]), st.sampled_from([12e6, 25e6, 100e6]), st.floats(16e6, 120e6))
def test_pll_settings_make_what_they_claim_within_limits(family, f_in, f_out):
    from hdlgen.boards.clocks import TOLERANCE, pll_setting

    try:
        s = pll_setting(family, f_in, f_out)
    except UserError as e:
        assert "cannot make it" in str(e)
        return
    p = s.params
    if family == "ice40":
        f_pfd = f_in / (p["DIVR"] + 1)
        f_vco = f_pfd * (p["DIVF"] + 1)
        assert 10e6 <= f_pfd <= 133e6 and 533e6 <= f_vco <= 1066e6 and 1 <= p["DIVQ"] <= 6
        made = f_vco / 2 ** p["DIVQ"]
    else:
        made = f_in * p["CLKFB_DIV"] / p["CLKI_DIV"]
        assert 400e6 <= made * p["CLKOP_DIV"] <= 800e6 and f_in / p["CLKI_DIV"] >= 3.125e6
    assert made == pytest.approx(s.f_out) and abs(made - f_out) <= TOLERANCE * f_out



def test_hopeless_weights_are_refused_before_synthesis(tmp_path):
    from hdlgen.boards.build import build

    net = tiny_net(inputs=256, hidden=64, classes=10)   # 16384 × 4-bit + 640 × 4-bit weights
    board = get_board("icestick")                       # 16 block RAMs of 4 kbit
    report = build(net, board, tmp_path)
    assert report.bitstream is None and report.utilization["BRAM"] == Utilization(17, 16)
    assert not any(tmp_path.iterdir())                  # no tool ran
    message = check_report(report, lanes=1)
    assert message.startswith("does not fit icestick: BRAM 17/16 needed before synthesis (weights 17 blocks);")


def test_boards_command_lists_the_table(capsys):
    import json

    from hdlgen.cli import main

    assert main(["boards", "--json"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    listed = json.loads(out[-1])["boards"]
    assert [b["name"] for b in listed] == list(boards())
    assert any(line.split()[:3] == ["icebreaker", "ice40", "iCE40UP5K"] for line in out)
