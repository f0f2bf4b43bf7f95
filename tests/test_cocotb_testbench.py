"""The testbench itself, on a stand-in core that replays the golden spikes and results.

The replay core speaks the generated core's ports (docs/rtl-interface.md) but does not
compute: one image at a time it takes the image's bytes (``pixels.ready`` low while busy),
emits the scripted trace events one per cycle, then offers the scripted result with the
measured ``cycles``. A faithful script must pass; each kind of corruption must be reported
as the first difference, at the right image/layer/neuron/tick.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from hdlgen import ttfs
from hdlgen.cycles import overhead_bound, serial_cycles
from hdlgen.golden import run_events
from hdlgen.sim.runner import run_testbench
from hdlgen.testing import mixed_pixels, random_net

from .helpers import require_simulator

pytestmark = pytest.mark.slow


def write_replay_core(net, images, out_dir, *, corrupt=None, stable_result=True, name="replay_core"):
    """Write ``<name>.v`` and ``<name>.json`` replaying ``run_events`` of ``images``.

    ``corrupt(index, result)`` may alter an image's :class:`~hdlgen.golden.EventResult` first;
    ``stable_result=False`` lets the offered result's ``cycles`` keep counting while it waits
    for ``ready`` (a breach of the stream rules).
    """
    classes = net.classes
    acc = max(l.widths()["accumulator"] for l in net.layers)
    label_w = max(1, math.ceil(math.log2(classes)))
    fields = {"label": {"offset": 0, "width": label_w, "signed": False},
              "cycles": {"offset": label_w, "width": 32, "signed": False},
              "logits": {"offset": label_w + 32, "width": acc * classes, "signed": True, "count": classes,
                         "element_width": acc}}
    width = label_w + 32 + acc * classes
    layers = len(net.ticks)
    script = []  # (kind, layer, neuron, tick, static payload)
    for index, image in enumerate(images):
        result = run_events(net, image)
        if corrupt:
            corrupt(index, result)
        for layer, spikes in enumerate(result.spikes):
            script += [(0, layer, n, t, 0) for n, t in spikes]
        static = result.label
        for i, v in enumerate(result.logits):
            static |= (int(v) & ((1 << acc) - 1)) << (fields["logits"]["offset"] + i * acc)
        script.append((1, 0, 0, 0, static))
    n_w = max(16, max(net.sizes).bit_length())
    entry_w = 1 + 8 + n_w + 16 + width
    rom = "\n".join(f"    rom[{i}] = {{1'd{k}, 8'd{l}, {n_w}'d{n}, 16'd{t}, {width}'d{p}}};"
                    for i, (k, l, n, t, p) in enumerate(script))
    trace_ports = "".join(f"  output trace{l}_valid, output [{n_w - 1}:0] trace{l}_neuron, output [15:0] trace{l}_tick,\n"
                          for l in range(layers))
    trace_logic = "".join(f"  assign trace{l}_valid = playing && !kind && layer == {l};\n"
                          f"  assign trace{l}_neuron = neuron;\n  assign trace{l}_tick = tick;\n" for l in range(layers))
    size = net.input.size
    held = "offered" if stable_result else "0"   # whether the offered result's cycles stand still
    verilog = f"""module {name}(
  input clk, input rst,
  input pixels__valid, output pixels__ready, input [7:0] pixels__payload,
{trace_ports}  output result__valid, input result__ready, output [{width - 1}:0] result__payload
);
  reg [{entry_w - 1}:0] rom [0:{len(script) - 1}];
  initial begin
{rom}
  end
  reg [31:0] now, started, taken, pc;
  reg playing, offered;  // offered: the result has been valid before (cycles frozen if stable)
  reg [31:0] latency;
  wire [{entry_w - 1}:0] entry = rom[pc];
  wire kind = entry[{entry_w - 1}];
  wire [7:0] layer = entry[{entry_w - 2}:{entry_w - 9}];
  wire [{n_w - 1}:0] neuron = entry[{entry_w - 10}:{entry_w - 9 - n_w}];
  wire [15:0] tick = entry[{width + 15}:{width}];
  assign pixels__ready = !playing;
  assign result__valid = playing && kind;
  assign result__payload = entry[{width - 1}:0] | (({held} ? latency : now - started) << {label_w});
{trace_logic}  always @(posedge clk) begin
    now <= now + 1;
    if (rst) begin now <= 0; offered <= 0; taken <= 0; pc <= 0; playing <= 0; end
    else if (!playing) begin
      if (pixels__valid) begin
        if (taken == 0) started <= now;
        taken <= taken + 1;
        if (taken == {size - 1}) begin taken <= 0; playing <= 1; end
      end
    end else if (!kind) pc <= pc + 1;
    else if (result__ready) begin pc <= pc + 1; playing <= 0; offered <= 0; end
    else if (!offered) begin offered <= 1; latency <= now - started; end
  end
