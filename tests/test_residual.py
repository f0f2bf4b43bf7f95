"""Networks as graphs (issue 25): residual MLPs and ResNets from .pt2 and both ONNX exporters convert
exactly (the self-check compares the imported and the merged float graphs with the framework's own
forward), the integer contract of the add holds (identity skip weight = the rounded ratio of the
scales), the two golden forms agree, fine-tuning trains graph nets, the .ttfs file keeps the edges,
mistakes are one line, and the core is bit-exact in cocotb with back-pressure."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from hdlgen import ConvertConfig, convert, golden, load_model, ttfs
from hdlgen.errors import UserError
from hdlgen.geometry import NetGeometry
from hdlgen.simulate import simulate
from hdlgen.testing import mixed_pixels, random_graph, random_graph_spec, random_net

from .helpers import assert_forms_agree, assert_matches_golden, export_onnx, export_pt2, randomize_bn, require_simulator

torch = pytest.importorskip("torch")
nn = torch.nn


class ResidualMLP(nn.Module):
    """``h = relu(a(x)); y = c(relu(b(h)) + h)``: the add stands before the readout."""

    def __init__(self, inputs=72, hidden=10, classes=4):
        super().__init__()
        self.a, self.b, self.c = nn.Linear(inputs, hidden), nn.Linear(hidden, hidden), nn.Linear(hidden, classes)

    def forward(self, x):
        h = torch.relu(self.a(x.flatten(1)))
        return self.c(torch.relu(self.b(h)) + h)


class BasicBlock(nn.Module):
    """torchvision's: conv-BN-ReLU-conv-BN, ``+ shortcut(x)``, ReLU; a 1×1-conv + BN projection
    (stride 2) when the shape changes, else the identity."""

    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout)
        self.conv2, self.bn2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out += self.shortcut(x)     # torchvision writes the add in place
        return torch.relu(out)


def tiny_resnet():
    return nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), BasicBlock(4, 4, 1),
                         BasicBlock(4, 6, 2), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, 3))


MODELS = {"residual-mlp": ResidualMLP, "resnet": tiny_resnet}


def _model(name, seed=0):
    torch.manual_seed(seed)
    return randomize_bn(MODELS[name](), seed, positive=True)


def _input(count=200, seed=0):
    return torch.rand(count, 2, 6, 6, generator=torch.Generator().manual_seed(seed))


def _load(tmp_path, name, exporter):
    model, x = _model(name), _input()
    if exporter == "pt2":
        return export_pt2(tmp_path, model, x[:2]), model, x
    return load_model(export_onnx(tmp_path, model, x[:2], exporter)), model, x


@pytest.mark.parametrize("exporter", ["pt2", "legacy", pytest.param("dynamo", marks=pytest.mark.slow)])
@pytest.mark.parametrize("name", sorted(MODELS))
def test_graph_nets_import_and_convert_with_the_self_check(tmp_path, name, exporter):
    graph, model, x = _load(tmp_path, name, exporter)
    assert any(node.kind == "add" for node in graph.nodes) and not graph.is_chain
    np.testing.assert_allclose(graph.forward(x.double().numpy()), model(x).detach().numpy(), rtol=1e-4, atol=1e-4)
    net = convert(graph, x.numpy(), ConvertConfig(ticks=16, weight_bits=8))   # CheckImport and CheckFolding ran
    assert not net.is_chain and any(len(layer.inputs) == 2 for layer in net.layers)
    pixels = net.input.pixels(x.numpy()[:40])
    assert_forms_agree(net, pixels[:6])
    with torch.no_grad():
        agreement = np.mean(golden.run_batch(net, pixels).classes == model(x[:40]).argmax(1).numpy())
    assert agreement >= 0.85     # a converted net follows its float net (random weights, T=16)


def test_identity_shortcut_is_the_rounded_ratio_of_the_scales(tmp_path):
    graph, _, x = _load(tmp_path, "resnet", "pt2")
    net = convert(graph, x.numpy(), ConvertConfig(ticks=16, weight_bits=8))
    block = next(l for l in net.layers if len(l.inputs) == 2 and l.weight.shape[0] == l.weight.shape[1] // 2)
    main, skip = (net.layers[[x.name for x in net.layers].index(n)] if n != ttfs.INPUT else None for n in block.inputs)
    sigma = block.scale / block.k            # the weight scale: real value of one accumulator unit
    channels = block.weight.shape[0]
    expected = np.floor(skip.scale / sigma + 0.5)   # the skip source's unit in accumulator units, rounded
    np.testing.assert_array_equal(block.weight[:, channels:, 1, 1], np.diag(expected).astype(np.int64))
    taps = block.weight[:, channels:].copy()
    taps[:, :, 1, 1] = 0
    assert not taps.any()                    # the shortcut is the centre tap only


def test_projection_with_a_stride_reads_a_subsample(tmp_path):
    graph, _, x = _load(tmp_path, "resnet", "pt2")
    net = convert(graph, x.numpy(), ConvertConfig(ticks=8, weight_bits=6))
    pools = [l for l in net.layers if l.kind == "maxpool2d"]
    assert len(pools) == 1 and pools[0].kernel == (1, 1) and pools[0].stride == (2, 2)
    assert any(pools[0].name in layer.inputs for layer in net.layers)


def test_graph_net_file_keeps_its_edges_and_chain_files_still_load(tmp_path, digits_net):
    rng = np.random.default_rng(3)
    net = random_graph(rng, (2, 6, 6), (4, -4, 4), skips=1.0)
    ttfs.save(net, tmp_path / "g.ttfs")
    again = ttfs.load(tmp_path / "g.ttfs")
    assert [l.inputs for l in again.layers] == [l.inputs for l in net.layers]
    pixels = mixed_pixels(rng, 10, net.input.size)
    np.testing.assert_array_equal(golden.run_batch(again, pixels).logits, golden.run_batch(net, pixels).logits)
    chain = ttfs.load(digits_net)
    assert chain.is_chain and chain.layers[0].inputs == (ttfs.INPUT,)


@pytest.mark.parametrize("seed", range(12))
def test_random_graph_nets_golden_forms_agree(seed):
    rng = np.random.default_rng(seed)
    net = random_graph(rng, (3, 8, 8) if seed % 2 else (30,), (5, -6, 6, 4) if seed % 2 else (12, 9, 12), skips=0.9)
    assert_forms_agree(net, mixed_pixels(rng, 4, net.input.size))
    NetGeometry(net, 1 + seed % 4)


def test_skip_buffers_hold_an_image_and_are_counted_in_memory():
    net = random_graph(np.random.default_rng(3), (2, 6, 6), (4, -4, 4), skips=1.0)
    geometry = NetGeometry(net)
    assert geometry.buffers
    for buffer in geometry.buffers:
        assert buffer.depth == net.sizes[buffer.source] + 1
        assert geometry.memory_bits()[buffer.layer.name][f"skip_{buffer.position}"] == buffer.memory_bits


def _refusal(model, x, tmp_path):
    with pytest.raises(UserError) as error:
        convert(export_pt2(tmp_path, model, x[:2]), x.numpy(), ConvertConfig(ticks=8))
    assert "\n" not in str(error.value)
    return str(error.value)


class _Concat(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(72, 4), nn.Linear(8, 3)

    def forward(self, x):
        h = torch.relu(self.a(x.flatten(1)))
        return self.b(torch.cat([h, h], dim=1))


class _AddConstant(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(72, 4), nn.Linear(4, 3)

    def forward(self, x):
        return self.b(torch.relu(self.a(x.flatten(1))) + 1.0)


class _StridedMain(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b, self.c = nn.Conv2d(2, 4, 3, padding=1), nn.Conv2d(4, 4, 3, 2, 1), nn.Linear(36, 3)

    def forward(self, x):
        h = torch.relu(self.a(x))
        return self.c(torch.relu(self.b(h) + h[:, :, ::2, ::2]).flatten(1))


def test_what_cannot_be_converted_is_refused_by_name(tmp_path):
    x = _input()
    assert "concatenation is not supported" in _refusal(_Concat(), x, tmp_path)
    assert "constant" in _refusal(_AddConstant(), x, tmp_path)
    assert "slice" in _refusal(_StridedMain(), x, tmp_path)


def test_branches_of_an_add_need_one_window(tmp_path):
    graph, _, x = _load(tmp_path, "residual-mlp", "pt2")
    with pytest.raises(UserError, match="windows") as error:
        convert(graph, x.numpy(), ConvertConfig(ticks=[8, 4, 8]))
    assert "\n" not in str(error.value)


def test_a_net_whose_layers_do_not_join_is_refused():
    net = random_graph(np.random.default_rng(0), (12,), (6, 6), skips=1.0)
    with pytest.raises(UserError, match="not the input or a layer before it"):
        ttfs.TTFSNet(net.input, [net.layers[1], net.layers[0], *net.layers[2:]])
    chain = random_net(np.random.default_rng(0), [12, 6, 3], 4)
    first, readout = chain.layers
    with pytest.raises(UserError, match="'spare' is read by no layer"):
        ttfs.TTFSNet(chain.input, [first, dataclasses.replace(first, name="spare"),
                                   dataclasses.replace(readout, inputs=("dense0",))])


def test_fine_tuning_trains_a_graph_net_and_writes_the_net_it_measures(tmp_path):
    from hdlgen.finetune import TrainableNet

    graph, _, x = _load(tmp_path, "resnet", "pt2")
    config = ConvertConfig(ticks=4, weight_bits=6)
    net = convert(graph, x.numpy(), config)
    trainable = TrainableNet(net, x.numpy(), config)
    lowered = trainable.to_net()
    for a, b in zip(net.layers, lowered.layers):
        if a.has_weights:
            np.testing.assert_array_equal(a.weight, b.weight)
    pixels = torch.from_numpy(net.input.pixels(x.numpy()))
    labels = torch.from_numpy(golden.run_batch(net, pixels.numpy()).classes)
    optimizer = torch.optim.Adam(trainable.parameters(), lr=3e-3)
    for batch in torch.arange(len(pixels)).split(50):
        _, logits = trainable(pixels[batch])
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(logits, (labels[batch] + 1) % 3).backward()
        optimizer.step()
    moved = trainable.to_net()
    with torch.no_grad():
        qs, _ = trainable(pixels)
    for layer, (q, g) in enumerate(zip(qs, golden.run_batch(moved, pixels.numpy()).q)):
        np.testing.assert_array_equal(q.numpy(), g, err_msg=f"source {layer}")


@pytest.mark.slow
@pytest.mark.parametrize("name,lanes", [("residual-mlp", 1), ("residual-mlp", 4), ("resnet", 1), ("resnet", 3)])
def test_converted_graph_net_is_bit_exact_in_cocotb(tmp_path, name, lanes):
    require_simulator()
    graph, _, x = _load(tmp_path, name, "pt2")
    net = convert(graph, x.numpy(), ConvertConfig(ticks=8, weight_bits=6), name=name.replace("-", "_"))
    pixels = net.input.pixels(np.random.default_rng(lanes).random((6, 2, 6, 6)))
    report = simulate(net, pixels, lanes=lanes, pixels_per_transfer=1 + lanes % 2, build_dir=tmp_path / "sim", seed=lanes)
    assert_matches_golden(report, net, pixels)


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 4])
def test_random_graph_nets_are_bit_exact_in_cocotb(tmp_path, seed):
    require_simulator()
    rng = np.random.default_rng(seed)
    spec = random_graph_spec(rng)
    from hdlgen.testing import net_from_spec
    net = net_from_spec(spec)
    pixels = mixed_pixels(rng, 6, net.input.size)
    report = simulate(net, pixels, lanes=spec["lanes"], pixels_per_transfer=spec["pixels_per_transfer"],
                      build_dir=tmp_path, seed=seed)
    assert_matches_golden(report, net, pixels)


def test_compare_runs_every_code_on_a_graph_net(tmp_path, capsys):
    from .helpers import run_cli

    model, x = _model("residual-mlp"), _input(120)
    torch.export.save(torch.export.export(model.eval(), (x[:1],)), tmp_path / "m.pt2")
    labels = model(x).argmax(1).detach().numpy()
    np.savez(tmp_path / "data.npz", x=x.numpy(), y=labels)
    code, out, err = run_cli(capsys, "compare", tmp_path / "m.pt2", "--data", tmp_path / "data.npz",
                             "--calibration-data", tmp_path / "data.npz", "--steps", "3", "7",
                             "-o", tmp_path / "compare.json")
    assert code == 0, err
    import json
    methods = json.loads((tmp_path / "compare.json").read_text())["methods"]
    assert set(methods) == {"ttfs", "amos", "rate"}
    assert all(len(rows) == 2 and all(r["synaptic_events"] > 0 and r["cycles_estimate"] > 0 for r in rows)
               for rows in methods.values())


def _tiny_graph():
    return random_graph(np.random.default_rng(6), (1, 6, 6), (3, -4), classes=3, ticks=4, weight_bits=4, skips=1.0)


def test_the_fingerprint_covers_the_edges():
    """Two nets with the same arrays, whose readout reads the same two layers in the other order."""
    from hdlgen.boards.link import net_fingerprint
    from hdlgen.passes.quantize import input_encoding
    from hdlgen.ttfs import IntDense

    rng = np.random.default_rng(0)

    def net(order):
        hidden = [IntDense(rng_w, np.zeros(3), np.full(3, 4), 4, 4, 4, np.ones(3), name=name, inputs=reads)
                  for rng_w, name, reads in ((w0, "a", ("input",)), (w1, "b", ("a",)))]
        readout = IntDense(w2, np.zeros(2), None, 4, 0, 4, np.ones(2), name="readout", inputs=order)
        return ttfs.TTFSNet(input_encoding((4,), 0.0, 1 / 255, 0.25, 4), [*hidden, readout])

    w0, w1, w2 = rng.integers(-7, 8, (3, 4)), rng.integers(-7, 8, (3, 3)), rng.integers(-7, 8, (2, 6))
    assert net_fingerprint(net(("b", "a"))) != net_fingerprint(net(("a", "b")))
    assert net_fingerprint(net(("b", "a"))) == net_fingerprint(net(("b", "a")))


@pytest.mark.slow
def test_a_graph_net_classifies_over_the_link_equal_to_golden():
    from hdlgen.boards.host import Device
    from hdlgen.rtl_templates.top import NetworkTop

    from .helpers import serial_link

    net = _tiny_graph()
    _, _, port = serial_link(net, NetworkTop(net, lanes=2))
    device = Device(port)
    device.check(net)
    pixels = np.random.default_rng(2).integers(0, 256, (3, net.input.size), dtype=np.uint8)
    results = device.classify(pixels)
    expected = golden.run_batch(net, pixels)
    assert [r.label for r in results] == expected.classes.tolist()
    assert [list(r.logits) for r in results] == expected.logits.tolist()


@pytest.mark.slow
def test_a_graph_net_builds_for_the_icebreaker(tmp_path, capsys):
    import json

    from .helpers import run_cli

    path = ttfs.save(_tiny_graph(), tmp_path / "graph.ttfs")
    code, out, err = run_cli(capsys, "build", path, "--board", "icebreaker", "-o", tmp_path / "out", "--json")
    report = json.loads(out.strip().splitlines()[-1])
    assert code == 0 and report["ok"], err
    assert (tmp_path / "out" / "top.bin").stat().st_size > 10_000


def test_a_graph_net_too_large_for_the_icebreaker_is_refused_naming_its_memories(tmp_path, capsys):
    from .helpers import run_cli

    net = random_graph(np.random.default_rng(1), (1, 28, 28), (16, 16, 16), ticks=8, skips=1.0)
    path = ttfs.save(net, tmp_path / "big.ttfs")
    code, out, err = run_cli(capsys, "build", path, "--board", "icebreaker", "-o", tmp_path / "out")
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "does not fit icebreaker: BRAM" in err and "accumulators" in err and "skip buffers" in err
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())     # no tool ran
