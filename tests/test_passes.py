"""Each conversion pass alone, and the quantized net against the float net."""

import numpy as np
import pytest

from hdlgen import golden, ir
from hdlgen.errors import UserError
from hdlgen.passes import FLOW, Calibrate, CheckStructure, Conversion, ConvertConfig, FoldBatchNorm, Quantize, convert

torch = pytest.importorskip("torch")
from hdlgen import from_torch  # noqa: E402


def _bn(n, seed):
    bn = torch.nn.BatchNorm1d(n)
    g = torch.Generator().manual_seed(seed)
    bn.weight.data = torch.rand(n, generator=g) * 2 - 0.5  # some negative scales too
    bn.bias.data = torch.randn(n, generator=g)
    bn.running_mean = torch.randn(n, generator=g)
    bn.running_var = torch.rand(n, generator=g) + 0.5
    return bn


def test_fold_batchnorm_before_and_after_relu_equals_torch():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 8), _bn(8, 1), torch.nn.ReLU(),
                                _bn(8, 2), torch.nn.Linear(8, 6), torch.nn.ReLU(), torch.nn.Linear(6, 3)).eval()
    x = torch.randn(20, 3, 2, 2)
    state = Conversion(from_torch(model, x), x.numpy(), ConvertConfig())
    FoldBatchNorm().run(state)
    assert not any(isinstance(n, ir.BatchNorm) for n in state.graph.nodes)
    np.testing.assert_allclose(state.graph.forward(x.double().numpy()), model(x).detach().numpy(), atol=1e-5)


def test_fold_batchnorm_after_relu_into_padded_conv_is_refused():
    nodes = [ir.Input((1, 5, 5)), ir.Conv2d(np.ones((2, 1, 3, 3)), np.zeros(2), padding=1), ir.ReLU(),
             ir.BatchNorm(np.ones(2), np.ones(2), np.zeros(2), np.ones(2)),
             ir.Conv2d(np.ones((2, 2, 3, 3)), np.zeros(2), padding=1, name="conv_b")]
    state = Conversion(ir.Graph(nodes), np.zeros((1, 1, 5, 5)), ConvertConfig())
    with pytest.raises(UserError, match="conv_b"):
        FoldBatchNorm().run(state)


def test_structure_check_names_the_unsupported_layer():
    g = ir.Graph([ir.Input((1, 4, 4)), ir.Conv2d(np.ones((1, 1, 3, 3)), np.zeros(1), name="c1"), ir.ReLU(),
                  ir.AvgPool2d(2, name="avg"), ir.Flatten(), ir.Dense(np.ones((2, 1)), np.zeros(2))])
    with pytest.raises(UserError, match="'avg'.*not supported"):
        CheckStructure().run(Conversion(g, np.zeros((1, 1, 4, 4)), ConvertConfig()))
    relu_last = ir.Graph([ir.Input((3,)), ir.Dense(np.ones((2, 3)), np.zeros(2)), ir.ReLU()])
    with pytest.raises(UserError, match="end in a Dense"):
        CheckStructure().run(Conversion(relu_last, np.zeros((1, 3)), ConvertConfig()))
    no_relu = ir.Graph([ir.Input((3,)), ir.Dense(np.ones((2, 3)), np.zeros(2), name="d0"),
                        ir.Dense(np.ones((2, 2)), np.zeros(2))])
    with pytest.raises(UserError, match="no ReLU between"):
        CheckStructure().run(Conversion(no_relu, np.zeros((1, 3)), ConvertConfig()))
    pool_first = ir.Graph([ir.Input((1, 4, 4)), ir.MaxPool2d(2, name="p"), ir.Flatten(),
                           ir.Dense(np.ones((2, 4)), np.zeros(2))])
    with pytest.raises(UserError, match="'p'.*must follow a ReLU"):
        CheckStructure().run(Conversion(pool_first, np.zeros((1, 1, 4, 4)), ConvertConfig()))


def test_config_validation():
    with pytest.raises(UserError, match="ticks"):
        ConvertConfig(ticks=0)
    with pytest.raises(UserError, match="weight bits"):
        ConvertConfig(weight_bits=1)
    with pytest.raises(UserError, match="percentile"):
        ConvertConfig(calibration="median")
    with pytest.raises(UserError, match="3 windows"):
        ConvertConfig(ticks=[4, 4, 4]).ticks_for(2)


