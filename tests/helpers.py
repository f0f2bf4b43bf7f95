"""Helpers and constants shared by more than one test module (fixtures live in conftest.py).

A helper used by one module stays in that module.
"""

import itertools
import os
from pathlib import Path

import numpy as np
import pytest
from amaranth.sim import Simulator

from hdlgen import golden
from hdlgen.boards.host_link import HostLink
from hdlgen.boards.serial_line import SimulatedSerial
from hdlgen.cli import main
from hdlgen.geometry import NetGeometry
from hdlgen.rtl_templates.top import NetworkTop
from hdlgen.simulate import missing_simulator
from hdlgen.testing import random_pixels
from hdlgen.ttfs import InputEncoding, IntDense, TTFSNet

ROOT = Path(__file__).resolve().parent.parent
DIGITS = ROOT / "examples" / "digits"


# -- the command line ----------------------------------------------------------------------------

def run_cli(capsys, *argv):
    """``hdlgen ARGV…`` in-process: (exit code, stdout, stderr)."""
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


# -- RTL blocks in Amaranth's simulator: nets, stream drivers and monitors -----------------------

def send(ctx, port, payloads, rng, gap=0.0):
    """Testbench coroutine: drive ``payloads`` on stream ``port``, idle with probability ``gap``."""
    async def driver():
        for payload in payloads:
            while rng.random() < gap:
                ctx.set(port.valid, 0)
                await ctx.tick()
            ctx.set(port.valid, 1)
            ctx.set(port.payload, payload)
            await ctx.tick().until(port.ready)
        ctx.set(port.valid, 0)
    return driver()


def receive(ctx, port, done, rng, stall=0.0, out=None, timeout=100_000):
    """Testbench coroutine: take transfers from ``port`` (ready low with probability ``stall``)
    until ``done(out)`` is true, appending payload values to ``out``; fails after ``timeout``
    cycles (a hang)."""
    async def monitor():
        for _ in range(timeout):
            if done(out):
                break
            ready = rng.random() >= stall
            ctx.set(port.ready, ready)
            _, _, valid, payload = await ctx.tick().sample(port.valid, port.payload)
            if ready and valid:
                out.append(payload)
        else:
            raise AssertionError(f"stream stalled: {len(out)} transfers in {timeout} cycles")
        ctx.set(port.ready, 0)
    return monitor()


def simulate(dut, inputs, port_in, port_out, done, rng, gap=0.3, stall=0.3):
    """Drive ``inputs`` into ``port_in`` and collect ``port_out`` until ``done(received)``."""
    received = []
    sim = Simulator(dut)
    sim.add_clock(1e-6)

    async def driver(ctx):
        await send(ctx, port_in, inputs, rng, gap=gap)

    async def monitor(ctx):
        await receive(ctx, port_out, done, rng, stall=stall, out=received)

    sim.add_testbench(driver)
    sim.add_testbench(monitor)
    sim.run()
    return received


def events_of(spike_lists):
    """Stream payloads of several images' spike lists, each closed by ``end``."""
    out = []
    for spikes in spike_lists:
        out += [{"neuron": n, "tick": t, "end": 0} for n, t in spikes]
        out.append({"neuron": 0, "tick": 0, "end": 1})
    return out


def bank_order(spikes, banks, positions=1, word_lanes=None):
    """Spikes in a tick sorter's order: by tick, within a tick bank by bank (the channel
    ``c = neuron // positions`` mod ``banks``), each bank's in arrival order – a spike-time
    bank's parts of ``banks`` lanes of accumulator words of ``word_lanes`` (default ``banks``)
    lanes arrive by channel word, position, part."""
    lanes = word_lanes or banks

    def key(spike):
        channel, position = divmod(spike[0], positions)
        return spike[1], channel % banks, channel // lanes, position, channel % lanes // banks
    return sorted(spikes, key=key)


def transfers_of(images, per_transfer):
    """Pixel-stream payloads of ``images`` (rows of bytes), ``per_transfer`` bytes each, pixel
    ``j`` in byte ``j mod P`` (the last transfer zero-padded)."""
    out = []
    for image in images:
        image = [int(p) for p in image]
        for start in range(0, len(image), per_transfer):
            out.append(sum(p << (8 * k) for k, p in enumerate(image[start:start + per_transfer])))
    return out


