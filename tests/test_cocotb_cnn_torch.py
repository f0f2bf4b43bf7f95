"""PyTorch CNNs with batch norm before and after the ReLU, average pools (also global) and max-pools,
converted by the whole flow, simulate bit-exact in cocotb: what folding leaves behind (merged
kernels, strides, position-free biases) is what the RTL must reproduce."""

import numpy as np
import pytest

from hdlgen import ConvertConfig, convert, golden
from hdlgen.simulate import simulate

from .helpers import MODELS, assert_matches_golden, randomize_bn, require_simulator

torch = pytest.importorskip("torch")
from hdlgen import from_torch  # noqa: E402

pytestmark = pytest.mark.slow

IMAGES = 10


@pytest.mark.parametrize("index,name", list(enumerate(MODELS)))
def test_converted_torch_cnn_is_bit_exact(index, name, tmp_path):
    require_simulator()
    torch.manual_seed(20 + index)   # seeds where every layer spikes on the test images
    model = randomize_bn(MODELS[name](), index, positive=name.startswith("maxpool-before"))
    x = torch.rand(200, 1, 8, 8)
    net = convert(from_torch(model, x[:2]), x.numpy(), ConvertConfig(ticks=8, weight_bits=6), name=f"torch{index}")
    pixels = net.input.pixels(np.random.default_rng(index).random((IMAGES, 1, 8, 8)))
    events = [golden.run_events(net, p) for p in pixels]
    assert all(sum(len(e.spikes[layer]) for e in events) >= IMAGES for layer in range(len(net.layers)))
    lanes = 1 + index % 3
    report = simulate(net, pixels, lanes=lanes, build_dir=tmp_path, seed=index)
    assert_matches_golden(report, net, pixels)
