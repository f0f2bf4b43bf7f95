"""Residual adds: fold each Add into the layer whose neurons take both branches.

The integer net has no add (docs/ttfs-format.md, "Residual add"): the neurons after it sum both
branches in one accumulator, ``A = B + Σ W·q_main + Σ W_skip·q_skip``. In the float graph that
layer is a Dense or Conv2d with several inputs, reading their concatenation, whose weight is the
two weight blocks side by side. Two shapes of add are folded:

* **after a layer** (``relu(main(h) + shortcut)``, a ResNet's BasicBlock): ``main`` is a Dense or
  Conv2d that only the add reads; the shortcut is either spikes (the identity: weight ``1`` from
  channel ``c`` to channel ``c``) or a Dense / 1×1 Conv2d that only the add reads (a projection,
  its batch norm already folded into it). A convolution's shortcut enters as the centre tap of
  the main kernel, so the main conv must keep the size ("same" padding, stride 1); a strided 1×1
  projection first subsamples its input with a 1×1 max-pool of that stride (exact: one spike per
  window).
* **before a layer** (``c(relu(b(h)) + h)``): both branches are spikes and the add's one reader
  (through a Flatten) is a Dense or Conv2d, which then reads both with its weight repeated.
"""

import dataclasses

import numpy as np

from .. import ir
from ..errors import UserError
from .structure import spiking

__all__ = ["MergeAdd", "toposort"]

_AFFINE = (ir.Dense, ir.Conv2d)


def toposort(nodes: list) -> list:
    """``nodes`` in an order where each comes after the ones it reads, keeping the given order
    wherever it already is one."""
    placed, done, waiting = [], set(), list(nodes)
    while waiting:
        node = next(n for n in waiting if all(i in done for i in n.inputs))
        waiting.remove(node)
        placed.append(node)
        done.add(node.name)
    return placed


