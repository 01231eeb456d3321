"""Training-loop glue shared by the three toolkits (CPU-only distributed runs, mixed precision anywhere,
crash-safe checkpoints, one way to build a runner)."""

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
from .runner import build_runner, checkpoint_dirs, default_work_dir, prepare_checkpoint_runner_config, use_amp
from .schedulers import WarmupCosineLR

__all__ = [
    "AutocastOptimWrapper",
    "CPUDistributedDataParallel",
    "SafeCheckpointHook",
    "WarmupCosineLR",
    "WorkDirBusyError",
    "WorkDirLock",
    "build_runner",
    "checkpoint_dirs",
    "default_work_dir",
    "find_resume_checkpoint",
    "prepare_checkpoint_runner_config",
    "prepare_distributed",
    "process_rank",
    "use_amp",
    "use_safe_checkpoint_hook",
]
