"""Training runs that a kill at any moment cannot damage: atomic checkpoints, careful resume, one run per folder.

mmengine's ``CheckpointHook`` writes a checkpoint in place, and with ``max_keep_ckpts`` deletes the oldest
one *before* writing the new one, while ``last_checkpoint`` still names what it deleted: a ``kill -9``
during a save leaves no checkpoint to resume from. Here:

* every save is atomic and durable (:func:`cpvt_mm.checkpoint.save_checkpoint`, which
  :mod:`cpvt_mm.compat` puts behind ``Runner.save_checkpoint``);
* :class:`SafeCheckpointHook` rewrites ``last_checkpoint`` atomically only after the checkpoint is on disk,
  and deletes old checkpoints only after that (it defers mmengine's deletions); it also removes temporary
  files that killed saves left behind;
* :func:`find_resume_checkpoint` picks the newest checkpoint that actually loads (``last_checkpoint`` may
  name a missing, truncated or older file), saying so in the log;
* :class:`WorkDirLock` keeps a second run out of a work dir that a live run uses (``flock``: the kernel
  releases it when the holder dies, so a crashed run never leaves it stuck).

``tools/train.py`` uses all of them for every run, whatever the config says.
"""

from __future__ import annotations

import contextlib
import logging
import os
import os.path as osp
import re
import socket
import time
from collections import deque
from typing import Any

from mmengine.config import Config
from mmengine.dist import is_main_process
from mmengine.hooks import CheckpointHook
from mmengine.logging import print_log

from ..checkpoint import CheckpointError
from ..fileio import atomic_write_text, fsync_directory, remove_stale_temp_files
from ..registry import HOOKS

__all__ = [
    "LOCK_NAME",
    "SafeCheckpointHook",
    "WorkDirBusyError",
    "WorkDirLock",
    "checkpoint_steps",
    "find_resume_checkpoint",
    "process_rank",
    "use_safe_checkpoint_hook",
    "write_last_checkpoint",
]

LOCK_NAME = ".cpvt_mm.lock"
_CHECKPOINT_NAME = re.compile(r"^(?:epoch|iter)_(\d+)\.pth$")


class _DeferredRemoval:
    """A file backend whose ``remove`` / ``rmtree`` wait until :meth:`flush` (after the new save is durable)."""

    def __init__(self, backend: Any) -> None:
        self._backend = backend
        self.pending: list[tuple[str, str]] = []

    def remove(self, path: str) -> None:
        self.pending.append(("remove", path))

    def rmtree(self, path: str) -> None:
        self.pending.append(("rmtree", path))

    def flush(self, keep: str | None = None) -> None:
        if not self.pending:
            return
        pending, self.pending = self.pending, []
        for op, path in pending:
            if path != keep:
                getattr(self._backend, op)(path)
        for directory in {osp.dirname(p) for _, p in pending if "://" not in p}:
            fsync_directory(directory)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._backend, name)


