"""Old import path of the crash-safe training pieces, now in :mod:`cpvt_mm.checkpoint` (kept as aliases).

Importing it registers ``cpvt_mm.SafeCheckpointHook`` (``cpvt_mm.engine`` is where the hook registry looks).
"""

from ..checkpoint.hook import SafeCheckpointHook, use_safe_checkpoint_hook
from ..checkpoint.load import find_resume_checkpoint
from ..checkpoint.save import (
    LOCK_NAME,
    WorkDirBusyError,
    WorkDirLock,
    checkpoint_steps,
    process_rank,
    write_last_checkpoint,
)

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
