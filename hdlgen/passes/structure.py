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
    """Accept chains hdlgen can lower: every Dense/Conv2d but the last is followed by a ReLU
    (a spiking layer), MaxPool2d stands after a ReLU or another max-pool (it passes the earliest
    spike of each window), Flatten may stand between, and the last layer is a Dense readout."""

    name = "check-structure"
    SUPPORTED = ("ReLU networks of Linear/Conv2d + ReLU layers, MaxPool2d after a ReLU, Flatten, ending in a "
                 "Linear readout (BatchNorm and AvgPool fold)")

    def run(self, state):
        body = state.graph.nodes[1:-1]
        for node in body:
            if not isinstance(node, (ir.Dense, ir.Conv2d, ir.ReLU, ir.MaxPool2d, ir.Flatten)):
                raise UserError(f"{node.where()} is not supported here; hdlgen converts {self.SUPPORTED}")
        layers = [n for n in body if not isinstance(n, ir.Flatten)]
        if not layers or not isinstance(layers[-1], ir.Dense):
            raise UserError("the net must end in a Dense (Linear) readout without ReLU; got "
                            f"{' → '.join(n.kind for n in body) or 'no layers'}")
        for before, node in zip([state.graph.nodes[0]] + layers, layers):
            if isinstance(node, ir.ReLU) and not isinstance(before, (ir.Dense, ir.Conv2d)):
                raise UserError(f"{node.where()} follows {before.where()}; a ReLU must follow a Dense or Conv2d layer")
            if isinstance(node, ir.MaxPool2d) and not isinstance(before, (ir.ReLU, ir.MaxPool2d)):
                raise UserError(f"{node.where()} must follow a ReLU (it pools spikes)")
            if isinstance(node, (ir.Dense, ir.Conv2d)) and isinstance(before, (ir.Dense, ir.Conv2d)):
                raise UserError(f"{node.where()} follows {before.where()} with no ReLU between; "
                                "every hidden layer must end in a ReLU")
        for node, after in zip(layers, layers[1:]):
            if isinstance(node, (ir.Dense, ir.Conv2d)) and not isinstance(after, ir.ReLU):
                raise UserError(f"{node.where()} is a hidden layer without a ReLU after it")
