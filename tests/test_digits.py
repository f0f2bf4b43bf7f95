"""The bundled digits example: the SNN stays within 1 pp of the float net at T=16, 8-bit."""

import numpy as np

from hdlgen import golden, ttfs


def test_digits_snn_within_one_point_of_float(digits_net, digits_test):
    net = ttfs.load(digits_net)
    x, y = digits_test.x, digits_test.y
    snn = golden.run_batch(net, net.input.pixels(x)).classes
    ann = net.ann.forward(x.reshape(len(x), -1)).argmax(1)
    snn_acc, ann_acc = np.mean(snn == y), np.mean(ann == y)
    assert ann_acc > 0.95
    assert snn_acc >= ann_acc - 0.01, (snn_acc, ann_acc)


def test_digits_events_equal_batch(digits_net, digits_test):
    net = ttfs.load(digits_net)
    pixels = net.input.pixels(digits_test.x[:40])
    batch = golden.run_batch(net, pixels)
    for i in range(len(pixels)):
        events = golden.run_events(net, pixels[i])
        assert events.label == batch.classes[i]
        np.testing.assert_array_equal(events.logits, batch.logits[i])
