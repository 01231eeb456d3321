"""Checkpoints in one place: one public entry per job.

============ ================================ ===============================================================
job          entry                            module
============ ================================ ===============================================================
load safely  :func:`load_checkpoint_file`     :mod:`.load`: weights-only with a checked allow-list, damage
                                              told from attack, digests verified; every mmengine scheme
                                              (:data:`SAFE_LOADERS`); :func:`find_resume_checkpoint`
save durably :func:`save_checkpoint`          :mod:`.save`: atomic and durable, with a tensor digest;
                                              ``last_checkpoint`` replaced atomically; :class:`WorkDirLock`
                                              (one run per work dir); :mod:`.hook`: ``SafeCheckpointHook``
convert      :func:`convert_checkpoint_file`  :mod:`.convert`: authors' / timm, mmpretrain and mmseg layouts
                                              to cpvt_mm's names (:func:`convert_twins_checkpoint` is the
                                              pure function on a loaded checkpoint)
============ ================================ ===============================================================

:mod:`cpvt_mm.compat.checkpoints` points mmengine's loaders and ``save_checkpoint`` at these functions. The
hook and the converters import mmengine's hooks and cpvt_mm's models, so they load on first access
(``cpvt_mm.checkpoint.SafeCheckpointHook``), not with this package (``import cpvt_mm`` imports it before the
compat fixes have run).
"""

from __future__ import annotations

import importlib
from typing import Any

from .load import (
    DIGEST_KEY,
    SAFE_LOADERS,
    CheckpointError,
    ChecksumMismatchError,
    CorruptCheckpointError,
    UnsafeCheckpointError,
    _install_allow_list,  # noqa: F401  (used by cpvt_mm.compat.checkpoints)
    add_digest,
    find_resume_checkpoint,
    load_checkpoint_file,
    safe_checkpoint_globals,
    tensor_digest,
    verify_digest,
)
from .save import (
    LOCK_NAME,
    WorkDirBusyError,
    WorkDirLock,
    checkpoint_steps,
    process_rank,
    save_checkpoint,
    save_checkpoint_for_mmengine,
    write_last_checkpoint,
)

_LAZY = {
    "SafeCheckpointHook": "hook",
    "use_safe_checkpoint_hook": "hook",
    "ConversionError": "convert",
    "ConvertedCheckpoint": "convert",
    "KeyReport": "convert",
    "check_state_dict": "convert",
    "convert_checkpoint_file": "convert",
    "convert_twins_checkpoint": "convert",
    "extract_state_dict": "convert",
    "infer_twins_arch": "convert",
}

__all__ = [
    "DIGEST_KEY",
    "LOCK_NAME",
    "SAFE_LOADERS",
    "CheckpointError",
    "ChecksumMismatchError",
    "CorruptCheckpointError",
    "UnsafeCheckpointError",
    "WorkDirBusyError",
    "WorkDirLock",
    "add_digest",
    "checkpoint_steps",
    "find_resume_checkpoint",
    "load_checkpoint_file",
    "process_rank",
    "safe_checkpoint_globals",
    "save_checkpoint",
    "save_checkpoint_for_mmengine",
    "tensor_digest",
    "verify_digest",
    "write_last_checkpoint",
    *_LAZY,
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
