"""Atomic file writes: readers (and a crash) never see a partial checkpoint, picture or report."""

from __future__ import annotations

import os
import os.path as osp
import tempfile
from collections.abc import Callable
from typing import IO, Any

__all__ = ["atomic_torch_save", "atomic_write", "atomic_write_bytes"]


def atomic_write(path: str, write: Callable[[IO[bytes]], Any]) -> None:
    """Call ``write(f)`` on a temporary file next to ``path``, then rename it into place.

    The temporary file lives in the destination directory so the final ``os.replace`` is a same-filesystem
    rename (atomic on POSIX); on any error it is removed and ``path`` is left as it was.
    """
    directory = osp.dirname(osp.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{osp.basename(path)}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.replace(tmp, path)
    except BaseException:
        if osp.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_bytes(path: str, data: bytes) -> None:
    atomic_write(path, lambda f: f.write(data))


def atomic_torch_save(obj: Any, path: str) -> None:
    import torch

    atomic_write(path, lambda f: torch.save(obj, f))
