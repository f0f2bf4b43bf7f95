"""AMOS beyond ReLU (docs/codes.md, "AMOS for other activations"): the gates' units against PyTorch's own
functions, ReLU's reduction to today's AMOS, trained GELU and SiLU nets against float, batch against events, and
the one-line refusals of the TTFS commands."""

import numpy as np
import pytest

from hdlgen import golden, ir
from hdlgen.codes import amos_gates
from hdlgen.codes.compare import compare, format_table, method_config
from hdlgen.codes.gate_units import binary_units, fire_units, fit_units, max_error
from hdlgen.data import Dataset
from hdlgen.errors import UserError
from hdlgen.importers import load_model
from hdlgen.passes import ConvertConfig, convert

from .helpers import export_onnx, export_pt2, run_cli

torch = pytest.importorskip("torch")
F = torch.nn.functional

# PyTorch's functions (the float reference) and the maximum error docs/codes.md states for 8 units on
# potentials of 0.002 over [−4, 6]
REFERENCE = {
    "gelu": (lambda t: F.gelu(t), 0.16), "gelu_tanh": (lambda t: F.gelu(t, approximate="tanh"), 0.16),
    "silu": (F.silu, 0.19), "sigmoid": (torch.sigmoid, 0.052), "tanh": (torch.tanh, 0.11),
    "leaky_relu": (lambda t: F.leaky_relu(t, 0.1), 0.13), "elu": (lambda t: F.elu(t, 1.0), 0.21),
    "hardswish": (F.hardswish, 0.25),
}
ALPHA = {"leaky_relu": 0.1, "elu": 1.0}


@pytest.mark.parametrize("function", sorted(REFERENCE))
def test_each_gate_s_8_units_stay_within_the_stated_error_over_the_range(function):
    reference, bound = REFERENCE[function]
    gate = ir.Activation(function, ALPHA.get(function, 0.0))
    sigma, low, high = 0.002, -2000, 3000
    units = fit_units(gate.apply, sigma, low, high, 8)
    potentials = np.arange(low, high + 1)
    ours = units.value(fire_units(potentials + units.shift[0], units)) * units.scale
    error = np.abs(ours - reference(torch.from_numpy(potentials * sigma)).numpy()).max()
    assert error <= bound
    assert error == pytest.approx(max_error(gate.apply, sigma, low, high, units), abs=1e-6)   # what compare reports


MODULES = {"gelu": lambda: torch.nn.GELU(), "gelu_tanh": lambda: torch.nn.GELU("tanh"), "silu": lambda: torch.nn.SiLU(),
           "sigmoid": lambda: torch.nn.Sigmoid(), "tanh": lambda: torch.nn.Tanh(),
           "leaky_relu": lambda: torch.nn.LeakyReLU(0.1), "elu": lambda: torch.nn.ELU(0.7),
           "hardswish": lambda: torch.nn.Hardswish()}


@pytest.mark.parametrize("function", sorted(MODULES))
def test_both_importers_read_each_activation_with_its_parameter(tmp_path, function):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(5, 4), MODULES[function](), torch.nn.Linear(4, 3)).eval()
    x = torch.randn(7, 5) * 3
    for graph in (export_pt2(tmp_path, model, x[:1]), load_model(export_onnx(tmp_path, model, x[:1]))):
        (gate,) = [n for n in graph.nodes if isinstance(n, ir.Activation)]
        assert gate.function == function and gate.alpha == pytest.approx({"leaky_relu": 0.1, "elu": 0.7}.get(function, 0))
        with torch.no_grad():
            np.testing.assert_allclose(graph.forward(x.double().numpy()), model(x).numpy(), rtol=1e-5, atol=1e-5)


def test_onnx_gate_attributes_and_products_other_than_silu_are_refused(tmp_path):
    from onnx import TensorProto, helper, numpy_helper

    def model(nodes):
        weight = numpy_helper.from_array(np.ones((2, 3), np.float32), "w")
        graph = helper.make_graph([helper.make_node("Gemm", ["x", "w"], ["h"]), *nodes,
                                   helper.make_node("Gemm", ["g", "w2"], ["y"])], "g",
                                  [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2])],
                                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])],
                                  [weight, numpy_helper.from_array(np.ones((3, 3), np.float32), "w2")])
        path = tmp_path / "m.onnx"
        path.write_bytes(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)]).SerializeToString())
        return path

    gelu = load_model(model([helper.make_node("Gelu", ["h"], ["g"], approximate="tanh")]))
    assert [n.function for n in gelu.nodes if isinstance(n, ir.Activation)] == ["gelu_tanh"]
    with pytest.raises(UserError, match="approximate=fast is not supported"):
        load_model(model([helper.make_node("Gelu", ["h"], ["g"], approximate="fast")]))
    with pytest.raises(UserError, match="x and Sigmoid"):
        load_model(model([helper.make_node("Tanh", ["h"], ["t"]), helper.make_node("Mul", ["h", "t"], ["g"])]))


