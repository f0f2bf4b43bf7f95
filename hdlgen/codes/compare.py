"""TTFS, AMOS and rate coding side by side on one net: the figures of ``hdlgen compare``.

:func:`compare` converts a float graph for every method and step count with the TTFS flow
(:func:`hdlgen.convert`; AMOS at the window ``2^K − 1``, rate coding without rounding and with
its own threshold statistic), runs each code's batch golden model on the test data and makes one
row (:func:`row`) per run: accuracy, agreement with the float net, spikes per neuron of every
spiking layer, synaptic events, latency in steps and the cycles of the event lower bound
(:func:`hdlgen.cycles.event_lower_bound`) at some lanes – the generated core's bound for TTFS, an
estimate for the codes without RTL. :func:`format_table` and :func:`plot` show the rows.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from .. import cycles, golden, ir
from ..data import Dataset
from ..errors import UserError
from ..geometry import NetGeometry
from ..passes import ConvertConfig, convert
from ..ttfs import TTFSNet
from . import amos, amos_gates, rate
from .gate_units import MAX_GATE_BITS

__all__ = ["METHODS", "DEFAULT_STEPS", "Outcome", "method_config", "run_method", "row", "compare", "format_table",
           "plot"]

METHODS = ("ttfs", "amos", "rate")
DEFAULT_STEPS = (2, 4, 8, 16, 32, 64, 128)
_BATCH = 2048   # images per golden-model call: bounds the rate model's state arrays


def method_config(method: str, steps: int, config: ConvertConfig, rate_threshold: str = "max") -> ConvertConfig:
    """The conversion settings of ``method`` at ``steps``, from ``config`` (weights, calibration):
    TTFS windows of ``steps`` ticks; AMOS the window ``2^steps − 1`` (``steps`` units per neuron);
    rate coding ``steps`` ticks without rounding, calibrated with ``rate_threshold`` (``"max"``:
    threshold balancing)."""
    if method == "ttfs":
        return dataclasses.replace(config, ticks=steps)
    if method == "amos":
        return dataclasses.replace(config, ticks=amos.window(steps))
    if method == "rate":
        return dataclasses.replace(config, ticks=steps, calibration=rate_threshold, rounding=False)
    raise UserError(f"unknown method {method!r}; known: {', '.join(METHODS)}")


@dataclass
class Outcome:
    """What one code did on a batch of images.

    Members
    -------
    classes : ndarray (N,)
    counts : list of ndarray
        Spikes of every neuron, (N, size) per spiking layer (input first, readout excluded).
    cycle_net : TTFSNet
        The net whose windows are the steps an event-driven engine walks for this code.
    latency : int
        Steps from the first input spike to the logits.
    """

    classes: np.ndarray
    counts: list
    cycle_net: TTFSNet
    latency: int


def run_method(method: str, net: TTFSNet, pixels: np.ndarray, shift: bool = True, soft_reset: bool = True) -> Outcome:
    """Run ``net`` (converted by :func:`method_config`) as ``method`` on pixel bytes (N, input size).

    TTFS and AMOS take their activations from :func:`hdlgen.golden.run_batch` (one spike per
    neuron with ``q > 0``; one per set bit of ``q``) and walk their windows one after another;
    rate coding runs :func:`hdlgen.codes.rate.run_batch`, every layer in the same ``T`` steps.
    """
    batches = [pixels[first:first + _BATCH] for first in range(0, len(pixels), _BATCH)]
    if method == "rate":
        coded = rate.RateNet(net, shift, soft_reset)
        results = [rate.run_batch(coded, batch) for batch in batches]
        counts = [np.concatenate(layer) for layer in zip(*(r.counts for r in results))]
        return Outcome(np.concatenate([r.classes for r in results]), counts, net, coded.steps)
    results = [golden.run_batch(net, batch) for batch in batches]
    q = [np.concatenate(layer) for layer in zip(*(r.q for r in results))]
    classes = np.concatenate([r.classes for r in results])
    if method == "amos":
        step_net = amos.AMOSNet(net).step_net()
        return Outcome(classes, [amos.spike_counts(layer) for layer in q], step_net, NetGeometry(step_net).walked_ticks)
    return Outcome(classes, [(layer > 0).astype(np.int64) for layer in q], net, NetGeometry(net).walked_ticks)


def run_gates(gates: amos_gates.GateNet, pixels: np.ndarray) -> Outcome:
    """:func:`run_method` for AMOS of a net with other activations (:func:`hdlgen.codes.amos_gates.run_batch`)."""
    results = [amos_gates.run_batch(gates, pixels[first:first + _BATCH]) for first in range(0, len(pixels), _BATCH)]
    counts = [np.concatenate(layer) for layer in zip(*(r.counts for r in results))]
    step_net = amos.step_net(gates.net, gates.bits)
    return Outcome(np.concatenate([r.classes for r in results]), counts, step_net, NetGeometry(step_net).walked_ticks)


def not_offered(graph, methods) -> list:
    """The methods that cannot run on ``graph`` and why: TTFS and rate coding for a net with an activation other
    than ReLU."""
    gate = next((n for n in graph.nodes if isinstance(n, ir.Activation)), None)
    if gate is None:
        return []
    reasons = {"ttfs": f"{gate.label()} ({gate.name}): an exact TTFS mapping exists for ReLU only",
               "rate": f"{gate.label()} ({gate.name}): a rate neuron's spike count stands for a ReLU value only"}
    return [{"method": m, "reason": reasons[m]} for m in methods if m in reasons]


def _synapses(net: TTFSNet) -> list:
    """Per layer, the synapses each of its inputs drives ((fan_in,), output neurons reached), or None for a max-pool."""
    geometry = NetGeometry(net)
    return [stage.reach() * len(layer.weight) if layer.has_weights else None
            for stage, layer in zip(geometry.layers, net.layers)]


def _cycles(outcome: Outcome, lanes: int, samples: int) -> float:
    """Mean event lower bound of the first ``samples`` images. The bound counts how often each
    input neuron spiked, not when, so the spikes are given with tick 0."""
    bounds = []
    for image in range(min(samples, len(outcome.classes))):
        spikes = [[(int(n), 0) for n in np.repeat(np.arange(layer.shape[1]), layer[image])] for layer in outcome.counts]
        bounds.append(cycles.event_lower_bound(outcome.cycle_net, spikes, lanes))
    return float(np.mean(bounds))


def row(method: str, steps: int, outcome: Outcome, labels, ann_classes, lanes: int = 1, cycle_samples: int = 100) -> dict:
    """The figures of one run (a plain dict, JSON as it stands).

    ``spikes_per_neuron`` has one entry per spiking layer (input first); ``synaptic_events`` is
    spikes × the synapses each drives (fan-out), per image; ``cycles_estimate`` the mean event
    lower bound at ``lanes`` over the first ``cycle_samples`` images.
    """
    counts, n = outcome.counts, len(outcome.classes)
    spikes = [float(layer.sum() / layer.size) for layer in counts]
    net = outcome.cycle_net
    events = sum(float((net.gather(counts, l) @ synapses).sum()) for l, synapses in enumerate(_synapses(net))
                 if synapses is not None)
    return {"method": method, "steps": steps, "has_rtl": method == "ttfs",
            "accuracy": None if labels is None else float(np.mean(outcome.classes == labels)),
            "agreement": None if ann_classes is None else float(np.mean(outcome.classes == ann_classes)),
            "spikes_per_neuron": spikes,
            "spikes_per_neuron_mean": float(sum(layer.sum() for layer in counts) / (n * sum(l.shape[1] for l in counts))),
            "synaptic_events": events / n, "latency_ticks": int(outcome.latency), "lanes": lanes,
            "cycles_estimate": _cycles(outcome, lanes, cycle_samples),
            "cycles_kind": "event lower bound of the generated core" if method == "ttfs" else
                           "estimate: event lower bound of an event-driven engine for these spikes (no RTL)"}


def _check_lanes(net: TTFSNet, lanes: int):
    try:
        NetGeometry(net, lanes)
    except ValueError as e:
        raise UserError(f"--lanes: {e}") from None


def compare(graph, data: Dataset, calibration_x, config: ConvertConfig, steps=DEFAULT_STEPS, methods=METHODS,
            lanes: int = 1, rate_threshold: str = "max", shift: bool = True, soft_reset: bool = True,
            cycle_samples: int = 100, progress: bool = False, name: str = "net") -> dict:
    """Every method at every step count on ``data``: ``{"ann_accuracy", "methods": {method: [row…]},
    "skipped": [...], "not_offered": [...]}`` (AMOS beyond :data:`~hdlgen.codes.amos.MAX_BITS` units is skipped,
    with the reason). A net with an activation other than ReLU runs AMOS only (:mod:`hdlgen.codes.amos_gates`,
    at most :data:`~hdlgen.codes.gate_units.MAX_GATE_BITS` units, each row with its gates' ``fits``); TTFS and
    rate coding are ``not_offered``, with the reason."""
    gates = amos_gates.has_gates(graph)
    refused = not_offered(graph, methods)
    if gates and "amos" not in methods:
        raise UserError(f"{refused[0]['reason']}; this net compares as AMOS only (--methods amos)")
    methods = [m for m in methods if m not in {r["method"] for r in refused}]
    most = MAX_GATE_BITS if gates else amos.MAX_BITS
    runs = [(m, s) for m in methods for s in steps if m != "amos" or s <= most]
    skipped = [{"method": "amos", "steps": s, "reason": f"AMOS takes at most {most} units per neuron "
                + ("with activations other than ReLU (64-bit output weights)" if gates else "(64-bit values)")}
               for s in steps if "amos" in methods and s > most]
    out = {"ann_accuracy": None, "methods": {m: [] for m in methods}, "skipped": skipped, "not_offered": refused,
           "rate": {"threshold": rate_threshold, "shift": shift, "soft_reset": soft_reset}}
    ann_classes = None
    for method, count in tqdm(runs, unit="run", desc="comparing", disable=not progress):
        if gates:
            lowered = amos_gates.lower(graph, calibration_x, config, count, name=name)
            net = lowered.net
        else:
            net = convert(graph, calibration_x, method_config(method, count, config, rate_threshold), name=name)
        pixels = net.input.pixels(data.x)
        if ann_classes is None:
            _check_lanes(net, lanes)
            ann_classes = np.argmax(net.ann.forward(data.x.reshape((len(data), *net.ann.input_shape))), axis=1)
            out["ann_accuracy"] = None if data.y is None else float(np.mean(ann_classes == data.y))
        outcome = run_gates(lowered, pixels) if gates else run_method(method, net, pixels, shift, soft_reset)
        record = row(method, count, outcome, data.y, ann_classes, lanes, cycle_samples)
        if gates:
            record["fits"] = lowered.fits
        if method == "rate":
            record.update(shift=shift, soft_reset=soft_reset)
        out["methods"][method].append(record)
    return out


def _percent(value) -> str:
    return "n/a" if value is None else f"{100 * value:.2f} %"


def format_table(result: dict) -> str:
    """The rows for a person; estimated cycles (codes without RTL) are marked ``~``."""
    lines = [f"float accuracy {_percent(result['ann_accuracy'])}",
             f"{'method':<6} {'steps':>5} {'accuracy':>9} {'agreement':>9} {'spikes/neuron':>13} {'per layer':<24} "
             f"{'syn. events':>11} {'latency':>7} {'cycles':>10}"]
    for method, rows in result["methods"].items():
        for r in rows:
            layers = " ".join(f"{s:.2f}" for s in r["spikes_per_neuron"])
            mark = "" if r["has_rtl"] else "~"
            lines.append(f"{method:<6} {r['steps']:>5} {_percent(r['accuracy']):>9} {_percent(r['agreement']):>9} "
                         f"{r['spikes_per_neuron_mean']:>13.3f} {layers:<24} {r['synaptic_events']:>11.0f} "
                         f"{r['latency_ticks']:>7} {mark + format(r['cycles_estimate'], '.0f'):>10}")
    rate_settings = result["rate"]
    if "rate" in result["methods"]:
        lines.append(f"rate: threshold {rate_settings['threshold']}, {'soft' if rate_settings['soft_reset'] else 'hard'} "
                     f"reset, {'with' if rate_settings['shift'] else 'no'} θ/2T shift")
    lines.append("steps: TTFS ticks per window, AMOS units per neuron, rate time steps")
    lines.append("cycles: event lower bound at the lanes asked; ~ an estimate for a code without RTL")
    lines += [f"skipped {s['method']} at {s['steps']} steps: {s['reason']}" for s in result["skipped"]]
    lines += [f"{r['method']} not offered: {r['reason']}" for r in result.get("not_offered", [])]
    lines += [f"amos K={r['steps']} fit of {f['layer']} ({f['activation']}) on [{f['range'][0]:.3g}, {f['range'][1]:.3g}]: "
              f"max error {f['max_error']:.3g} ({100 * f['max_error_of_range']:.2f} % of its range), "
              f"RMS error {f['rms_error_on_data']:.3g} on the calibration data"
              for r in result["methods"].get("amos", []) for f in r.get("fits", [])]
    return "\n".join(lines)


def _label_steps(axes, curves):
    """Write each point's steps beside it where the label covers no other label: points of a curve that fall
    together (within 12 pixels) share one label ``first–last``. ``curves``: ``(x, y, steps)`` lists."""
    axes.autoscale_view()
    placed = []
    for xs, ys, steps in curves:
        groups = []   # [pixel position, data position, first steps, last steps]
        for pixel, point, s in zip(axes.transData.transform(np.column_stack([xs, ys])), zip(xs, ys), steps):
            if groups and np.hypot(*(pixel - groups[-1][0])) < 12:
                groups[-1][3] = s
            else:
                groups.append([pixel, point, s, s])
        for pixel, point, first, last in groups:
            text = str(first) if first == last else f"{first}–{last}"
            width = 5 * len(text)
            for dx, dy in [(3, 3), (3, -10), (-3 - width, 3), (-3 - width, -10)]:
                spot = pixel + (dx + width / 2, dy)
                if all(abs(spot[0] - x) > (width + w) / 2 + 2 or abs(spot[1] - y) > 11 for x, y, w in placed):
                    placed.append((*spot, width))
                    axes.annotate(text, point, textcoords="offset points", xytext=(dx, dy), fontsize=7)
                    break


def plot(result: dict, stem: Path) -> list:
    """Accuracy vs steps, spikes per neuron vs steps and cycles vs accuracy as PNGs
    ``<stem>_accuracy.png``, ``<stem>_spikes.png``, ``<stem>_cycles.png``; returns their paths."""
    from matplotlib.figure import Figure  # matplotlib loads only for plots (the 'plot' extra)
    from matplotlib.ticker import ScalarFormatter

    stem = Path(stem)
    charts = [("accuracy", "steps", "accuracy (%)"), ("spikes", "steps", "spikes per neuron"),
              ("cycles", "cycles per image (event lower bound)", "accuracy (%)")]
    paths = []
    for kind, xlabel, ylabel in charts:
        figure = Figure(figsize=(6, 4), layout="constrained")
        axes = figure.subplots()
        labelled = []
        for method, rows in result["methods"].items():
            if not rows:
                continue
            steps = [r["steps"] for r in rows]
            accuracy = [100 * (r["accuracy"] or 0) for r in rows]
            if kind == "accuracy":
                axes.plot(steps, accuracy, "o-", label=method)
            elif kind == "spikes":
                axes.plot(steps, [r["spikes_per_neuron_mean"] for r in rows], "o-", label=method)
            else:
                cycles_mean = [r["cycles_estimate"] for r in rows]
                axes.plot(cycles_mean, accuracy, "o-", label=method + ("" if rows[0]["has_rtl"] else " (estimate)"))
                labelled.append((cycles_mean, accuracy, steps))
        if kind != "spikes" and result["ann_accuracy"] is not None:
            axes.axhline(100 * result["ann_accuracy"], color="grey", linestyle="--", label="float")
        axes.set_xscale("log", base=2 if kind != "cycles" else 10)
        if kind != "cycles":
            axes.xaxis.set_major_formatter(ScalarFormatter())   # steps as 2, 4, 8, not powers
        if kind == "spikes":
            axes.set_yscale("log")
        axes.set_xlabel(xlabel)
        axes.set_ylabel(ylabel)
        axes.grid(True, alpha=0.3)
        axes.legend()
        _label_steps(axes, labelled)
        path = stem.with_name(f"{stem.name}_{kind}.png")
        figure.savefig(path, dpi=120)
        paths.append(path)
    return paths
