"""Training runs that a kill at any moment cannot damage: the crash-safe checkpoint hook.

mmengine's ``CheckpointHook`` writes a checkpoint in place, rewrites ``last_checkpoint`` in place, and with
``max_keep_ckpts`` deletes the oldest checkpoint *before* writing the new one, while ``last_checkpoint``
still names what it deleted. :class:`SafeCheckpointHook` (registered as ``cpvt_mm.SafeCheckpointHook``):

* saves atomically (through :func:`cpvt_mm.checkpoint.save_checkpoint_for_mmengine`, which
  :mod:`cpvt_mm.compat` puts behind ``Runner.save_checkpoint``);
* then points ``last_checkpoint`` at the new file, atomically (:func:`~cpvt_mm.checkpoint.write_last_checkpoint`);
* only then deletes what ``max_keep_ckpts`` / ``save_best`` retire;
* on resume, deletes the retired checkpoints whose deletion a kill interrupted, and removes temporary files
  that killed saves left behind.

``tools/train.py`` uses it for every run (:func:`use_safe_checkpoint_hook`), whatever the config says.
"""

from __future__ import annotations

import logging
import os.path as osp
from collections import deque
from typing import Any

from mmengine.config import Config
from mmengine.dist import is_main_process
from mmengine.hooks import CheckpointHook
from mmengine.logging import print_log

from ..fileio import fsync_directory, remove_stale_temp_files
from ..registry import HOOKS
from .save import checkpoint_steps, write_last_checkpoint

__all__ = ["SafeCheckpointHook", "use_safe_checkpoint_hook"]


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
        # the atomic save path is installed by cpvt_mm.compat, which importing cpvt_mm (how this hook is
        # found: type='cpvt_mm.SafeCheckpointHook') has already applied
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
