"""AMOS – "at most one spike" per unit (Stöckl & Maass 2021) – as an integer golden model.

AMOS emulates each ReLU by ``K`` units that fire at most once: ``v_1 = x``,
``z_k = H(v_k − T_k)``, ``v_{k+1} = v_k − h_k z_k``, ``y = Σ_k d_k z_k``. For ReLU the fitted
solution is the binary expansion ``h_k = d_k = T_k = α·2^−k``: ``y`` is ``x`` written with ``K``
bits, and each set bit is one spike, in step ``k``, carrying weight ``2^(K−k)`` to the next layer.

In the integers of the TTFS contract (docs/design.md §2) a neuron has the potential
``A = B + Σ_j W_ij q_j`` and the threshold step ``K_ℓ`` of its layer; unit ``k`` has threshold
``K_ℓ·2^(K−k)`` (:func:`fire`), so the neuron's value is

    q = Σ_k 2^(K−k) z_k = clamp(floor(A / K_ℓ), 0, 2^K − 1),

the TTFS activation of a window ``T = 2^K − 1``. An AMOS net is therefore the TTFS conversion at
``T = 2^K − 1`` (:func:`window`: same calibration, weight quantization and ``K_ℓ``) read out as
bits instead of spike times (the conversion's round-to-nearest offset ``floor(K_ℓ/2)``, on by
default, sits in ``B`` as for TTFS), and its two golden forms are:

* batch: :func:`hdlgen.golden.run_batch` of :attr:`AMOSNet.net` (``q`` is the units' value), with
  :func:`spike_counts` (``popcount(q)``) for the spikes;
* :func:`run_events`: one image, unit by unit – a layer's input spike ``(j, k)`` adds
  ``W_ij·2^(K−1−k)`` (steps counted from 0), its units fire by subtraction, a max-pool is a
  bit-serial maximum, most significant bit first.

Layers run one after another, ``K`` steps each (a layer's units fire once its input is complete),
so an image takes ``K`` steps per spiking layer (input and hidden; a max-pool works in its
input's steps).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from ..errors import UserError
from ..golden import EventResult
from ..ttfs import InputEncoding, TTFSNet

__all__ = ["MAX_BITS", "AMOSNet", "window", "step_net", "fire", "spike_counts", "spike_list", "bit_serial_max",
           "run_events"]

MAX_BITS = 32   # the window 2^K − 1 and the potentials it gives stay within 64-bit integers


def window(bits: int) -> int:
    """The TTFS window with the AMOS activations of ``bits`` units: ``2^bits − 1``."""
    if not 1 <= bits <= MAX_BITS:
        raise UserError(f"AMOS needs 1..{MAX_BITS} units per neuron (its values are 64-bit integers), got {bits}")
    return (1 << bits) - 1


@dataclass
class AMOSNet:
    """A converted net read as AMOS.

    Parameters
    ----------
    net : TTFSNet
        The TTFS conversion with every window ``2^bits − 1`` (:func:`window`).

    Members
    -------
    bits : int
        ``K``, the units (steps) per neuron.

    Raises
    ------
    UserError
        If the windows differ or are not ``2^K − 1``, or a potential could leave 62 bits.
    """

    net: TTFSNet

    def __post_init__(self):
        self.bits = (self.net.input.ticks + 1).bit_length() - 1
        if any(ticks != (1 << self.bits) - 1 for ticks in self.net.ticks):
            raise UserError(f"an AMOS net needs every window 2^K − 1 for one K, got {self.net.ticks}")
        widest = max(layer.widths()["accumulator"] for layer in self.net.layers if layer.has_weights)
        if widest > 62:
            raise UserError(f"AMOS with {self.bits} units: potentials need {widest} bits, more than 64-bit "
                            "integers hold; use fewer units")

    def step_net(self) -> TTFSNet:
        return step_net(self.net, self.bits)


def step_net(net: TTFSNet, steps: int) -> TTFSNet:
    """``net``'s layers with every window ``steps`` long: what an event-driven engine walks for an
    AMOS code of ``steps`` units, for :mod:`hdlgen.cycles` (which reads sizes, spike costs and windows only)."""
    enc = net.input
    encoding = InputEncoding(enc.shape, enc.offset, enc.pixel_scale, enc.scale, steps, np.minimum(enc.table, steps))
    layers = []
    for layer in net.layers:
        if not layer.has_weights:
            layers.append(dataclasses.replace(layer, ticks=steps))
        else:
            layers.append(dataclasses.replace(layer, ticks_in=steps, ticks=0 if layer.readout else steps))
    return TTFSNet(encoding, layers, net.name, net.meta)


def fire(potential: np.ndarray, k: np.ndarray, bits: int) -> np.ndarray:
    """The ``bits`` AMOS units of each neuron: integer potentials ``(…, n)`` and threshold steps
    ``k`` ``(n,)`` → spikes ``(…, n, bits)`` (bool), unit ``j`` (step ``j``, from 0) with threshold
    ``k·2^(bits−1−j)``, each unit subtracting its threshold when it fires."""
    v = np.array(potential, dtype=np.int64)
    z = np.zeros(v.shape + (bits,), dtype=bool)
    for j in range(bits):
        threshold = np.asarray(k, dtype=np.int64) << (bits - 1 - j)
        z[..., j] = v >= threshold
        v = v - threshold * z[..., j]
    return z


def spike_counts(q: np.ndarray) -> np.ndarray:
    """Spikes of neurons with AMOS values ``q``: one per set bit."""
    return np.bitwise_count(np.asarray(q, dtype=np.int64)).astype(np.int64)


def spike_list(z: np.ndarray) -> list:
    """``(neuron, step)`` of every fired unit of ``z`` (n, bits), by step then neuron."""
    steps, neurons = np.nonzero(z.T)
    return [(int(n), int(s)) for n, s in zip(neurons, steps)]


def _integrate(layer, spikes, bits: int) -> np.ndarray:
    """``A = B + Σ W_ij·2^(bits−1−k)`` over the input spikes ``(j, k)``, spike by spike, neurons in
    (unit, position) order."""
    matrix = layer.weight_matrix()
    positions = layer.fan_out // len(matrix)
    potential = np.repeat(layer.bias, positions).reshape(len(matrix), positions)
    for neuron, step in spikes:
        for position, column in layer.positions_of(neuron):
            potential[:, position] += matrix[:, column] << (bits - 1 - step)
    return potential.reshape(-1)


def _window_members(layer) -> list:
    """Per pooling window, the input neurons inside it (padding, which never spikes, left out)."""
    c_in, h, w = layer.in_shape
    _, oh, ow = layer.out_shape
    (kh, kw), (sy, sx), (py, px) = layer.kernel, layer.stride, layer.padding
    return [{(c * h + y) * w + x
             for y in range(oy * sy - py, oy * sy - py + kh) for x in range(ox * sx - px, ox * sx - px + kw)
             if 0 <= y < h and 0 <= x < w}
            for c in range(c_in) for oy in range(oh) for ox in range(ow)]


def bit_serial_max(layer, spikes, bits: int) -> list:
    """Max-pool of binary numbers sent most significant bit first: a window fires in step ``k``
    when one of its inputs still in the running does; the inputs that did not are out."""
    by_step = [set() for _ in range(bits)]
    for neuron, step in spikes:
        by_step[step].add(neuron)
    running = _window_members(layer)
    out = []
    for step, fired in enumerate(by_step):
        for window_index, members in enumerate(running):
            hits = members & fired
            if hits:
                out.append((window_index, step))
                running[window_index] = hits
    return out


def run_events(amos: AMOSNet, pixels: np.ndarray) -> EventResult:
    """Event form of one image (pixel bytes of length input size): every layer's ``(neuron, step)``
    spikes, the logits and the class. The input neurons are units of threshold step 1 on ``q0``."""
    net, bits = amos.net, amos.bits
    q0 = net.input.q(np.asarray(pixels).reshape(-1))
    spikes = [spike_list(fire(q0, np.ones(len(q0), dtype=np.int64), bits))]
    for l, layer in enumerate(net.layers[:-1]):
        inputs = net.gather_spikes(spikes, l)
        if layer.has_weights:
            spikes.append(spike_list(fire(_integrate(layer, inputs, bits), layer.k_per_neuron(), bits)))
        else:
            spikes.append(bit_serial_max(layer, inputs, bits))
    logits = _integrate(net.layers[-1], net.gather_spikes(spikes, len(net.layers) - 1), bits)
    return EventResult(spikes, logits, int(np.argmax(logits)))
