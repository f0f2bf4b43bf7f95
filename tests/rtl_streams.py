"""Stream driver/monitor helpers and random test nets for the Amaranth-simulator RTL tests."""

import numpy as np

from hdlgen.ttfs import IntDense, InputEncoding, TTFSNet

__all__ = ["random_net", "send", "receive"]


def random_net(rng, sizes, ticks, weight_bits=4, shared_k=True, name="net"):
    """A TTFS net with random integer weights; biases and K chosen so that layers spike."""
    table = np.minimum(np.arange(256) * (ticks[0] + 1) // 256, ticks[0])
    enc = InputEncoding((sizes[0],), 0.0, 1.0, 1.0, ticks[0], table)
    limit = (1 << (weight_bits - 1)) - 1
    layers = []
    for l, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        readout = l == len(sizes) - 2
        w = rng.integers(-limit, limit + 1, (fan_out, fan_in))
        t_in = ticks[l]
        b = rng.integers(-limit * t_in, limit * t_in + 1, fan_out)
        if readout:
            k, t = None, 0
        else:
            base = max(1, int(limit * t_in * np.sqrt(fan_in) / (2 * ticks[l + 1])))
            k = np.full(fan_out, base) if shared_k else rng.integers(1, 2 * base + 1, fan_out)
            t = ticks[l + 1]
        layers.append(IntDense(w, b, k, t_in, t, weight_bits, np.ones(fan_out), name=f"layer{l}"))
    return TTFSNet(enc, layers, name=name)


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
