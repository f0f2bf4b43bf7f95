"""Fine-tuning a converted TTFS net through its own integer arithmetic (Stanojevic et al. 2023).

:class:`TrainableNet` holds the float network the net was converted from (its folded graph's
weights and biases) and the real value of one tick of every window (the input's and each hidden
layer's; the input's sets the byte → ``q0`` table). Each step it
quantizes them exactly as :class:`~hdlgen.passes.Quantize` does – integer weights of ``σ``
(per layer or per output channel), ``K = max(1, round(s/σ))``, the rounding offset ``K//2`` –
and runs the golden model's arithmetic on them (:mod:`hdlgen.ttfs_torch`) with straight-through
gradients. So ``K`` and the windows' scales are chosen again at every step from the updated
weights (learned like LSQ step sizes), and :meth:`TrainableNet.to_net` lowers the same numbers
with the compiler's own passes: the net written is the net trained.

:func:`finetune` trains with Adam and a cosine learning rate, measures the net of every epoch
end with :func:`hdlgen.evaluate.evaluate` (what ``hdlgen eval`` computes) and keeps the best. With
a spike target ``S`` it adds ``λ · (hidden spikes per image)`` to the loss – the count itself in
the forward, the gradient of ``Σ q/T`` (every firing neuron is pushed to fire later) – and ``λ``
rises while batches have more than ``S`` spikes per neuron, falls while they have fewer (dual ascent).
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from . import ir
from .data import Dataset
from .errors import UserError
from .evaluate import evaluate
from .passes import Calibrate, Conversion, ConvertConfig, DeriveWidths, Quantize
from .passes.quantize import column_ranges, column_scale, output_windows
from .ttfs import TTFSNet
from .ttfs_torch import floor_ste, forward, round_half_up

__all__ = ["FinetuneOptions", "EpochResult", "FinetuneResult", "TrainableNet", "finetune", "hidden_spikes",
           "torch_module"]


@dataclass
class FinetuneOptions:
    """Training settings.

    Parameters
    ----------
    epochs : int
        Passes over the training data, ≥ 1.
    batch_size : int
    learning_rate : float
        Adam's peak learning rate (cosine decay to 0 over all steps).
    spikes_per_neuron : float or None
        Target mean of hidden spikes per neuron over the training data; ``None``: no penalty.
    seed : int
        Seeds torch, numpy and the shuffling; with deterministic algorithms a run repeats bit for bit.
    penalty_step : float
        Dual-ascent step of ``λ`` (the loss of one hidden spike) per epoch: after each batch
        ``λ ← max(0, λ + step/batches · (spikes per neuron / aim − 1))``, ``aim`` 95 % of the
        target (the mean over the training data must end below it, not around it).
    """

    epochs: int = 10
    batch_size: int = 128
    learning_rate: float = 1e-3
    spikes_per_neuron: float | None = None
    seed: int = 0
    penalty_step: float = 0.5

    def __post_init__(self):
        if self.epochs < 1:
            raise UserError(f"--epochs must be ≥ 1, got {self.epochs}")
        if self.batch_size < 1:
            raise UserError(f"--batch-size must be ≥ 1, got {self.batch_size}")
        if not self.learning_rate > 0 or not math.isfinite(self.learning_rate):
            raise UserError(f"--learning-rate must be a positive number, got {self.learning_rate}")
        if self.spikes_per_neuron is not None and not 0 < self.spikes_per_neuron <= 1:
            raise UserError(f"--spikes-per-neuron must be in (0, 1] (at most one spike per neuron), "
                            f"got {self.spikes_per_neuron}")


@dataclass
class EpochResult:
    """One epoch end (epoch 0: the converted net): mean training loss, and the golden model's
    accuracy and spikes per neuron (every spiking layer, input first) on the training and
    validation data, exactly as :func:`hdlgen.evaluate.evaluate` gives them."""

    epoch: int
    loss: float | None
    train: dict
    validation: dict | None
    penalty: float
    seconds: float

    @property
    def accuracy(self) -> float:
        """The accuracy epochs are chosen by: validation if given, else training."""
        return (self.validation or self.train)["snn_accuracy"]

    def to_dict(self) -> dict:
        out = {"epoch": self.epoch, "loss": self.loss, "penalty": self.penalty, "seconds": round(self.seconds, 2),
               "train_accuracy": self.train["snn_accuracy"], "train_spikes_per_neuron": self.train["spikes_per_neuron"]}
        if self.validation is not None:
            out.update(validation_accuracy=self.validation["snn_accuracy"],
                       validation_spikes_per_neuron=self.validation["spikes_per_neuron"])
        return out


@dataclass
class FinetuneResult:
    """The chosen net (``ann`` the original float reference), the fine-tuned float graph it was
    lowered from, every epoch's figures and which epoch was chosen."""

    net: TTFSNet
    graph: ir.Graph
    epochs: list
    chosen: int
    target_met: bool
    seconds: float

    @property
    def before(self) -> EpochResult:
        return self.epochs[0]

    @property
    def after(self) -> EpochResult:
        return self.epochs[self.chosen]


