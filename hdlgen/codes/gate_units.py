"""AMOS units for any activation: ``K`` units that each fire at most once emulate a gate ``f``.

A neuron's units run in order on its integer potential ``P`` (the accumulator ``A`` plus a shift that
sits in the bias): ``v_0 = P``, ``z_k = [v_k ≥ T_k]``, ``v_{k+1} = v_k − h_k·z_k``, and the neuron's
value is ``y = c + Σ_k d_k·z_k`` in output units (Stöckl & Maass's FS-neuron with ``T``, ``h`` in
potential units and ``d``, ``c`` in output units, all integers). A spike of unit ``k`` carries
``d_k`` to the next layer.

**ReLU** (:func:`binary_units`): one binary quantizer, ``T_k = h_k = S·2^(K−1−k)``, ``d_k = 2^(K−1−k)``,
``c = 0``, shift ``floor(S/2)``: ``y = clamp(floor((A + floor(S/2)) / S), 0, 2^K − 1)``, the AMOS code
of :mod:`hdlgen.codes.amos`.

**Any other gate** (:func:`fit_units`), over the calibrated input range ``[lo, hi]``: the range is cut
into up to three *lanes* ``[a_i, a_{i+1})``; lane ``i`` gets ``m_i`` of the ``K`` units, a binary
quantizer of step ``S_i`` (``h = S_i·2^(m_i−1−j)``, ``T = a_i + h``) that counts the cells of
``clip(x, a_i, a_{i+1}) − a_i``. The units run top lane first: a lane fires none of its units below
its start, and above its end it fires them all and leaves a residual in ``[a_i, a_i + S_i)``, so every
lane below it fires all its units too. The lowest lane rounds (its cells centred on its steps), the
others floor. The value is then piecewise linear in ``x`` with a kink at each lane edge, quantized
in each lane to ``2^(m_i)`` cells: ``y = c + Σ_i g_i·code_i``. The lanes (edges at twelfths of the
range, bits per lane, then refined by small moves) and ``c``, ``g_i`` are fitted either to the least
maximum error over the range (least squares, then Lawson's reweighting), or, given the potentials the
calibration data gives, to the least mean square error over them (as Stöckl & Maass fit their units
to the inputs they see). Below ``lo`` no unit fires (``y = c``); above ``hi`` all do.

The error of a gate is measured, not estimated: :func:`max_error` evaluates the integer units at
every integer potential of the range (at most :data:`GRID` of them, evenly spread, beyond).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from ..errors import UserError

__all__ = ["MAX_GATE_BITS", "GRID", "Units", "binary_units", "fit_units", "fire_units", "max_error"]

MAX_GATE_BITS = 16   # lanes of 2^16 cells and output weights 2^4 finer than a cell stay far inside 64 bits
GRID = 1 << 20       # potentials a gate's error is measured at, at most
_SEARCH = 513        # potentials the lane search fits at
_EDGES = 12          # lane edges are tried at the range's twelfths
_LAWSON = 30         # reweighting rounds of the chosen lanes' fit, towards the least maximum error
_FINER = 16          # an output unit: the finest lane's step of value / 16, so the other lanes' weights round finely
_RANGE = 256         # ... among the lanes' steps within 1/256 of the steepest (flatter ones round to few units)


@dataclass
class Units:
    """The ``K`` units of every neuron of a layer.

    Members
    -------
    thresholds, subtract : ndarray (rows, K)
        ``T`` and ``h`` on the potential ``P = A + shift`` (one row per neuron, or one for all).
    shift : ndarray (units,) or (1,)
        What the bias of each output unit gains so that the units read ``P`` (ReLU's round to nearest
        ``floor(S/2)``).
    weights : ndarray (K,)
        ``d``: output units each spike carries.
    offset : int
        ``c``: the value when no unit fires.
    scale : float or ndarray (rows,)
        The real value of one output unit.
    lanes : list
        ``(base, step, bits)`` of each lane on the potential ``A``, lowest first: where its cells start, their
        width, its units (empty for ReLU's binary units).
    """

    thresholds: np.ndarray
    subtract: np.ndarray
    weights: np.ndarray
    offset: int
    shift: np.ndarray
    scale: float
    lanes: list

    @property
    def bits(self) -> int:
        return len(self.weights)

    def value(self, z: np.ndarray) -> np.ndarray:
        """``c + Σ_k d_k·z_k`` of spikes ``z`` (…, K)."""
        return self.offset + z.astype(np.int64) @ self.weights


def binary_units(step: np.ndarray, bits: int, rounding: bool, scale, positions: int = 1) -> Units:
    """ReLU's units for threshold steps ``step`` (per output unit, each at ``positions`` neurons: a
    convolution's) whose output unit is worth ``scale``: the binary expansion (module docstring), rounding to
    nearest or flooring."""
    step = np.asarray(step, dtype=np.int64)
    powers = np.int64(1) << np.arange(bits - 1, -1, -1, dtype=np.int64)
    thresholds = np.repeat(step, positions)[:, None] * powers[None, :]
    shift = step // 2 if rounding else 0 * step
    return Units(thresholds, thresholds.copy(), powers, 0, shift, scale, [])


def fire_units(potential: np.ndarray, units: Units) -> np.ndarray:
    """Spikes ``z`` (…, n, K) of potentials ``P`` (…, n), already shifted: units in order, each once."""
    v = np.array(potential, dtype=np.int64)
    z = np.zeros(v.shape + (units.bits,), dtype=bool)
    for k in range(units.bits):
        z[..., k] = v >= units.thresholds[:, k]
        v = v - units.subtract[:, k] * z[..., k]
    return z


def _lane_units(bases, steps, bits):
    """``(T, h)`` of lanes whose cells start at ``bases`` (on ``P``, lowest first), top lane first."""
    thresholds, subtract = [], []
    for base, step, m in reversed(list(zip(bases, steps, bits))):
        h = step * (np.int64(1) << np.arange(m - 1, -1, -1, dtype=np.int64))
        thresholds.append(base + h)
        subtract.append(h)
    return np.concatenate(thresholds)[None, :], np.concatenate(subtract)[None, :]


def _codes(z, bits):
    """Each lane's code (cells counted) from spikes ``z`` (points, K), lanes lowest first, units top lane first."""
    codes, first = [], 0
    for m in reversed(bits):
        codes.append(z[:, first:first + m] @ (1 << np.arange(m - 1, -1, -1)))
        first += m
    return np.column_stack(codes[::-1])


def _bases(low, edges, high, bits):
    """Integer ``(bases, steps)`` of lanes between the edges (lowest first): lane ``i``'s cells start at
    ``bases[i]``, ``2^m − 1`` of them before the next lane's; the lowest starts half a step below ``low``, so
    its cells are centred on its steps (ReLU's round to nearest)."""
    bases, steps = [], []
    for i, ((a, b), m) in enumerate(zip(itertools.pairwise([low, *edges, high]), bits)):
        step = max(1, round((b - a) / ((1 << m) - 1)))
        bases.append(bases[-1] + steps[-1] * ((1 << bits[i - 1]) - 1) if i else low - step // 2)
        steps.append(step)
    return bases, steps


def _chain(codes, target, iterations):
    """``(c, g)`` of ``y = c + Σ_i g_i·code_i`` closest to ``target``: least squares, then Lawson's reweighting
    towards the least maximum error (``iterations`` rounds); the best maximum seen."""
    columns = np.column_stack([np.ones(len(codes)), codes])
    weight, best = np.ones(len(codes)), None
    for _ in range(iterations + 1):
        root = np.sqrt(weight)
        solution, *_ = np.linalg.lstsq(columns * root[:, None], target * root, rcond=None)
        residual = np.abs(columns @ solution - target)
        if best is None or residual.max() < best[1]:
            best = solution, residual.max()
        weight = weight * residual
        weight = weight / weight.sum() if weight.sum() > 0 else np.ones(len(codes))
    return best


def _fit(f, sigma, low, high, edges, bits, points, iterations=0, rms=False):
    """Units, and their maximum (or with ``rms`` their RMS) error at ``points`` (potentials), for lanes with
    ``edges`` and ``bits``."""
    bases, steps = _bases(low, edges, high, bits)
    shift = -bases[0]
    thresholds, subtract = _lane_units([b + shift for b in bases], steps, bits)
    probe = Units(thresholds, subtract, np.zeros(sum(bits), np.int64), 0, np.array([shift]), 1.0, [])
    z = fire_units(points + shift, probe)
    target = f(points * sigma)
    solution, _ = _chain(_codes(z, bits), target, iterations)
    offset, per_code = solution[0], solution[1:]
    steepest = float(np.abs(per_code).max(initial=0.0))
    finest = float(np.abs(per_code)[np.abs(per_code) >= steepest / _RANGE].min()) if steepest else 1.0
    scale = finest / _FINER
    weights = np.concatenate([np.round(g / scale * (1 << np.arange(m - 1, -1, -1))) for g, m in
                              zip(per_code[::-1], bits[::-1])]).astype(np.int64)
    units = Units(thresholds, subtract, weights, int(round(offset / scale)), np.array([shift]), scale,
                  list(zip(bases, steps, bits)))
    residual = np.abs(units.value(z) * scale - target)
    return units, float(np.sqrt(np.mean(residual ** 2)) if rms else residual.max())


def _allocations(bits, lanes):
    """Ways to give ``bits`` units to ``lanes`` lanes, each at least one."""
    return [tuple(b - a for a, b in itertools.pairwise([0, *cut, bits]))
            for cut in itertools.combinations(range(1, bits), lanes - 1)]


def fit_units(f, sigma: float, low: int, high: int, bits: int, samples=None) -> Units:
    """The units (module docstring) emulating ``f`` (real → real) on potentials ``low..high`` of real value
    ``sigma`` each: of least maximum error over the range, or with ``samples`` (the potentials the data
    gives) of least mean square error over them, so the units go where the inputs lie."""
    if not 1 <= bits <= MAX_GATE_BITS:
        raise UserError(f"AMOS units for an activation other than ReLU: 1..{MAX_GATE_BITS} per neuron, got {bits}")
    high = max(high, low + 1)
    points = np.unique(np.linspace(low, high, _SEARCH).round().astype(np.int64))
    rms = samples is not None
    if rms:
        points = np.quantile(np.clip(samples, low, high), np.linspace(0, 1, _SEARCH)).round().astype(np.int64)
    candidates = np.unique(np.round(low + (high - low) * np.arange(1, _EDGES) / _EDGES).astype(np.int64))
    best = None
    for lanes in range(1, min(3, bits) + 1):
        for edges in itertools.combinations(candidates, lanes - 1):
            for allocation in _allocations(bits, lanes):
                error = _fit(f, sigma, low, high, list(edges), list(allocation), points, rms=rms)[1]
                if best is None or error < best[0] - 1e-12:
                    best = error, list(edges), list(allocation)
    _, edges, allocation = _refine(f, sigma, low, high, best[1], best[2], points, rms)
    return _fit(f, sigma, low, high, edges, allocation, points, 0 if rms else _LAWSON)[0]


def _refine(f, sigma, low, high, edges, allocation, points, rms):
    """The lanes moved towards a smaller maximum error (after a few reweighting rounds): each edge by a
    twenty-fourth, a forty-eighth, a ninety-sixth of the range, or one unit from a lane to its neighbour,
    while a move helps."""
    def error(e, a):
        inside = all(low < x < high for x in e) and list(e) == sorted(set(e)) and min(a) >= 1
        return _fit(f, sigma, low, high, list(e), list(a), points, 0 if rms else 4, rms)[1] if inside else np.inf

    best = error(edges, allocation), list(edges), list(allocation)
    improved = True
    while improved:
        improved = False
        moves = [(i, round((high - low) * sign / parts), None) for parts in (24, 48, 96) for sign in (-1, 1)
                 for i in range(len(edges))]
        moves += [(None, None, (i, j)) for i in range(len(allocation)) for j in range(len(allocation)) if abs(i - j) == 1]
        for edge, delta, shift in moves:
            e, a = list(best[1]), list(best[2])
            if shift is None:
                e[edge] += delta
            else:
                a[shift[0]] -= 1
                a[shift[1]] += 1
            candidate = error(e, a)
            if candidate < best[0] - 1e-12:
                best, improved = (candidate, e, a), True
    return best


def max_error(f, sigma: float, low: int, high: int, units: Units) -> float:
    """``max |scale·y(P) − f(A·σ)|`` over the potentials ``A`` in ``low..high`` (all of them, or :data:`GRID`
    evenly spread), ``units`` with one row."""
    points = np.unique(np.linspace(low, high, min(GRID, high - low + 1)).round().astype(np.int64))
    z = fire_units(points + units.shift[0], units)
    return float(np.max(np.abs(units.value(z) * units.scale - f(points * sigma))))
