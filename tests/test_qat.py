"""Quantization-aware-trained models (issue 31): small Brevitas nets (MLP, CNN, a residual MLP) trained here on
the digits, exported as QONNX and as QCDQ, keep their trained integers. Where the scales are powers of two the golden model gives
Brevitas's own integer logits and class on every test sample without an exact rounding tie (docs/qat.md);
with float scales the conversion says per layer what it approximated. Bad quantizer attributes are refused
in one line naming the file and the node."""

import functools
import warnings

import numpy as np
import pytest

from hdlgen import golden, ttfs
from hdlgen.data import load_dataset
from hdlgen.errors import UserError
from hdlgen.importers import load_model
from hdlgen.passes import ConvertConfig, convert
from hdlgen.qat import Grid, lower_layer

from .helpers import DIGITS, run_cli

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
qnn = pytest.importorskip("brevitas.nn")
pytest.importorskip("qonnx")
from brevitas.export import export_onnx_qcdq, export_qonnx  # noqa: E402
from brevitas.quant import (  # noqa: E402
    Int8WeightPerTensorFixedPoint,
    Int8WeightPerTensorFloat,
    Int32Bias,
    Uint8ActPerTensorFixedPoint,
    Uint8ActPerTensorFloat,
)

CALIBRATION = 300


class Int8WeightPerChannelFixedPoint(Int8WeightPerTensorFixedPoint):
    scaling_per_output_channel = True


@functools.cache
def _digits():
    return load_dataset(DIGITS / "digits_train.npz", (1, 8, 8)), load_dataset(DIGITS / "digits_test.npz", (1, 8, 8))


def _brevitas_net(kind, bits, fixed):
    """A digits MLP (64-32-10) or CNN (conv 8×3×3, max-pool 2, 128-10): the input on a 5-bit grid up to 1.0,
    hidden biases float (so no rounding tie sits on the grid), the readout's on the accumulator grid (Int32Bias);
    the CNN's and the residual net's weights scaled per channel."""
    power_of_two = Int8WeightPerTensorFixedPoint if kind == "mlp" else Int8WeightPerChannelFixedPoint
    weights = {"weight_quant": power_of_two if fixed else Int8WeightPerTensorFloat, "weight_bit_width": bits}
    acts = {"act_quant": Uint8ActPerTensorFixedPoint if fixed else Uint8ActPerTensorFloat, "return_quant_tensor": True}
    layers = [qnn.QuantIdentity(bit_width=5, max_val=1.0, **acts)]
    if kind == "residual":
        return _Residual(layers[0], weights, acts, bits)
    if kind == "mlp":
        layers += [torch.nn.Flatten(), qnn.QuantLinear(64, 32, bias=True, **weights), qnn.QuantReLU(bit_width=bits, **acts)]
        features = 32
    else:
        layers += [qnn.QuantConv2d(1, 8, 3, padding=1, bias=True, **weights), qnn.QuantReLU(bit_width=bits, **acts),
                   torch.nn.MaxPool2d(2), torch.nn.Flatten()]
        features = 8 * 4 * 4
    return torch.nn.Sequential(*layers, qnn.QuantLinear(features, 10, bias=True, bias_quant=Int32Bias, **weights))


class _Residual(torch.nn.Module):
    """64-32 → ReLU = a, then ReLU(32-32(a) + a) → 10: an identity shortcut around a quantized linear layer."""

    def __init__(self, quantize_input, weights, acts, bits):
        super().__init__()
        self.quantize_input = quantize_input
        self.first, self.second = qnn.QuantLinear(64, 32, bias=True, **weights), qnn.QuantLinear(32, 32, bias=True, **weights)
        self.relu1, self.relu2 = qnn.QuantReLU(bit_width=bits, **acts), qnn.QuantReLU(bit_width=bits, **acts)
        self.readout = qnn.QuantLinear(32, 10, bias=True, bias_quant=Int32Bias, **weights)

    def forward(self, x):
        a = self.relu1(self.first(self.quantize_input(x).flatten(1)))
        return self.readout(self.relu2(self.second(a) + a))


@functools.cache
def _trained(kind, bits, fixed):
    """The trained net (a few epochs on the digits, seconds) and its test-set logits."""
    torch.manual_seed(0)
    torch.set_num_threads(1)
    train, test = _digits()
    net = _brevitas_net(kind, bits, fixed)
    optimizer = torch.optim.Adam(net.parameters(), 1e-2)
    x, y = torch.tensor(train.x, dtype=torch.float32), torch.tensor(train.y)
    net.train()
    for _ in range(6):
        for start in range(0, len(x), 64):
            optimizer.zero_grad()
            torch.nn.functional.cross_entropy(net(x[start:start + 64]), y[start:start + 64]).backward()
            optimizer.step()
    net.eval()
    with torch.no_grad():
        logits = net(torch.tensor(test.x, dtype=torch.float32)).numpy().astype(np.float64)
    return net, logits


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """``(kind, bits, fixed, form) ↦ (model path, Brevitas's test logits)``, each exported once."""
    folder = tmp_path_factory.mktemp("qat")
    return functools.cache(lambda *case: _export(folder, *case))


