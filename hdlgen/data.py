"""Data files: ``.npz`` with ``x`` (float, (N, features) or (N, C, H, W), the model's own input
range) and ``y`` (integer labels, optional for calibration)."""

from __future__ import annotations

import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import UserError

__all__ = ["Dataset", "load_dataset", "real_numbers"]

ACCEPTED = "an .npz with 'x' (float, (N, features) or (N, C, H, W)) and 'y' (integer labels)"


@dataclass
class Dataset:
    x: np.ndarray
    y: np.ndarray | None

    def __len__(self):
        return len(self.x)

    def head(self, n: int | None) -> Dataset:
        if n is None:
            return self
        if n < 1:
            raise UserError(f"--samples must be ≥ 1, got {n}")
        return Dataset(self.x[:n], None if self.y is None else self.y[:n])


def real_numbers(array: np.ndarray) -> bool:
    """``array`` holds integers or floats (not bools, complex numbers, strings or objects)."""
    return np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)


def load_dataset(path, input_shape=None, need_labels: bool = True, classes: int | None = None) -> Dataset:
    """Load and check a data file; ``input_shape`` (without batch) is what the model takes.

    ``x`` may also come flattened, ``(N, prod(input_shape))``. Labels must lie in
    ``0..classes − 1`` when ``classes`` (the model's outputs) is given, and be ≥ 0 always.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such data file (expected {ACCEPTED})")
    try:
        with np.load(path, allow_pickle=False) as z:
            files = set(z.files)
            x = z["x"] if "x" in files else None
            y = z["y"] if "y" in files else None
    except (zipfile.BadZipFile, zlib.error, ValueError, OSError, EOFError, NotImplementedError) as e:
        raise UserError(f"{path}: not a readable .npz ({e.__class__.__name__}); expected {ACCEPTED}") from None
    if x is None:
        raise UserError(f"{path}: has no array 'x' (has {', '.join(sorted(files)) or 'nothing'}); expected {ACCEPTED}")
    if not real_numbers(x) or x.ndim < 2 or len(x) == 0:
        raise UserError(f"{path}: 'x' must be a non-empty array of real numbers (N, ...), got {x.dtype} {x.shape}")
    x = x.astype(np.float64)
    if not np.all(np.isfinite(x)):
        raise UserError(f"{path}: 'x' contains NaN or infinite values")
    if input_shape is not None:
        shape = tuple(input_shape)
        if x.shape[1:] != shape:
            if x[0].size != int(np.prod(shape)):
                raise UserError(f"{path}: samples have shape {x.shape[1:]}, the model takes {shape} "
                                f"(or {int(np.prod(shape))} flattened values)")
            x = x.reshape((len(x), *shape))
    if y is None:
        if need_labels:
            raise UserError(f"{path}: has no labels 'y'; expected {ACCEPTED}")
        return Dataset(x, None)
    if not np.issubdtype(y.dtype, np.integer) or y.shape != (len(x),):
        raise UserError(f"{path}: 'y' must be {len(x)} integer labels, got {y.dtype} {y.shape}")
    low, high = int(y.min()), int(y.max())
    if low < 0 or (classes is not None and high >= classes):
        allowed = f"0..{classes - 1} (the model's {classes} classes)" if classes is not None else "≥ 0"
        raise UserError(f"{path}: 'y' must hold labels {allowed}, got {low}..{high}")
    return Dataset(x, y.astype(np.int64))
