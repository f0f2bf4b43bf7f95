# amaranth: UnusedElaboratable=no
"""ECP5 multipliers with their pipeline registers inside the MULT18X18D (hdlgen.boards.dsp):
the core with those instances, simulated with a model of the block's registered mode, is
bit-exact against the golden model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from amaranth.back import verilog as amaranth_verilog

from hdlgen import ttfs
from hdlgen.boards.build import registered_multipliers
from hdlgen.boards.dsp import ecp5_registered_multiplier
from hdlgen.boards.platforms import get_board
from hdlgen.golden import run_events
from hdlgen.rtl_templates.top import NetworkTop
from hdlgen.sim.runner import run_testbench
from hdlgen.testing import mixed_pixels, random_net
from hdlgen.verilog import sidecar

from .helpers import require_simulator

MODEL = Path(__file__).parent / "models" / "mult18x18d.v"


def _net():
    # 32 neurons at 16 lanes: two words per spike, with the products' two extra stages
    return random_net(np.random.default_rng(11), [12, 32, 5], [6, 5], name="dsp_net")


def test_ecp5_engines_with_multiplier_stages_get_registered_blocks():
    core = NetworkTop(_net(), lanes=16)
    assert [stage.multiplier_stages for stage in core.geometry.layers] == [2, 0]
    assert registered_multipliers(core, get_board("ulx3s-85f")) == [0]
    assert core.engines[0].registered_multiplier is ecp5_registered_multiplier
    assert core.engines[1].registered_multiplier is None
    assert registered_multipliers(NetworkTop(_net(), lanes=16), get_board("icebreaker")) == []


def test_factors_too_wide_for_the_block_are_refused():
    from amaranth.hdl import Signal, signed
    with pytest.raises(ValueError, match="MULT18X18D takes factors below 18 bits"):
        ecp5_registered_multiplier(Signal(signed(18)), Signal(5), 24)


@pytest.mark.slow
def test_core_with_registered_dsp_blocks_is_bit_exact(tmp_path):
    require_simulator("icarus")
    net = _net()
    pixels = mixed_pixels(np.random.default_rng(4), 8, 12)
    core = NetworkTop(net, lanes=16, trace=True)
    assert registered_multipliers(core, get_board("ulx3s-85f")) == [0]
    text = amaranth_verilog.convert(core, name="dsp_core", emit_src=False)
    assert text.count("MULT18X18D ") == 16
    verilog, side = tmp_path / "dsp_core.v", tmp_path / "dsp_core.json"
    verilog.write_text(text)
    side.write_text(json.dumps(sidecar(core, "dsp_core")))
    ttfs.save(net, tmp_path / "net.ttfs")
    np.savez(tmp_path / "pixels.npz", pixels=pixels)
    report = run_testbench(verilog, side, tmp_path / "net.ttfs", tmp_path / "pixels.npz", build_dir=tmp_path / "build",
                           seed=5, models=[MODEL])
    assert report["mismatches"] == []
    assert [r["label"] for r in report["images"]] == [run_events(net, p).label for p in pixels]