def hidden_spikes(net: TTFSNet, spikes_per_neuron: list) -> float:
    """Mean spikes per neuron over the outputs of the hidden layers with weights (the neurons
    whose comparators fire; the input's spikes follow from the pixels, a max-pool's from its input)."""
    sizes = [layer.fan_out for layer in net.layers[:-1]]
    rates = spikes_per_neuron[1:]
    weighted = [(r * s, s) for r, s, layer in zip(rates, sizes, net.layers) if layer.has_weights]
    return sum(r for r, _ in weighted) / max(1, sum(s for _, s in weighted))


def _quantize(weight, bias, input_scale, target_scale, bits, per_channel, rounding):
    """:func:`hdlgen.passes.quantize.quantize_weights` in torch, the same float64 operations in
    the same order (so the same integers), with straight-through rounding."""
    effective = weight * input_scale[None, :]
    limit = (1 << (bits - 1)) - 1
    if per_channel and target_scale is not None:
        peak = effective.abs().amax(dim=1)
    else:
        peak = effective.abs().amax().expand(len(bias))
    sigma = torch.where(peak > 0, peak / limit, torch.ones_like(peak))
    w_int = torch.clamp(round_half_up(effective / sigma[:, None]), -limit, limit)
    b_int = round_half_up(bias / sigma)
    if target_scale is None:
        return w_int, b_int, None, sigma
    k = torch.clamp(round_half_up(target_scale / sigma), min=1)
    if rounding:
        b_int = b_int + floor_ste(k / 2)   # K//2
    return w_int, b_int, k, k * sigma


class _Stats:
    """A pass that sets the calibration results the quantizer reads (instead of calibrating)."""

    name = "set-stats"

    def __init__(self, stats):
        self.stats = stats

    def run(self, state):
        state.stats.update(self.stats)


