"""The conversion's self-check (issue 12): the imported float graph against the framework's own output of the
original model, and the folded graph against the imported one, on the calibration data. Each test breaks one
piece on purpose (an importer handler that ignores an attribute, a folding pass that folds wrongly) and expects
the conversion to stop naming the layer whose output diverges."""


import numpy as np
import pytest

from hdlgen import ir, load_model
from hdlgen.errors import UserError
from hdlgen.passes import FLOW, ConvertConfig, FoldBatchNorm, convert
from hdlgen.passes.fold_bn import fold_into_previous

from .helpers import export_onnx, export_pt2, seeded_input

torch = pytest.importorskip("torch")
nn = torch.nn


def _onnx(tmp_path, model, x):
    pytest.importorskip("onnx")
    return load_model(export_onnx(tmp_path, model, x))


def _cnn():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                          nn.Linear(36, 10), nn.ReLU(), nn.Linear(10, 3)).eval()
    model[1].running_mean.uniform_(-0.5, 0.5), model[1].running_var.uniform_(0.5, 2), model[1].weight.data.uniform_(0.5, 2)
    return model


def test_correct_models_pass_the_self_check(tmp_path):
    model, x = _cnn(), seeded_input((16, 1, 8, 8))
    for graph in (export_pt2(tmp_path, model, x[:2]), _onnx(tmp_path, model, x[:2])):
        assert graph.reference is not None
        net = convert(graph, x.numpy(), ConvertConfig(ticks=16))
        assert net is not None


def test_importer_ignoring_divisor_override_is_caught(tmp_path, monkeypatch):
    from hdlgen.importers import pytorch

    def ignores_divisor(node, args, params):   # the bug of issue 12: kernel, stride, padding read, the rest ignored
        for name in ("kernel_size", "stride", "padding", "ceil_mode", "count_include_pad", "divisor_override"):
            args[name]
        return [ir.AvgPool2d(tuple(args["kernel_size"]), tuple(args["stride"]), name=node.name)]

    monkeypatch.setitem(pytorch.HANDLERS, "aten.avg_pool2d.default", ignores_divisor)
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.AvgPool2d(2, divisor_override=1), nn.Flatten(),
                          nn.Linear(18, 3)).eval()
    x = seeded_input((8, 1, 8, 8))
    graph = export_pt2(tmp_path, model, x[:2])
    with pytest.raises(UserError, match="self-check: layer 'avg_pool2d' .*differs from PyTorch"):
        convert(graph, x.numpy())


def test_importer_ignoring_maxpool_dilations_is_caught(tmp_path, monkeypatch):
    from hdlgen.importers import onnx as onnx_importer

    def ignores_dilations(node, built):         # the other bug of issue 12: same output size, wrong windows
        node.attr("dilations"), node.attr("ceil_mode"), node.attr("storage_order")
        kernel = tuple(node.attr("kernel_shape"))
        return [ir.MaxPool2d(kernel, tuple(node.attr("strides")), tuple(node.attr("pads", [0, 0])[:2]), name=node.name)]

    monkeypatch.setitem(onnx_importer.HANDLERS, "MaxPool", ignores_dilations)
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.MaxPool2d(2, stride=2, dilation=2), nn.Flatten(),
                          nn.Linear(18, 3)).eval()
    x = seeded_input((8, 1, 9, 9))       # 7x7 after the conv: 3x3 after the pool, dilated or not
    graph = _onnx(tmp_path, model, x[:2])
    with pytest.raises(UserError, match="self-check: layer '/2/MaxPool' .*differs from ONNX"):
        convert(graph, x.numpy())


class BrokenFoldBatchNorm(FoldBatchNorm):
    """Folds the batch norm into the layer before it, forgetting its shift."""

    @staticmethod
    def _into_previous(before, bn):
        folded = fold_into_previous(before, bn)
        if folded is not None:
            folded.bias = before.bias * bn.scale_shift()[0]
        return folded


