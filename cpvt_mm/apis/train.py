"""Training from a config file, as ``tools/train.py`` does it: every check before anything heavy is built.

:func:`prepare_train_config` applies the command line (work dir, resume, ``--amp``, ``--from-scratch``,
``--cfg-options``, launcher) and refuses missing pretrained weights and broken datasets up front;
:func:`train` takes the work-dir lock, finds the checkpoint to resume from and runs the runner.
"""

from __future__ import annotations

import os.path as osp
from collections.abc import Mapping
from typing import Any

from mmengine.config import Config

from ..checkpoint import CheckpointError
from ..engine import (
    WorkDirBusyError,
    WorkDirLock,
    build_runner,
    checkpoint_dirs,
    default_work_dir,
    find_resume_checkpoint,
    prepare_distributed,
    process_rank,
    use_amp,
    use_safe_checkpoint_hook,
)
from .config import (
    ConfigError,
    ConfigOptionError,
    check_param_schedulers,
    check_pretrained_weights,
    disable_pretrained_weights,
    load_config,
)
from .datasets import DatasetError, validate_datasets
from .inference import accelerate_on_cpu

__all__ = ["TOOL_ERRORS", "prepare_train_config", "train"]

# What the tools report as one ``error: ...`` line instead of a traceback.
TOOL_ERRORS = (
    CheckpointError,
    WorkDirBusyError,
    FileNotFoundError,
    IsADirectoryError,
    ConfigError,
    ConfigOptionError,
    DatasetError,
)


def prepare_train_config(
    config: str,
    *,
    work_dir: str | None = None,
    resume: str | None = None,
    amp: bool = False,
    amp_dtype: str | None = None,
    auto_scale_lr: bool = False,
    from_scratch: bool = False,
    cfg_options: Mapping[str, Any] | None = None,
    launcher: str = "none",
) -> Config:
    """The config of ``tools/train.py CONFIG [options]``, checked and ready for :func:`train`.

    Args:
        resume: ``None`` (no resume), ``"auto"`` (the latest checkpoint of the work dir, found by
            :func:`train`) or a checkpoint file.
        amp, amp_dtype: mixed precision, see :func:`cpvt_mm.engine.use_amp`.
        from_scratch: drop the config's pretrained weights (:func:`cpvt_mm.apis.disable_pretrained_weights`).
    """
    cfg = load_config(config, cfg_options)
    if from_scratch:
        cleared = disable_pretrained_weights(cfg)
        if cleared:
            print(f"--from-scratch: no pretrained weights ({', '.join(cleared)} cleared)")
    if work_dir:
        cfg.work_dir = work_dir
    elif cfg.get("work_dir") is None:
        cfg.work_dir = default_work_dir(config)
    if amp:
        use_amp(cfg, amp_dtype)
    if auto_scale_lr:
        if "auto_scale_lr" not in cfg or "base_batch_size" not in cfg.auto_scale_lr:
            raise ValueError("--auto-scale-lr needs `auto_scale_lr = dict(base_batch_size=...)` in the config")
        cfg.auto_scale_lr.enable = True
    if resume == "auto":
        cfg.resume = True
        cfg.load_from = None
    elif resume is not None:
        if not osp.isfile(resume):
            raise FileNotFoundError(f"--resume {resume}: no such checkpoint file")
        cfg.resume = True
        cfg.load_from = resume
    check_param_schedulers(cfg)
    check_pretrained_weights(cfg)  # before anything is built: a missing file is named with the way out
    # val_cfg = dict() (an empty dict) still validates: only None / absent turns validation off
    validate_datasets(cfg, ("train", "val") if cfg.get("val_cfg") is not None else ("train",))
    use_safe_checkpoint_hook(cfg)  # atomic saves, pointer after file, deletions last: whatever the config says
    return prepare_distributed(cfg, launcher)


def _explain_out_of_range_labels(cfg: Config, error: IndexError) -> None:
    """Segmentation labels outside the classes end training in torch's ``IndexError: Target 199 is out of
    bounds``, naming no file. Training sets are not scanned up front (every label map read once before the
    first step); when that error comes, they are, and the label maps at fault are named as ``tools/test.py``
    names them for evaluation sets (:class:`DatasetError`)."""
    if cfg.get("default_scope") == "mmseg" and "out of bounds" in str(error):
        validate_datasets(cfg, ("train",), scan_labels=("train",))  # raises DatasetError if labels are the cause


def train(cfg: Config, auto_resume: bool = False):
    """Train ``cfg`` (from :func:`prepare_train_config`) under the work-dir lock; returns the runner.

    With ``auto_resume`` the latest complete checkpoint of the work dir (or of the checkpoint hook's
    ``out_dir``) is resumed, or training starts afresh when there is none.
    """
    lock = WorkDirLock(cfg.work_dir).acquire() if process_rank() == 0 else None
    try:
        if auto_resume:
            found = find_resume_checkpoint(cfg.work_dir, checkpoint_dirs(cfg))
            cfg.resume, cfg.load_from = found is not None, found
        runner = build_runner(cfg)
        if not cfg.get("compile"):  # mmengine's own torch.compile option: compilers fuse on their own
            accelerate_on_cpu(runner.model)
        try:
            runner.train()
        except IndexError as e:
            _explain_out_of_range_labels(cfg, e)
            raise
    finally:
        if lock is not None:
            lock.release()
    return runner
