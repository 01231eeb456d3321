"""Saving durably: atomic checkpoints and pointers, one training run per work dir.

* :func:`save_checkpoint` writes a checkpoint atomically and durably (temp file, fsync, ``os.replace``,
  folder fsync) with a SHA-256 of its tensors in ``meta['cpvt_mm_digest']``, which every cpvt_mm load
  verifies; :func:`save_checkpoint_for_mmengine` is the same behind mmengine's ``save_checkpoint`` signature
  (:mod:`cpvt_mm.compat.checkpoints` installs it for ``Runner.save_checkpoint`` and ``CheckpointHook``).
* :func:`write_last_checkpoint` replaces ``<work_dir>/last_checkpoint`` the same way (mmengine truncates and
  rewrites it in place, so a kill right after a save could leave it empty).
* :class:`WorkDirLock` keeps a second run out of a work dir that a live run uses; the lock dies with the
  process that took it, not with its forked dataloader workers.
"""

from __future__ import annotations

import contextlib
import os
import os.path as osp
import re
import socket
import time
from typing import Any

import torch

from ..fileio import atomic_write, atomic_write_text
from .load import add_digest

__all__ = [
    "LOCK_NAME",
    "WorkDirBusyError",
    "WorkDirLock",
    "checkpoint_steps",
    "process_rank",
    "save_checkpoint",
    "save_checkpoint_for_mmengine",
    "write_last_checkpoint",
]

LOCK_NAME = ".cpvt_mm.lock"


def save_checkpoint(checkpoint: dict[str, Any], path: str) -> None:
    """Write ``checkpoint`` to ``path`` atomically and durably, with a tensor digest in its meta."""
    add_digest(checkpoint)
    atomic_write(path, lambda f: torch.save(checkpoint, f))


def save_checkpoint_for_mmengine(
    checkpoint: dict,
    filename: str,
    file_client_args: dict | None = None,
    backend_args: dict | None = None,
) -> None:
    """mmengine's ``save_checkpoint`` signature; local files are written atomically, with a digest."""
    if "://" in filename or file_client_args is not None or (backend_args or {}).get("backend") not in (None, "local"):
        add_digest(checkpoint)
        from mmengine.runner.checkpoint import save_checkpoint as mmengine_save  # the original, never patched

        mmengine_save(checkpoint, filename, file_client_args, backend_args)
        return
    save_checkpoint(checkpoint, filename)


_MMENGINE_SAVE_CHECKPOINT: Any = None


def write_last_checkpoint(work_dir: str, checkpoint: str) -> None:
    """Point ``<work_dir>/last_checkpoint`` at ``checkpoint``: temp file, fsync, ``os.replace``, folder fsync,
    so a kill leaves the old pointer or the new one, never an empty or half-written file."""
    atomic_write_text(osp.join(work_dir, "last_checkpoint"), checkpoint)


def checkpoint_steps(directory: str, filename_tmpl: str = "epoch_{}.pth") -> dict[int, str]:
    """``{step: path}`` of the files in ``directory`` named by ``filename_tmpl`` (e.g. ``epoch_{}.pth``)."""
    head, _, tail = filename_tmpl.partition("{}")
    pattern = re.compile(re.escape(head) + r"(\d+)" + re.escape(tail) + "$")
    try:
        names = os.listdir(directory)
    except OSError:
        return {}
    return {int(m.group(1)): osp.join(directory, n) for n in names if (m := pattern.match(n))}


# --------------------------------------------------------------------------- one run per work dir
class WorkDirBusyError(RuntimeError):
    """Another live training run holds the work dir's lock."""


def process_rank() -> int:
    """This process's global rank from the launcher's environment (0 when not distributed)."""
    for var in ("RANK", "SLURM_PROCID", "OMPI_COMM_WORLD_RANK", "PMI_RANK"):
        if os.environ.get(var, "").isdigit():
            return int(os.environ[var])
    return 0


_HELD_LOCKS: set[WorkDirLock] = set()  # strong: a lock nobody references is still held until release


def _drop_inherited_locks() -> None:
    """In a forked child (a dataloader worker): close the inherited lock descriptors.

    ``flock`` belongs to the open file description, which ``fork`` shares: a worker that kept the descriptor
    would keep the work dir locked after its parent died (orphaned workers linger for seconds). Closing the
    child's copy (never ``LOCK_UN``, which would unlock it for the parent too) leaves the lock to the parent.
    """
    for lock in list(_HELD_LOCKS):
        fd, lock._fd = lock._fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)
    _HELD_LOCKS.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_drop_inherited_locks)


class WorkDirLock:
    """An exclusive ``flock`` on ``<work_dir>/.cpvt_mm.lock``, held for the life of a training run.

    The lock dies with the process that took it, however it dies: the kernel drops a ``flock`` when the last
    descriptor of the open file is closed, the descriptor is close-on-exec (not passed to programs the run
    starts), and forked children (dataloader workers) close their copy right after the fork, so orphaned
    workers of a killed run never hold it. Only rank 0 should take it (other ranks of the same run share the
    work dir by design).
    """

    def __init__(self, work_dir: str) -> None:
        self.path = osp.join(work_dir, LOCK_NAME)
        self._fd: int | None = None

    def acquire(self) -> WorkDirLock:
        import fcntl

        os.makedirs(osp.dirname(self.path), exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise WorkDirBusyError(
                f"work dir {osp.dirname(self.path)} is in use by another training run ({holder}); wait for it to "
                "finish or pass a different --work-dir"
            ) from None
        os.ftruncate(fd, 0)
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}, started {stamp}\n".encode(), 0)
        self._fd = fd
        _HELD_LOCKS.add(self)
        return self

    def release(self) -> None:
        _HELD_LOCKS.discard(self)
        if self._fd is not None:
            os.close(self._fd)  # closing drops the flock
            self._fd = None

    def __enter__(self) -> WorkDirLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()
