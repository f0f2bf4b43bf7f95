"""The walk both folding passes share: remove each node of a kind by merging it into a neighbour."""

import dataclasses

from .. import ir
from ..errors import UserError

__all__ = ["fold_away", "sole_consumer"]


def sole_consumer(graph: ir.Graph, node: ir.Node, what: str):
    """The one node that reads ``node`` (``None`` at the output); a :class:`UserError` saying that
    ``node`` cannot be ``what`` when several read it."""
    readers = graph.consumers(node.name)
    if len(readers) > 1:
        raise UserError(f"{node.where()} feeds {len(readers)} layers ({', '.join(r.name for r in readers)}); "
                        f"it can be {what} only when one layer reads it")
    return readers[0] if readers else None


def fold_away(graph: ir.Graph, kind, into_previous, into_next) -> ir.Graph:
    """``graph`` without its ``kind`` nodes, each folded into the node before it or the layer after it.

    ``into_previous(before, node)`` returns the two merged into one node, or ``None`` when they
    cannot be (or when something else reads ``before``); then ``into_next(node, after, in_shape,
    flattened)`` returns the layer after (``None`` at the end; ``flattened`` when a Flatten stands
    between, which stays) with ``node`` folded in, or raises :class:`~hdlgen.errors.UserError`
    saying why it cannot. ``in_shape`` is the shape going into ``node``. The merged node keeps
    the name and inputs of the one it replaces.
    """
    while True:
        node = next((n for n in graph.nodes if isinstance(n, kind)), None)
        if node is None:
            return graph
        nodes = list(graph.nodes)
        (before,) = graph.sources(node)
        shapes = dict(zip((n.name for n in nodes), graph.shapes()))
        merged = into_previous(before, node) if len(graph.consumers(before.name)) == 1 else None
        if merged is not None:
            nodes[graph.index(before.name)] = dataclasses.replace(merged, name=before.name, inputs=before.inputs)
            graph = ir.Graph(ir.without(nodes, node.name))
            continue
        after = sole_consumer(graph, node, "folded into the layer after it")
        flattened = isinstance(after, ir.Flatten)
        if flattened:
            after = sole_consumer(graph, after, "folded through")
        if after is not None and len(after.inputs) != 1:
            after = None   # an add or a several-input layer: nothing to fold into
        folded = into_next(node, after, shapes[before.name], flattened)   # raises when there is nothing to fold into
        nodes[graph.index(after.name)] = dataclasses.replace(folded, name=after.name, inputs=after.inputs)
        graph = ir.Graph(ir.without(nodes, node.name))
