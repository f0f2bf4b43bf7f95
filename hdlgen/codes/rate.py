"""Rate coding with threshold balancing, soft reset and the θ/2T shift (Deng & Gu 2021) as an
integer golden model.

Integrate-and-fire neurons run ``T`` steps, every layer in the same step:
``v(t) = v(t−1) + W s(t) + b + θ/(2T)``; a neuron spikes when ``v ≥ θ`` and then loses ``θ``
(soft reset); its value is its spike count ``n ∈ 0..T`` (real value ``θ·n/T``). ``θ_ℓ`` is the
layer's calibrated activation maximum (threshold balancing), and a spike carries ``θ_ℓ`` to the
next layer. With a constant drive ``z`` the count is Deng & Gu's quantized clipped ReLU
``clamp(floor((z + θ/2T) / (θ/T)), 0, T)``: the shift turns flooring into rounding.

In the integers of the TTFS contract (docs/design.md §2): the TTFS conversion at ``T`` ticks without
rounding gives the weights ``W``, biases ``B`` (accumulator units ``σ``) and threshold steps
``K_ℓ`` with ``θ_ℓ/T = K_ℓ·σ`` – one spike is worth one tick of the TTFS window. Counted in half
accumulator units (so the shift ``θ/2T = K/2`` is an integer), a hidden neuron's step is

    v += 2T·Σ_j W_ij s_j(t) + 2B_i + K_i        (the K_i only with the shift)
    s_i(t) = v ≥ 2T·K_i;  soft reset: v −= 2T·K_i,  hard reset: v = 0

Over ``T`` steps with no clipping this counts ``floor((A + K/2) / K)`` with ``A = B + Σ_j W_ij n_j``
– the TTFS activation with rounding. The input layer sends each pixel's ``q0 ∈ 0..T`` (the TTFS
input table at ``T``) as a regular train of exactly ``q0`` spikes (an IF neuron with drive ``q0``
and threshold ``T``). A max-pool spikes whenever the largest spike count so far in its window
grows, so it passes ``max(window)`` spikes, at most one a step. The readout integrates and never
spikes: its logits are ``B + Σ_j W_ij n_j`` (its potential after ``T`` steps, over ``T``).

The ablations: ``shift=False`` drops ``θ/2T`` (counts floor), ``soft_reset=False`` resets to 0
(the charge above threshold is lost).

Two forms that agree on every value: :func:`run_batch` (a batch, step by step, all neurons at
once) and :func:`run_events` (one image, every input spike adding its weights).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import UserError
from ..golden import EventResult
from ..ttfs import TTFSNet

__all__ = ["RateNet", "RateResult", "integrate_and_fire", "run_batch", "run_events"]


@dataclass
class RateNet:
    """A converted net run as a rate code.

    Parameters
    ----------
    net : TTFSNet
        The TTFS conversion with every window ``T`` (the steps) and rounding off (the shift is
        this code's rounding), calibrated at the activation maximum for threshold balancing.
    shift : bool
        Add ``θ/2T`` every step (Deng & Gu); ``False`` is the no-shift ablation.
    soft_reset : bool
        Subtract ``θ`` on a spike; ``False`` is the hard-reset ablation (back to 0).

    Members
    -------
    steps : int
        ``T``.

    Raises
    ------
    UserError
        If the windows differ or the net was converted with rounding.
    """

    net: TTFSNet
    shift: bool = True
    soft_reset: bool = True

    def __post_init__(self):
        if len(set(self.net.ticks)) != 1:
            raise UserError(f"a rate net runs every layer for the same T steps, got windows {self.net.ticks}")
        if self.net.meta.get("rounding", False):
            raise UserError("a rate net needs a conversion without rounding: the θ/2T shift is its rounding")
        self.steps = self.net.ticks[0]

    def drive(self, layer, weighted: np.ndarray) -> np.ndarray:
        """A hidden layer's per-step increment (half accumulator units) from ``Σ_j W_ij s_j(t)``."""
        bias = np.repeat(layer.bias, layer.fan_out // len(layer.bias))
        return 2 * self.steps * weighted + 2 * bias + (layer.k_per_neuron() if self.shift else 0)

    def threshold(self, layer) -> np.ndarray:
        """``θ`` per neuron in half accumulator units: ``2T·K``."""
        return 2 * self.steps * layer.k_per_neuron()


@dataclass
class RateResult:
    """``counts[0]`` the input's spike counts, ``counts[l]`` hidden layer ``l``'s; all (N, size)."""

    counts: list
    logits: np.ndarray
    classes: np.ndarray


def integrate_and_fire(v: np.ndarray, drive, threshold, soft_reset: bool = True) -> np.ndarray:
    """One step of integrate-and-fire neurons, in place on their potentials ``v``: add ``drive``,
    spike where ``v ≥ threshold``, then subtract it (soft reset) or set ``v`` to 0 (hard)."""
    v += drive
    spikes = v >= threshold
    if soft_reset:
        v -= np.where(spikes, threshold, 0)
    else:
        v[spikes] = 0
    return spikes


def run_batch(rate: RateNet, pixels: np.ndarray) -> RateResult:
    """Batch form: pixel bytes (N, input size) → spike counts of every spiking layer, logits, classes."""
    net, steps = rate.net, rate.steps
    q0 = net.input.q(np.asarray(pixels).reshape(len(pixels), -1))
    hidden = net.layers[:-1]
    sizes = net.sizes[:-1]
    v = [np.zeros((len(q0), size), dtype=np.int64) for size in sizes]
    counts = [np.zeros_like(state) for state in v]
    pooled = {i: np.zeros((len(q0), layer.fan_out), dtype=np.int64) for i, layer in enumerate(hidden)
              if not layer.has_weights}
    fired = [None] * len(sizes)      # this step's spikes of every source
    for _ in range(steps):
        fired[0] = integrate_and_fire(v[0], q0, steps)
        counts[0] += fired[0]
        for i, layer in enumerate(hidden):
            if layer.has_weights:
                weighted = layer.accumulate(net.gather(fired, i)) - np.repeat(layer.bias, layer.fan_out // len(layer.bias))
                s = integrate_and_fire(v[i + 1], rate.drive(layer, weighted), rate.threshold(layer), rate.soft_reset)
            else:
                biggest = layer.forward(net.gather(counts, i))   # the max-pool of activations, here of counts
                s, pooled[i] = biggest > pooled[i], biggest
            fired[i + 1] = s
            counts[i + 1] += s
    logits = net.layers[-1].accumulate(net.gather(counts, len(hidden)))
    return RateResult(counts, logits, np.argmax(logits, axis=1))


def _weighted_sum(layer, neurons) -> np.ndarray:
    """``Σ_j W_ij`` over the input ``neurons`` that spiked, input by input, (unit, position) order."""
    matrix = layer.weight_matrix()
    total = np.zeros((len(matrix), layer.fan_out // len(matrix)), dtype=np.int64)
    for neuron in neurons:
        for position, column in layer.positions_of(neuron):
            total[:, position] += matrix[:, column]
    return total.reshape(-1)


def _pool_windows(layer) -> list:
    """Per input neuron of a max-pool, the windows it is in."""
    c_in, h, w = layer.in_shape
    _, oh, ow = layer.out_shape
    (kh, kw), (sy, sx), (py, px) = layer.kernel, layer.stride, layer.padding
    return [[(c * oh + oy) * ow + ox for oy in range(oh) for ox in range(ow)
             if 0 <= y + py - oy * sy < kh and 0 <= x + px - ox * sx < kw]
            for c in range(c_in) for y in range(h) for x in range(w)]


def run_events(rate: RateNet, pixels: np.ndarray) -> EventResult:
    """Event form of one image (pixel bytes of length input size): every layer's ``(neuron, step)``
    spikes, the logits and the class."""
    net, steps = rate.net, rate.steps
    q0 = net.input.q(np.asarray(pixels).reshape(-1))
    hidden = net.layers[:-1]
    v = [np.zeros(size, dtype=np.int64) for size in net.sizes[:-1]]
    pools = {i: (_pool_windows(layer), np.zeros(layer.fan_in, dtype=np.int64), np.zeros(layer.fan_out, dtype=np.int64))
             for i, layer in enumerate(hidden) if not layer.has_weights}
    spikes = [[] for _ in v]
    readout = net.layers[-1]
    logits = np.repeat(readout.bias, readout.fan_out // len(readout.bias))
    def gathered(fired, l):     # this step's spiking inputs of layer l, in the concatenation it reads
        return np.concatenate([fired[j] + start for j, start in zip(net.sources(l), net.offsets(l))])

    fired = [None] * len(v)
    for step in range(steps):
        fired[0] = np.flatnonzero(integrate_and_fire(v[0], q0, steps))
        spikes[0] += [(int(n), step) for n in fired[0]]
        for i, layer in enumerate(hidden):
            if layer.has_weights:
                s = integrate_and_fire(v[i + 1], rate.drive(layer, _weighted_sum(layer, gathered(fired, i))),
                                       rate.threshold(layer), rate.soft_reset)
                fired[i + 1] = np.flatnonzero(s)
            else:
                windows, seen, biggest = pools[i]
                out = set()
                for neuron in gathered(fired, i):
                    seen[neuron] += 1
                    for window_index in windows[neuron]:
                        if seen[neuron] > biggest[window_index]:
                            biggest[window_index] = seen[neuron]
                            out.add(window_index)
                fired[i + 1] = np.array(sorted(out), dtype=np.int64)
            spikes[i + 1] += [(int(n), step) for n in fired[i + 1]]
        logits = logits + _weighted_sum(readout, gathered(fired, len(hidden)))
    return EventResult(spikes, logits, int(np.argmax(logits)))
