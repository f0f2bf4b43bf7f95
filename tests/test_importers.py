import numpy as np
import pytest

from hdlgen import load_model
from hdlgen.errors import UserError
from hdlgen.importers.npz import save_npz

torch = pytest.importorskip("torch")
from hdlgen import from_torch  # noqa: E402
from hdlgen.importers.pytorch import HANDLERS, handler  # noqa: E402


def _model():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 9), torch.nn.ReLU(),
                               torch.nn.Dropout(0.1), torch.nn.Linear(9, 4)).eval()


def test_from_torch_matches_the_module():
    model, x = _model(), torch.rand(7, 1, 4, 4)
    graph = from_torch(model, x)
    assert [n.kind for n in graph.nodes] == ["input", "flatten", "dense", "relu", "dense", "output"]
    np.testing.assert_allclose(graph.forward(x.double().numpy()), model(x).detach().numpy(), atol=1e-6)


def test_pt2_round_trip(tmp_path):
    model, x = _model(), torch.rand(3, 1, 4, 4)
    torch.export.save(torch.export.export(model, (x,)), tmp_path / "m.pt2")
    graph = load_model(tmp_path / "m.pt2")
    np.testing.assert_allclose(graph.forward(x.double().numpy()), model(x).detach().numpy(), atol=1e-6)


def test_unsupported_operator_lists_supported_ones():
    model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Softplus(), torch.nn.Linear(4, 2))
    with pytest.raises(UserError, match=r"layer 'softplus' \(PyTorch aten.softplus.default\) is not supported: its "
                                        r"activation is not one hdlgen reads.*; supported layers: Linear, Conv2d, ReLU, "
                                        r"MaxPool2d") as refused:
        from_torch(model, torch.rand(2, 4))
    assert "aten.linear" not in str(refused.value) and len(str(refused.value)) < 400


def test_a_skip_connection_imports_as_a_graph():
    """Once refused as "not sequential": the readout's neurons take the input as a second input."""
    class Skip(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = torch.nn.Linear(4, 4), torch.nn.Linear(4, 4)

        def forward(self, x):
            return self.b(torch.relu(self.a(x))) + x

    graph = from_torch(Skip(), torch.rand(2, 4))
    add = next(node for node in graph.nodes if node.kind == "add")
    assert add.inputs == ("linear_1", "input")


def test_registry_refuses_duplicates():
    with pytest.raises(ValueError, match="duplicate"):
        handler("aten.linear.default")(lambda *a: [])
    assert "aten.conv2d.default" in HANDLERS


def test_npz_layout(tmp_path):
    rng = np.random.default_rng(0)
    w = [rng.normal(size=(5, 12)), rng.normal(size=(3, 5))]
    b = [rng.normal(size=5), rng.normal(size=3)]
    save_npz(tmp_path / "m.npz", w, b, input_shape=(3, 2, 2))
    graph = load_model(tmp_path / "m.npz")
    x = rng.normal(size=(4, 3, 2, 2))
    expected = np.maximum(x.reshape(4, -1) @ w[0].T + b[0], 0) @ w[1].T + b[1]
    np.testing.assert_allclose(graph.forward(x), expected, rtol=1e-5, atol=1e-5)


def test_npz_errors(tmp_path):
    np.savez(tmp_path / "nobias.npz", weight0=np.ones((2, 2)))
    with pytest.raises(UserError, match="no bias0"):
        load_model(tmp_path / "nobias.npz")
    np.savez(tmp_path / "nan.npz", weight0=np.array([[np.nan]]), bias0=np.zeros(1))
    with pytest.raises(UserError, match="NaN"):
        load_model(tmp_path / "nan.npz")
    np.savez(tmp_path / "empty.npz", other=np.ones(1))
    with pytest.raises(UserError, match="weight0"):
        load_model(tmp_path / "empty.npz")
    with pytest.raises(UserError, match="unknown model format '.h5'"):
        load_model(tmp_path / "m.h5")


def test_onnx_import_matches_torch(tmp_path):
    pytest.importorskip("onnx")
    torch.manual_seed(1)
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 3, 3, padding=1), torch.nn.BatchNorm2d(3), torch.nn.ReLU(),
                                torch.nn.MaxPool2d(2), torch.nn.Flatten(), torch.nn.Linear(12, 8),
                                torch.nn.BatchNorm1d(8), torch.nn.ReLU(), torch.nn.Linear(8, 3)).eval()
    model[1].running_mean.uniform_(-1, 1)
    model[6].running_var.uniform_(0.5, 2)
    x = torch.rand(5, 1, 4, 4)
    torch.onnx.export(model, (x,), tmp_path / "m.onnx", dynamo=False)
    graph = load_model(tmp_path / "m.onnx")
    assert [n.kind for n in graph.nodes if n.kind not in ("input", "output")] == [
        "conv2d", "relu", "maxpool2d", "flatten", "dense", "batchnorm", "relu", "dense"]
    np.testing.assert_allclose(graph.forward(x.double().numpy()), model(x).detach().numpy(), atol=1e-5)


def test_onnx_unsupported_operator(tmp_path):
    pytest.importorskip("onnx")
    model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Softplus(), torch.nn.Linear(4, 2))
    torch.onnx.export(model, (torch.rand(1, 4),), tmp_path / "t.onnx", dynamo=False)
    with pytest.raises(UserError, match=r"\(ONNX Softplus\) is not supported: its activation is not one hdlgen reads"
                                        r".* supported layers: .*Gemm"):
        load_model(tmp_path / "t.onnx")
    (tmp_path / "bad.onnx").write_bytes(b"\x00garbage")
    with pytest.raises(UserError, match="bad.onnx"):
        load_model(tmp_path / "bad.onnx")


def test_pt2_with_pickled_weights_is_refused_before_loading(tmp_path):
    import json
    import zipfile
    model, x = _model(), torch.rand(3, 1, 4, 4)
    torch.export.save(torch.export.export(model, (x,)), tmp_path / "m.pt2")
    forged = tmp_path / "forged.pt2"
    with zipfile.ZipFile(tmp_path / "m.pt2") as src, zipfile.ZipFile(forged, "w") as dst:
        for item in src.infolist():
            data = src.read(item.filename)
            if item.filename.endswith("model_weights_config.json"):
                config = json.loads(data)
                next(iter(config["config"].values()))["use_pickle"] = True
                data = json.dumps(config).encode()
            dst.writestr(item, data)
    with pytest.raises(UserError, match="pickled object"):
        load_model(forged)
