"""Random integer TTFS nets and inputs for tests and benchmarks (not used by the compiler)."""

from __future__ import annotations

import copy

import numpy as np

from .passes.quantize import input_encoding
from .ttfs import IntDense, TTFSNet

__all__ = ["random_net", "random_fashion_mlp", "random_cnn", "random_graph", "random_pixels", "mixed_pixels", "random_spec",
           "random_graph_spec", "net_from_spec", "campaign_pixels", "extreme_case", "extreme_ticks"]

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


def random_fashion_mlp() -> TTFSNet:
    """A seeded random net of the Fashion MLP's shape (784-128-10, T=16, 8-bit weights): the board
    rows that guard logic cells (``random-mlp-*`` in bench/results/boards.json) are built from it,
    so a test makes the same design without training."""
    return random_net(np.random.default_rng(28), [784, 128, 10], 16, name="random_mlp_784_128_10")


def random_pixels(rng: np.random.Generator, count: int, size: int, kind: str = "random") -> np.ndarray:
    """Pixel bytes: random (sparse-ish), zero (no input spike at all), saturating (all 255) or
    single (one random pixel of a random value, the rest 0)."""
    if kind == "single":
        pixels = np.zeros((count, size), np.uint8)
        pixels[np.arange(count), rng.integers(0, size, count)] = rng.integers(1, 256, count)
        return pixels
    if kind == "zero":
        return np.zeros((count, size), np.uint8)
    if kind == "saturate":
        return np.full((count, size), 255, np.uint8)
    pixels = rng.integers(0, 256, size=(count, size))
    pixels[rng.random((count, size)) < 0.4] = 0
    return pixels.astype(np.uint8)


