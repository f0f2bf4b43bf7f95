"""Evaluate a TTFS net against its float ANN and describe both for a person."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from tqdm import tqdm

from . import golden
from .data import Dataset
from .ttfs import TTFSNet

__all__ = ["GoldenRun", "run_golden", "evaluate", "confusion_matrix", "net_rows", "net_summary", "format_evaluation",
           "format_net"]


@dataclass
class GoldenRun:
    """The golden model over a data set, kept as counts so any size fits in memory.

    Members
    -------
    snn_classes : ndarray (N,)
    ann_classes : ndarray (N,) or None
        The float net's classes (None when the net holds no float ANN).
    tick_counts : list of ndarray
        Per spiking layer (input first), spikes at each tick of its window over all images, (T_ℓ,).
    """

    snn_classes: np.ndarray
    ann_classes: np.ndarray | None
    tick_counts: list


def run_golden(net: TTFSNet, data: Dataset, batch: int = 4096, progress: bool = False) -> GoldenRun:
    """The batch golden model (and the float net) over ``data``; ``progress``: a tqdm bar on stderr."""
    snn, ann = [], []
    counts = [np.zeros(ticks, dtype=np.int64) for ticks in net.ticks]
    with tqdm(total=len(data), unit="image", desc="evaluating", disable=not progress) as bar:
        for start in range(0, len(data), batch):
            x = data.x[start:start + batch]
            result = golden.run_batch(net, net.input.pixels(x))
            snn.append(result.classes)
            for count, q, ticks in zip(counts, result.q, net.ticks):
                count += np.bincount(ticks - q[q > 0], minlength=ticks)   # a spike at tick T − q
            if net.ann is not None:
                ann.append(np.argmax(net.ann.forward(x.reshape((len(x), *net.ann.input_shape))), axis=1))
            bar.update(len(x))
    return GoldenRun(np.concatenate(snn), np.concatenate(ann) if ann else None, counts)


def evaluate(net: TTFSNet, data: Dataset, batch: int = 4096, progress: bool = False, run: GoldenRun | None = None) -> dict:
    """Float accuracy, SNN accuracy, agreement and spikes per neuron of every spiking layer
    (of ``run`` when given, else of a :func:`run_golden` made here)."""
    run = run or run_golden(net, data, batch, progress)
    snn, ann = run.snn_classes, run.ann_classes
    return {
        "net": net.name, "samples": len(data),
        "ann_accuracy": None if ann is None or data.y is None else float(np.mean(ann == data.y)),
        "snn_accuracy": None if data.y is None else float(np.mean(snn == data.y)),
        "agreement": None if ann is None else float(np.mean(ann == snn)),
        "spikes_per_neuron": [float(count.sum() / (len(data) * n)) for count, n in zip(run.tick_counts, net.sizes)],
        "ticks": net.ticks,
        "weight_bits": net.meta.get("weight_bits", net.layers[0].weight_bits),
        "accumulator_widths": [layer.widths().get("accumulator") for layer in net.layers],
    }


def confusion_matrix(net: TTFSNet, labels, classes) -> np.ndarray:
    """``[label, predicted]`` counts of ``classes`` against ``labels``, (net.classes, net.classes)."""
    matrix = np.zeros((net.classes, net.classes), dtype=np.int64)
    np.add.at(matrix, (np.asarray(labels), np.asarray(classes)), 1)
    return matrix


def net_rows(net: TTFSNet) -> list:
    """One dict per layer (the input first): name, neurons, T, K ("max-pool", "readout", one K or
    a range), accumulator bits and weight memory bits (None where a layer has none)."""
    rows = [{"layer": "input", "neurons": net.input.size, "ticks": net.input.ticks, "k": None,
             "accumulator_bits": None, "weight_memory_bits": None}]
    for layer in net.layers:
        if not layer.has_weights:
            rows.append({"layer": layer.name, "neurons": layer.fan_out, "ticks": layer.ticks, "k": "max-pool",
                         "accumulator_bits": None, "weight_memory_bits": None})
            continue
        if layer.readout:
            k = "readout"
        else:
            k = str(layer.k[0]) if layer.shared_k else f"{layer.k.min()}..{layer.k.max()}"
        rows.append({"layer": layer.name, "neurons": layer.fan_out, "ticks": layer.ticks or None, "k": k,
                     "accumulator_bits": layer.widths()["accumulator"],
                     "weight_memory_bits": layer.weight.size * layer.weight_bits})
    return rows


def net_summary(net: TTFSNet) -> str:
    """The one line that names the net: sizes, weight bits, calibration, rounding."""
    meta = net.meta
    return (f"net {net.name}: {' → '.join(str(s) for s in net.sizes)}{'' if net.is_chain else ' (a graph)'}, "
            f"{meta.get('weight_bits', '?')}-bit weights per {'channel' if meta.get('per_channel') else 'layer'}, "
            f"calibration {meta.get('calibration', '?')}, rounding {'on' if meta.get('rounding', True) else 'off'}")


def _percent(value):
    return "n/a" if value is None else f"{100 * value:6.2f} %"


def format_net(net: TTFSNet) -> str:
    """Per-layer table: sizes, windows, K, widths, weight memory."""
    lines = [net_summary(net), f"{'layer':<12}{'neurons':>8}{'T':>5}{'K':>12}{'acc bits':>10}{'weight bits':>13}"]
    for row in net_rows(net):
        cells = [row["ticks"], row["k"], row["accumulator_bits"], row["weight_memory_bits"]]
        ticks, k, acc, weights = ("-" if cell is None else cell for cell in cells)
        lines.append(f"{row['layer']:<12}{row['neurons']:>8}{ticks:>5}{k:>12}{acc:>10}{weights:>13}")
    if not net.is_chain:   # a graph net: say which layers read more than the one before them
        lines += [f"{layer.name} reads {' + '.join(layer.inputs)}" for l, layer in enumerate(net.layers)
                  if net.sources(l) != [l]]
    lines += [f"note: {note}" for note in net.meta.get("notes", [])]
    return "\n".join(lines)


def format_evaluation(net: TTFSNet, result: dict) -> str:
    lines = [f"samples          {result['samples']}",
             f"float accuracy   {_percent(result['ann_accuracy'])}",
             f"SNN accuracy     {_percent(result['snn_accuracy'])}",
             f"agreement        {_percent(result['agreement'])}  (same class as the float net)",
             f"{'layer':<12}{'neurons':>8}{'T':>5}{'spikes/neuron':>15}"]
    names = ["input"] + [layer.name for layer in net.layers[:-1]]
    for name, size, ticks, rate in zip(names, net.sizes, net.ticks, result["spikes_per_neuron"]):
        lines.append(f"{name:<12}{size:>8}{ticks:>5}{rate:>15.3f}")
    return "\n".join(lines)
