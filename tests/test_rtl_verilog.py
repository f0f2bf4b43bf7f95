"""Verilog export: determinism, the sidecar JSON (ports, payload offsets) and the CLI."""

import json
import re

import numpy as np
import pytest
from amaranth.sim import Simulator

from hdlgen import ttfs
from hdlgen.cli import main
from hdlgen.errors import UserError
from hdlgen.golden import run_events
from hdlgen.rtl_templates.top import NetworkTop
from hdlgen.testing import random_net
from hdlgen.verilog import write_verilog


@pytest.fixture(scope="module")
def net():
    return random_net(np.random.default_rng(3), [10, 7, 4], [4, 5], per_channel_k=True, name="tiny-net", weight_bits=4)


def test_same_input_gives_byte_identical_files(net, tmp_path):
    first = write_verilog(net, tmp_path / "a", lanes=2, trace=True)
    second = write_verilog(net, tmp_path / "b", lanes=2, trace=True)
    for one, two in zip(first, second):
        assert one.name == two.name
        assert one.read_bytes() == two.read_bytes()
    assert first[0].name == "tiny_net.v"


def test_sidecar_names_the_module_ports(net, tmp_path):
    v_path, json_path = write_verilog(net, tmp_path, trace=True, name="core")
    side = json.loads(json_path.read_text())
    header = re.search(r"^module core\((.*?)\);", v_path.read_text(), re.M | re.S)
    ports = {p.strip() for p in header.group(1).split(",")}
    named = {side["clock"], side["reset"]}
    for stream in ("pixels", "result"):
        named |= {side[stream][k] for k in ("valid", "ready", "payload")}
    for tap in side["trace"]:
        named |= {tap["valid"], tap["neuron"], tap["tick"]}
    assert ports == named
    assert [t["layer"] for t in side["trace"]] == [0, 1]
    assert side["format"] == "hdlgen-core/1" and side["top"] == "core" and side["pixels"]["count"] == 10
    fields = side["result"]["fields"]
    assert fields["label"]["offset"] == 0
    assert sum(f["width"] for f in fields.values()) == side["result"]["width"]
    assert [l["weight_memory_bits"] for l in side["layers"]] == [10 * 7 * 4, 7 * 4 * 4]
    assert write_verilog(net, tmp_path / "plain")[1].read_text().count('"trace": []') == 1


def decode(value, field):
    """A field of a packed payload, as the sidecar describes it (what a testbench does)."""
    def take(offset, width, signed):
        raw = (value >> offset) & ((1 << width) - 1)
        return raw - (1 << width) if signed and raw >> (width - 1) else raw
    if "count" in field:
        return [take(field["offset"] + n * field["element_width"], field["element_width"], field["signed"])
                for n in range(field["count"])]
    return take(field["offset"], field["width"], field["signed"])


def test_sidecar_offsets_decode_a_packed_result(net, tmp_path):
    side = json.loads(write_verilog(net, tmp_path)[1].read_text())
    image = np.random.default_rng(0).integers(0, 256, 10)
    gold = run_events(net, image)
    top = NetworkTop(net)
    raw = []
    sim = Simulator(top)
    sim.add_clock(1e-6)

    async def bench(ctx):
        ctx.set(top.result.ready, 1)
        for p in image:
            ctx.set(top.pixels.valid, 1)
            ctx.set(top.pixels.payload, int(p))
            await ctx.tick().until(top.pixels.ready)
        ctx.set(top.pixels.valid, 0)
        payload, = await ctx.tick().sample(top.result.payload.as_value()).until(top.result.valid)
        raw.append(int(payload))

    sim.add_testbench(bench)
    sim.run()
    fields = side["result"]["fields"]
    assert decode(raw[0], fields["label"]) == gold.label
    assert decode(raw[0], fields["logits"]) == list(gold.logits)
    assert decode(raw[0], fields["cycles"]) > 0