def random_cnn(rng: np.random.Generator, in_shape=(1, 8, 8), blocks=(("conv", 4, 3, 1, 1), ("pool", 2, 2)),
               classes: int = 5, ticks=8, weight_bits: int = 6, bias: str = "random",
               name: str = "random_cnn", per_channel_k: bool = True) -> TTFSNet:
    """A CNN of ``blocks`` – ``("conv", out_channels, kernel, stride, padding)``,
    ``("pool", kernel, stride)`` or, after the last conv or pool, ``("dense", units)`` – then a dense
    readout, with random integers as in :func:`random_net`. ``ticks`` is one window for all, or the
    input's then one per conv or dense block (a pool keeps its input's window); ``per_channel_k``
    False gives every layer a single K (weights scaled per layer)."""
    from .ttfs import IntConv2d, IntMaxPool2d

    spiking = sum(block[0] != "pool" for block in blocks)
    ticks = [int(ticks)] * (spiking + 1) if np.isscalar(ticks) else [int(t) for t in ticks]
    if len(ticks) != spiking + 1:
        raise ValueError(f"ticks needs {spiking + 1} windows (input, then each conv or dense block)")
    limit = (1 << (weight_bits - 1)) - 1
    encoding = input_encoding(tuple(in_shape), 0.0, 1 / 255, 1 / ticks[0], ticks[0])
    layers, shape, windows = [], tuple(in_shape), iter(ticks[1:])
    ticks_in = ticks[0]
    for i, block in enumerate(blocks):
        if block[0] == "pool":
            layers.append(IntMaxPool2d(shape, (block[1],) * 2, (block[2],) * 2, (0, 0), ticks_in, name=f"pool{i}"))
            shape = layers[-1].out_shape
            continue
        ticks_out = next(windows)
        out_c = block[1]
        fan_in = int(np.prod(shape)) if block[0] == "dense" else shape[0] * block[2] ** 2
        spread = max(1, int(np.sqrt(fan_in) * limit * ticks_in / 2))
        b = {"random": rng.integers(-spread, spread + 1, out_c), "zero": np.zeros(out_c, np.int64),
             "negative": -rng.integers(1, 4 * spread + 2, out_c),
             "large": rng.integers(spread, 8 * spread + 2, out_c)}[bias]
        high = 2 * max(1, spread // ticks_out) + 1
        k = rng.integers(1, high, out_c) if per_channel_k else np.full(out_c, rng.integers(1, high))
        if block[0] == "dense":
            layer = IntDense(rng.integers(-limit, limit + 1, (out_c, fan_in)), b, k, ticks_in, ticks_out, weight_bits,
                             np.ones(out_c), name=f"dense{i}")
            shape = (out_c,)
        else:
            _, out_c, kernel, stride, padding = block
            layer = IntConv2d(rng.integers(-limit, limit + 1, (out_c, shape[0], kernel, kernel)), b, k, ticks_in,
                              ticks_out, weight_bits, np.ones(out_c), shape, (stride,) * 2, (padding,) * 2,
                              name=f"conv{i}")
            shape = layer.out_shape
        layers.append(layer)
        ticks_in = ticks_out
    fan_in = int(np.prod(shape))
    layers.append(IntDense(rng.integers(-limit, limit + 1, (classes, fan_in)), rng.integers(-50, 50, classes), None,
                           ticks_in, 0, weight_bits, np.ones(classes), name="readout"))
    return TTFSNet(encoding, layers, name)


def random_graph(rng: np.random.Generator, in_shape=(12,), widths=(8, 8, 8), classes: int = 4, ticks: int = 8,
                 weight_bits: int = 6, bias: str = "random", per_channel_k: bool = True, skips: float = 0.7,
                 name: str = "random_graph") -> TTFSNet:
    """A residual net: a chain of hidden layers of ``widths`` units (dense when ``in_shape`` is a
    vector; else 'same' 3×3 convs of that many channels, a negative width a stride-2 conv of ``-width``)
    and a dense readout, where each layer after the first (and the readout) also reads, with
    probability ``skips``, an earlier source – through a 1×1 stride-2 max-pool (a subsample) when the
    source's map is twice the size. One window ``ticks`` for all; random integers as :func:`random_net`."""
    from .ttfs import INPUT, IntConv2d, IntMaxPool2d

    limit = (1 << (weight_bits - 1)) - 1
    encoding = input_encoding(tuple(in_shape), 0.0, 1 / 255, 1 / ticks, ticks)
    sources = [(INPUT, tuple(in_shape))]      # (name, shape) of every spiking source so far
    layers = []

    def weighted(cls_name, reads, out, shape_in, extra, readout=False):
        fan_in = int(np.prod(shape_in)) if cls_name == "dense" else shape_in[0] * extra["kernel"] ** 2
        spread = max(1, int(np.sqrt(fan_in) * limit * ticks / 2))
        b = {"random": rng.integers(-spread, spread + 1, out), "zero": np.zeros(out, np.int64),
             "negative": -rng.integers(1, 4 * spread + 2, out), "large": rng.integers(spread, 8 * spread + 2, out)}[bias]
        high = 2 * max(1, spread // ticks) + 1
        k = None if readout else rng.integers(1, high, out) if per_channel_k else np.full(out, rng.integers(1, high))
        common = (b, k, ticks, 0 if readout else ticks, weight_bits, np.ones(out))
        name_ = "readout" if readout else f"layer{len(layers)}"
        if cls_name == "dense":
            return IntDense(rng.integers(-limit, limit + 1, (out, fan_in)), *common, name=name_, inputs=reads)
        kernel, stride = extra["kernel"], extra["stride"]
        return IntConv2d(rng.integers(-limit, limit + 1, (out, shape_in[0], kernel, kernel)), *common, shape_in,
                         (stride,) * 2, (kernel // 2,) * 2, name=name_, inputs=reads)

    def skip_for(shape):
        """An earlier source that joins a layer reading maps of ``shape`` (its name), or None."""
        if rng.random() >= skips:
            return None
        fits = [(n, s) for n, s in sources[:-1] if len(shape) == 1 or (len(s) == 3 and s[1:] in
                                                                        (shape[1:], tuple(2 * v for v in shape[1:])))]
        if not fits:
            return None
        source, source_shape = fits[rng.integers(len(fits))]
        if len(shape) == 3 and source_shape[1:] != shape[1:]:
            pool = IntMaxPool2d(source_shape, (1, 1), (2, 2), (0, 0), ticks, name=f"subsample{len(layers)}",
                                inputs=(source,))
            layers.append(pool)
            return pool.name, pool.out_shape
        return source, source_shape

    for i, width in enumerate(widths):
        main, shape = sources[-1]
        joined = [(main, shape)] + ([found] if i and (found := skip_for(shape)) else [])
        reads = tuple(n for n, _ in joined)
        if len(in_shape) == 1:
            layer = weighted("dense", reads, width, (sum(int(np.prod(s)) for _, s in joined),), {})
            sources.append((layer.name, (width,)))
        else:
            stride = 2 if width < 0 and len(joined) == 1 and shape[1] >= 2 else 1
            in_ = (sum(s[0] for _, s in joined), *shape[1:])
            layer = weighted("conv", reads, abs(width), in_, {"kernel": 3, "stride": stride})
            sources.append((layer.name, layer.out_shape))
        layers.append(layer)
    main, shape = sources[-1]
    found = skip_for(shape if len(shape) == 1 else (0,))
    joined = [(main, shape)] + ([found] if found else [])
    layers.append(weighted("dense", tuple(n for n, _ in joined), classes, (sum(int(np.prod(s)) for _, s in joined),), {},
                           readout=True))
    return TTFSNet(encoding, layers, name)


def mixed_pixels(rng: np.random.Generator, random_images: int, size: int) -> np.ndarray:
    """``random_images`` random images, then one that gives no input spike and one that saturates."""
    return np.concatenate([random_pixels(rng, random_images, size), random_pixels(rng, 1, size, "zero"),
                           random_pixels(rng, 1, size, "saturate")])


WINDOWS = (1, 2, 3, 4, 8, 16, 32, 64)


def _conv_blocks(rng, shape, count):
    """``count`` random conv blocks (each maybe followed by a max-pool) that fit ``shape``."""
    blocks, (channels, size) = [], (shape[0], shape[1])
    for _ in range(count):
        kernel, stride, padding = int(rng.choice([1, 3, 5])), int(rng.integers(1, 3)), int(rng.integers(0, 3))
        if (size + 2 * padding - kernel) // stride + 1 < 1:
            kernel, stride = 1, 1
        channels = int(rng.integers(1, 9))
        blocks.append(("conv", channels, kernel, stride, padding))
        size = (size + 2 * padding - kernel) // stride + 1
        if size >= 2 and rng.random() < 0.5:
            kernel = int(rng.integers(2, min(3, size) + 1))
            stride = int(rng.integers(1, kernel + 1))
            blocks.append(("pool", kernel, stride))
            size = (size - kernel) // stride + 1
    return blocks, channels * size * size


def random_spec(rng: np.random.Generator) -> dict:
    """A JSON-ready description of a random net and how to build its core, for :func:`net_from_spec`.

    MLPs and CNNs of 1–5 layers (readout included), inputs up to 784 (28×28), windows 1–64 per
    layer, weight bits 2–12, per-layer or per-channel K, every bias kind, convolutions with strides
    and padding, max-pools, an optional hidden dense layer after the convolutions; ``lanes`` in
    ``1..`` the largest fan-out (sometimes exactly it) and ``pixels_per_transfer`` (P) 1, 2, 4 or 8.
    """
    spec = {"seed": int(rng.integers(2**31)), "weight_bits": int(rng.integers(2, 13)),
            "bias": str(rng.choice(BIAS_MODES)), "per_channel_k": bool(rng.random() < 0.5),
            "classes": int(rng.integers(2, 11))}
    if rng.random() < 0.5:
        hidden = int(rng.integers(0, 5))
        inputs = 784 if rng.random() < 0.15 else int(rng.integers(1, 200))
        spec.update(kind="mlp", sizes=[inputs] + [int(rng.integers(1, 65)) for _ in range(hidden)] + [spec["classes"]])
        fan_outs = spec["sizes"][1:]
        spiking = hidden
    else:
        side = 28 if rng.random() < 0.15 else int(rng.integers(4, 13))
        in_shape = [1 if side == 28 else int(rng.integers(1, 4)), side, side]
        blocks, flat = _conv_blocks(rng, in_shape, int(rng.integers(1, 3)))
        if len(blocks) < 4 and rng.random() < 0.3:
            blocks.append(("dense", int(rng.integers(2, 33))))
        spec.update(kind="cnn", in_shape=in_shape, blocks=[list(b) for b in blocks])
        fan_outs = [b[1] for b in blocks if b[0] != "pool"] + [spec["classes"]]
        spiking = sum(b[0] != "pool" for b in blocks)
    spec["ticks"] = [int(rng.choice(WINDOWS)) for _ in range(spiking + 1)]
    widest = max(fan_outs)
    spec["lanes"] = int(rng.choice([1, widest, int(rng.integers(1, widest + 1))]))
    inputs = spec["sizes"][0] if spec["kind"] == "mlp" else int(np.prod(spec["in_shape"]))
    spec["pixels_per_transfer"] = min(inputs, int(rng.choice([1, 1, 2, 4, 8])))
    return spec


def random_graph_spec(rng: np.random.Generator) -> dict:
    """As :func:`random_spec`, a random residual net (:func:`random_graph`): dense or conv, 1–4
    hidden layers, one window 1–16, inputs up to 12×12 (or 200 features)."""
    spec = {"seed": int(rng.integers(2**31)), "weight_bits": int(rng.integers(2, 13)),
            "bias": str(rng.choice(BIAS_MODES)), "per_channel_k": bool(rng.random() < 0.5),
            "classes": int(rng.integers(2, 11))}
    hidden = int(rng.integers(1, 5))
    spec["ticks"] = [int(rng.choice(WINDOWS[:6]))] * (hidden + 1)     # one window: the branches of an add share it
    if rng.random() < 0.5:
        spec.update(kind="graph", in_shape=[int(rng.integers(1, 200))], widths=[int(rng.integers(1, 33)) for _ in range(hidden)])
    else:
        side = int(rng.integers(4, 13))
        spec.update(kind="graph", in_shape=[int(rng.integers(1, 3)), side, side],
                    widths=[int(rng.integers(1, 9)) * int(rng.choice([1, 1, -1])) for _ in range(hidden)])
    widest = max([abs(w) for w in spec["widths"]] + [spec["classes"]])
    spec["lanes"] = int(rng.choice([1, widest, int(rng.integers(1, widest + 1))]))
    spec["pixels_per_transfer"] = min(int(np.prod(spec["in_shape"])), int(rng.choice([1, 1, 2, 4, 8])))
    return spec


def net_from_spec(spec: dict) -> TTFSNet:
    """The net :func:`random_spec` or :func:`random_graph_spec` describes, built from its own ``seed``
    (the same net every time)."""
    rng = np.random.default_rng(spec["seed"])
    name = f"{spec['kind']}{spec['seed']}"
    if spec["kind"] == "graph":
        return random_graph(rng, tuple(spec["in_shape"]), spec["widths"], spec["classes"], spec["ticks"][0],
                            spec["weight_bits"], spec["bias"], spec["per_channel_k"], name=name)
    if spec["kind"] == "mlp":
        return random_net(rng, spec["sizes"], spec["ticks"][:len(spec["sizes"]) - 1], spec["weight_bits"], spec["bias"],
                          spec["per_channel_k"], name=name)
    return random_cnn(rng, tuple(spec["in_shape"]), [tuple(b) for b in spec["blocks"]], spec["classes"], spec["ticks"],
                      spec["weight_bits"], spec["bias"], name, spec["per_channel_k"])


def campaign_pixels(rng: np.random.Generator, count: int, size: int) -> np.ndarray:
    """``count`` ≥ 6 images in random order: two with no spike, two saturating, a tenth (at least
    two) with a single pixel lit, the rest random."""
    single = max(2, count // 10)
    images = np.concatenate([random_pixels(rng, 2, size, "zero"), random_pixels(rng, 2, size, "saturate"),
                             random_pixels(rng, single, size, "single"), random_pixels(rng, count - 4 - single, size)])
    return images[rng.permutation(count)]


def extreme_case(net: TTFSNet, index: int) -> tuple[TTFSNet, np.ndarray]:
    """A copy of ``net`` and one image that drive weighted layer ``index``'s accumulator to both of
    its derived bounds (:func:`~hdlgen.ttfs.layer_bounds` of the returned net).

    The image saturates every pixel, so every input activation is ``T0``. Every weighted layer
    before ``index`` gets biases ``K·T − ticks_in·Σ min(W, 0)``, so each of its neurons fires at
    ``q = T`` whatever its inputs: layer ``index`` sees ``q = ticks_in`` on every input. Its neuron
    with the largest ``B + ticks_in·Σ|W|`` gets the row ``|W|`` (its sum is then the positive
    bound), another with the least ``B − ticks_in·Σ|W|`` the row ``−|W|`` (the negative bound), and
    the first one's bias is raised to at least that bound so it stays the least partial sum. A
    hidden layer ``index`` gets ``K = 1``, so an accumulator that wrapped changes its spikes. A
    convolution reaches the bounds at output positions whose window lies inside the map.
    Raises :class:`ValueError` when layer ``index`` has a single output unit (channel for a
    convolution) or, for a convolution, no window inside the map on some axis.
    """
    net = copy.deepcopy(net)
    for layer in net.layers[:index]:
        if layer.has_weights:
            negative = np.clip(layer.weight_matrix(), None, 0).sum(axis=1) * layer.ticks_in
            layer.bias = layer.k * layer.ticks - negative
    layer = net.layers[index]
    w = layer.weight_matrix()
    if len(w) < 2:
        raise ValueError(f"layer {layer.name!r} has a single unit: one image cannot reach both bounds")
    if layer.kind == "conv2d" and not all(
            any(0 <= o * stride - pad and o * stride - pad + kernel <= size for o in range(out))
            for size, kernel, stride, pad, out in zip(layer.in_shape[1:], layer.kernel, layer.stride, layer.padding,
                                                     layer.out_shape[1:])):
        raise ValueError(f"layer {layer.name!r}: no window lies inside the map, so no sum reaches the bounds")
    reach = np.abs(w).sum(axis=1) * layer.ticks_in
    top = int(np.argmax(layer.bias + reach))
    others = np.delete(np.arange(len(w)), top)
    bottom = int(others[np.argmin((layer.bias - reach)[others])])
    w[top], w[bottom] = np.abs(w[top]), -np.abs(w[bottom])
    layer.weight = w.reshape(layer.weight.shape)
    layer.bias[top] = max(layer.bias[top], layer.bias[bottom] - reach[bottom])
    if not layer.readout:
        layer.k = np.ones_like(layer.k)
    return net, np.full((1, net.input.size), 255, np.uint8)


def extreme_ticks(net: TTFSNet) -> np.ndarray:
    """One image whose input spikes span the whole input window: even pixels at the smallest byte
    giving ``q0 = 1`` (a spike at the last tick, ``T0 − 1``), odd pixels at 255 (``q0 = T0``, tick 0)."""
    image = np.full((1, net.input.size), 255, np.uint8)
    image[0, ::2] = int(np.argmax(net.input.table >= 1))
    return image
