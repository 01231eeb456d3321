"""Atomic, durable file writes: readers (and a crash) never see a partial checkpoint, picture or report.

``atomic_write`` writes to a temporary file in the destination's folder, fsyncs it, renames it over the
destination and fsyncs the folder, so after it returns the new content survives a power cut, and a kill at
any moment leaves either the old file or the new one, never a mixture. The result gets the permissions a
plain ``open(path, 'w')`` would give: a replaced file keeps its mode, a new one gets ``0o666 & ~umask``
(``mkstemp`` alone would make every file ``0600``).

A kill between creating the temporary file and renaming it leaves the temporary behind. Its name,
``.<name>.<pid>.<random>.cpvt-tmp``, says which process wrote it; :func:`remove_stale_temp_files`
deletes those whose writer is no longer alive, and every ``atomic_write`` runs it for its own
destination, so a later save of the same file (or a training run starting in that folder) cleans up.
"""

from __future__ import annotations

import errno
import os
import os.path as osp
import re
import stat
import tempfile
from collections.abc import Callable
from typing import IO, Any

__all__ = [
    "TEMP_SUFFIX",
    "atomic_torch_save",
    "atomic_write",
    "atomic_write_bytes",
    "atomic_write_text",
    "fsync_directory",
    "remove_stale_temp_files",
]

TEMP_SUFFIX = ".cpvt-tmp"
_TEMP_RE = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)\.[A-Za-z0-9_]+" + re.escape(TEMP_SUFFIX) + "$")


def _current_umask() -> int:
    """The process umask, read without changing it where Linux allows (``os.umask`` is racy with threads)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _mode_for(path: str) -> int:
    """The mode ``path`` should end up with: its current one if it exists, else what ``open()`` creates."""
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except FileNotFoundError:
        return 0o666 & ~_current_umask()


def fsync_directory(directory: str) -> None:
    """Make a rename / unlink inside ``directory`` durable (a no-op where folders cannot be opened)."""
    try:
        fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError as e:  # some filesystems (and Windows) refuse fsync on folders
        if e.errno not in (errno.EINVAL, errno.EBADF, errno.ENOTSUP):
            raise
    finally:
        os.close(fd)


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def remove_stale_temp_files(directory: str, name: str | None = None) -> list[str]:
    """Delete the temporaries that killed ``atomic_write`` calls left in ``directory``; returns their paths.

    Only files of this module's pattern whose writing process is gone are removed (``name`` limits it to
    temporaries of one destination file), so a concurrent writer on the same host keeps its file.
    """
    removed = []
    try:
        entries = os.listdir(directory)
    except OSError:
        return removed
    for entry in entries:
        m = _TEMP_RE.match(entry)
        if m is None or (name is not None and m["name"] != name) or _pid_alive(int(m["pid"])):
            continue
        path = osp.join(directory, entry)
        try:
            os.unlink(path)
            removed.append(path)
        except FileNotFoundError:
            pass
    return removed


def atomic_write(path: str, write: Callable[[IO[bytes]], Any]) -> None:
    """Call ``write(f)`` on a temporary file next to ``path``, make it durable, then rename it into place.

    The temporary file lives in the destination folder so the final ``os.replace`` is a same-filesystem
    rename (atomic on POSIX); on any error it is removed and ``path`` is left as it was.
    """
    directory = osp.dirname(osp.abspath(path))
    base = osp.basename(path)
    os.makedirs(directory, exist_ok=True)
    remove_stale_temp_files(directory, base)
    mode = _mode_for(path)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{base}.{os.getpid()}.", suffix=TEMP_SUFFIX)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fchmod(f.fileno(), mode)
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if osp.exists(tmp):
            os.unlink(tmp)
        raise
    fsync_directory(directory)


def atomic_write_bytes(path: str, data: bytes) -> None:
    atomic_write(path, lambda f: f.write(data))


def atomic_write_text(path: str, text: str) -> None:
    atomic_write(path, lambda f: f.write(text.encode()))


def atomic_torch_save(obj: Any, path: str) -> None:
    """``torch.save`` through :func:`atomic_write` (no digest: see :func:`cpvt_mm.checkpoint.save_checkpoint`)."""
    import torch

    atomic_write(path, lambda f: torch.save(obj, f))
