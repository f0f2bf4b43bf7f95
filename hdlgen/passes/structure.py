"""Structural passes: drop no-op flattens, and check the graph is a net hdlgen can lower."""

import dataclasses

import numpy as np

from .. import ir
from ..errors import UserError

__all__ = ["DropFlatten", "CheckStructure", "CheckActivations", "spiking"]


def spiking(graph: ir.Graph, node: ir.Node) -> bool:
    """``node``'s output is spikes: the input, a ReLU (or another activation, for AMOS), a max-pool of spikes,
    or a flatten of one of these."""
    while isinstance(node, ir.Flatten):
        (node,) = graph.sources(node)
    return isinstance(node, (ir.Input, ir.ReLU, ir.Activation, ir.MaxPool2d))


class CheckActivations:
    """Refuse every activation but ReLU, in one line naming it and its layer: a TTFS neuron's value is exactly
    ReLU's, so no other gate converts; ``hdlgen compare`` evaluates such a net as AMOS units."""

    name = "check-activations"
    refuses = ir.Activation   # the IR kind no TTFS net holds (only the AMOS comparison lowers it)

    def run(self, state):
        gate = next((n for n in state.graph.nodes if isinstance(n, ir.Activation)), None)
        if gate is not None:
            raise UserError(f"{gate.where()} is {gate.label()}: only ReLU maps exactly to TTFS spikes, so this net "
                            "cannot be converted; 'hdlgen compare MODEL --data D.npz' evaluates it as AMOS spiking units")


class DropFlatten:
    """Remove Flatten nodes that no conv or pool precedes: a dense layer reads the flattened
    input in PyTorch's (C, H, W) order anyway, so the input encoding keeps the original shape."""

    name = "drop-flatten"

    def run(self, state):
        nodes = state.graph.nodes
        spatial = (ir.Conv2d, ir.MaxPool2d, ir.AvgPool2d)
        first_spatial = next((i for i, n in enumerate(nodes) if isinstance(n, spatial)), len(nodes))
        dropped = [n.name for i, n in enumerate(nodes) if isinstance(n, ir.Flatten) and i < first_spatial]
        if dropped:
            for name in dropped:
                nodes = ir.without(nodes, name)
            input_node = nodes[0]
            state.stats["input_shape"] = input_node.shape
            nodes[0] = dataclasses.replace(input_node, shape=(int(np.prod(input_node.shape)),))
            state.graph = ir.Graph(nodes)


class CheckStructure:
    """Accept graphs hdlgen can lower: every Dense/Conv2d but the readout is read by one ReLU
    alone (a spiking layer) and reads spikes (the input, a ReLU, a max-pool or a flatten of
    them; several inputs are joined); MaxPool2d pools spikes (a 1×1 window may also subsample
    the input); the readout is a Dense that the output reads."""

    name = "check-structure"
    SUPPORTED = ("ReLU networks of Linear/Conv2d + ReLU layers, MaxPool2d after a ReLU, Flatten, residual adds, "
                 "ending in a Linear readout (BatchNorm and AvgPool fold)")

    def run(self, state):
        graph = state.graph
        body = graph.nodes[1:-1]
        for node in body:
            if not isinstance(node, (ir.Dense, ir.Conv2d, ir.ReLU, ir.MaxPool2d, ir.Flatten)):
                raise UserError(f"{node.where()} is not supported here; hdlgen converts {self.SUPPORTED}")
        layers = [n for n in body if not isinstance(n, ir.Flatten)]
        (readout,) = graph.sources(graph.nodes[-1])
        while isinstance(readout, ir.Flatten):
            (readout,) = graph.sources(readout)
        if not layers or not isinstance(readout, ir.Dense):
            raise UserError("the net must end in a Dense (Linear) readout without ReLU; got "
                            f"{' → '.join(n.kind for n in body) or 'no layers'}")
        for node in layers:
            sources = graph.sources(node)
            before = sources[0]
            while isinstance(before, ir.Flatten):
                (before,) = graph.sources(before)
            if isinstance(node, ir.ReLU) and not isinstance(before, (ir.Dense, ir.Conv2d)):
                raise UserError(f"{node.where()} follows {before.where()}; a ReLU must follow a Dense or Conv2d layer")
            if isinstance(node, ir.MaxPool2d) and not (isinstance(before, (ir.ReLU, ir.MaxPool2d)) or
                                                       isinstance(before, ir.Input) and node.kernel == (1, 1)):
                raise UserError(f"{node.where()} must follow a ReLU (it pools spikes)")
            if isinstance(node, (ir.Dense, ir.Conv2d)):
                for source in sources:
                    if isinstance(source, (ir.Dense, ir.Conv2d)):
                        raise UserError(f"{node.where()} follows {source.where()} with no ReLU between; "
                                        "every hidden layer must end in a ReLU")
                    if not spiking(graph, source):
                        raise UserError(f"{node.where()} reads {source.where()}; a layer must read spikes "
                                        "(the input, a ReLU or a max-pool)")
        for node in layers:
            if isinstance(node, (ir.Dense, ir.Conv2d)):
                if node is not readout:
                    readers = graph.consumers(node.name)
                    if len(readers) != 1 or not isinstance(readers[0], ir.ReLU):
                        raise UserError(f"{node.where()} is a hidden layer without a ReLU after it"
                                        + (" (its output feeds several layers)" if len(readers) > 1 else ""))
