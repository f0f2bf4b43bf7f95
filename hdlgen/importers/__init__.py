"""Importers: a trained model file or object → :class:`hdlgen.ir.Graph`.

:func:`load_model` picks the importer by file suffix. Loading never unpickles arbitrary objects.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import UserError

__all__ = ["load_model", "from_torch", "SUFFIXES"]

SUFFIXES = {".npz": "npz", ".pt2": "pytorch", ".onnx": "onnx"}


def load_model(path):
    """Read a model file (``.pt2`` from ``torch.export.save``, ``.onnx``, or the documented ``.npz`` layout)."""
    path = Path(path)
    if path.suffix not in SUFFIXES:
        raise UserError(f"{path}: unknown model format {path.suffix or '(no suffix)'!r}; "
                        f"supported: {', '.join(sorted(SUFFIXES))} (weight npz, ONNX, PyTorch torch.export.save)")
    if not path.is_file():
        raise UserError(f"{path}: no such model file")
    if SUFFIXES[path.suffix] == "npz":
        from .npz import load_npz
        return load_npz(path)
    if SUFFIXES[path.suffix] == "onnx":
        from .onnx import load_onnx
        return load_onnx(path)
    from .pytorch import load_pt2
    return load_pt2(path)


def from_torch(module, example_input):
    """Import a PyTorch ``nn.Module`` (traced with ``torch.export`` on ``example_input``)."""
    from .pytorch import from_torch as _from_torch
    return _from_torch(module, example_input)
