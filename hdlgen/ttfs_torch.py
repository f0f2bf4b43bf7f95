"""The golden model's batch form (:func:`hdlgen.golden.run_batch`) in PyTorch, with
straight-through gradients, for fine-tuning (:mod:`hdlgen.finetune`): the graph walk here, each
layer kind's own arithmetic in its ``torch_forward`` (:mod:`hdlgen.ttfs`).

Every value is an integer held in float64, and every sum of a layer is bounded by
:func:`~hdlgen.ttfs.layer_bounds` far below ``2**53``, so the forward is exact whatever order
the sums run in: ``A = B + W·q_in``, ``q = clamp(floor(A / K), 0, T)``, max-pool ``q = max(window)``
and the readout's ``A`` as logits are the golden model's integers, bit for bit.

Gradients: the floor (and the round-half-up of quantization) passes the gradient straight
through; the clamp keeps its own (1 inside ``0..T``, 0 outside). That is ``dq/dA = 1/K`` where
``0 ≤ A/K < T + 1``, the clipped ReLU – the "constant slope at threshold" case of Stanojevic et
al. 2023, in which the spiking net and the ReLU net train alike.
"""

from __future__ import annotations

import numpy as np
import torch

from .golden import BatchResult
from .ttfs import TTFSNet

__all__ = ["floor_ste", "round_half_up", "floor_divide", "integer_params", "forward", "run_batch"]


class _Floor(torch.autograd.Function):
    """``floor(x)`` forward, the identity backward."""

    @staticmethod
    def forward(ctx, x):
        return torch.floor(x)

    @staticmethod
    def backward(ctx, grad):
        return grad


class _FloorDivide(torch.autograd.Function):
    """``floor(a / k)`` of integers exactly (torch's floor division, not a rounded quotient),
    with the gradient of ``a / k``."""

    @staticmethod
    def forward(ctx, a, k):
        ctx.save_for_backward(a, k)
        return torch.div(a, k, rounding_mode="floor")

    @staticmethod
    def backward(ctx, grad):
        a, k = ctx.saved_tensors
        return grad / k, (-grad * a / (k * k)).sum_to_size(k.shape)


def floor_ste(x: torch.Tensor) -> torch.Tensor:
    """``floor(x)`` with a straight-through gradient."""
    return _Floor.apply(x)


def round_half_up(x: torch.Tensor) -> torch.Tensor:
    """``floor(x + 0.5)`` (the compiler's rounding) with a straight-through gradient."""
    return _Floor.apply(x + 0.5)


def integer_params(net: TTFSNet) -> list:
    """The integers of ``net`` as float64 tensors: per layer ``(W, B, K)`` (``K`` None for the
    readout), or ``None`` for a max-pool."""
    def tensor(a):
        return None if a is None else torch.from_numpy(np.asarray(a, dtype=np.float64))
    return [(tensor(l.weight), tensor(l.bias), tensor(l.k)) if l.has_weights else None for l in net.layers]


def floor_divide(a: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """``floor(a / k)`` of integers exactly, with the gradient of ``a / k`` (the comparator's floor)."""
    return _FloorDivide.apply(a, k)


def forward(net: TTFSNet, q0: torch.Tensor, params=None) -> tuple[list, torch.Tensor]:
    """``(q of every spiking layer, logits)`` of a batch of input activations ``q0`` (N, input size),
    float64 tensors; ``params`` (as :func:`integer_params` gives them) default to ``net``'s own."""
    params = integer_params(net) if params is None else params
    qs = [q0]
    for l, (layer, p) in enumerate(zip(net.layers, params)):
        parts = [qs[j] for j in net.sources(l)]
        qs.append(layer.torch_forward(p, parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)))
    return qs[:-1], qs[-1]


def run_batch(net: TTFSNet, pixels: np.ndarray) -> BatchResult:
    """:func:`hdlgen.golden.run_batch` computed by :func:`forward` (int64 results)."""
    q0 = torch.from_numpy(net.input.q(np.asarray(pixels).reshape(len(pixels), -1)).astype(np.float64))
    with torch.no_grad():
        qs, logits = forward(net, q0)
    logits = logits.numpy().astype(np.int64)
    return BatchResult([q.numpy().astype(np.int64) for q in qs], logits, np.argmax(logits, axis=1))