class TrainableNet(nn.Module):
    """A converted net as trainable float parameters; its forward is the golden model of the
    net :meth:`to_net` writes, bit for bit.

    Parameters
    ----------
    net : TTFSNet
        A net from :func:`hdlgen.convert` (it keeps the folded float graph as ``net.ann``).
    calibration_x : ndarray
        The data it was calibrated on: the windows' scales start from the same calibration.
    config : ConvertConfig
        The settings it was converted with.

    Members
    -------
    weights, biases : ParameterList
        The float layers' parameters (float64), in the folded graph's units.
    scale_factors : Parameter
        Per spiking layer with a window of its own (the input and every hidden layer with
        weights), the real value of one tick relative to the calibrated one
        (``s = s_calibrated · factor``; learned). The input's sets the byte → ``q0`` table.
    """

    def __init__(self, net: TTFSNet, calibration_x: np.ndarray, config: ConvertConfig):
        super().__init__()
        if net.ann is None:
            raise UserError(f"net {net.name!r} has no float graph to fine-tune; convert the model again")
        self.net, self.config, self.reference = net, config, net.ann
        self.nodes = [i for i, node in enumerate(net.ann.nodes) if isinstance(node, (ir.Dense, ir.Conv2d))]
        state = Conversion(net.ann, np.asarray(calibration_x, dtype=np.float64).reshape((-1, *net.ann.input_shape)), config)
        Calibrate().run(state)
        self.stats = {**state.stats, "input_shape": net.input.shape, "notes": net.meta.get("notes", [])}
        nodes = [net.ann.nodes[i] for i in self.nodes]
        self.weights = nn.ParameterList([nn.Parameter(torch.tensor(n.weight)) for n in nodes])
        self.biases = nn.ParameterList([nn.Parameter(torch.tensor(n.bias)) for n in nodes])
        self.base_scales = torch.tensor(self.stats["scales"], dtype=torch.float64)
        self.scale_factors = nn.Parameter(torch.ones(len(self.base_scales), dtype=torch.float64))
        self.offset_fold = net.input.offset != 0
        self._windows = output_windows(net.ann)

    def scales(self) -> torch.Tensor:
        """The real value of one tick of every window with a scale of its own, input first."""
        return self.base_scales * self.scale_factors

    def input_q(self, pixels: torch.Tensor) -> torch.Tensor:
        """``q0`` of pixel bytes (N, input size), as :func:`~hdlgen.passes.quantize.input_encoding`'s
        table gives it: ``clamp(round(pixel · pixel_scale / s0), 0, T0)``."""
        enc = self.net.input
        return torch.clamp(round_half_up(pixels.to(torch.float64) * enc.pixel_scale / self.scales()[0]), 0, enc.ticks)

    def integer_params(self) -> tuple[list, torch.Tensor]:
        """The quantizer's integers per layer (as :func:`hdlgen.ttfs_torch.integer_params`) and the
        readout's real value of one logit unit; the same loop as :class:`~hdlgen.passes.Quantize`."""
        config, enc, net = self.config, self.net.input, self.net
        scales = self.scales()
        source_scales = [scales[0].expand(self.reference.input_shape[0])]   # per source: real value of one q unit
        params, window = [], 0
        for l, layer in enumerate(net.layers):
            sources = net.sources(l)
            if not layer.has_weights:
                params.append(None)
                source_scales.append(source_scales[sources[0]])
                continue
            weight = self.weights[window].reshape(len(self.weights[window]), -1)
            columns = column_scale([source_scales[j] for j in sources], [net.sizes[j] for j in sources],
                                   weight.shape[1], repeat=torch.repeat_interleave, join=torch.cat)
            bias = self.biases[window]
            if self.offset_fold and 0 in sources:    # x = offset + x', folded exactly into the bias
                for j, (start, stop) in zip(sources, column_ranges([net.sizes[j] for j in sources], weight.shape[1])):
                    if j == 0:
                        bias = bias + weight[:, start:stop].sum(dim=1) * enc.offset
            out_window = self._windows.get(layer.name)
            w_int, b_int, k, scale = _quantize(weight, bias, columns, None if layer.readout else scales[out_window],
                                               config.weight_bits, config.per_channel, config.rounding)
            params.append((w_int.reshape(layer.weight.shape), b_int, k))
            source_scales.append(scale)
            window += 1
        return params, source_scales[-1]

    def forward(self, pixels: torch.Tensor) -> tuple[list, torch.Tensor]:
        """``(q of every spiking layer, real logits)`` of pixel bytes (N, input size)."""
        params, logit_scale = self.integer_params()
        qs, logits = forward(self.net, self.input_q(pixels), params)
        return qs, logits * logit_scale

    def graph(self) -> ir.Graph:
        """The folded float graph with the current weights."""
        nodes = list(self.reference.nodes)
        for i, w, b in zip(self.nodes, self.weights, self.biases):
            nodes[i] = dataclasses.replace(nodes[i], weight=w.detach().numpy().copy(), bias=b.detach().numpy().copy())
        return ir.Graph(nodes)

    def to_net(self, ann: ir.Graph | None = None) -> TTFSNet:
        """The integer net of the current parameters, lowered by the compiler's passes; ``ann``
        becomes its float reference (none by default)."""
        stats = {**self.stats, "scales": self.scales().detach().tolist()}
        state = Conversion(self.graph(), np.empty((0, *self.reference.input_shape)), self.config, self.net.name)
        for step in (_Stats(stats), Quantize(), DeriveWidths()):
            step.run(state)
        state.net.ann = ann
        return state.net




