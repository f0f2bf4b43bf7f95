"""The walk both folding passes share: remove each node of a kind by merging it into a neighbour."""

from .. import ir

__all__ = ["fold_away"]


def fold_away(graph: ir.Graph, kind, into_previous, into_next) -> ir.Graph:
    """``graph`` without its ``kind`` nodes, each folded into the node before it or the layer after it.

    ``into_previous(before, node)`` returns the two merged into one node, or ``None`` when they
    cannot be; then ``into_next(node, after, in_shape, flattened)`` returns the layer after
    (``None`` at the end; ``flattened`` when a Flatten stands between, which stays) with ``node``
    folded in, or raises :class:`~hdlgen.errors.UserError` saying why it cannot. ``in_shape`` is
    the shape going into ``node``.
    """
    nodes = list(graph.nodes)
    shapes = graph.shapes()     # shapes[i] is what node i gives
    i = 1
    while i < len(nodes):
        node = nodes[i]
        if not isinstance(node, kind):
            i += 1
            continue
        merged = into_previous(nodes[i - 1], node)
        if merged is not None:
            nodes[i - 1:i + 1] = [merged]
            shapes[i - 1:i + 1] = [shapes[i]]
            continue
        j = i + 1 + (i + 1 < len(nodes) and isinstance(nodes[i + 1], ir.Flatten))
        after = nodes[j] if j < len(nodes) else None
        folded = into_next(node, after, shapes[i - 1], j > i + 1)   # raises when there is nothing to fold into
        nodes[j] = folded
        del nodes[i]
        del shapes[i]
    return ir.Graph(nodes)
