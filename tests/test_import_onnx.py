"""The ONNX importer checks every attribute and optional input of every operator it accepts (issue 12),
on models written by torch's legacy (TorchScript) and dynamo exporters and on hand-built graphs for the
attribute values and opsets exporters do not write: a non-default value either imports with a float graph
equal to the framework's output, or is refused naming the layer and the attribute."""


import numpy as np
import pytest

from hdlgen import load_model
from hdlgen.errors import UserError
from hdlgen.passes import CheckImport, Conversion, ConvertConfig

from .helpers import export_onnx, linear_head, mean_over, seeded_input

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

nn = torch.nn


def _dynamo_available():
    try:
        import onnxscript  # noqa: F401
    except ImportError:
        return False
    return True


EXPORTERS = ["legacy", pytest.param("dynamo", marks=pytest.mark.skipif(not _dynamo_available(), reason="needs onnxscript"))]


ACCEPTED = {
    "avgpool_ceil_mode_same_size": [nn.AvgPool2d(2, ceil_mode=True), *linear_head(18)],
    "avgpool_count_include_pad_false": [nn.AvgPool2d(2, count_include_pad=False), *linear_head(18)],
    "avgpool_stride": [nn.AvgPool2d(2, stride=1), *linear_head(50)],
    "maxpool_ceil_mode_same_size": [nn.MaxPool2d(2, ceil_mode=True), *linear_head(18)],
    "conv_padding_valid": [nn.Conv2d(2, 3, 3, padding="valid"), *linear_head(48)],
    "batchnorm_no_affine": [nn.BatchNorm2d(2, affine=False), *linear_head(72)],
    "adaptive_avgpool_2": [nn.Conv2d(2, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(2), *linear_head(16)],
    "flatten_start_dim": [nn.Flatten(1, -1), nn.Linear(72, 3)],
    "maxpool_padding_stride": [nn.MaxPool2d(3, stride=2, padding=1), *linear_head(18)],
    "conv_padding_same": [nn.Conv2d(2, 3, 3, padding="same"), *linear_head(108)],
    "conv_stride_no_bias": [nn.Conv2d(2, 3, 3, stride=2, padding=1, bias=False), *linear_head(27)],
    "linear_no_bias": [nn.Flatten(), nn.Linear(72, 5, bias=False), nn.ReLU(), nn.Linear(5, 3)],
    "dropout2d_identity": [nn.Dropout2d(0.3), nn.Identity(), nn.Flatten(), nn.Dropout(0.2), nn.Linear(72, 3)],
    "batchnorm_after_relu": [nn.Conv2d(2, 2, 3), nn.ReLU(), nn.BatchNorm2d(2, eps=0.1), *linear_head(32)],
    "global_avgpool": [nn.Conv2d(2, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), *linear_head(4)],
    "mean_spatial": [nn.Conv2d(2, 4, 3), nn.ReLU(), mean_over(), nn.Linear(4, 3)],
    "mean_spatial_keepdim": [nn.Conv2d(2, 4, 3), nn.ReLU(), mean_over((-1, -2), True), *linear_head(4)],
    "trailing_softmax": [*linear_head(72), nn.Softmax(dim=1)],
    "trailing_log_softmax": [*linear_head(72), nn.LogSoftmax(dim=-1)],
}

REFUSED = {
    "avgpool_ceil_mode": ([nn.AvgPool2d(4, ceil_mode=True), *linear_head(8)], "AveragePool.*ceil_mode"),
    "maxpool_dilation": ([nn.MaxPool2d(2, dilation=2), *linear_head(8)], "MaxPool.*dilations"),
    "conv_dilation": ([nn.Conv2d(2, 2, 3, dilation=2), *linear_head(8)], "Conv.*dilations"),
    "conv_groups": ([nn.Conv2d(2, 2, 3, groups=2), *linear_head(32)], "Conv.*group"),
    "avgpool_padding": ([nn.AvgPool2d(2, padding=1), *linear_head(32)], "AveragePool.*pads"),
    "conv1d": ([nn.Conv1d(2, 2, 3), nn.Flatten(), nn.Linear(8, 2)], "Conv.*kernel_shape.*2-D"),
    "mean_over_channels": ([mean_over((1,)), *linear_head(36)], "ReduceMean.*axes"),
    "softmax_not_last": ([nn.Flatten(), nn.Softmax(1), nn.Linear(72, 3)], "follows a softmax"),
}


@pytest.mark.parametrize("exporter", EXPORTERS)
@pytest.mark.parametrize("name", sorted(ACCEPTED))
def test_exported_model_imports_equal_to_torch(tmp_path, name, exporter):
    torch.manual_seed(0)
    model, x = nn.Sequential(*ACCEPTED[name]).eval(), seeded_input()
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-1, 1), m.running_var.uniform_(0.5, 2)
    graph = load_model(export_onnx(tmp_path, model, x, exporter))
    expected = (model[:-1] if name.startswith("trailing") else model)(x).detach().numpy()
    if name.startswith("trailing"):
        assert any("argmax is unchanged" in note for note in graph.notes)
    np.testing.assert_allclose(graph.forward(x.double().numpy()), expected, rtol=1e-5, atol=1e-5)
    reference = graph.reference(x.numpy())        # the ONNX reference evaluator agrees with torch too
    np.testing.assert_allclose(reference[graph.nodes[-2].name], expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("exporter", EXPORTERS)
@pytest.mark.parametrize("name", sorted(REFUSED))
def test_exported_model_with_unsupported_attribute_is_refused(tmp_path, name, exporter):
    layers, message = REFUSED[name]
    x = torch.rand(3, 2, 6) if name == "conv1d" else seeded_input()
    with pytest.raises(UserError, match=message) as error:
        load_model(export_onnx(tmp_path, nn.Sequential(*layers), x, exporter))
    assert "\n" not in str(error.value)


@pytest.mark.skipif(not _dynamo_available(), reason="needs onnxscript")
def test_dynamo_external_weight_file(tmp_path):
    model, x = nn.Sequential(nn.Flatten(), nn.Linear(72, 3)).eval(), seeded_input()
    path = export_onnx(tmp_path, model, x, "dynamo", external_data=True)
    data = tmp_path / "m.onnx.data"
    assert data.exists()
    np.testing.assert_allclose(load_model(path).forward(x.double().numpy()), model(x).detach().numpy(), atol=1e-5)
    data.unlink()
    with pytest.raises(UserError, match="m.onnx: its weights are in an external data file .*m.onnx.data"):
        load_model(path)


# Hand-built graphs: the attributes, inputs and opsets exporters do not write.

def _save(tmp_path, nodes, initializers, in_shape, out_shape, opset=17, name="h.onnx"):
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, *in_shape])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, *out_shape])],
                              [numpy_helper.from_array(np.asarray(v, np.float32 if v.dtype.kind == "f" else v.dtype), k)
                               for k, v in initializers.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    onnx.save(model, tmp_path / name)
    return tmp_path / name, model


def _reference(model, x):
    from onnx.reference import ReferenceEvaluator
    return ReferenceEvaluator(model).run(None, {"x": x.astype(np.float32)})[0]


RNG = np.random.default_rng(0)
W, B = RNG.normal(size=(3, 8)), RNG.normal(size=3)
CONV = RNG.normal(size=(2, 2, 3, 3))


def _dense_tail(inp, features):
    return [helper.make_node("Flatten", [inp], ["f"], axis=1), helper.make_node("Gemm", ["f", "w", "b"], ["y"], transB=1)]


HAND_ACCEPTED = {
    # name: (nodes, initializers, input shape, output shape, opset)
    "matmul_add": ([helper.make_node("MatMul", ["x", "wt"], ["m"]), helper.make_node("Add", ["m", "b"], ["y"])],
                   {"wt": W.T, "b": B}, (8,), (3,), 13),
    "add_bias_first": ([helper.make_node("MatMul", ["x", "wt"], ["m"]), helper.make_node("Add", ["b", "m"], ["y"])],
                       {"wt": W.T, "b": B[None]}, (8,), (3,), 21),
    "gemm_alpha_beta_transb0": ([helper.make_node("Gemm", ["x", "wt", "b"], ["y"], alpha=0.5, beta=2.0)],
                                {"wt": W.T, "b": B}, (8,), (3,), 13),
    "reduce_mean_axes_attribute": ([helper.make_node("ReduceMean", ["x"], ["r"], axes=[2, 3], keepdims=0),
                                    helper.make_node("Gemm", ["r", "w", "b"], ["y"], transB=1)],
                                   {"w": W, "b": B}, (8, 3, 3), (3,), 13),
    "reduce_mean_axes_input": ([helper.make_node("ReduceMean", ["x", "axes"], ["r"]),
                                helper.make_node("Squeeze", ["r", "sq"], ["s"]),
                                helper.make_node("Gemm", ["s", "w", "b"], ["y"], transB=1)],
                               {"axes": np.array([-2, -1]), "sq": np.array([2, 3]), "w": W, "b": B}, (8, 3, 3), (3,), 18),
    "constant_shape_reshape": ([helper.make_node("Constant", [], ["shape"], value_ints=[-1, 8]),
                                helper.make_node("Reshape", ["x", "shape"], ["f"]),
                                helper.make_node("Gemm", ["f", "w", "b"], ["y"], transB=1)],
                               {"w": W, "b": B}, (2, 2, 2), (3,), 19),
    "reshape_allowzero_0_copies_batch": ([helper.make_node("Reshape", ["x", "shape"], ["f"]),
                                          helper.make_node("Gemm", ["f", "w", "b"], ["y"], transB=1)],
                                         {"shape": np.array([0, -1]), "w": W, "b": B}, (2, 2, 2), (3,), 14),
    "unsqueeze_squeeze": ([helper.make_node("Unsqueeze", ["x", "ax"], ["u"]), helper.make_node("Squeeze", ["u", "ax"], ["s"]),
                           helper.make_node("Gemm", ["s", "w", "b"], ["y"], transB=1)],
                          {"ax": np.array([2]), "w": W, "b": B}, (8,), (3,), 13),
    "conv_auto_pad_valid_kernel_shape": ([helper.make_node("Conv", ["x", "c"], ["c1"], auto_pad="VALID", kernel_shape=[3, 3]),
                                          helper.make_node("Relu", ["c1"], ["r"]), *_dense_tail("r", 8)],
                                         {"c": CONV, "w": W, "b": B}, (2, 4, 4), (3,), 17),
    "maxpool_storage_order": ([helper.make_node("MaxPool", ["x"], ["p"], kernel_shape=[2, 2], strides=[2, 2], storage_order=1),
                               *_dense_tail("p", 8)], {"w": W, "b": B}, (2, 4, 4), (3,), 13),
    "dropout_ratio_training_false": ([helper.make_node("Dropout", ["x", "ratio", "train"], ["d"]),
                                      helper.make_node("Gemm", ["d", "w", "b"], ["y"], transB=1)],
                                     {"ratio": np.array(0.5), "train": np.array(False), "w": W, "b": B}, (8,), (3,), 13),
    "batchnorm_momentum": ([helper.make_node("BatchNormalization", ["x", "s", "bb", "m", "v"], ["n"], epsilon=0.01, momentum=0.5),
                            *_dense_tail("n", 8)],
                           {"s": RNG.normal(size=2), "bb": RNG.normal(size=2), "m": RNG.normal(size=2),
                            "v": RNG.uniform(0.5, 2, size=2), "w": W, "b": B}, (2, 2, 2), (3,), 15),
}

HAND_REFUSED = {
    "gemm_transa": ([helper.make_node("Gemm", ["x", "w", "b"], ["y"], transA=1)], {"w": W.T, "b": B}, (8,), (3,),
                    "Gemm.*transA"),
    "gemm_batch_bias": ([helper.make_node("Gemm", ["x", "w", "b"], ["y"], transB=1)], {"w": W, "b": np.ones((5, 3))}, (8,), (3,),
                        "Gemm.*C"),
    "conv_asymmetric_pads": ([helper.make_node("Conv", ["x", "c"], ["c1"], pads=[0, 0, 1, 1]), *_dense_tail("c1", 8)],
                             {"c": CONV, "w": W, "b": B}, (2, 4, 4), (3,), "Conv.*pads"),
    "conv_same_stride_2": ([helper.make_node("Conv", ["x", "c"], ["c1"], auto_pad="SAME_UPPER", strides=[2, 2]),
                            *_dense_tail("c1", 8)], {"c": CONV, "w": W, "b": B}, (2, 4, 4), (3,), "Conv.*auto_pad"),
    "maxpool_indices": ([helper.make_node("MaxPool", ["x"], ["p", "i"], kernel_shape=[2, 2], strides=[2, 2]),
                         *_dense_tail("p", 8)], {"w": W, "b": B}, (2, 4, 4), (3,), "MaxPool.*Indices"),
    "avgpool_dilations": ([helper.make_node("AveragePool", ["x"], ["p"], kernel_shape=[2, 2], dilations=[2, 2]),
                           *_dense_tail("p", 8)], {"w": W, "b": B}, (2, 4, 4), (3,), "AveragePool.*dilations"),
    "batchnorm_training_mode": ([helper.make_node("BatchNormalization", ["x", "s", "bb", "m", "v"], ["n"], training_mode=1),
                                 *_dense_tail("n", 8)],
                                {"s": np.ones(2), "bb": np.zeros(2), "m": np.zeros(2), "v": np.ones(2), "w": W, "b": B},
                                (2, 2, 2), (3,), "BatchNormalization.*training_mode"),
    "dropout_training_mode": ([helper.make_node("Dropout", ["x", "ratio", "train"], ["d"]),
                               helper.make_node("Gemm", ["d", "w", "b"], ["y"], transB=1)],
                              {"ratio": np.array(0.5), "train": np.array(True), "w": W, "b": B}, (8,), (3,),
                              "Dropout.*training_mode"),
    "reshape_batch_mixing": ([helper.make_node("Reshape", ["x", "shape"], ["f"]),
                              helper.make_node("Gemm", ["f", "w", "b"], ["y"], transB=1)],
                             {"shape": np.array([-1, 4]), "w": W, "b": B}, (8,), (3,), "Reshape.*shape"),
    "reshape_fixed_count_not_the_batch": ([helper.make_node("Reshape", ["x", "shape"], ["f"]),
                                           helper.make_node("Gemm", ["f", "w", "b"], ["y"], transB=1)],
                                          {"shape": np.array([2, -1]), "w": W, "b": B}, (8,), (3,), "Reshape.*shape"),
    "softmax_axis_0": ([helper.make_node("Gemm", ["x", "w", "b"], ["g"], transB=1),
                        helper.make_node("Softmax", ["g"], ["y"], axis=0)],
                       {"w": W, "b": B}, (8,), (3,), "Softmax.*axis=0"),
    "flatten_axis_2": ([helper.make_node("Flatten", ["x"], ["f"], axis=2),
                        helper.make_node("Gemm", ["f", "w", "b"], ["y"], transB=1)],
                       {"w": W, "b": B}, (2, 2, 2), (3,), "Flatten.*axis=2"),
    "relu_unknown_attribute": ([helper.make_node("Relu", ["x"], ["r"], alpha=0.1),
                                helper.make_node("Gemm", ["r", "w", "b"], ["y"], transB=1)], {"w": W, "b": B}, (8,), (3,),
                               "Relu.*alpha"),
    "custom_domain": ([helper.make_node("Relu", ["x"], ["r"], domain="com.example"),
                       helper.make_node("Gemm", ["r", "w", "b"], ["y"], transB=1)], {"w": W, "b": B}, (8,), (3,),
                      "com.example.Relu"),
}


@pytest.mark.parametrize("name", sorted(HAND_ACCEPTED))
def test_hand_built_graph_imports_equal_to_the_onnx_reference(tmp_path, name):
    nodes, inits, in_shape, out_shape, opset = HAND_ACCEPTED[name]
    path, model = _save(tmp_path, nodes, inits, in_shape, out_shape, opset)
    x = RNG.normal(size=(5, *in_shape))
    graph = load_model(path)
    np.testing.assert_allclose(graph.forward(x), _reference(model, x), rtol=1e-4, atol=1e-4)
    CheckImport().run(Conversion(graph, x, ConvertConfig()))   # every layer against onnx.reference


@pytest.mark.parametrize("name", sorted(HAND_REFUSED))
def test_hand_built_graph_with_unsupported_attribute_is_refused(tmp_path, name):
    nodes, inits, in_shape, out_shape, message = HAND_REFUSED[name]
    path, _ = _save(tmp_path, nodes, inits, in_shape, out_shape)
    with pytest.raises(UserError, match=message) as error:
        load_model(path)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("exporter, opset", [("legacy", 13), ("legacy", 17), ("legacy", 21),
                                             *[pytest.param("dynamo", o, marks=EXPORTERS[1].marks) for o in (18, 21)]])
def test_opsets_13_to_21_convert_with_the_self_check(tmp_path, exporter, opset):
    from hdlgen import convert

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(4, 4, 3),
                          nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 5, bias=False), nn.ReLU(),
                          nn.Linear(5, 3)).eval()
    x = seeded_input((16, 2, 8, 8))
    path = export_onnx(tmp_path, model, x[:2], exporter, opset_version=opset)
    assert [o.version for o in onnx.load(path).opset_import if o.domain == ""] == [opset]
    graph = load_model(path)
    np.testing.assert_allclose(graph.forward(x.double().numpy()), model(x).detach().numpy(), rtol=1e-5, atol=1e-5)
    assert convert(graph, x.numpy()) is not None
