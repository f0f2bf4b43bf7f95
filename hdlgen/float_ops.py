"""Float numpy kernels of the IR nodes (:meth:`hdlgen.ir.Node.apply`): the ANN reference the SNN is
compared with. They take arrays and settings, never nodes, so this module needs nothing of the IR."""

import numpy as np

__all__ = ["im2col", "conv2d", "pool2d", "channel_affine"]


def im2col(x, kernel, stride, padding, pad_value=0.0):
    """Patches of a batch ``x`` (N, C, H, W) as (N, OH, OW, C, KH, KW), zero (or ``pad_value``) padded."""
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    x = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=pad_value)
    windows = np.lib.stride_tricks.sliding_window_view(x, (kh, kw), axis=(2, 3))
    windows = windows[:, :, ::sh, ::sw]  # (N, C, OH, OW, KH, KW)
    return windows.transpose(0, 2, 3, 1, 4, 5)


def conv2d(x, weight, bias, stride, padding):
    """PyTorch's ``conv2d`` of a batch (N, C, H, W) with ``weight`` (O, C, KH, KW)."""
    cols = im2col(x, weight.shape[2:], stride, padding)
    y = np.einsum("nhwckl,ockl->nohw", cols, weight, optimize=True)
    return y + bias[None, :, None, None]


def pool2d(x, kernel, stride, padding, reduce):
    """Max (``reduce=np.max``, padding never wins) or average (``np.mean``, zero padding) pooling."""
    pad = -np.inf if reduce is np.max else 0.0
    cols = im2col(x, kernel, stride, padding, pad_value=pad)
    return reduce(cols, axis=(4, 5)).transpose(0, 3, 1, 2)


def channel_affine(x, scale, shift):
    """``x·scale + shift`` per channel (the first axis after the batch)."""
    shape = (1, -1) + (1,) * (x.ndim - 2)
    return x * scale.reshape(shape) + shift.reshape(shape)