class MergeAdd:
    """Fold every :class:`~hdlgen.ir.Add` into a several-input Dense/Conv2d (module docstring);
    an add of another shape is refused naming it."""

    name = "merge-add"
    removes = ir.Add   # the IR kind this pass leaves none of
    SUPPORTED = ("main + shortcut after a Linear/Conv2d (identity, or a Linear / 1×1 Conv2d projection), "
                 "or spikes + spikes before a Linear/Conv2d")

    def run(self, state):
        graph = state.graph
        while (add := next((n for n in graph.nodes if isinstance(n, ir.Add)), None)) is not None:
            graph = self._after_layer(graph, add) or self._before_layer(graph, add)
        state.graph = graph

    def _after_layer(self, graph, add):
        shapes = dict(zip((n.name for n in graph.nodes), graph.shapes()))
        branches = graph.sources(add)
        owned = [b for b in branches if isinstance(b, _AFFINE) and len(graph.consumers(b.name)) == 1]
        if not owned:
            return None
        main = next((b for b in owned if isinstance(b, ir.Dense) or _keeps_size(b, shapes)), owned[0])
        (shortcut,) = [b for b in branches if b is not main] or [main]
        projection = shortcut is not main and any(shortcut is b for b in owned)
        if isinstance(main, ir.Conv2d) and not _keeps_size(main, shapes):
            raise UserError(f"{add.where()}: the main branch's {main.where()} changes the map's size (stride "
                            f"{main.stride}, padding {main.padding}); a shortcut joins a conv with 'same' padding and "
                            "stride 1")
        extra = []
        if projection:     # its own weights, its own inputs: its own weights, its own inputs
            if type(shortcut) is not type(main):
                raise UserError(f"{add.where()}: adds {main.where()} and {shortcut.where()}; both branches must be "
                                "Linear or both Conv2d")
            inputs, bias = shortcut.inputs, shortcut.bias
            if isinstance(main, ir.Conv2d):
                if shortcut.weight.shape[2:] != (1, 1) or any(shortcut.padding):
                    raise UserError(f"{add.where()}: the shortcut {shortcut.where()} is a {shortcut.weight.shape[2]}x"
                                    f"{shortcut.weight.shape[3]} conv with padding {shortcut.padding}; a projection "
                                    "shortcut is a 1×1 Conv2d without padding (any stride)")
                if shortcut.stride != (1, 1):
                    extra = [ir.MaxPool2d((1, 1), shortcut.stride, name=f"{shortcut.name}_subsample", inputs=(i,))
                             for i in inputs]
                    inputs = tuple(pool.name for pool in extra)
                block = _centre_tap(shortcut.weight[:, :, 0, 0], main)
            else:
                block = shortcut.weight
        elif shortcut is main:
            raise UserError(f"{add.where()} adds {main.where()} to itself; supported: {self.SUPPORTED}")
        else:                                               # the identity
            if not spiking(graph, shortcut):
                raise UserError(f"{add.where()}: its shortcut {shortcut.where()} is neither spikes nor a projection "
                                f"that only the add reads; supported: {self.SUPPORTED}")
            inputs, bias = (shortcut.name,), 0.0
            units = len(main.bias)
            block = np.eye(units) if isinstance(main, ir.Dense) else _centre_tap(np.eye(units), main)
        merged = dataclasses.replace(main, weight=np.concatenate([main.weight, block], axis=1),
                                     bias=main.bias + bias, inputs=main.inputs + inputs)
        return self._rewired(graph, add, merged, removed={shortcut.name} if projection else set(), extra=extra)

    def _before_layer(self, graph, add):
        branches = graph.sources(add)
        reader = graph.consumers(add.name)
        through = []
        while len(reader) == 1 and isinstance(reader[0], ir.Flatten):
            through.append(reader[0].name)
            reader = graph.consumers(reader[0].name)
        if not (all(spiking(graph, b) for b in branches) and len(reader) == 1 and isinstance(reader[0], _AFFINE)
                and len(reader[0].inputs) == 1):
            kinds = " and ".join(b.where() for b in branches)
            raise UserError(f"{add.where()} adds {kinds}; supported: {self.SUPPORTED}")
        layer = reader[0]
        if isinstance(layer, ir.Conv2d) and len(graph.shapes()[graph.index(branches[0].name)]) != 3:
            raise UserError(f"{add.where()}: a Conv2d reads the sum of two vectors; supported: {self.SUPPORTED}")
        merged = dataclasses.replace(layer, weight=np.concatenate([layer.weight, layer.weight], axis=1),
                                     inputs=add.inputs)
        return self._rewired(graph, add, merged, removed=set(through))

    @staticmethod
    def _rewired(graph, add, merged, removed, extra=()):
        """``graph`` with ``merged`` in place of its namesake, ``add`` and ``removed`` gone (their readers
        read ``merged``), ``extra`` nodes added just before ``merged``; in topological order."""
        gone = removed | {add.name}
        nodes = []
        for node in graph.nodes:
            if node.name in gone:
                continue
            if node.name == merged.name:
                nodes.extend(extra)
                node = merged
            elif any(i == add.name for i in node.inputs):
                node = dataclasses.replace(node, inputs=tuple(merged.name if i == add.name else i for i in node.inputs))
            nodes.append(node)
        return ir.Graph(toposort(nodes))


def _keeps_size(conv, shapes) -> bool:
    """A stride-1 conv whose padding keeps the map's size: ``k = 2·p + 1`` on both axes."""
    return conv.stride == (1, 1) and all(k == 2 * p + 1 for k, p in zip(conv.weight.shape[2:], conv.padding))


def _centre_tap(matrix, conv) -> np.ndarray:
    """A (out, in) matrix as a kernel of ``conv``'s size with only its centre tap set."""
    kh, kw = conv.weight.shape[2:]
    kernel = np.zeros((*matrix.shape, kh, kw))
    kernel[:, :, kh // 2, kw // 2] = matrix
    return kernel
