"""Writing output files so that an interrupted run leaves no half-written one."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["write_atomically"]


def write_atomically(path, write) -> Path:
    """``write(temporary path)`` beside ``path`` (same suffix, for writers that look at it), then
    rename it onto ``path``: an interrupted write leaves ``path`` as it was. Returns ``path``."""
    path = Path(path)
    temporary = path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")
    try:
        write(temporary)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    return path