def split_images(received, empty_tick=None):
    """Received event payloads → list of (neuron, tick) lists, one per ``end``; with ``empty_tick``
    (groups of events: an encoder sending several at once) each image a list of groups, each the
    ``(neuron, tick)`` of its slots whose tick is not ``empty_tick``."""
    images, current = [], []
    for p in received:
        if p.end:
            images.append(current)
            current = []
        elif empty_tick is None:
            current.append((int(p.neuron), int(p.tick)))
        else:
            current.append([(int(n), int(t)) for n, t in zip(p.neuron, p.tick) if t != empty_tick])
    return images


def ends(count):
    """A ``done`` for :func:`simulate`: ``count`` event streams closed by ``end``."""
    return lambda out: sum(int(p.end) for p in out) == count


def run_top(net, images, rng, *, lanes=1, pixels_per_transfer=1, spike_lanes=None, gap=0.0, stall=0.0):
    """Stream ``images`` through the core; returns (results, spikes per layer, cycles until the
    last result was taken, each image's cycles from first accepted pixel to first result-valid
    as the testbench counts them)."""
    top = NetworkTop(net, lanes=lanes, pixels_per_transfer=pixels_per_transfer, spike_lanes=spike_lanes, trace=True)
    transfers = top.geometry.input.transfers
    layers = len(net.sizes) - 1
    results, spikes = [], [[] for _ in range(layers)]
    clock = {"now": 0, "finished": None, "pixels": 0, "showing": False}
    first_pixel, first_valid = [], []
    sim = Simulator(top)
    sim.add_clock(1e-6)

    async def driver(ctx):
        await send(ctx, top.pixels, transfers_of(images, pixels_per_transfer), rng, gap=gap)

    async def monitor(ctx):
        await receive(ctx, top.result, lambda out: len(out) == len(images), rng, stall=stall, out=results)
        clock["finished"] = clock["now"]

    async def tracer(ctx):
        taps = [getattr(top.trace, f"layer{l}") for l in range(layers)]
        handshakes = (top.pixels.valid, top.pixels.ready, top.result.valid, top.result.ready)
        async for values in ctx.tick().sample(*handshakes,
                                              *[s for tap in taps for s in (tap.valid, tap.neuron, tap.tick)]):
            pixel_valid, pixel_ready, result_valid, result_ready = values[2:6]
            if pixel_valid and pixel_ready:
                if clock["pixels"] % transfers == 0:
                    first_pixel.append(clock["now"])
                clock["pixels"] += 1
            if result_valid and not clock["showing"]:
                first_valid.append(clock["now"])
            clock["showing"] = bool(result_valid and not result_ready)
            for l in range(layers):
                valid, neuron, tick = values[6 + 3 * l:9 + 3 * l]
                if valid:
                    spikes[l].append((neuron, tick))
            clock["now"] += 1

    sim.add_testbench(driver)
    sim.add_testbench(monitor)
    sim.add_process(tracer)
    sim.run()
    measured = [v - p for p, v in zip(first_pixel, first_valid)]
    return results, spikes, clock["finished"], measured


def assert_spikes_in_emitted_order(net, gold, spikes, lanes=1, pixels_per_transfer=1, spike_lanes=None):
    """Each layer's traced ``spikes`` (all images) are the golden ones in the order its producer
    emits them: a tick sorter's :func:`bank_order` (``P`` banks in the input encoder,
    ``lanes`` in a spike-time bank); after a max-pool (input order within a tick) each
    tick's neurons are compared sorted."""
    geometry = NetGeometry(net, lanes, pixels_per_transfer, spike_lanes)
    for l, (producer, have) in enumerate(zip([geometry.input] + geometry.layers[:-1], spikes)):
        if producer is geometry.input:
            order = (producer.pixels_per_transfer, 1, None)
        elif producer.kind == "maxpool2d":
            order = None
        else:
            order = (producer.spike_lanes, producer.positions, producer.lanes)
        if order is None:   # each image's runs of one tick sorted (the images by the golden counts)
            want = [s for g in gold for s in bank_order(g.spikes[l], 1)]
            starts = np.cumsum([0] + [len(g.spikes[l]) for g in gold])
            have = [s for start, stop in zip(starts[:-1], starts[1:])
                    for _, run in itertools.groupby(have[start:stop], key=lambda s: s[1]) for s in sorted(run)]
        else:
            want = [s for g in gold for s in bank_order(g.spikes[l], *order)]
        assert have == want, f"layer {l}"