def test_cli_writes_core_and_reports_json(net, tmp_path, capsys):
    path = ttfs.save(net, tmp_path / "tiny.ttfs")
    assert main(["verilog", str(path), "-o", str(tmp_path / "out"), "--lanes", "3", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["top"] == "tiny_net" and summary["lanes"] == 3
    assert [l["lanes"] for l in summary["layers"]] == [3, 2]  # 4 neurons at 3 lanes take 2 words: 2 lanes do
    assert (tmp_path / "out" / "tiny_net.v").is_file() and (tmp_path / "out" / "tiny_net.json").is_file()


def test_sidecar_gives_the_pixel_transfers_and_the_bounds_of_hdlgen_cycles(net, tmp_path, capsys):
    from hdlgen.cycles import dense_schedule, overhead_bound, serial_cycles

    path = ttfs.save(net, tmp_path / "tiny.ttfs")
    assert main(["verilog", str(path), "-o", str(tmp_path / "out"), "--lanes", "6", "--pixels-per-transfer", "4",
                 "--spike-lanes", "3", "--json"]) == 0
    out = capsys.readouterr().out
    assert "pixels 4 per transfer: intake 3 cycles per image" in out
    side = json.loads((tmp_path / "out" / "tiny_net.json").read_text())
    assert side["pixels"] | {"valid": None, "ready": None, "payload": None} == {
        "valid": None, "ready": None, "payload": None, "width": 32, "count": 10, "per_transfer": 4, "transfers": 3}
    # layer 0's 7 neurons take 2 words at 6 lanes, so it has 4 lanes: gcd(4, 3), gcd(4, 3)
    assert side["spike_lanes"] == 3 and [l["spike_lanes"] for l in side["layers"]] == [1, 1]
    latency = side["latency"]
    assert latency["intake"] == 3
    # intake 3; layer 0: max(10 spikes × 2 words, 10 + T0 4); readout: max(7 × 1 word, 7 + T1 5)
    assert latency["dense_schedule"] == dense_schedule(net, 6, 4) == 3 + 20 + 12
    assert latency["dense_serial"] == serial_cycles(net, None, 6, 4) == 3 + 20 + 7 + 4 + 5
    assert latency["overhead_bound"] == overhead_bound(net, 6, 4, 3)
    assert latency["worst_case"] == latency["dense_serial"] + latency["overhead_bound"]


@pytest.mark.parametrize("option, value, message", [
    ("--pixels-per-transfer", "11", "pixels per transfer must be an integer from 1 to the image's pixels 10"),
    ("--spike-lanes", "3", "spike lanes must be an integer from 1 to the lanes 2"),
])
def test_cli_rejects_bad_pixels_per_transfer_and_spike_lanes(net, tmp_path, capsys, option, value, message):
    path = ttfs.save(net, tmp_path / "tiny.ttfs")
    assert main(["verilog", str(path), "-o", str(tmp_path / "out"), "--lanes", "2", option, value]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and not (tmp_path / "out").exists()


@pytest.mark.parametrize("lanes", ["0", "15"])
def test_cli_rejects_bad_lanes(net, tmp_path, capsys, lanes):
    """Up to twice the first layer's fan-out: as many input spikes a cycle."""
    path = ttfs.save(net, tmp_path / "tiny.ttfs")
    assert main(["verilog", str(path), "-o", str(tmp_path / "out"), "--lanes", lanes]) == 2
    err = capsys.readouterr().err
    assert ("lanes must be an integer from 1 to 2 times (input spikes a cycle) the first layer's fan-out 14"
            in err and "\n" == err[-1])
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("name, problem", [("wire", "reserved word"), ("2core", "not a Verilog identifier"),
                                           ("a-b", "not a Verilog identifier")])
def test_bad_module_names_are_user_errors(net, tmp_path, name, problem):
    with pytest.raises(UserError, match=problem):
        write_verilog(net, tmp_path, name=name)


def test_python_keywords_are_fine_module_names(net, tmp_path):
    assert write_verilog(net, tmp_path, name="lambda")[0].name == "lambda.v"


def test_a_net_named_like_a_keyword_gets_a_plain_module_name(tmp_path):
    net = random_net(np.random.default_rng(1), [4, 3, 2], [2, 2], name="small", weight_bits=4)
    v_path, json_path = write_verilog(net, tmp_path)
    assert v_path.name == "small_core.v" and json.loads(json_path.read_text())["top"] == "small_core"
    assert re.search(r"^module small_core\(", v_path.read_text(), re.M)