def _export(folder, kind, bits, fixed, form):
    net, logits = _trained(kind, bits, fixed)
    path = folder / f"{kind}{bits}_{'fixed' if fixed else 'float'}.{form}.onnx"
    example = torch.tensor(_digits()[0].x[:1], dtype=torch.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if form == "qonnx":
            export_qonnx(net, example, str(path))
        else:   # the TorchScript exporter: Brevitas's dynamo QCDQ export refuses a quantized bias
            export_onnx_qcdq(net, example, export_path=str(path), dynamo=False)
    return path, logits


def _convert(path):
    train, _ = _digits()
    return load_model(path), convert(load_model(path), train.x[:CALIBRATION], ConvertConfig(), name=path.stem)


CASES = [(kind, bits, form) for kind in ("mlp", "cnn") for bits in (2, 4, 8) for form in ("qonnx", "qcdq")
         if form == "qonnx" or bits == 4] + [("residual", 4, "qonnx"), ("residual", 4, "qcdq")]


@pytest.mark.parametrize("kind,bits,form", CASES, ids=[f"{k}{b}-{f}" for k, b, f in CASES])
def test_power_of_two_scales_give_brevitas_integers(exported, kind, bits, form):
    path, logits = exported(kind, bits, True, form)
    graph, net = _convert(path)
    _, test = _digits()
    assert net.layers[0].weight_bits == bits and net.layers[0].ticks == 2 ** bits - 1 and net.input.ticks == 31
    assert graph.trained.weights[net.layers[0].name].per_channel == (kind != "mlp")   # K per channel but on the MLP
    assert np.abs(net.layers[0].weight).max() <= 2 ** (bits - 1) - 1
    assert not [n for n in net.meta.get("notes", []) if "approximat" in n or "differs from it" in n]
    ours = golden.run_batch(net, net.input.pixels(test.x))
    theirs = graph.trained.source(test.x)
    ties = sum(v for k, v in theirs.items() if k.endswith(":ties"))
    exact = ties == 0
    units = logits / net.layers[-1].scale      # Brevitas's logits in units of the readout's accumulator
    assert exact.mean() > 0.95
    np.testing.assert_allclose(ours.logits[exact], units[exact], atol=1e-3)
    assert np.array_equal(ours.classes[exact], np.argmax(logits[exact], axis=1))
    check = net.meta["source_check"]
    assert all(s["ties"] for s in check["differing"]), check["differing"][:3]
    assert np.mean(ours.classes == test.y) > {2: 0.6, 4: 0.8, 8: 0.8}[bits]


@pytest.mark.parametrize("kind", ["mlp", "cnn"])
def test_both_export_formats_give_the_same_integer_net(exported, kind):
    """QONNX and QCDQ of one trained net become the same hdlgen net, so the same core and bitstream."""
    nets = [_convert(exported(kind, 4, True, form)[0])[1] for form in ("qonnx", "qcdq")]
    encodings = [net.input for net in nets]
    assert np.array_equal(encodings[0].table, encodings[1].table)
    assert encodings[0].pixel_scale == encodings[1].pixel_scale and encodings[0].offset == encodings[1].offset
    assert [type(layer) for layer in nets[0].layers] == [type(layer) for layer in nets[1].layers]
    for ours, theirs in zip(*(net.layers for net in nets)):
        for field in ("weight", "bias", "k", "ticks_in", "ticks", "weight_bits"):
            assert np.array_equal(getattr(ours, field, None), getattr(theirs, field, None)), (ours.name, field)


@pytest.mark.parametrize("kind,form", [("mlp", "qonnx"), ("mlp", "qcdq"), ("cnn", "qonnx")])
def test_float_scales_are_approximated_and_said(exported, kind, form):
    path, logits = exported(kind, 4, False, form)
    _, net = _convert(path)
    _, test = _digits()
    notes = " ".join(net.meta["notes"])
    assert "not an integer; K/m differs from it by up to" in notes and "source check:" in notes
    snn = np.mean(golden.run_batch(net, net.input.pixels(test.x)).classes == test.y)
    assert abs(snn - np.mean(np.argmax(logits, axis=1) == test.y)) < 0.03


def test_convert_reports_the_check_against_the_source(exported, capsys, tmp_path):
    path, _ = exported("mlp", 4, True, "qcdq")
    code, output, _ = run_cli(capsys, "convert", path, "--data", DIGITS / "digits_test.npz", "--calibration-data",
                              DIGITS / "digits_train.npz", "--calibration-samples", CALIBRATION, "-o", tmp_path / "n.ttfs")
    assert code == 0 and "calibration trained" in output and "note: source check: " in output
    assert ttfs.load(tmp_path / "n.ttfs").meta["source_check"]["samples"] == CALIBRATION


def test_a_wrong_k_is_caught_by_the_source_check(exported):
    """The check against the source can fail: a net whose first K is one more than the trained ratio differs."""
    path, _ = exported("mlp", 4, True, "qonnx")
    graph, net = _convert(path)
    net.layers[0].k = net.layers[0].k + 1
    from hdlgen.passes.source import CheckSource
    state = type("State", (), {"trained": graph.trained, "net": net, "graph": net.ann, "calibration_data": _digits()[1].x})()
    CheckSource().run(state)
    assert any(not s["ties"] and s["layer"] == net.layers[0].name for s in net.meta["source_check"]["differing"])


def test_lowering_exact_below_one_and_approximate_between():
    """K = s_out/(s_w·s_in) below 1 is exact with weights ×m; a non-integer ratio gets the nearest K and a note."""
    weight, grid, columns = np.array([[2.0, -1.0]]) * 0.5, Grid(np.array(0.5), -7, 7), np.array([0.25, 0.25])
    exact = lower_layer(weight, np.array([0.3]), columns, grid, Grid(np.array(1 / 32), 0, 15), 1 / 32, 15, "L")
    assert exact.k.tolist() == [1] and exact.weight.tolist() == [[8, -4]] and exact.weight_bits == 6
    near = lower_layer(weight, np.array([0.0]), columns, grid, Grid(np.array(0.3), 0, 15), 0.3, 15, "L")
    # 2.4 = 19.2/8: within a quarter tick of T = 15 only from m = 8 (K = 19, 1.04 % off)
    assert near.k.tolist() == [19] and near.weight.tolist() == [[16, -8]]
    assert any("weights ×8" in n for n in near.notes) and any("by up to 1.04%" in n for n in near.notes)


def _edited(exported, tmp_path, form, edit, name="bad.onnx"):
    path, _ = exported("mlp", 4, True, form)
    model = onnx.load(str(path))
    edit(model)
    out = tmp_path / name
    onnx.save(model, str(out))
    return out


def _quant(model, nth=0):
    return [n for n in model.graph.node if n.op_type in ("Quant", "QuantizeLinear")][nth]


def _set(node, name, value):
    for a in node.attribute:
        if a.name == name:
            node.attribute.remove(a)
    node.attribute.append(onnx.helper.make_attribute(name, value))


def _zero_point(model):
    node = _quant(model, 2)
    new = onnx.numpy_helper.from_array(np.array(1.0, np.float32), "nonzero_zero_point")
    model.graph.initializer.append(new)
    node.input[2] = new.name


def _bitwidth(model):
    node = _quant(model, 2)
    model.graph.initializer.append(onnx.numpy_helper.from_array(np.array(1.0, np.float32), "one_bit"))
    node.input[3] = "one_bit"


REFUSED = {
    "rounding_mode": ("qonnx", lambda m: _set(_quant(m), "rounding_mode", "BANANA"), "rounding_mode=BANANA"),
    "narrow": ("qonnx", lambda m: _set(_quant(m), "narrow", 2), "narrow=2"),
    "unknown_attribute": ("qonnx", lambda m: _set(_quant(m), "shift", 1), "shift=1"),
    "zero_point": ("qonnx", _zero_point, "zero_point=[1.0]"),
    "bitwidth": ("qonnx", _bitwidth, "bitwidth=[1.0]"),
    "floor_on_activation": ("qonnx", lambda m: _set(_quant(m, 2), "rounding_mode", "FLOOR"),
                            "rounding_mode=FLOOR on an activation"),
    "bipolar": ("qonnx", lambda m: setattr(_quant(m), "op_type", "BipolarQuant"), "BipolarQuant quantizer is not supported"),
    "trunc": ("qonnx", lambda m: setattr(_quant(m, 2), "op_type", "Trunc"), "Trunc quantizer is not supported"),
    "saturate": ("qcdq", lambda m: _set(_quant(m), "saturate", 0), "saturate=0"),
    "block_size": ("qcdq", lambda m: _set(_quant(m), "block_size", 2), "block_size"),
}


@pytest.mark.parametrize("case", list(REFUSED))
def test_bad_quantizer_attributes_are_refused_in_one_line(exported, tmp_path, case):
    form, edit, expected = REFUSED[case]
    path = _edited(exported, tmp_path, form, edit)
    with pytest.raises(UserError) as error:
        load_model(path)
    message = str(error.value)
    assert "\n" not in message and str(path) in message and expected in message and "supported" in message


def test_without_the_qat_extra_the_error_names_it(exported, monkeypatch):
    path, _ = exported("mlp", 4, True, "qonnx")
    import sys
    monkeypatch.setitem(sys.modules, "qonnx.custom_op.registry", None)
    with pytest.raises(UserError, match=r"pip install 'hdlgen\[qat\]'"):
        load_model(path)


@pytest.mark.slow
def test_brevitas_net_runs_bit_exact_in_cocotb(exported, tmp_path):
    from hdlgen.simulate import simulate

    from .helpers import assert_matches_golden, require_simulator

    require_simulator()
    path, _ = exported("mlp", 4, True, "qonnx")
    _, net = _convert(path)
    pixels = net.input.pixels(_digits()[1].x[:12])
    report = simulate(net, pixels, lanes=8, build_dir=tmp_path / "sim")
    assert_matches_golden(report, net, pixels)
