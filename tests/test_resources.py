"""The resource model (hdlgen.resources) against the real builds recorded in bench/results."""

from pathlib import Path

import pytest

from hdlgen import resources, ttfs
from hdlgen.boards.platforms import get_board
from hdlgen.geometry import NetGeometry

RESULTS = Path(__file__).resolve().parents[1] / "bench" / "results"
TOLERANCE = 0.15


@pytest.fixture(scope="module")
def recorded(digits_net, digits_cnn):
    nets = {"digits_mlp": ttfs.load(digits_net), "digits_cnn": digits_cnn, **resources.stand_in_nets()}
    return resources.recorded_builds(RESULTS), nets


def _estimate(row, nets):
    board = get_board(row["board"])
    spike_lanes = 1 if row["spike_lanes"] is None and board.family == "ice40" else row["spike_lanes"]
    geometry = NetGeometry(nets[row["net"]], row["lanes"], row["pixels_per_transfer"], spike_lanes)
    return resources.estimate(geometry, board)


def test_every_recorded_build_is_modelled(recorded):
    rows, nets = recorded
    assert {row["net"] for row in rows} <= set(nets)
    assert {get_board(row["board"]).family for row in rows} == {"ice40", "ecp5", "gowin"}
    assert len(rows) >= 14


def test_model_is_within_15_percent_of_the_recorded_builds(recorded):
    rows, nets = recorded
    misses = []
    for row in rows:
        total = _estimate(row, nets).total
        for kind, used in row["used"].items():
            if kind not in total.used:
                continue
            off = abs(total[kind] - used)
            # block RAMs are few: a block or two either way is within the model's grain
            allowed = max(2, TOLERANCE * used) if kind == "BRAM" else 0 if kind in ("SPRAM", "DSP") else TOLERANCE * used
            if off > allowed:
                misses.append(f"{row['source']}: {kind} {total[kind]} modelled, {used} used")
    assert not misses, misses


def test_coefficients_are_the_fit_of_the_recorded_builds(recorded):
    rows, nets = recorded
    assert resources.fit(rows, nets) == resources.LOGIC


def test_stages_add_up_and_more_lanes_cost_more(digits_cnn):
    board = get_board("icebreaker")
    narrow = resources.estimate(NetGeometry(digits_cnn, 1), board)
    wide = resources.estimate(NetGeometry(digits_cnn, (8, 8, 2)), board)
    assert set(narrow.stages) == {"board", "input", *(layer.name for layer in digits_cnn.layers)}
    for kind in ("LC", "BRAM", "DSP"):
        assert narrow.total[kind] == round(sum(stage[kind] for stage in narrow.stages.values()))
    assert wide.total["LC"] > narrow.total["LC"]
    assert wide.total["DSP"] == 8            # 8 + 8 lanes want 16 multipliers; the UP5K has 8 (the rest in logic)
    assert wide.logic_products == [1, 2]


def test_large_weights_go_to_spram_on_the_up5k():
    net = resources.stand_in_nets()["random_mlp_784_128_10"]
    estimate = resources.estimate(NetGeometry(net, 4, 1, 1), get_board("icebreaker"))
    assert estimate.spram_engines == [0]
    assert estimate.stages["dense0"]["SPRAM"] == 4          # 784 × 32 words × 32 bits, striped over two pairs
    assert resources.capacity(get_board("icebreaker")).used == {"BRAM": 30, "SPRAM": 4, "DSP": 8, "LC": 5280,
                                                                "FF": 5280}
