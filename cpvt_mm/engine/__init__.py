"""Training-loop glue shared by the three toolkits (CPU-only distributed runs, mixed precision anywhere,
crash-safe checkpoints)."""

from .checkpoint import (
    SafeCheckpointHook,
    WorkDirBusyError,
    WorkDirLock,
    find_resume_checkpoint,
    process_rank,
    use_safe_checkpoint_hook,
)
from .dist import CPUDistributedDataParallel, prepare_distributed
from .optim import AutocastOptimWrapper

__all__ = [
    "AutocastOptimWrapper",
    "CPUDistributedDataParallel",
    "SafeCheckpointHook",
    "WorkDirBusyError",
    "WorkDirLock",
    "find_resume_checkpoint",
    "prepare_distributed",
    "process_rank",
    "use_safe_checkpoint_hook",
]
