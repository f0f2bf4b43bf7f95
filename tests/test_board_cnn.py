"""A CNN behind the host link: fingerprint, SPRAM weight load by engine (max-pools have none),
and classification equal to the golden model."""

import numpy as np

from hdlgen import golden
from hdlgen.boards import link
from hdlgen.boards.host import Device
from hdlgen.boards.spram import place_weights, spram_segments
from hdlgen.rtl_templates.top import NetworkTop
from hdlgen.testing import random_cnn

from .helpers import serial_link


def _cnn():
    return random_cnn(np.random.default_rng(1), (1, 6, 6), [("conv", 3, 3, 1, 1), ("pool", 2, 2)], 4, 4, 4)


def test_fingerprint_covers_pool_geometry():
    net = _cnn()
    other = _cnn()
    other.layers[1].stride = (1, 1)
    assert link.net_fingerprint(net) == link.net_fingerprint(_cnn())
    assert link.net_fingerprint(net) != link.net_fingerprint(other)


def test_cnn_weights_load_over_the_link_then_classify_matches_golden():
    net = _cnn()
    core = NetworkTop(net, lanes=2)
    placed = place_weights(core)
    assert placed == [0, 1]  # conv and readout engines; the pool between them has none
    _, _, port = serial_link(net, core)
    device = Device(port)
    info = device.check(net)
    words = device.load_weights(net, info)
    assert words == sum(len(w) for i in placed for _, w in spram_segments(core.engines[i].weights.geometry))
    pixels = np.random.default_rng(2).integers(0, 256, (3, net.input.size), dtype=np.uint8)
    results = device.classify(pixels)
    expected = golden.run_batch(net, pixels)
    assert [r.label for r in results] == list(expected.classes)
    assert [list(r.logits) for r in results] == expected.logits.tolist()