def _mlp(rng, sizes):
    nodes = [ir.Input((sizes[0],))]
    for i, (a, b) in enumerate(zip(sizes, sizes[1:])):
        nodes.append(ir.Dense(rng.normal(size=(b, a)) / np.sqrt(a), rng.normal(size=b) * 0.1))
        if i < len(sizes) - 2:
            nodes.append(ir.ReLU())
    return ir.Graph(nodes)


def test_calibration_uses_percentile_and_input_offset():
    rng = np.random.default_rng(0)
    g = _mlp(rng, [5, 7, 3])
    x = rng.normal(size=(500, 5))  # negative inputs: the offset makes them spike-able
    state = Conversion(g, x, ConvertConfig(ticks=[8, 4], calibration="max"))
    Calibrate().run(state)
    assert state.stats["input_offset"] == pytest.approx(x.min())
    relu = np.maximum(x @ g.nodes[1].weight.T + g.nodes[1].bias, 0)
    assert state.stats["scales"][1] == pytest.approx(relu.max() / 4)
    state99 = Conversion(g, x, ConvertConfig(ticks=[8, 4], calibration="p99"))
    Calibrate().run(state99)
    assert state99.stats["scales"][1] == pytest.approx(np.percentile(relu[relu > 0], 99) / 4)


@pytest.mark.parametrize("per_channel", [False, True])
@pytest.mark.parametrize("bits,ticks", [(8, 16), (4, 8), (2, 64), (8, 1)])
def test_quantized_layer_within_derived_error_bound(per_channel, bits, ticks):
    """Given the same integer inputs, each hidden layer's q is within
    (Σq_in + 1)/(2K) (weight + bias rounding) + 1/2 + 1/(2K) (output rounding) of the float layer's
    clamp(ReLU(W·x + b)/s_out, 0, T)."""
    rng = np.random.default_rng(bits * 100 + ticks)
    g = _mlp(rng, [20, 16, 12, 4])
    x = rng.random((300, 20))
    state = Conversion(g, x, ConvertConfig(ticks=ticks, weight_bits=bits, per_channel=per_channel))
    for step in FLOW:
        step.run(state)
    net = state.net
    batch = golden.run_batch(net, net.input.pixels(x))
    dense = [n for n in state.graph.nodes if isinstance(n, ir.Dense)]
    in_scale = np.full(20, net.input.scale)
    for i, (layer, node) in enumerate(zip(net.layers[:-1], dense)):
        q_in = batch.q[i]
        bias = node.bias + (node.weight.sum(1) * net.input.offset if i == 0 else 0)
        y = (q_in * in_scale) @ node.weight.T + bias
        ideal = np.clip(y / layer.scale, 0, layer.ticks)
        bound = (q_in.sum(1, keepdims=True) + 1) / (2 * layer.k) + 0.5 + 1 / (2 * layer.k) + 1e-9
        assert np.all(np.abs(batch.q[i + 1] - ideal) <= bound)
        in_scale = layer.scale


def test_rounding_adds_half_k_to_bias():
    rng = np.random.default_rng(3)
    g, x = _mlp(rng, [6, 5, 2]), rng.random((50, 6))
    on = convert(g, x, ConvertConfig(rounding=True))
    off = convert(g, x, ConvertConfig(rounding=False))
    hidden_on, hidden_off = on.layers[0], off.layers[0]
    np.testing.assert_array_equal(hidden_on.bias - hidden_off.bias, hidden_on.k // 2)
    np.testing.assert_array_equal(on.layers[1].bias, off.layers[1].bias)  # the readout has no K


def test_snn_tracks_float_net_closely_at_high_resolution():
    rng = np.random.default_rng(4)
    g = _mlp(rng, [30, 40, 10])
    x = rng.random((1000, 30))
    net = convert(g, x, ConvertConfig(ticks=64, weight_bits=8, calibration="max"))
    snn = golden.run_batch(net, net.input.pixels(x)).classes
    assert np.mean(snn == g.forward(x).argmax(1)) > 0.95


def test_quantize_pass_alone_on_prepared_state():
    rng = np.random.default_rng(5)
    state = Conversion(_mlp(rng, [4, 3, 2]), rng.random((20, 4)), ConvertConfig(ticks=[4, 6], weight_bits=3))
    Calibrate().run(state)
    Quantize().run(state)
    hidden, readout = state.net.layers
    assert np.abs(hidden.weight).max() == 3 and hidden.ticks == 6 and hidden.ticks_in == 4
    assert readout.readout and readout.ticks_in == 6
