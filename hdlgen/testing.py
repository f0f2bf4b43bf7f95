"""Random integer TTFS nets and inputs for tests and benchmarks (not used by the compiler)."""

from __future__ import annotations

import numpy as np

from .passes.quantize import input_encoding
from .ttfs import IntDense, TTFSNet

__all__ = ["random_net", "random_cnn", "random_pixels", "mixed_pixels"]

BIAS_MODES = ("random", "zero", "negative", "large")


def random_net(rng: np.random.Generator, sizes, ticks, weight_bits: int = 8, bias: str = "random",
               per_channel_k: bool = False, name: str = "random_net") -> TTFSNet:
    """A dense net with layer ``sizes`` (input first, classes last) and windows ``ticks``
    (one per spiking layer, or one int). Weights span the full ``weight_bits`` range; K is
    chosen so activations spread over the window; ``bias`` is one of random/zero/negative/large."""
    if bias not in BIAS_MODES:
        raise ValueError(f"bias must be one of {BIAS_MODES}")
    ticks = [int(ticks)] * (len(sizes) - 1) if np.isscalar(ticks) else list(ticks)
    limit = (1 << (weight_bits - 1)) - 1
    encoding = input_encoding((sizes[0],), 0.0, 1 / 255, 1 / ticks[0], ticks[0])  # pixel p ↦ q0 = round(p·T0/255)
    layers = []
    for i, (fan_in, fan_out) in enumerate(zip(sizes, sizes[1:])):
        ticks_in = ticks[i]
        readout = i == len(sizes) - 2
        weight = rng.integers(-limit, limit + 1, size=(fan_out, fan_in))
        spread = max(1, int(np.sqrt(fan_in) * limit * ticks_in / 2))
        b = {"random": rng.integers(-spread, spread + 1, fan_out), "zero": np.zeros(fan_out, np.int64),
             "negative": -rng.integers(1, 4 * spread + 2, fan_out),
             "large": rng.integers(spread, 8 * spread + 2, fan_out)}[bias]
        if readout:
            layers.append(IntDense(weight, b, None, ticks_in, 0, weight_bits, np.ones(fan_out), name=f"dense{i}"))
            break
        ticks_out = ticks[i + 1]
        base = max(1, spread // max(ticks_out, 1))
        k = rng.integers(1, 2 * base + 1, fan_out) if per_channel_k else np.full(fan_out, rng.integers(1, 2 * base + 1))
        layers.append(IntDense(weight, b, k, ticks_in, ticks_out, weight_bits, np.ones(fan_out), name=f"dense{i}"))
    return TTFSNet(encoding, layers, name)


def random_pixels(rng: np.random.Generator, count: int, size: int, kind: str = "random") -> np.ndarray:
    """Pixel bytes: random (sparse-ish), zero (no input spike at all), or saturating (all 255)."""
    if kind == "zero":
        return np.zeros((count, size), np.uint8)
    if kind == "saturate":
        return np.full((count, size), 255, np.uint8)
    pixels = rng.integers(0, 256, size=(count, size))
    pixels[rng.random((count, size)) < 0.4] = 0
    return pixels.astype(np.uint8)


def random_cnn(rng: np.random.Generator, in_shape=(1, 8, 8), blocks=(("conv", 4, 3, 1, 1), ("pool", 2, 2)),
               classes: int = 5, ticks: int = 8, weight_bits: int = 6, bias: str = "random",
               name: str = "random_cnn") -> TTFSNet:
    """A CNN of ``blocks`` – ``("conv", out_channels, kernel, stride, padding)`` or
    ``("pool", kernel, stride)`` – then a dense readout, with random integers as in :func:`random_net`."""
    from .ttfs import IntConv2d, IntMaxPool2d

    limit = (1 << (weight_bits - 1)) - 1
    encoding = input_encoding(tuple(in_shape), 0.0, 1 / 255, 1 / ticks, ticks)
    layers, shape = [], tuple(in_shape)
    for i, block in enumerate(blocks):
        if block[0] == "pool":
            layer = IntMaxPool2d(shape, (block[1],) * 2, (block[2],) * 2, (0, 0), ticks, name=f"pool{i}")
        else:
            _, out_c, kernel, stride, padding = block
            fan_in = shape[0] * kernel * kernel
            spread = max(1, int(np.sqrt(fan_in) * limit * ticks / 2))
            b = {"random": rng.integers(-spread, spread + 1, out_c), "zero": np.zeros(out_c, np.int64),
                 "negative": -rng.integers(1, 4 * spread + 2, out_c),
                 "large": rng.integers(spread, 8 * spread + 2, out_c)}[bias]
            k = rng.integers(1, 2 * max(1, spread // ticks) + 1, out_c)
            layer = IntConv2d(rng.integers(-limit, limit + 1, (out_c, shape[0], kernel, kernel)), b, k, ticks, ticks,
                              weight_bits, np.ones(out_c), shape, (stride,) * 2, (padding,) * 2, name=f"conv{i}")
        layers.append(layer)
        shape = layer.out_shape
    fan_in = int(np.prod(shape))
    layers.append(IntDense(rng.integers(-limit, limit + 1, (classes, fan_in)), rng.integers(-50, 50, classes), None,
                           ticks, 0, weight_bits, np.ones(classes), name="readout"))
    return TTFSNet(encoding, layers, name)


def mixed_pixels(rng: np.random.Generator, random_images: int, size: int) -> np.ndarray:
    """``random_images`` random images, then one that gives no input spike and one that saturates."""
    return np.concatenate([random_pixels(rng, random_images, size), random_pixels(rng, 1, size, "zero"),
                           random_pixels(rng, 1, size, "saturate")])