def test_the_fit_of_relu_is_the_binary_expansion():
    step, bits = 12, 8
    units = fit_units(lambda x: np.maximum(x, 0.0), 0.001, 0, step * ((1 << bits) - 1), bits)
    binary = binary_units(np.array([step]), bits, True, 1.0)
    np.testing.assert_array_equal(units.thresholds, binary.thresholds)
    np.testing.assert_array_equal(units.subtract, binary.subtract)
    np.testing.assert_array_equal(units.shift, binary.shift)
    np.testing.assert_array_equal(units.weights, units.weights[-1] * binary.weights)   # d ∝ 2^(K−1−k)
    assert abs(units.offset) <= 1 and units.weights[-1] * units.scale == pytest.approx(step * 0.001, rel=1e-3)


def _relu_cnn(rng):
    """conv–ReLU–max-pool–flatten–dense with random weights (a ReLU net for the reduction)."""
    return ir.Graph([ir.Input((1, 8, 8)), ir.Conv2d(rng.normal(size=(3, 1, 3, 3)), rng.normal(size=3) * 0.1, padding=1),
                     ir.ReLU(), ir.MaxPool2d(2), ir.Flatten(), ir.Dense(rng.normal(size=(6, 48)) * 0.3, np.zeros(6)),
                     ir.ReLU(), ir.Dense(rng.normal(size=(4, 6)), np.zeros(4))])


@pytest.mark.parametrize("bits", [2, 5, 8])
def test_for_relu_the_general_construction_is_today_s_amos(bits):
    rng = np.random.default_rng(bits)
    graph, x = _relu_cnn(rng), rng.random((200, 1, 8, 8))
    config = ConvertConfig()
    gates = amos_gates.lower(graph, x, config, bits)
    today = convert(graph, x, method_config("amos", bits, config))
    np.testing.assert_array_equal(gates.net.input.table, today.input.table)
    for ours, theirs in zip(gates.net.layers, today.layers, strict=True):
        assert ours.kind == theirs.kind
        if ours.has_weights:
            for field in ("weight", "bias", "k", "scale"):
                np.testing.assert_array_equal(getattr(ours, field), getattr(theirs, field))
    pixels = today.input.pixels(x[:50])
    batch, reference = amos_gates.run_batch(gates, pixels), golden.run_batch(today, pixels)
    for values, q in zip(batch.values, reference.q, strict=True):
        np.testing.assert_array_equal(values, q)
    np.testing.assert_array_equal(batch.logits, reference.logits)


@pytest.fixture(scope="module")
def digits():
    datasets = pytest.importorskip("sklearn.datasets")
    data = datasets.load_digits()
    order = np.random.default_rng(0).permutation(len(data.target))   # training and test digits of all writers
    return (data.data[order] / 16).astype(np.float32), data.target[order]


def _train(model, x, y, epochs=80):
    torch.manual_seed(0)
    optimizer = torch.optim.Adam(model.parameters(), 1e-2)
    inputs, labels = torch.from_numpy(x), torch.from_numpy(y)
    for _ in range(epochs):
        optimizer.zero_grad()
        F.cross_entropy(model(inputs), labels).backward()
        optimizer.step()
    return model.eval()


@pytest.fixture(scope="module")
def trained(digits, tmp_path_factory):
    """A GELU MLP saved as .pt2 and a SiLU CNN exported to ONNX (x·Sigmoid(x)), trained on 1400 digits."""
    torch.set_num_threads(1)
    x, y = digits
    folder = tmp_path_factory.mktemp("gates")
    torch.manual_seed(0)
    mlp = _train(torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.GELU(), torch.nn.Linear(32, 10)), x[:1400], y[:1400])
    torch.export.save(torch.export.export(mlp, (torch.from_numpy(x[:1]),)), folder / "gelu.pt2")
    images = x.reshape(-1, 1, 8, 8)
    torch.manual_seed(0)
    cnn = _train(torch.nn.Sequential(torch.nn.Conv2d(1, 8, 3), torch.nn.SiLU(), torch.nn.Conv2d(8, 8, 3, stride=2),
                                     torch.nn.SiLU(), torch.nn.Flatten(), torch.nn.Linear(32, 10)), images[:1400], y[:1400],
                 epochs=150)
    onnx_path = export_onnx(folder, cnn, torch.from_numpy(images[:1]))
    return {"gelu_mlp": (mlp, folder / "gelu.pt2", x), "silu_cnn": (cnn, onnx_path, images)}


