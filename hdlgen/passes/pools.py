"""Pooling passes: put max-pools after their ReLU, fold average pools into an affine neighbour."""

import dataclasses

import numpy as np

from .. import ir
from ..errors import UserError
from .folding import fold_away

__all__ = ["PoolAfterReLU", "FoldAvgPool", "compose_kernels"]


class PoolAfterReLU:
    """``MaxPool → ReLU`` becomes ``ReLU → MaxPool`` (relu(max(x)) = max(relu(x))), so every
    max-pool pools spikes. A BatchNorm next to a max-pool on the ReLU's side – between a conv's
    max-pool and its ReLU, or after the ReLU and before the pool – moves to the pool's other
    side when all its scales are positive (a positive affine map per channel commutes with max),
    where it folds into the conv before or the layer after; a negative or zero scale would turn
    that channel's max-pool into a min-pool, which is refused naming the channel."""

    name = "pool-after-relu"

    def run(self, state):
        graph = state.graph
        while True:
            swap = next(filter(None, (self._swap(graph, pool) for pool in graph.nodes if isinstance(pool, ir.MaxPool2d))),
                        None)
            if swap is None:
                break
            graph = _swapped(graph, *swap)
        state.graph = graph

    @staticmethod
    def _swap(graph, pool):
        """The pair ``(first, second)`` to swap next around ``pool``, or ``None``."""
        after = _sole_reader(graph, pool)
        if isinstance(after, ir.ReLU):
            return pool, after
        if isinstance(after, ir.BatchNorm) and isinstance(_sole_reader(graph, after), ir.ReLU):
            _check_commutes_with_max(after, pool)
            return pool, after
        (before,) = graph.sources(pool)
        if isinstance(before, ir.BatchNorm) and len(graph.consumers(before.name)) == 1 \
                and isinstance(graph.sources(before)[0], ir.ReLU):
            _check_commutes_with_max(before, pool)
            return before, pool
        return None


def _sole_reader(graph, node):
    """The one node that reads ``node`` and nothing else, or ``None``."""
    readers = graph.consumers(node.name)
    return readers[0] if len(readers) == 1 and len(readers[0].inputs) == 1 else None


def _swapped(graph, first, second):
    """``graph`` with ``second`` (the one reader of ``first``) moved before it: ``second`` reads what
    ``first`` read, ``first`` reads ``second``, and ``second``'s readers read ``first``."""
    nodes = []
    for node in graph.nodes:
        if node is first:
            nodes.append(dataclasses.replace(second, inputs=first.inputs))
        elif node is second:
            nodes.append(dataclasses.replace(first, inputs=(second.name,)))
        else:
            nodes.append(dataclasses.replace(node, inputs=tuple(first.name if i == second.name else i
                                                                 for i in node.inputs)))
    return ir.Graph(nodes)


def _check_commutes_with_max(bn, pool):
    scale = bn.scale_shift()[0]
    bad = np.flatnonzero(scale <= 0)
    if len(bad):
        raise UserError(f"{bn.where()} has a negative or zero scale ({scale[bad[0]]:g}) on channel {bad[0]} next to "
                        f"{pool.where()}: that would make the max-pool a min-pool; move the batch norm before the "
                        "ReLU, or give it positive scales")


def compose_kernels(coarse, fine, step):
    """Kernel of ``coarse ∘ fine`` where ``coarse`` taps positions ``step`` apart of the output of
    ``fine``: ``out[a·step + b] += coarse[a] · fine[b]`` over the last two axes (broadcast over
    the leading ones)."""
    (ah, aw), (bh, bw) = coarse.shape[-2:], fine.shape[-2:]
    lead = np.broadcast_shapes(coarse.shape[:-2], fine.shape[:-2])
    out = np.zeros(lead + ((ah - 1) * step[0] + bh, (aw - 1) * step[1] + bw))
    for a_y in range(ah):
        for a_x in range(aw):
            out[..., a_y * step[0]:a_y * step[0] + bh, a_x * step[1]:a_x * step[1] + bw] += \
                coarse[..., a_y:a_y + 1, a_x:a_x + 1] * fine
    return out


class FoldAvgPool:
    """Fold every AvgPool2d (no padding) exactly into an affine neighbour:

    * straight after a Conv2d (before its ReLU): one conv with kernel ``k + (p−1)·s`` and
      stride ``s·p_stride``;
    * before a Conv2d without padding: one conv over the un-pooled input;
    * before a Dense (through a Flatten): the dense weights spread over each window.
    """

    name = "fold-avgpool"
    removes = ir.AvgPool2d   # the IR kind this pass leaves none of

    def run(self, state):
        state.graph = fold_away(state.graph, ir.AvgPool2d, self._into_previous, self._into_next)

    @staticmethod
    def _window(pool):
        if any(pool.padding):
            raise UserError(f"{pool.where()}: average pooling with padding is not supported")
        return np.full((1, 1) + pool.kernel, 1.0 / np.prod(pool.kernel))

    @classmethod
    def _into_previous(cls, before, pool):
        window = cls._window(pool)
        if not isinstance(before, ir.Conv2d):
            return None
        weight = compose_kernels(window, before.weight, before.stride)
        stride = (before.stride[0] * pool.stride[0], before.stride[1] * pool.stride[1])
        return ir.Conv2d(weight, before.bias, stride, before.padding, name=before.name)

    @classmethod
    def _into_next(cls, pool, after, in_shape, flattened):
        if isinstance(after, ir.Conv2d) and not any(after.padding):
            weight = compose_kernels(after.weight, cls._window(pool), pool.stride)
            stride = (after.stride[0] * pool.stride[0], after.stride[1] * pool.stride[1])
            return ir.Conv2d(weight, after.bias, stride, (0, 0), name=after.name)
        if isinstance(after, ir.Dense):
            return ir.Dense(cls._spread(after.weight, pool, in_shape), after.bias, name=after.name)
        raise UserError(f"{pool.where()} cannot be folded: it must follow a Conv2d, or precede a Conv2d "
                        "without padding or a Linear layer")

    @staticmethod
    def _spread(weight, pool, in_shape):
        """Dense weights over the pooled map → weights over the map before pooling."""
        c, h, w = in_shape
        pooled = pool.output_shape(in_shape)
        per_window = weight.reshape(len(weight), *pooled)
        spread = np.zeros((len(weight), c, h, w))
        (kh, kw), (sy, sx) = pool.kernel, pool.stride
        for oy in range(pooled[1]):
            for ox in range(pooled[2]):
                spread[:, :, oy * sy:oy * sy + kh, ox * sx:ox * sx + kw] += \
                    per_window[:, :, oy:oy + 1, ox:ox + 1] / (kh * kw)
        return spread.reshape(len(weight), -1)
