"""Float numpy implementations of the IR nodes: the ANN reference the SNN is compared with."""

import numpy as np

from . import ir

__all__ = ["apply_node", "im2col"]


def im2col(x, kernel, stride, padding, pad_value=0.0):
    """Patches of a batch ``x`` (N, C, H, W) as (N, OH, OW, C, KH, KW), zero (or ``pad_value``) padded."""
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    x = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=pad_value)
    windows = np.lib.stride_tricks.sliding_window_view(x, (kh, kw), axis=(2, 3))
    windows = windows[:, :, ::sh, ::sw]  # (N, C, OH, OW, KH, KW)
    return windows.transpose(0, 2, 3, 1, 4, 5)


def _conv(node, x):
    cols = im2col(x, node.weight.shape[2:], node.stride, node.padding)
    y = np.einsum("nhwckl,ockl->nohw", cols, node.weight, optimize=True)
    return y + node.bias[None, :, None, None]


def _pool(node, x, reduce):
    pad = -np.inf if reduce is np.max else 0.0
    cols = im2col(x, node.kernel, node.stride, node.padding, pad_value=pad)
    return reduce(cols, axis=(4, 5)).transpose(0, 3, 1, 2)


def apply_node(node, x):
    """Apply one IR node to a batch."""
    if isinstance(node, ir.Dense):
        return x @ node.weight.T + node.bias
    if isinstance(node, ir.Conv2d):
        return _conv(node, x)
    if isinstance(node, ir.MaxPool2d):
        return _pool(node, x, np.max)
    if isinstance(node, ir.AvgPool2d):
        return _pool(node, x, np.mean)
    if isinstance(node, ir.BatchNorm):
        scale, shift = node.scale_shift()
        shape = (1, -1) + (1,) * (x.ndim - 2)
        return x * scale.reshape(shape) + shift.reshape(shape)
    if isinstance(node, ir.Flatten):
        return x.reshape(x.shape[0], -1)
    if isinstance(node, ir.ReLU):
        return np.maximum(x, 0.0)
    if isinstance(node, (ir.Output, ir.Input)):
        return x
    raise TypeError(f"no float implementation for {type(node).__name__}")
