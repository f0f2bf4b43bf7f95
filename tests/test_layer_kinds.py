"""One contract per layer kind (docs/adding-a-layer-kind.md): the registries keyed by kind agree, and each
kind's forms of its arithmetic agree with each other on a net that holds it."""

import inspect

import numpy as np
import pytest
from amaranth.lib import wiring

from hdlgen import golden, ir
from hdlgen.geometry import STAGE_GEOMETRY, NetGeometry
from hdlgen.passes import FLOW
from hdlgen.rtl_templates.top import STAGES
from hdlgen.testing import mixed_pixels, random_cnn, random_graph, random_net
from hdlgen.ttfs import LAYER_TYPES

# IR kinds that are no integer layer of their own: the ends of the graph and what lowers with its neighbour
STRUCTURAL = {"input", "output", "relu", "flatten"}

NETS = [random_net(np.random.default_rng(0), [20, 8, 4], 4),
        random_cnn(np.random.default_rng(1), (2, 8, 8), (("conv", 4, 3, 1, 1), ("pool", 2, 2)), ticks=4),
        random_graph(np.random.default_rng(2), (2, 6, 6), (4, -4, 4), ticks=4, skips=1.0)]


def test_the_registries_keyed_by_kind_agree():
    assert set(LAYER_TYPES) == set(STAGE_GEOMETRY) == set(STAGES)
    for kind, cls in LAYER_TYPES.items():
        assert cls.kind == kind == STAGE_GEOMETRY[kind].kind
        assert issubclass(STAGES[kind], wiring.Component)


def test_every_ir_kind_is_lowered_folded_structural_or_refused_for_amos():
    """A kind the TTFS flow refuses (an activation other than ReLU) is one the AMOS comparison lowers."""
    from hdlgen.codes.amos_gates import GATES

    folded = {step.removes.kind for step in FLOW if hasattr(step, "removes")}
    refused = {step.refuses.kind for step in FLOW if hasattr(step, "refuses")}
    assert set(ir.NODE_TYPES) == set(LAYER_TYPES) | folded | STRUCTURAL | refused
    assert not (folded & set(LAYER_TYPES)) and not (STRUCTURAL & (folded | set(LAYER_TYPES)))
    assert not (refused & (folded | STRUCTURAL | set(LAYER_TYPES))) and refused <= {g.kind for g in GATES}


@pytest.mark.parametrize("kind", sorted(LAYER_TYPES))
def test_every_kind_provides_the_contract(kind):
    cls, geometry = LAYER_TYPES[kind], STAGE_GEOMETRY[kind]
    for method in ("forward", "events", "torch_forward", "widths"):
        assert callable(getattr(cls, method, None)), f"{kind} lacks {method}"
    for method in ("input_costs", "overhead", "memory_bits", "lane_limit", "reach", "describe"):
        assert callable(getattr(geometry, method, None)), f"{kind}'s geometry lacks {method}"
    assert list(inspect.signature(STAGES[kind]).parameters) == ["geometry"]
    layers = [(net, l) for net in NETS for l, layer in enumerate(net.layers) if layer.kind == kind]
    assert layers, f"no test net holds a {kind} layer"
    for net, l in layers:
        NetGeometry(net)      # every stage geometry builds
        STAGES[kind](NetGeometry(net).layers[l])


@pytest.mark.parametrize("net", NETS, ids=["mlp", "cnn", "graph"])
def test_each_kind_s_forms_agree_layer_by_layer(net):
    """Batch, event and torch forms of every layer, on the inputs the net gives it."""
    torch = pytest.importorskip("torch")
    from hdlgen.ttfs_torch import integer_params

    pixels = mixed_pixels(np.random.default_rng(5), 3, net.input.size)
    batch = golden.run_batch(net, pixels)
    sources = batch.q + [batch.logits]
    params = integer_params(net)
    for l, layer in enumerate(net.layers):
        q_in = net.gather(batch.q, l)
        np.testing.assert_array_equal(layer.forward(q_in), sources[l + 1])
        torch_out = layer.torch_forward(params[l], torch.from_numpy(q_in.astype(np.float64)))
        np.testing.assert_array_equal(torch_out.numpy().astype(np.int64), sources[l + 1])
        for image in range(len(pixels)):
            events = golden.run_events(net, pixels[image])
            out = layer.events(net.gather_spikes(events.spikes, l))
            if layer.readout:
                np.testing.assert_array_equal(out, batch.logits[image])
            else:
                assert out == golden.spikes_from_q(sources[l + 1][image], layer.ticks)
