"""Recorded board rows do not rot: a row of bench/results/boards.json built again from the same
net still fits its board, in at most 5 % more logic cells than it was recorded with (the
iCEBreaker's Fashion 784-128-10 went from 5,034 to 6,860 of 5,280 cells before anyone noticed).

The Fashion net itself needs training, so the guarded rows are the seeded random net of its shape
(:func:`hdlgen.testing.random_fashion_mlp`, row ``random-mlp-icebreaker-l4``: 784-128-10, T=16,
layer 0 in SPRAM, lanes 4, 30 MHz) and the demo's digits MLP (``digits-icebreaker``, converted as
``make demo`` and bench/boards.py do). Two iCE40 builds, a few minutes.
"""

import json
from pathlib import Path

import pytest

from hdlgen import ttfs
from hdlgen.testing import random_fashion_mlp

ROWS = Path(__file__).resolve().parent.parent / "bench" / "results" / "boards.json"
GROWTH = 1.05      # the most a row's logic cells may grow over the recorded figure
# row name → the net it is built from (made here, no download, no training)
GUARDED = {"random-mlp-icebreaker-l4": lambda request: random_fashion_mlp(),
           "digits-icebreaker": lambda request: ttfs.load(request.getfixturevalue("digits_net"))}


@pytest.mark.slow
@pytest.mark.parametrize("name", list(GUARDED))
def test_recorded_board_row_still_fits(name, tmp_path, request):
    from hdlgen.boards.build import build
    from hdlgen.boards.platforms import get_board

    row = next(row for row in json.loads(ROWS.read_text())["rows"] if row["name"] == name)
    assert row["fits"], f"{name} is recorded as not fitting"
    report = build(GUARDED[name](request), get_board(row["board"]), tmp_path, lanes=row["lanes"],
                   pixels_per_transfer=row["pixels_per_transfer"], spike_lanes=row["spike_lanes"],
                   clock_hz=row["clock_requested_mhz"] * 1e6, spram=row["spram"])
    usage = {k: u.used for k, u in report.utilization.items()}
    over = {k: f"{u.used}/{u.available}" for k, u in report.utilization.items() if u.used > u.available}
    assert report.bitstream is not None and not over, f"{name} no longer fits: {over or usage}"
    cells, recorded = usage["LC"], row["utilization"]["LC"]["used"]
    assert cells <= GROWTH * recorded, \
        f"{name}: {cells} logic cells, {cells / recorded - 1:+.1%} over the {recorded} recorded ({usage}, " \
        f"{report.fmax_mhz:.1f} MHz)"