@HOOKS.register_module()
class SafeCheckpointHook(CheckpointHook):
    """mmengine's ``CheckpointHook`` (same arguments) with crash-safe ordering.

    Save the new checkpoint (atomically, via the patched ``Runner.save_checkpoint``), then point
    ``last_checkpoint`` at it (atomically), then delete what ``max_keep_ckpts`` / ``save_best`` retire.
    A kill between any two steps leaves at least one complete checkpoint that resume can find.
    """

    def before_train(self, runner: Any) -> None:
        from .. import compat

        compat.apply()  # the atomic save path must be in place (a no-op once cpvt_mm is imported)
        super().before_train(runner)
        self.file_backend = _DeferredRemoval(self.file_backend)
        if is_main_process():
            for directory in {runner.work_dir, self.out_dir}:
                if "://" not in str(directory):
                    for path in remove_stale_temp_files(str(directory)):
                        runner.logger.info(f"Removed {path}, left by a save that was killed.")
            if getattr(runner, "_resume", False):
                self._prune_on_resume(runner)
            self.file_backend.flush()

    def _prune_on_resume(self, runner: Any) -> None:
        """Retire the checkpoints whose deletion a kill interrupted (``max_keep_ckpts`` counts from here).

        mmengine drops a retired step from ``keep_ckpt_ids`` (which the new checkpoint stores) before the file
        is deleted, so a kill in between leaves a file that no later run knew about. On resume, the
        ``epoch_N`` / ``iter_N`` files of ``out_dir`` older than the resumed one are pruned to the newest
        ``max_keep_ckpts - 1``; the resumed checkpoint, newer ones, ``best_*`` and other files stay.
        """
        if self.max_keep_ckpts <= 0 or "://" in str(self.out_dir):
            return
        found = checkpoint_steps(str(self.out_dir), self.filename_tmpl)
        resumed = getattr(runner, "_load_from", None)
        resumed_step = next((s for s, p in found.items() if resumed and osp.abspath(p) == osp.abspath(resumed)), None)
        if resumed_step is None:  # resumed from elsewhere: the newest step this run's history knows
            known = [s for s in self.keep_ckpt_ids if s in found]
            if not known:
                return
            resumed_step = max(known)
        older = sorted(s for s in found if s < resumed_step)
        keep = older[len(older) - (self.max_keep_ckpts - 1) :] if self.max_keep_ckpts > 1 else []
        best = {osp.abspath(p) for p in _best_paths(self)}
        for step in older:
            if step not in keep and osp.abspath(found[step]) not in best:
                runner.logger.info(
                    f"Removing {found[step]}: max_keep_ckpts={self.max_keep_ckpts} retired it before "
                    "a kill interrupted its deletion."
                )
                self.file_backend.remove(found[step])
        self.keep_ckpt_ids = deque([*keep, resumed_step], self.max_keep_ckpts)
        runner.message_hub.update_info("keep_ckpt_ids", list(self.keep_ckpt_ids))

    def _save_checkpoint_with_step(self, runner: Any, step: int, meta: dict) -> None:
        """mmengine's own, except that ``last_checkpoint`` is replaced atomically (mmengine truncates and
        rewrites it in place, so a kill in between left it empty) and retired files go last."""
        if self.max_keep_ckpts > 0 and not (self.keep_ckpt_ids and self.keep_ckpt_ids[-1] == step):
            if len(self.keep_ckpt_ids) == self.max_keep_ckpts:
                retired = self.keep_ckpt_ids.popleft()
                if is_main_process():
                    path = self.file_backend.join_path(self.out_dir, self.filename_tmpl.format(retired))
                    if self.file_backend.isfile(path):
                        self.file_backend.remove(path)  # deferred until the pointer names the new one
                    elif self.file_backend.isdir(path):
                        self.file_backend.rmtree(path)
            self.keep_ckpt_ids.append(step)
            runner.message_hub.update_info("keep_ckpt_ids", list(self.keep_ckpt_ids))
        ckpt_filename = self.filename_tmpl.format(step)
        self.last_ckpt = self.file_backend.join_path(self.out_dir, ckpt_filename)
        runner.message_hub.update_info("last_ckpt", self.last_ckpt)
        runner.save_checkpoint(
            self.out_dir,
            ckpt_filename,
            self.file_client_args,
            save_optimizer=self.save_optimizer,
            save_param_scheduler=self.save_param_scheduler,
            meta=meta,
            by_epoch=self.by_epoch,
            backend_args=self.backend_args,
            **self.args,
        )
        if is_main_process():
            write_last_checkpoint(runner.work_dir, str(self.last_ckpt))  # durable before anything is deleted
            self.file_backend.flush(keep=self.last_ckpt)

    def _save_best_checkpoint(self, runner: Any, metrics: dict) -> None:
        super()._save_best_checkpoint(runner, metrics)
        if is_main_process():
            self.file_backend.flush(keep=getattr(self, "best_ckpt_path", None))


def _best_paths(hook: Any) -> list[str]:
    paths = [getattr(hook, "best_ckpt_path", None), *getattr(hook, "best_ckpt_path_dict", {}).values()]
    return [p for p in paths if p]


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


