"""Link soak: the board top (HostLink around a NetworkTop) and the host driver over a serial line
that flips, drops and duplicates 1 % of bytes in both directions and stalls (boards/serial_line.py's
LineFaults); ``bench/link_soak.py`` runs 10,000 images, this a seeded subset."""

import dataclasses

import numpy as np
import pytest

from hdlgen import golden
from hdlgen.boards import link
from hdlgen.boards.host import Device, default_window
from hdlgen.boards.serial_line import LineFaults, soak_link
from hdlgen.testing import random_net


def soak_net(seed):
    return random_net(np.random.default_rng(seed), [4, 4, 2], 2, weight_bits=4, name="soak")


def images(net, count, seed):
    return np.random.default_rng(seed).integers(0, 256, (count, net.input.size), dtype=np.uint8)


def test_line_faults_hit_bytes_at_their_rates_and_repeat_with_the_seed():
    data = bytes(np.random.default_rng(0).integers(0, 256, 60_000, dtype=np.uint8))
    faults = LineFaults(5, rate=0.03, stall_rate=0.01, max_stall=1e-3)
    out = faults.damage(data, "to_device")
    counts = faults.counts["to_device"]
    for kind in ("flip", "drop", "duplicate"):
        assert 0.008 < counts[kind] / len(data) < 0.012          # 3 % split three ways
    assert 0.008 < counts["stall"] / len(data) < 0.012
    assert len(out) == len(data) - counts["drop"] + counts["duplicate"]
    assert all(0 < idle <= 1e-3 for idle, _ in out if idle) and sum(idle > 0 for idle, _ in out) == counts["stall"]
    assert faults.counts["from_device"] == dict.fromkeys(LineFaults.KINDS, 0)
    assert LineFaults(5, rate=0.03, stall_rate=0.01, max_stall=1e-3).damage(data, "to_device") == out
    clean = LineFaults(5, rate=0, stall_rate=0).damage(data, "from_device")
    assert clean == [(0.0, b) for b in data]


def test_a_damaged_length_does_not_hold_back_the_responses_behind_it():
    """The soak's first find: a length byte dropped makes the next byte (here the sequence
    number's) the length's high byte, 1280 bytes to wait for (65280 for an ERROR with seq 0xFFFF).
    The host's decoder, told the lengths a response can have, skips the header at once."""
    damaged = bytearray(link.result_response(5, 1, 100, 50, [3, -4]))
    del damaged[3]
    good = [link.result_response(6 + i, 0, 100, 50, [1, 2]) for i in range(3)]
    stream = bytes(damaged) + b"".join(good)
    assert link.FrameDecoder().feed(stream) == []          # all held back behind the false length
    for classes in (None, 2):
        frames = link.FrameDecoder(lengths=link.response_lengths(classes)).feed(stream)
        assert [link.parse_response(f).seq for f in frames] == [6, 7, 8]


@pytest.mark.slow
def test_soak_every_image_answered_once_as_the_golden_model_and_the_board_recovers():
    """150 images (under a minute on an idle core): every fault kind in both directions, resends and late answers;
    every result equals the golden model, no sequence number is answered twice, and the board,
    not reset, then answers clean images at once."""
    net = soak_net(3)
    pixels = images(net, 150, 4)
    soak = soak_link(net, pixels, seed=3)
    counts = soak.check()
    assert counts["images"] == 150 and counts["retries"] > 0 and counts["late_results_dropped"] > 0
    assert {"BAD_CRC", "TIMEOUT"} <= set(counts["errors"])
    assert all(n > 0 for direction in soak.port.faults.counts.values() for n in direction.values())
    # the audit fails for a lost or a duplicated result
    for broken in ([None, *soak.results[1:]], [soak.results[1], *soak.results[1:]]):
        with pytest.raises(AssertionError):
            dataclasses.replace(soak, results=broken).check()
    clean = images(net, 4, 5)
    results, stats = soak.recover(clean)
    ref = golden.run_batch(net, clean)
    assert [(r.label, list(r.logits)) for r in results] == list(zip(ref.classes, ref.logits.tolist()))
    assert stats.retries == 0 and stats.errors == {}


class InOrderDevice(Device):
    """A driver that ignores sequence numbers: a RESULT answers the oldest request in flight."""

    def __init__(self, port, **kwargs):
        super().__init__(port, **kwargs)
        self.unanswered = []

    def _next_seq(self):
        seq = super()._next_seq()
        self.unanswered.append(seq)
        return seq

    def _responses(self):
        responses = super()._responses()
        out = []
        for r in responses or []:
            if isinstance(r, link.Result):
                r = dataclasses.replace(r, seq=self.unanswered[0])
            if getattr(r, "seq", None) in self.unanswered:
                self.unanswered.remove(r.seq)
            out.append(r)
        return out if responses is not None else None


@pytest.mark.slow
def test_the_soak_catches_a_driver_that_ignores_sequence_numbers():
    """Late answers to resent requests go to the wrong images (the audit says so), or the driver
    drops the answers it needs and gives up."""
    net = soak_net(3)
    with pytest.raises((AssertionError, link.LinkError)):
        soak_link(net, images(net, 30, 4), seed=3, device=lambda port: InOrderDevice(port, retries=30)).check()


@pytest.mark.slow
def test_the_link_at_3_mbaud_reaches_its_limit_and_recovers_from_faults():
    """The iCEBreaker's link: 12 MHz, 3 Mbaud (4 cycles per bit), the driver's default window.
    On a clean line the images flow at ≥ 90 % of what the line carries (simulated time); over a
    faulty one every image is answered once, equal to the golden model."""
    net = soak_net(3)
    clean = images(net, 40, 6)
    soak = soak_link(net, clean, seed=1, clk_freq=12e6, baud=3_000_000, board_timeout=25e-6, port_timeout=3e-3,
                     rate=0, stall_rate=0, window=None)
    assert soak.port.baudrate == 3_000_000 and soak.device.window > 2
    assert soak.device.window == default_window(net.input.size, net.classes, 3_000_000)
    ref = golden.run_batch(net, clean)
    assert [(r.label, list(r.logits)) for r in soak.results] == list(zip(ref.classes, ref.logits.tolist()))
    assert soak.stats.retries == 0
    assert len(clean) / soak.line_seconds >= 0.9 * link.link_limit(net.input.size, net.classes, 3_000_000)

    faulty = soak_link(net, images(net, 60, 7), seed=2, clk_freq=12e6, baud=3_000_000, board_timeout=25e-6,
                       port_timeout=3e-3, max_stall=100e-6, window=None)
    counts = faulty.check()
    assert counts["images"] == 60 and counts["retries"] > 0
    assert all(n > 0 for n in faulty.port.faults.counts["to_device"].values())
