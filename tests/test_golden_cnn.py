"""Golden model of convolutional nets: batch and event forms agree; the batch form equals a
direct (loop) convolution and max-pool."""

import numpy as np
import pytest

from hdlgen import golden
from hdlgen.testing import mixed_pixels, random_cnn
from hdlgen.ttfs import IntConv2d, IntMaxPool2d

from .helpers import assert_forms_agree


def _case(seed):
    rng = np.random.default_rng(seed)
    size = int(rng.integers(5, 13))
    channels = int(rng.integers(1, 4))
    blocks = []
    shape = size
    for _ in range(int(rng.integers(1, 3))):
        kernel = int(rng.choice([1, 3, 5]))
        padding = int(rng.integers(0, 3))
        stride = int(rng.integers(1, 3))
        if (shape + 2 * padding - kernel) // stride + 1 < 1:
            kernel, padding, stride = 1, 0, 1
        blocks.append(("conv", int(rng.integers(1, 6)), kernel, stride, padding))
        shape = (shape + 2 * padding - kernel) // stride + 1
        if shape >= 2 and rng.random() < 0.6:
            pool_k, pool_s = int(rng.choice([2, min(3, shape)])), int(rng.integers(1, 3))
            blocks.append(("pool", pool_k, pool_s))
            shape = (shape - pool_k) // pool_s + 1
    ticks = int(rng.choice([1, 4, 8, 16, 33]))
    net = random_cnn(rng, (channels, size, size), blocks, int(rng.integers(2, 6)), ticks, int(rng.integers(2, 9)),
                     ["random", "zero", "negative", "large"][seed % 4])
    return net, mixed_pixels(rng, 4, channels * size * size)


@pytest.mark.parametrize("seed", range(30))
def test_cnn_event_form_equals_batch_form(seed):
    assert_forms_agree(*_case(seed))


def _direct_conv(layer, q):
    c, h, w = layer.in_shape
    x = np.pad(q.reshape(c, h, w), ((0, 0), (layer.padding[0],) * 2, (layer.padding[1],) * 2))
    out_c, oh, ow = layer.out_shape
    kh, kw = layer.weight.shape[2:]
    acc = np.zeros((out_c, oh, ow), np.int64)
    for oy in range(oh):
        for ox in range(ow):
            patch = x[:, oy * layer.stride[0]:oy * layer.stride[0] + kh, ox * layer.stride[1]:ox * layer.stride[1] + kw]
            acc[:, oy, ox] = (layer.weight * patch[None]).sum(axis=(1, 2, 3)) + layer.bias
    return acc.reshape(-1)


@pytest.mark.parametrize("seed", range(8))
def test_batch_conv_and_pool_equal_direct_loops(seed):
    net, pixels = _case(seed)
    batch = golden.run_batch(net, pixels)
    for layer, q_in, q_out in zip(net.layers, batch.q, batch.q[1:]):
        for i in range(len(pixels)):
            if isinstance(layer, IntConv2d):
                expected = np.clip(_direct_conv(layer, q_in[i]) // layer.k_per_neuron(), 0, layer.ticks)
            elif isinstance(layer, IntMaxPool2d):
                c, h, w = layer.in_shape
                x = q_in[i].reshape(c, h, w)
                _, oh, ow = layer.out_shape
                (kh, kw), (sy, sx) = layer.kernel, layer.stride
                expected = np.array([[[x[ch, oy * sy:oy * sy + kh, ox * sx:ox * sx + kw].max() for ox in range(ow)]
                                      for oy in range(oh)] for ch in range(c)]).reshape(-1)
            else:
                continue
            np.testing.assert_array_equal(q_out[i], expected)
