"""Structural passes: drop no-op flattens, and check the graph is a net hdlgen can lower."""

import numpy as np

from .. import ir
from ..errors import UserError

__all__ = ["DropFlatten", "CheckStructure"]


class DropFlatten:
    """Remove Flatten nodes that no conv or pool precedes: a dense layer reads the flattened
    input in PyTorch's (C, H, W) order anyway, so the input encoding keeps the original shape."""

    name = "drop-flatten"

    def run(self, state):
        nodes = state.graph.nodes
        spatial = (ir.Conv2d, ir.MaxPool2d, ir.AvgPool2d)
        first_spatial = next((i for i, n in enumerate(nodes) if isinstance(n, spatial)), len(nodes))
        kept = [n for i, n in enumerate(nodes) if not (isinstance(n, ir.Flatten) and i < first_spatial)]
        if len(kept) != len(nodes):
            input_node = kept[0]
            state.stats["input_shape"] = input_node.shape
            kept[0] = ir.Input((int(np.prod(input_node.shape)),), name=input_node.name)
            state.graph = ir.Graph(kept)


class CheckStructure:
    """Accept exactly Input, (Dense, ReLU)*, Dense, Output: hidden layers spike, the last is the readout."""

    name = "check-structure"
    SUPPORTED = "dense ReLU networks: Linear/Dense + ReLU layers ending in a Linear readout (BatchNorm folds)"

    def run(self, state):
        body = state.graph.nodes[1:-1]
        for node in body:
            if not isinstance(node, (ir.Dense, ir.ReLU)):
                raise UserError(f"{node.where()} is not supported yet; hdlgen converts {self.SUPPORTED}")
        kinds = [type(n) for n in body]
        expected = [ir.Dense, ir.ReLU] * (len(body) // 2) + [ir.Dense]
        if kinds != expected:
            raise UserError("the net must alternate Dense and ReLU and end in a Dense readout without ReLU; "
                            f"got {' → '.join(n.kind for n in body)}")
