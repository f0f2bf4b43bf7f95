"""Evaluate a TTFS net against its float ANN and print the result for a person (or as JSON)."""

from __future__ import annotations

import json

import numpy as np

from . import golden
from .data import Dataset
from .ttfs import TTFSNet

__all__ = ["evaluate", "format_evaluation", "format_net", "print_json"]


def evaluate(net: TTFSNet, data: Dataset, batch: int = 4096) -> dict:
    """Float accuracy, SNN accuracy, agreement and spikes per neuron of every spiking layer."""
    snn, ann, spikes = [], [], np.zeros(len(net.ticks))
    for start in range(0, len(data), batch):
        x = data.x[start:start + batch]
        result = golden.run_batch(net, net.input.pixels(x))
        snn.append(result.classes)
        spikes += [np.count_nonzero(q) for q in result.q]
        if net.ann is not None:
            ann.append(np.argmax(net.ann.forward(x.reshape((len(x), *net.ann.input_shape))), axis=1))
    snn = np.concatenate(snn)
    ann = np.concatenate(ann) if ann else None
    out = {
        "net": net.name, "samples": len(data),
        "ann_accuracy": None if ann is None or data.y is None else float(np.mean(ann == data.y)),
        "snn_accuracy": None if data.y is None else float(np.mean(snn == data.y)),
        "agreement": None if ann is None else float(np.mean(ann == snn)),
        "spikes_per_neuron": [float(s / (len(data) * n)) for s, n in zip(spikes, net.sizes)],
        "ticks": net.ticks,
        "weight_bits": net.meta.get("weight_bits", net.layers[0].weight_bits),
        "accumulator_widths": [layer.widths().get("accumulator") for layer in net.layers],
    }
    return out


def _percent(value):
    return "n/a" if value is None else f"{100 * value:6.2f} %"


def format_net(net: TTFSNet) -> str:
    """Per-layer table: sizes, windows, K, widths, weight memory."""
    meta = net.meta
    lines = [f"net {net.name}: {' → '.join(str(s) for s in net.sizes)}, "
             f"{meta.get('weight_bits', '?')}-bit weights per {'channel' if meta.get('per_channel') else 'layer'}, "
             f"calibration {meta.get('calibration', '?')}, rounding {'on' if meta.get('rounding', True) else 'off'}",
             f"{'layer':<12}{'neurons':>8}{'T':>5}{'K':>12}{'acc bits':>10}{'weight bits':>13}",
             f"{'input':<12}{net.input.size:>8}{net.input.ticks:>5}{'-':>12}{'-':>10}{'-':>13}"]
    for layer in net.layers:
        if not layer.has_weights:
            lines.append(f"{layer.name:<12}{layer.fan_out:>8}{layer.ticks:>5}{'max-pool':>12}{'-':>10}{'-':>13}")
            continue
        if layer.readout:
            k = "readout"
        else:
            k = str(layer.k[0]) if layer.shared_k else f"{layer.k.min()}..{layer.k.max()}"
        lines.append(f"{layer.name:<12}{layer.fan_out:>8}{layer.ticks or '-':>5}{k:>12}"
                     f"{layer.widths()['accumulator']:>10}{layer.weight.size * layer.weight_bits:>13}")
    lines += [f"note: {note}" for note in meta.get("notes", [])]
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


def print_json(obj: dict):
    """The last stdout line of a ``--json`` run: one JSON object."""
    print(json.dumps(obj, sort_keys=True))
