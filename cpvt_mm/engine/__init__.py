"""Training-loop glue shared by the three toolkits (CPU-only distributed runs, mixed precision anywhere)."""

from .dist import CPUDistributedDataParallel, prepare_distributed
from .optim import AutocastOptimWrapper

__all__ = ["AutocastOptimWrapper", "CPUDistributedDataParallel", "prepare_distributed"]