endmodule
"""
    sidecar = {"format": "hdlgen-core/1", "top": name, "clock": "clk", "reset": "rst", "lanes": 1,
               "pixels": {"valid": "pixels__valid", "ready": "pixels__ready", "payload": "pixels__payload",
                          "width": 8, "count": size},
               "result": {"valid": "result__valid", "ready": "result__ready", "payload": "result__payload",
                          "width": width, "fields": fields},
               "trace": [{"layer": l, "valid": f"trace{l}_valid", "neuron": f"trace{l}_neuron",
                          "tick": f"trace{l}_tick"} for l in range(layers)],
               "layers": [{"name": l.name, "fan_in": l.fan_in, "fan_out": l.fan_out, "ticks_in": l.ticks_in,
                           "ticks": l.ticks} for l in net.layers],
               # what the real core at lanes 1 would promise; the replay is far quicker
               "latency": {"worst_case": serial_cycles(net) + overhead_bound(net)}}
    v_path, j_path = out_dir / f"{name}.v", out_dir / f"{name}.json"
    v_path.write_text(verilog)
    j_path.write_text(json.dumps(sidecar, indent=1))
    return v_path, j_path


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    """A 12-9-7-5 net (three spiking layers) and ten images, one silent and one saturating."""
    rng = np.random.default_rng(7)
    net = random_net(rng, [12, 9, 7, 5], [8, 6, 5])
    pixels = mixed_pixels(rng, 8, 12)
    folder = tmp_path_factory.mktemp("replay")
    ttfs.save(net, folder / "net.ttfs")
    np.savez(folder / "pixels.npz", pixels=pixels)
    return net, pixels, folder


def _run(case, tmp_path, corrupt=None, simulator="icarus", stable_result=True):
    require_simulator(simulator)
    net, pixels, folder = case
    verilog, sidecar = write_replay_core(net, pixels, tmp_path, corrupt=corrupt, stable_result=stable_result)
    return run_testbench(verilog, sidecar, folder / "net.ttfs", folder / "pixels.npz", simulator=simulator,
                         build_dir=tmp_path / "build", seed=3)


@pytest.mark.parametrize("simulator", ["icarus", "verilator"])
def test_faithful_core_passes(case, tmp_path, simulator):
    net, pixels, _ = case
    report = _run(case, tmp_path, simulator=simulator)
    assert report["mismatches"] == []
    assert [r["label"] for r in report["images"]] == [run_events(net, p).label for p in pixels]
    assert all(r["cycles"] == r["counted_cycles"] > net.input.size for r in report["images"])
    assert [r["mode"] for r in report["images"]] == ["stress"] * 6 + ["isolated"] * 2 + ["stream"] * 2


def _image_with_spikes(net, pixels, layer, start):
    return next(i for i in range(start, len(pixels)) if len(run_events(net, pixels[i]).spikes[layer]) >= 2)


def test_first_differing_spike_is_reported(case, tmp_path):
    net, pixels, _ = case
    index = _image_with_spikes(net, pixels, 2, 3)
    neuron, tick = run_events(net, pixels[index]).spikes[2][1]

    def late_spike(i, result):
        if i == index:
            result.spikes[2][1] = (neuron, tick + 1)

    report = _run(case, tmp_path, late_spike)
    assert report["mismatches"] == [f"image {index}, layer 2: first differing spike #1: expected neuron {neuron} "
                                    f"tick {tick}, got neuron {neuron} tick {tick + 1}"]


def test_missing_and_extra_spikes_are_reported(case, tmp_path):
    net, pixels, _ = case
    index = _image_with_spikes(net, pixels, 1, 2)
    spikes = run_events(net, pixels[index]).spikes[1]

    def drop_last_and_add_one(i, result):
        if i == index:
            result.spikes[1].pop()
        if i == len(pixels) - 1:
            result.spikes[0].append((0, net.input.ticks - 1))

    mismatches = _run(case, tmp_path, drop_last_and_add_one)["mismatches"]
    neuron, tick = spikes[-1]
    assert mismatches[0].startswith(f"image {index}, layer 1: first differing spike #{len(spikes) - 1}: "
                                    f"expected neuron {neuron} tick {tick}, got neuron ")
    assert mismatches[0].endswith(" out of order (the image ended early?)")
    assert mismatches[-1] == f"layer 0: 1 spike(s) after the last image, first neuron 0 tick {net.input.ticks - 1}"


def test_wrong_logit_and_class_are_reported(case, tmp_path):
    net, pixels, _ = case
    logits = run_events(net, pixels[4]).logits

    def wrong_readout(i, result):
        if i == 2:
            result.logits[3] += 1
        if i == 4:
            result.label = (result.label + 1) % net.classes

    mismatches = _run(case, tmp_path, wrong_readout)["mismatches"]
    expected = run_events(net, pixels[2]).logits[3]
    assert mismatches[0] == f"image 2: first differing logit 3: expected {expected}, got {expected + 1}"
    assert mismatches[1].startswith("image 4: class expected") and len(mismatches) == 2
    assert len(logits) == net.classes


def test_result_changing_while_it_waits_is_reported(case, tmp_path):
    mismatches = _run(case, tmp_path, stable_result=False)["mismatches"]
    assert mismatches and all("while waiting for ready" in m or "cycles, the testbench counted" in m for m in mismatches)
    assert any("result payload changed at cycle" in m for m in mismatches)


def test_core_that_never_answers_times_out_with_a_diagnosis(case, tmp_path):
    require_simulator()
    net, pixels, folder = case
    verilog, sidecar = write_replay_core(net, pixels, tmp_path)
    stuck = verilog.read_text().replace("assign result__valid = playing && kind;", "assign result__valid = 0;")
    verilog.write_text(stuck.replace("else if (result__ready)", "else if (result__valid && result__ready)"))
    report = run_testbench(verilog, sidecar, folder / "net.ttfs", folder / "pixels.npz", build_dir=tmp_path / "build")
    assert report["images"] == []
    spikes = [len(s) for s in run_events(net, pixels[0]).spikes]
    [message] = report["mismatches"]
    assert message.startswith(f"timeout: 0 of {len(pixels)} results after ")
    assert message.endswith(f" cycles; {net.input.size} pixel bytes accepted, spike events seen per layer {spikes}")
