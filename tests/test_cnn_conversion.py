"""CNN conversion: folded batch norm and pools equal the float PyTorch net; the converted SNN
tracks it."""

import numpy as np
import pytest

from hdlgen import golden, ir
from hdlgen.errors import UserError
from hdlgen.passes import FLOW, Conversion, ConvertConfig, convert
from hdlgen.passes.pools import compose_kernels

from .helpers import MODELS, randomize_bn

torch = pytest.importorskip("torch")
from hdlgen import from_torch  # noqa: E402

nn = torch.nn


@pytest.mark.parametrize("name", list(MODELS))
def test_folding_equals_torch(name):
    torch.manual_seed(0)
    model = randomize_bn(MODELS[name](), 1, positive=name.startswith("maxpool-before"))
    x = torch.rand(16, 1, 8, 8)
    state = Conversion(from_torch(model, x), x.numpy(), ConvertConfig())
    for step in FLOW[:5]:  # everything up to and including the structure check
        step.run(state)
    kinds = {type(n) for n in state.graph.nodes}
    assert ir.BatchNorm not in kinds and ir.AvgPool2d not in kinds
    np.testing.assert_allclose(state.graph.forward(x.double().numpy()), model(x).detach().numpy(), atol=1e-5)


def test_negative_bn_scale_before_maxpool_is_refused():
    model = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.MaxPool2d(2), nn.BatchNorm2d(2), nn.ReLU(),
                          nn.Flatten(), nn.Linear(32, 2))
    model[2].weight.data = torch.tensor([1.0, -1.0])
    with pytest.raises(UserError, match="min-pool"):
        convert(from_torch(model.eval(), torch.rand(2, 1, 8, 8)), np.random.rand(4, 1, 8, 8))


def test_padded_first_conv_with_negative_inputs_is_refused():
    model = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(128, 2)).eval()
    with pytest.raises(UserError, match="padding"):
        convert(from_torch(model, torch.rand(2, 1, 8, 8)), np.random.rand(4, 1, 8, 8) - 0.5)


def test_compose_kernels_is_convolution_of_kernels():
    a, b = np.random.rand(2, 2), np.random.rand(3, 3)
    full = compose_kernels(a, b, (1, 1))
    expected = np.zeros((4, 4))
    for i in range(2):
        for j in range(2):
            expected[i:i + 3, j:j + 3] += a[i, j] * b
    np.testing.assert_allclose(full, expected)


@pytest.mark.parametrize("name", ["bn-before-relu+maxpool", "avgpool-before-conv", "global-avgpool-before-linear"])
def test_converted_cnn_tracks_float(name):
    torch.manual_seed(2)
    model = randomize_bn(MODELS[name](), 3)
    x = torch.rand(400, 1, 8, 8)
    net = convert(from_torch(model, x[:2]), x.numpy(), ConvertConfig(ticks=64, weight_bits=8, calibration="max"))
    snn = golden.run_batch(net, net.input.pixels(x.numpy()))
    ann = model(x).detach().numpy()
    assert np.mean(snn.classes == ann.argmax(1)) > 0.9
    # logits in real units stay close to the float logits
    real = snn.logits * net.layers[-1].scale
    assert np.abs(real - ann).mean() < 0.1 * np.abs(ann).mean() + 0.05


def test_bn_after_relu_before_maxpool_moves_past_the_pool():
    """ReLU → BatchNorm (positive scales) → MaxPool: the batch norm commutes with max and folds
    into the layer after the pool; the float copy equals torch."""
    torch.manual_seed(4)
    model = nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), nn.ReLU(), nn.BatchNorm2d(3), nn.MaxPool2d(2),
                          nn.Flatten(), nn.Linear(48, 2))
    model = randomize_bn(model, 1, positive=True)
    x = torch.rand(8, 1, 8, 8)
    state = Conversion(from_torch(model, x), x.numpy(), ConvertConfig())
    for step in FLOW[:6]:
        step.run(state)
    assert ir.BatchNorm not in {type(n) for n in state.graph.nodes}
    np.testing.assert_allclose(state.graph.forward(x.double().numpy()), model(x).detach().numpy(), atol=1e-5)


def test_bn_after_relu_with_a_negative_scale_before_maxpool_is_refused_naming_the_channel():
    model = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.ReLU(), nn.BatchNorm2d(2), nn.MaxPool2d(2),
                          nn.Flatten(), nn.Linear(32, 2))
    model[2].weight.data = torch.tensor([1.0, -0.5])
    with pytest.raises(UserError, match="channel 1 .*min-pool"):
        convert(from_torch(model.eval(), torch.rand(2, 1, 8, 8)), np.random.rand(4, 1, 8, 8))