def use_safe_checkpoint_hook(cfg: Config) -> Config:
    """Point ``cfg.default_hooks.checkpoint`` at :class:`SafeCheckpointHook` (added if absent), in place.

    Only mmengine's own ``CheckpointHook`` is replaced (its arguments are kept); a config that names
    another hook class keeps it, with a warning, since its saving logic is unknown here.
    """
    hooks = cfg.setdefault("default_hooks", {})
    ckpt = hooks.get("checkpoint")
    if ckpt is None:
        hooks["checkpoint"] = dict(type="cpvt_mm.SafeCheckpointHook", interval=1)
        return cfg
    kind = ckpt.get("type", "CheckpointHook")
    name = kind if isinstance(kind, str) else f"{kind.__module__}.{kind.__qualname__}"
    if name.rsplit(".", 1)[-1] == "SafeCheckpointHook":
        return cfg
    if kind is CheckpointHook or name in ("CheckpointHook", "mmengine.CheckpointHook"):
        ckpt["type"] = "cpvt_mm.SafeCheckpointHook"
    else:
        print_log(
            f"default_hooks.checkpoint is {name}, not mmengine's CheckpointHook: its saves are not made crash-safe",
            logger="current",
            level=logging.WARNING,
        )
    return cfg


def _step(path: str) -> int:
    m = _CHECKPOINT_NAME.match(osp.basename(path))
    return int(m.group(1)) if m else -1


def find_resume_checkpoint(work_dir: str, extra_dirs: tuple[str, ...] = ()) -> str | None:
    """The checkpoint to resume from: the newest one in ``work_dir`` that loads, or ``None`` if none does.

    Candidates are the file ``last_checkpoint`` names and every ``epoch_N.pth`` / ``iter_N.pth`` in the
    work dir (and ``extra_dirs``, e.g. the checkpoint hook's ``out_dir``), newest step first; a
    ``last_checkpoint`` that names another kind of file (a URL, a custom name) is tried first. Each is
    loaded with the safe loader (which also checks digests), so a truncated, damaged or missing file is
    skipped with a warning; when the choice differs from ``last_checkpoint`` the log says why.
    """
    from mmengine.runner.checkpoint import CheckpointLoader

    named: str | None = None
    pointer = osp.join(work_dir, "last_checkpoint")
    if osp.exists(pointer):
        try:
            with open(pointer) as f:
                named = f.read().strip() or None
        except (OSError, UnicodeDecodeError):
            named = None
        if named is None:
            print_log(f"{pointer} is empty or unreadable; looking for checkpoints instead", level=logging.WARNING)
    dirs = [work_dir, *extra_dirs]
    if named and "://" not in named:
        dirs.append(osp.dirname(named) or work_dir)
    found: dict[str, float] = {}
    for d in dict.fromkeys(dirs):
        try:
            names = os.listdir(d)
        except OSError:
            continue
        for n in names:
            if _CHECKPOINT_NAME.match(n):
                p = osp.join(d, n)
                with contextlib.suppress(OSError):
                    found[p] = os.stat(p).st_mtime
    candidates = sorted(found, key=lambda p: (_step(p), found[p]), reverse=True)
    if named is not None and (_step(named) < 0 or named not in found):
        candidates.insert(0, named)
    reasons: list[str] = []
    for path in candidates:
        try:
            CheckpointLoader.load_checkpoint(path, map_location="cpu")
        except (CheckpointError, FileNotFoundError, KeyError, OSError) as e:
            reasons.append(f"{path}: {e}")
            print_log(f"cannot resume from {path}: {e}", level=logging.WARNING)
            continue
        if named is not None and path != named:
            print_log(
                f"Resuming from {path}, the newest loadable checkpoint; last_checkpoint names {named}, "
                + ("which is not loadable" if any(r.startswith(f"{named}:") for r in reasons) else "an older one"),
                level=logging.WARNING,
            )
        return path
    if candidates:
        print_log(f"no loadable checkpoint in {work_dir}; training starts from scratch", level=logging.WARNING)
    return None


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
