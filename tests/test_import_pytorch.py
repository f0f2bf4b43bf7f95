"""The PyTorch importer checks every argument of every operator it accepts (issue 12): a model with a
non-default value either imports with a float graph equal to torch's output, or is refused naming the
layer and the argument. Models go through the real path: torch.export.export → torch.export.save → .pt2."""

import numpy as np
import pytest

from hdlgen.errors import UserError

from .helpers import export_pt2, linear_head, mean_over, seeded_input

torch = pytest.importorskip("torch")
nn = torch.nn


ACCEPTED = {
    "avgpool_ceil_mode_same_size": [nn.AvgPool2d(2, ceil_mode=True), *linear_head(18)],
    "avgpool_count_include_pad_false": [nn.AvgPool2d(2, count_include_pad=False), *linear_head(18)],
    "avgpool_divisor_override_window": [nn.AvgPool2d(2, divisor_override=4), *linear_head(18)],
    "avgpool_stride": [nn.AvgPool2d(2, stride=1), *linear_head(50)],
    "maxpool_padding_stride": [nn.MaxPool2d(3, stride=2, padding=1), *linear_head(18)],
    "maxpool_ceil_mode_same_size": [nn.MaxPool2d(2, ceil_mode=True), *linear_head(18)],
    "conv_stride_padding": [nn.Conv2d(2, 3, 3, stride=2, padding=1), *linear_head(27)],
    "conv_padding_same": [nn.Conv2d(2, 3, 3, padding="same"), *linear_head(108)],
    "conv_padding_valid": [nn.Conv2d(2, 3, 3, padding="valid"), *linear_head(48)],
    "conv_no_bias": [nn.Conv2d(2, 3, 3, bias=False), *linear_head(48)],
    "linear_no_bias": [nn.Flatten(), nn.Linear(72, 3, bias=False)],
    "dropout2d_dropout_identity": [nn.Dropout2d(0.3), nn.Identity(), nn.Flatten(), nn.Dropout(0.2), nn.Linear(72, 3)],
    "batchnorm_no_affine": [nn.BatchNorm2d(2, affine=False), *linear_head(72)],
    "batchnorm_eps_momentum": [nn.BatchNorm2d(2, eps=0.1, momentum=0.5), *linear_head(72)],
    "adaptive_avgpool": [nn.Conv2d(2, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), *linear_head(4)],
    "adaptive_avgpool_2": [nn.Conv2d(2, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(2), *linear_head(16)],
    "mean_spatial": [nn.Conv2d(2, 4, 3), nn.ReLU(), mean_over(), nn.Linear(4, 3)],
    "mean_spatial_negative_keepdim": [nn.Conv2d(2, 4, 3), nn.ReLU(), mean_over((-1, -2), True), *linear_head(4)],
    "flatten_start_dim": [nn.Flatten(1, -1), nn.Linear(72, 3)],
    "trailing_softmax": [*linear_head(72), nn.Softmax(dim=1)],
    "trailing_log_softmax": [*linear_head(72), nn.LogSoftmax(dim=-1)],
}

REFUSED = {
    "avgpool_divisor_override": ([nn.AvgPool2d(2, divisor_override=1), *linear_head(18)], "avg_pool2d.*divisor_override=1"),
    "avgpool_ceil_mode": ([nn.AvgPool2d(4, ceil_mode=True), *linear_head(8)], "avg_pool2d.*ceil_mode=True"),
    "avgpool_padding": ([nn.AvgPool2d(2, padding=1), *linear_head(32)], "avg_pool2d.*padding"),
    "maxpool_dilation": ([nn.MaxPool2d(2, dilation=2), *linear_head(8)], "max_pool2d.*dilation"),
    "maxpool_ceil_mode": ([nn.MaxPool2d(4, ceil_mode=True), *linear_head(8)], "max_pool2d.*ceil_mode=True"),
    "conv_dilation": ([nn.Conv2d(2, 2, 3, dilation=2), *linear_head(8)], "conv2d.*dilation"),
    "conv_groups": ([nn.Conv2d(2, 2, 3, groups=2), *linear_head(32)], "conv2d.*groups=2"),
    "conv_same_even_kernel": ([nn.Conv2d(2, 2, 4, padding="same"), *linear_head(72)], "conv2d.*padding='same'.*4x4"),
    "conv_reflect_padding": ([nn.Conv2d(2, 2, 3, padding=1, padding_mode="reflect"), *linear_head(72)], "aten.pad"),
    "batchnorm_without_running_stats": ([nn.BatchNorm2d(2, track_running_stats=False), *linear_head(72)],
                                        "batch_norm.*training=True.*track_running_stats=False"),
    "mean_over_channels": ([mean_over((1,)), *linear_head(36)], "mean.*dim=\\[1\\]"),
    "softmax_not_last": ([nn.Flatten(), nn.Softmax(1), nn.Linear(72, 3)], "follows a softmax"),
    "adaptive_unequal": ([nn.AdaptiveAvgPool2d(4), *linear_head(32)], "adaptive_avg_pool2d.*output_size"),
    "flatten_batch": ([nn.Flatten(0, -1)], "flatten.*shape"),
}


@pytest.mark.parametrize("name", sorted(ACCEPTED))
def test_accepted_argument_imports_equal_to_torch(tmp_path, name):
    torch.manual_seed(0)
    model, x = nn.Sequential(*ACCEPTED[name]).eval(), seeded_input()
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d) and m.running_mean is not None:
            m.running_mean.uniform_(-1, 1), m.running_var.uniform_(0.5, 2)
    graph = export_pt2(tmp_path, model, x)
    expected = model(x).detach()
    if name.startswith("trailing"):   # the softmax is dropped: the graph gives the logits before it
        expected = model[:-1](x).detach()
        assert any("argmax is unchanged" in note for note in graph.notes)
    np.testing.assert_allclose(graph.forward(x.double().numpy()), expected.numpy(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_unsupported_argument_is_refused_naming_layer_and_argument(tmp_path, name):
    layers, message = REFUSED[name]
    with pytest.raises(UserError, match=message) as error:
        export_pt2(tmp_path, nn.Sequential(*layers), seeded_input())
    assert "\n" not in str(error.value)


def test_conv1d_is_refused_naming_conv1d_not_the_input_shape(tmp_path):
    with pytest.raises(UserError, match="aten.conv1d"):
        export_pt2(tmp_path, nn.Sequential(nn.Conv1d(2, 2, 3), nn.Flatten(), nn.Linear(8, 2)), torch.rand(3, 2, 6))


def test_training_mode_dropout_is_refused():
    from hdlgen.importers.pytorch import from_exported

    class Drop(nn.Module):
        def forward(self, x):
            return torch.nn.functional.dropout(x, 0.5, training=True)

    with pytest.raises(UserError, match="dropout.*train=True"):
        from_exported(torch.export.export(Drop(), (torch.rand(2, 4),)))
