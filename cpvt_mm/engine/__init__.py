"""Training-loop glue shared by the three toolkits (distributed runs on CPU-only torch)."""

from .dist import CPUDistributedDataParallel, prepare_distributed

__all__ = ["CPUDistributedDataParallel", "prepare_distributed"]
