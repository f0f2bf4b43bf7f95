import numpy as np
import pytest

from hdlgen import ir
from hdlgen.errors import UserError


def test_dense_rejects_bad_shapes_and_nan():
    with pytest.raises(UserError, match="bias has 3 entries"):
        ir.Dense(np.zeros((2, 4)), np.zeros(3), name="fc")
    with pytest.raises(UserError, match="NaN"):
        ir.Dense(np.array([[np.nan, 1.0]]), np.zeros(1), name="fc")
    with pytest.raises(UserError, match="2 dimension"):
        ir.Dense(np.zeros(4), np.zeros(1))


def test_graph_checks_shapes_and_names_nodes():
    with pytest.raises(UserError, match="expects input of shape \\(5,\\)"):
        ir.Graph([ir.Input((4,)), ir.Dense(np.zeros((3, 5)), np.zeros(3))])
    g = ir.Graph([ir.Input((4,)), ir.Dense(np.zeros((3, 4)), np.zeros(3)), ir.ReLU()])
    assert isinstance(g.nodes[-1], ir.Output)
    assert g.shapes() == [(4,), (3,), (3,), (3,)]
    assert [a for a, _ in g.edges] == [n.name for n in g.nodes[:-1]]


def test_conv_and_pool_shapes_match_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    conv = ir.Conv2d(rng.normal(size=(4, 2, 3, 3)), rng.normal(size=4), stride=2, padding=1)
    pool = ir.MaxPool2d(2)
    avg = ir.AvgPool2d(2, 1)
    g = ir.Graph([ir.Input((2, 9, 9)), conv, ir.ReLU(), pool, avg, ir.Flatten()])
    x = rng.normal(size=(3, 2, 9, 9))
    t = torch.nn.Sequential(torch.nn.Conv2d(2, 4, 3, 2, 1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
                            torch.nn.AvgPool2d(2, 1), torch.nn.Flatten()).double()
    t[0].weight.data = torch.from_numpy(conv.weight)
    t[0].bias.data = torch.from_numpy(conv.bias)
    expected = t(torch.from_numpy(x)).detach().numpy()
    assert g.shapes()[-2] == expected.shape[1:]
    np.testing.assert_allclose(g.forward(x), expected, rtol=1e-10, atol=1e-10)


def test_round_trip_dict():
    rng = np.random.default_rng(1)
    g = ir.Graph([ir.Input((1, 6, 6)), ir.Conv2d(rng.normal(size=(2, 1, 3, 3)), np.zeros(2), padding=1),
                  ir.BatchNorm(np.ones(2), np.zeros(2), np.zeros(2), np.ones(2)), ir.ReLU(),
                  ir.MaxPool2d(2), ir.Flatten(), ir.Dense(rng.normal(size=(3, 18)), np.zeros(3))])
    back = ir.Graph.from_dict(g.to_dict())
    x = rng.normal(size=(2, 1, 6, 6))
    np.testing.assert_array_equal(back.forward(x), g.forward(x))
    assert [n.kind for n in back.nodes] == [n.kind for n in g.nodes]


def test_pool_and_conv_validation():
    with pytest.raises(UserError, match="kernel"):
        ir.MaxPool2d(0)
    with pytest.raises(UserError, match="does not fit"):
        ir.Graph([ir.Input((1, 2, 2)), ir.Conv2d(np.zeros((1, 1, 3, 3)), np.zeros(1))])
    with pytest.raises(UserError, match="positive"):
        ir.Input((0,))
