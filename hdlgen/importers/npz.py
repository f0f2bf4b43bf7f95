"""The weight ``.npz`` layout: a chain of dense layers.

Arrays ``weight0, bias0, weight1, bias1, …`` (``weight<i>`` shaped (out, in), float); a ReLU
follows every layer but the last, which is the readout. Optional ``input_shape`` (ints) when
the input is an image that the first layer reads flattened in (C, H, W) order.
Read with ``allow_pickle=False``.
"""

import re
import zipfile
import zlib

import numpy as np

from .. import ir
from ..data import real_numbers
from ..errors import UserError

__all__ = ["load_npz", "save_npz", "LAYOUT"]

LAYOUT = "arrays weight0, bias0, weight1, bias1, … (weight<i> (out, in)), optional input_shape"


def save_npz(path, weights, biases, input_shape=None):
    """Write dense weights in the documented layout."""
    arrays = {}
    for i, (w, b) in enumerate(zip(weights, biases)):
        arrays[f"weight{i}"], arrays[f"bias{i}"] = np.asarray(w, np.float32), np.asarray(b, np.float32)
    if input_shape is not None:
        arrays["input_shape"] = np.asarray(input_shape, np.int64)
    with open(path, "wb") as f:
        np.savez(f, **arrays)


def load_npz(path) -> ir.Graph:
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (zipfile.BadZipFile, zlib.error, ValueError, OSError, EOFError, NotImplementedError) as e:
        raise UserError(f"{path}: not a readable weight npz ({e.__class__.__name__}); expected {LAYOUT}") from None
    indices = sorted(int(m.group(1)) for k in arrays if (m := re.fullmatch(r"weight(\d+)", k)))
    if not indices or indices != list(range(len(indices))):
        raise UserError(f"{path}: no consecutive weight0, weight1, … arrays; expected {LAYOUT}")
    for i in indices:
        if f"bias{i}" not in arrays:
            raise UserError(f"{path}: weight{i} has no bias{i}; expected {LAYOUT}")
        for name in (f"weight{i}", f"bias{i}"):
            if not real_numbers(arrays[name]) or arrays[name].size == 0:
                raise UserError(f"{path}: {name} must be a non-empty array of real numbers, got {arrays[name].dtype} "
                                f"{arrays[name].shape}; expected {LAYOUT}")
    shape = arrays.get("input_shape")
    if shape is not None and (not np.issubdtype(shape.dtype, np.integer) or shape.ndim != 1):
        raise UserError(f"{path}: input_shape must be a list of integers, got {shape.dtype} {shape.shape}")
    try:
        nodes = []
        for i in indices:
            nodes.append(ir.Dense(arrays[f"weight{i}"], arrays[f"bias{i}"], name=f"dense{i}"))
            if i != indices[-1]:
                nodes.append(ir.ReLU(name=f"relu{i}"))
        features = nodes[0].weight.shape[1]
        shape = tuple(int(s) for s in ([features] if shape is None else shape))
        if int(np.prod(shape)) != features:
            raise UserError(f"input_shape {shape} has {int(np.prod(shape))} values, weight0 takes {features}")
        head = [ir.Input(shape, name="input")] + ([ir.Flatten(name="flatten")] if len(shape) > 1 else [])
        return ir.Graph(head + nodes)
    except UserError as e:
        raise UserError(f"{path}: {e}") from None