@pytest.mark.parametrize("name", ["gelu_mlp", "silu_cnn"])
def test_a_trained_gate_net_is_within_a_point_of_float_at_8_units(trained, digits, name):
    model, path, x = trained[name]
    y = digits[1]
    graph = load_model(path)
    assert {n.function for n in graph.nodes if isinstance(n, ir.Activation)} == {name.split("_")[0]}
    with torch.no_grad():
        float_accuracy = float(np.mean(model(torch.from_numpy(x[1400:])).argmax(1).numpy() == y[1400:]))
    gates = amos_gates.lower(graph, x[:1400], ConvertConfig(), 8)
    accuracy = np.mean(amos_gates.run_batch(gates, gates.net.input.pixels(x[1400:])).classes == y[1400:])
    assert float_accuracy > 0.9 and abs(accuracy - float_accuracy) <= 0.01
    assert [f["activation"] for f in gates.fits] == [{"gelu_mlp": "GELU", "silu_cnn": "SiLU"}[name]] * len(gates.fits)


def _mixed_net(rng):
    """ReLU–max-pool, then GELU, then leaky ReLU: every kind of source the event form meets."""
    return ir.Graph([ir.Input((1, 8, 8)), ir.Conv2d(rng.normal(size=(3, 1, 3, 3)), rng.normal(size=3) * 0.1),
                     ir.ReLU(), ir.MaxPool2d(2), ir.Conv2d(rng.normal(size=(4, 3, 2, 2)), np.zeros(4)),
                     ir.Activation("gelu"), ir.Flatten(), ir.Dense(rng.normal(size=(5, 16)) * 0.3, np.zeros(5)),
                     ir.Activation("leaky_relu", 0.2), ir.Dense(rng.normal(size=(3, 5)), np.zeros(3))])


def _residual_net(rng):
    """``c(silu(b(gelu(a(x))) + gelu(a(x))))``: a residual add of gate values, folded into ``b``."""
    return ir.Graph([ir.Input((6,), name="x"), ir.Dense(rng.normal(size=(8, 6)), np.zeros(8), name="a"),
                     ir.Activation("gelu", name="g"), ir.Dense(rng.normal(size=(8, 8)) * 0.5, np.zeros(8), name="b"),
                     ir.Add(name="add", inputs=("b", "g")), ir.Activation("silu", name="s", inputs=("add",)),
                     ir.Dense(rng.normal(size=(3, 8)), np.zeros(3), name="c")])


@pytest.mark.parametrize("bits", [3, 6])
def test_batch_and_event_forms_agree(trained, bits):
    rng = np.random.default_rng(bits)
    nets = [(_mixed_net(rng), rng.random((100, 1, 8, 8))), (_residual_net(rng), rng.random((100, 6)))]
    _, path, x = trained["silu_cnn"]
    nets.append((load_model(path), x[:300]))
    for index, (graph, x) in enumerate(nets):
        gates = amos_gates.lower(graph, x, ConvertConfig(), bits)
        assert (index == 1) == any(len(gates.net.sources(l)) == 2 for l in range(len(gates.net.layers)))   # the add
        pixels = gates.net.input.pixels(x[:4])
        batch = amos_gates.run_batch(gates, pixels)
        for image in range(len(pixels)):
            events = amos_gates.run_events(gates, pixels[image])
            np.testing.assert_array_equal(events.logits, batch.logits[image])
            for source, spikes in enumerate(events.spikes):
                carried, rest = gates.carried(source)
                value = np.full(batch.values[source].shape[1], rest, dtype=np.int64)
                count = np.zeros_like(value)
                for neuron, step in spikes:
                    value[neuron] += carried[step]
                    count[neuron] += 1
                np.testing.assert_array_equal(value, batch.values[source][image])
                np.testing.assert_array_equal(count, batch.counts[source][image])


def test_compare_runs_amos_only_and_says_why(trained, digits):
    _, path, x = trained["gelu_mlp"]
    data = Dataset(x[1400:1500], digits[1][1400:1500])
    result = compare(load_model(path), data, x[:500], ConvertConfig(), steps=(2, 8, 17), lanes=4, cycle_samples=5)
    assert [r["steps"] for r in result["methods"]["amos"]] == [2, 8] and set(result["methods"]) == {"amos"}
    assert {r["method"] for r in result["not_offered"]} == {"ttfs", "rate"}
    assert result["skipped"][0]["steps"] == 17
    row = result["methods"]["amos"][1]
    assert row["fits"][0]["activation"] == "GELU" and 0 < row["fits"][0]["max_error"] < 0.5
    assert row["synaptic_events"] > 0 and row["cycles_estimate"] > 0 and row["latency_ticks"] == 16
    table = format_table(result)
    assert "ttfs not offered: GELU" in table and "exists for ReLU only" in table and "max error" in table


@pytest.mark.parametrize("command", ["convert", "finetune", "bench"])
def test_the_ttfs_commands_refuse_a_gate_net_in_one_line(trained, tmp_path, capsys, command):
    _, path, x = trained["gelu_mlp"]
    data = tmp_path / "d.npz"
    np.savez(data, x=x[:50], y=np.zeros(50, dtype=np.int64))
    argv = [command, path, "--data", data] + (["-o", tmp_path / "n.ttfs"] if command != "bench" else [])
    code, out, err = run_cli(capsys, *argv)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert "GELU" in err and "'gelu'" in err and "hdlgen compare" in err