# -- the golden model ----------------------------------------------------------------------------

def assert_forms_agree(net, pixels):
    """Event form == batch form on every spike, logit and class."""
    batch = golden.run_batch(net, pixels)
    for i, image in enumerate(pixels):
        events = golden.run_events(net, image)
        np.testing.assert_array_equal(events.logits, batch.logits[i])
        assert events.label == batch.classes[i]
        for layer, (spikes, ticks) in enumerate(zip(events.spikes, net.ticks)):
            assert spikes == golden.spikes_from_q(batch.q[layer][i], ticks), f"image {i} layer {layer}"


# -- cocotb ----------------------------------------------------------------------------------------

def require_simulator(simulator="icarus"):
    """In CI (``CI=true``) a missing simulator fails the test; elsewhere it is skipped with the reason."""
    reason = missing_simulator(simulator)
    if reason:
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)


def shuffled_images(rng, size, images, edges=2):
    """Mostly random images, plus ``edges`` with no spike at all and ``edges`` saturating every pixel."""
    return np.concatenate([random_pixels(rng, edges, size, "zero"), random_pixels(rng, images - 2 * edges, size),
                           random_pixels(rng, edges, size, "saturate")])[rng.permutation(images)]


def assert_matches_golden(report, net, pixels):
    """Bit-exact, and the latency of an image alone in the core lies between the event lower bound
    and the RTL's own upper bound (:mod:`hdlgen.cycles`)."""
    assert report.mismatches == [], "\n".join(report.mismatches[:5])
    assert report.predicted == golden.run_batch(net, pixels).classes.tolist()
    assert report.lower_bound_mean <= report.cycles_mean <= report.upper_bound_mean


# -- a board without a board: the host link over a simulated serial line -------------------------

CLK = 1e6
BAUD = 250_000          # 4 clock cycles per bit: the slowest the UART allows, fastest to simulate