def _spikes(net: TTFSNet, qs: list) -> tuple[torch.Tensor, int]:
    """Hidden spikes per image of a batch, exactly (``min(q, 1)`` of the integers ``q ≥ 0``), with
    the gradient of ``q / T``: every firing neuron is pushed towards firing later, and so towards not
    at all; and the number of hidden neurons."""
    hidden = [(torch.clamp(q, max=1).detach(), q / layer.ticks) for q, layer in zip(qs[1:], net.layers)
              if layer.has_weights]
    count = sum(spikes.sum() + (surrogate.sum() - surrogate.sum().detach()) for spikes, surrogate in hidden)
    return count / len(qs[0]), sum(spikes.shape[1] for spikes, _ in hidden)


def _measure(model: TrainableNet, train: Dataset, validation: Dataset | None):
    net = model.to_net()
    return net, evaluate(net, train), None if validation is None else evaluate(net, validation)


def finetune(net: TTFSNet, train: Dataset, validation: Dataset | None, calibration_x: np.ndarray,
             config: ConvertConfig, options: FinetuneOptions, log=None, progress: bool | None = None) -> FinetuneResult:
    """Fine-tune ``net`` (converted with ``config`` on ``calibration_x``) on labelled ``train`` data.

    Returns the best epoch end (validation accuracy, else training accuracy, among the epochs
    that meet the spike target; epoch 0 is the converted net). ``log(EpochResult)`` is called at
    every epoch end; ``progress`` shows a tqdm bar per epoch (``None``: only on a terminal).

    Raises
    ------
    UserError
        Labels missing or out of range, or the loss not finite.
    """
    for name, data in (("training", train), ("validation", validation)):
        if data is not None and (data.y is None or data.y.min() < 0 or data.y.max() >= net.classes):
            raise UserError(f"the {name} data needs labels 0..{net.classes - 1} (the model has {net.classes} classes)")
    start = time.perf_counter()
    torch.manual_seed(options.seed)
    np.random.seed(options.seed)
    deterministic = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        model = TrainableNet(net, calibration_x, config)
        pixels, labels = torch.from_numpy(net.input.pixels(train.x)), torch.from_numpy(train.y)
        steps = math.ceil(len(pixels) / options.batch_size)
        optimizer = torch.optim.Adam(model.parameters(), lr=options.learning_rate)
        schedule = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: 0.5 * (1 + math.cos(math.pi * step / (options.epochs * steps))))
        generator = torch.Generator().manual_seed(options.seed)
        penalty = 0.0
        best_net, *figures = _measure(model, train, validation)
        epochs = [EpochResult(0, None, *figures, penalty, time.perf_counter() - start)]
        chosen, chosen_graph = 0, model.reference
        if log:
            log(epochs[0])
        for epoch in range(1, options.epochs + 1):
            losses = []
            bar = tqdm(torch.randperm(len(pixels), generator=generator).split(options.batch_size), total=steps,
                       desc=f"epoch {epoch}/{options.epochs}", disable=not progress if progress is not None else None,
                       leave=False)
            for batch in bar:
                qs, logits = model(pixels[batch])
                loss = F.cross_entropy(logits, labels[batch])
                if options.spikes_per_neuron is not None:
                    spikes, neurons = _spikes(net, qs)
                    loss = loss + penalty * spikes
                    rate = spikes.item() / neurons
                    aim = 0.95 * options.spikes_per_neuron
                    penalty = max(0.0, penalty + options.penalty_step / steps * (rate / aim - 1))
                if not torch.isfinite(loss):
                    raise UserError(f"the loss became {loss.item()} at epoch {epoch} (step {len(losses) + 1}); "
                                    "use a smaller --learning-rate")
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                schedule.step()
                losses.append(loss.item())
                bar.set_postfix(loss=f"{np.mean(losses[-50:]):.3f}", **(
                    {"spikes": f"{rate:.3f}"} if options.spikes_per_neuron is not None else {}))
            bar.close()
            epoch_net, *figures = _measure(model, train, validation)
            epochs.append(EpochResult(epoch, float(np.mean(losses)), *figures, penalty, time.perf_counter() - start))
            if log:
                log(epochs[-1])
            if _better(epochs[-1], epochs, net, options):
                best_net, chosen, chosen_graph = epoch_net, epoch, model.graph()
    finally:
        torch.use_deterministic_algorithms(deterministic)
    best_net.ann = net.ann
    best_net.meta["finetune"] = {"epochs": options.epochs, "chosen_epoch": chosen, "seed": options.seed,
                                 "learning_rate": options.learning_rate, "batch_size": options.batch_size,
                                 "spikes_per_neuron_target": options.spikes_per_neuron}
    return FinetuneResult(best_net, chosen_graph, epochs, chosen, _meets(epochs[chosen], net, options),
                          time.perf_counter() - start)