@pytest.mark.parametrize("source", ["pt2", "onnx", "torch"])
def test_broken_folding_pass_is_caught_naming_the_layer(tmp_path, source):
    from hdlgen import from_torch

    model, x = _cnn(), seeded_input((16, 1, 8, 8))
    if source == "onnx":   # the legacy exporter folds the batch norm itself: put one after the ReLU instead
        model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(144, 10), nn.BatchNorm1d(10),
                              nn.ReLU(), nn.Linear(10, 3)).eval()
        model[4].running_mean.uniform_(-0.5, 0.5), model[4].weight.data.uniform_(0.5, 2)
        torch.onnx.export(model, (x[:2],), tmp_path / "m.onnx", dynamo=False, do_constant_folding=False)
        graph = load_model(tmp_path / "m.onnx")
        layer = "/3/Gemm"
    else:
        graph = export_pt2(tmp_path, model, x[:2]) if source == "pt2" else from_torch(model, x[:2])
        layer = "conv2d"
    flow = [BrokenFoldBatchNorm() if isinstance(step, FoldBatchNorm) else step for step in FLOW]
    with pytest.raises(UserError, match=f"self-check: after folding, layer '{layer}'"):
        convert(graph, x.numpy(), flow=flow)
    convert(graph, x.numpy())    # the real pass is fine


def test_weight_npz_has_no_reference_and_converts(tmp_path):
    from hdlgen.importers.npz import save_npz

    rng = np.random.default_rng(0)
    save_npz(tmp_path / "m.npz", [rng.normal(size=(5, 4)), rng.normal(size=(2, 5))], [np.zeros(5), np.zeros(2)])
    assert convert(load_model(tmp_path / "m.npz"), rng.random((20, 4))) is not None


def test_trailing_softmax_note_reaches_the_converted_net(tmp_path):
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 6), nn.ReLU(), nn.Linear(6, 3), nn.Softmax(dim=1)).eval()
    x = seeded_input((12, 1, 4, 4))
    net = convert(export_pt2(tmp_path, model, x[:2]), x.numpy())
    assert any("softmax" in note and "argmax is unchanged" in note for note in net.meta["notes"])
    from hdlgen import ttfs
    from hdlgen.evaluate import format_net

    saved = ttfs.load(ttfs.save(net, tmp_path / "m.ttfs"))   # kept in the file, shown by convert and info
    assert any(line.startswith("note: ") and "softmax" in line for line in format_net(saved).splitlines())


def test_cli_convert_refuses_in_one_line_and_stops_on_a_failed_self_check(tmp_path, capsys, monkeypatch):
    from hdlgen.importers import pytorch

    from .helpers import run_cli

    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.AvgPool2d(2, divisor_override=1), nn.Flatten(),
                          nn.Linear(18, 3)).eval()
    x = seeded_input((10, 1, 8, 8))
    torch.export.save(torch.export.export(model, (x[:2],)), tmp_path / "m.pt2")
    np.savez(tmp_path / "d.npz", x=x.numpy(), y=np.zeros(10, np.int64))
    code, out, err = run_cli(capsys, "convert", tmp_path / "m.pt2", "--data", tmp_path / "d.npz", "-o", tmp_path / "m.ttfs")
    assert code == 2 and len(err.strip().splitlines()) == 1 and "divisor_override=1" in err and "avg_pool2d" in err

    def ignores_divisor(node, args, params):
        for name in ("kernel_size", "stride", "padding", "ceil_mode", "count_include_pad", "divisor_override"):
            args[name]
        return [ir.AvgPool2d(tuple(args["kernel_size"]), tuple(args["stride"]), name=node.name)]

    monkeypatch.setitem(pytorch.HANDLERS, "aten.avg_pool2d.default", ignores_divisor)
    code, out, err = run_cli(capsys, "convert", tmp_path / "m.pt2", "--data", tmp_path / "d.npz", "-o", tmp_path / "m.ttfs")
    assert code == 2 and len(err.strip().splitlines()) == 1 and "self-check: layer 'avg_pool2d'" in err
    assert not (tmp_path / "m.ttfs").exists()


def test_float64_models_pass_the_self_check(tmp_path):
    from hdlgen import from_torch

    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 6), nn.ReLU(), nn.Linear(6, 3)).double().eval()
    x = seeded_input((12, 1, 4, 4)).double()
    assert convert(from_torch(model, x[:2]), x.numpy()) is not None
    assert convert(_onnx(tmp_path, model, x[:2]), x.numpy()) is not None