def tiny_net(seed=0, inputs=12, hidden=6, classes=4, ticks=4):
    """A 12-6-4 dense net (T=4, 4-bit weights) by default."""
    rng = np.random.default_rng(seed)
    table = np.minimum(np.arange(256) * (ticks + 1) // 256, ticks)
    enc = InputEncoding((inputs,), 0.0, 1 / 255, 1 / ticks, ticks, table)
    w1 = rng.integers(-7, 8, (hidden, inputs))
    w2 = rng.integers(-7, 8, (classes, hidden))
    l1 = IntDense(w1, rng.integers(-8, 9, hidden), np.full(hidden, 6), ticks, ticks, 4, np.ones(hidden), name="d1")
    l2 = IntDense(w2, rng.integers(-8, 9, classes), None, ticks, 0, 4, np.ones(classes), name="d2")
    return TTFSNet(enc, [l1, l2], name="tiny")


def previous_build(tmp_path):
    """A build directory as a rebuild finds it: a finished build's bitstream and record
    (directory, {file name: bytes})."""
    from hdlgen.boards.build import BUILD_RECORD

    out = tmp_path / "b"
    out.mkdir()
    files = {"top.bin": b"a good bitstream", BUILD_RECORD: b'{"board": "icebreaker"}\n'}
    for name, content in files.items():
        (out / name).write_bytes(content)
    return out, files


def assert_previous_build_kept(out, files):
    """The rebuild left the previous bitstream and record as they were, and no partial copy."""
    assert {name: (out / name).read_bytes() for name in files} == files
    assert not list(out.glob(".*.previous"))


def serial_link(net, core, *, port_timeout=5e-3, **kwargs):
    """``core`` behind a :class:`HostLink` at ``CLK``/``BAUD`` in Amaranth's simulator:
    (the HostLink, the simulator, the host's :class:`SimulatedSerial` end of the line, whose reads
    wait ``port_timeout`` simulated seconds). ``kwargs`` go to HostLink (``timeout`` 2 ms unless given)."""
    top = HostLink(net, core, clk_freq=CLK, baud=BAUD, **{"timeout": 2e-3, **kwargs})
    sim = Simulator(top)
    sim.add_clock(1 / CLK)
    port = SimulatedSerial(sim, top.rx, top.tx, divisor=top.divisor, clk_freq=CLK, timeout=port_timeout)
    return top, sim, port


# -- PyTorch models (torch is imported only when one is built) -----------------------------------

def randomize_bn(model, seed, positive=False):
    """Random batch-norm statistics and affine parameters (scales > 0 if ``positive``); the model in eval mode."""
    import torch

    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
            n = m.num_features
            m.weight.data = torch.rand(n, generator=g) + 0.2 if positive else torch.rand(n, generator=g) * 2 - 0.6
            m.bias.data = torch.randn(n, generator=g) * 0.3
            m.running_mean = torch.randn(n, generator=g) * 0.3
            m.running_var = torch.rand(n, generator=g) + 0.5
    return model.eval()


def _torch_model(build):
    """``build(torch.nn)`` as a function of no arguments."""
    def make():
        import torch
        return build(torch.nn)
    return make


# CNNs on 1×8×8 inputs: batch norm before and after the ReLU, average pools (also global), max-pools
MODELS = {
    "bn-before-relu+maxpool": _torch_model(lambda nn: nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(4, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(24, 5))),
    "bn-after-relu-into-unpadded-conv": _torch_model(lambda nn: nn.Sequential(
        nn.Conv2d(1, 3, 3, padding=1), nn.ReLU(), nn.BatchNorm2d(3), nn.Conv2d(3, 4, 3, stride=2), nn.ReLU(),
        nn.Flatten(), nn.Linear(36, 4))),
    "bn-after-relu-into-linear": _torch_model(lambda nn: nn.Sequential(
        nn.Conv2d(1, 3, 3), nn.ReLU(), nn.BatchNorm2d(3), nn.Flatten(), nn.Linear(108, 6), nn.ReLU(),
        nn.Linear(6, 3))),
    "avgpool-after-conv": _torch_model(lambda nn: nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.AvgPool2d(2), nn.ReLU(), nn.Flatten(), nn.Linear(64, 3))),
    "avgpool-before-conv": _torch_model(lambda nn: nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.AvgPool2d(2), nn.Conv2d(4, 5, 3), nn.ReLU(),
        nn.Flatten(), nn.Linear(20, 3))),
    "global-avgpool-before-linear": _torch_model(lambda nn: nn.Sequential(
        nn.Conv2d(1, 6, 3, stride=2, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, 3))),
    "maxpool-before-relu-with-bn": _torch_model(lambda nn: nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.MaxPool2d(2), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(),
        nn.Linear(64, 3))),
}


# -- importer tests: small torch models, written by the real exporters -------------------------------

def seeded_input(shape=(4, 2, 6, 6)):
    """A fixed random torch batch."""
    import torch

    return torch.rand(*shape, generator=torch.Generator().manual_seed(0))


def linear_head(features, classes=3):
    """Flatten, then a Linear to ``classes``: the end of the small test models."""
    import torch

    return [torch.nn.Flatten(), torch.nn.Linear(features, classes)]


def mean_over(dims=(2, 3), keepdim=False):
    """A module computing ``x.mean(dims, keepdim)`` (torch has no layer for it)."""
    import torch

    class Mean(torch.nn.Module):
        def forward(self, x):
            return x.mean(dims, keepdim=keepdim)

    return Mean()


def export_pt2(tmp_path, model, x):
    """``model`` through torch.export.export → torch.export.save → ``hdlgen.load_model``."""
    import torch

    from hdlgen import load_model

    torch.export.save(torch.export.export(model.eval(), (x,)), tmp_path / "m.pt2")
    return load_model(tmp_path / "m.pt2")


def export_onnx(tmp_path, model, x, exporter="legacy", **options):
    """``model`` written by torch's legacy (TorchScript) or ``dynamo`` ONNX exporter (``options``
    such as ``opset_version`` passed on); the path, the exporter's warnings and logging kept quiet."""
    import logging
    import warnings

    import torch

    path = tmp_path / "m.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        logging.disable(logging.WARNING)
        try:
            torch.onnx.export(model.eval(), (x,), path, dynamo=exporter == "dynamo", verbose=False, **options)
        finally:
            logging.disable(logging.NOTSET)
    return path