def _meets(result: EpochResult, net: TTFSNet, options: FinetuneOptions) -> bool:
    target = options.spikes_per_neuron
    return target is None or hidden_spikes(net, result.train["spikes_per_neuron"]) <= target


def _better(result: EpochResult, epochs: list, net: TTFSNet, options: FinetuneOptions) -> bool:
    """Whether ``result`` (the last of ``epochs``) is the one to keep so far: it meets the target and the others
    do not, or as they do, with at least their accuracy."""
    key = (_meets(result, net, options), result.accuracy)
    return all(key >= (_meets(e, net, options), e.accuracy) for e in epochs[:-1])


def torch_module(graph: ir.Graph, input_shape) -> nn.Sequential:
    """The float graph (after folding: Dense, Conv2d, ReLU, MaxPool2d, Flatten) as a PyTorch
    module taking inputs of ``input_shape`` (without batch), for ``torch.export``."""
    layers = [nn.Flatten()] if len(graph.input_shape) < len(input_shape) else []
    for node in graph.nodes[1:-1]:
        if isinstance(node, ir.Dense):
            layer = nn.Linear(*node.weight.shape[::-1], dtype=torch.float32)
        elif isinstance(node, ir.Conv2d):
            out_c, in_c, kh, kw = node.weight.shape
            layer = nn.Conv2d(in_c, out_c, (kh, kw), node.stride, node.padding, dtype=torch.float32)
        elif isinstance(node, ir.ReLU):
            layer = nn.ReLU()
        elif isinstance(node, ir.MaxPool2d):
            layer = nn.MaxPool2d(node.kernel, node.stride, node.padding)
        elif isinstance(node, ir.Flatten):
            layer = nn.Flatten()
        else:
            raise UserError(f"{node.where()} has no PyTorch module here")
        if isinstance(node, (ir.Dense, ir.Conv2d)):
            with torch.no_grad():
                layer.weight.copy_(torch.from_numpy(node.weight))
                layer.bias.copy_(torch.from_numpy(node.bias))
        layers.append(layer)
    return nn.Sequential(*layers).eval()
