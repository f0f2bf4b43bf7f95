"""Float numpy kernels of the IR nodes (:meth:`hdlgen.ir.Node.apply`): the ANN reference the SNN is
compared with. They take arrays and settings, never nodes, so this module needs nothing of the IR."""

import math

import numpy as np

__all__ = ["im2col", "conv2d", "pool2d", "channel_affine", "ACTIVATIONS"]


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


_erf = np.frompyfunc(math.erf, 1, 1)   # numpy has no erf; GELU needs it exactly


def _sigmoid(x):
    return 0.5 * (1.0 + np.tanh(0.5 * x))   # 1/(1+e^−x) without overflow


def _elu(x, alpha):
    return np.where(x > 0, x, alpha * np.expm1(np.minimum(x, 0.0)))


# Activation name → ``(x, alpha) ↦ f(x)``, PyTorch's definitions; ``alpha`` is the one parameter some take
# (leaky ReLU's negative slope, ELU's alpha), ignored by the others.
ACTIVATIONS = {
    "relu": lambda x, alpha: np.maximum(x, 0.0),
    "gelu": lambda x, alpha: 0.5 * x * (1.0 + _erf(x / math.sqrt(2.0)).astype(np.float64)),
    "gelu_tanh": lambda x, alpha: 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3))),
    "silu": lambda x, alpha: x * _sigmoid(x),
    "sigmoid": lambda x, alpha: _sigmoid(x),
    "tanh": lambda x, alpha: np.tanh(x),
    "leaky_relu": lambda x, alpha: np.where(x >= 0, x, alpha * x),
    "elu": _elu,
    "hardswish": lambda x, alpha: x * np.clip(x + 3.0, 0.0, 6.0) / 6.0,
}
