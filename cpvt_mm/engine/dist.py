"""Distributed training on CPU-only torch (gloo), which MMEngine 0.10.7 does not handle.

Three things go wrong when ``tools/train.py --launcher pytorch`` runs on a machine without CUDA:

1. ``mmengine.dist.init_dist`` calls ``torch.cuda.set_device(local_rank)`` before creating the process
   group, which fails on a CPU-only torch. :func:`prepare_distributed` creates the gloo process group
   itself; MMEngine's ``Runner`` then sees an initialised group and skips ``init_dist``.
2. ``Runner.wrap_model`` passes ``device_ids=[local_rank]`` to DDP, which DDP rejects for CPU modules.
3. SyncBatchNorm (used by mmseg/mmdet heads) rejects CPU tensors.

:class:`CPUDistributedDataParallel` fixes 2 and 3; :func:`prepare_distributed` also points the config at
it. On CUDA machines nothing here is used.
"""

from __future__ import annotations

import os
from datetime import timedelta

import torch
import torch.distributed as dist
from mmengine.config import Config
from mmengine.model import MMDistributedDataParallel, revert_sync_batchnorm

from ..registry import MODEL_WRAPPERS

__all__ = ["CPUDistributedDataParallel", "prepare_distributed"]


@MODEL_WRAPPERS.register_module()
class CPUDistributedDataParallel(MMDistributedDataParallel):
    """MMEngine's DDP wrapper for CPU processes: no device ids, SyncBN reverted to BatchNorm."""

    def __init__(self, module: torch.nn.Module, device_ids=None, **kwargs) -> None:
        # device_ids is what Runner.wrap_model injects for GPUs; a CPU module must get None.
        super().__init__(module=revert_sync_batchnorm(module), device_ids=None, **kwargs)


def prepare_distributed(cfg: Config, launcher: str) -> Config:
    """Make ``cfg`` runnable under ``launcher`` on this machine; returns the (modified) config.

    With CUDA available this only records the launcher. Without it, and with a launcher other than
    ``none``, it initialises a gloo process group from the torchrun / slurm environment and selects
    :class:`CPUDistributedDataParallel`.
    """
    cfg.launcher = launcher
    if launcher == "none" or torch.cuda.is_available():
        return cfg
    if launcher == "slurm":
        # srun sets SLURM_*; torchrun-style variables are derived the way mmengine does for slurm.
        os.environ.setdefault("RANK", os.environ["SLURM_PROCID"])
        os.environ.setdefault("WORLD_SIZE", os.environ["SLURM_NTASKS"])
        os.environ.setdefault("LOCAL_RANK", os.environ["SLURM_LOCALID"])
        os.environ.setdefault("MASTER_PORT", "29500")
        if "MASTER_ADDR" not in os.environ:
            raise RuntimeError("slurm launcher on CPU: set MASTER_ADDR to the first node's address")
    elif launcher != "pytorch":
        raise ValueError(f"launcher {launcher!r} is not supported on a CPU-only machine (use 'pytorch' or 'slurm')")
    if not dist.is_initialized():
        timeout = cfg.get("env_cfg", {}).get("dist_cfg", {}).get("timeout", 1800)
        dist.init_process_group(backend="gloo", timeout=timedelta(seconds=timeout))
    cfg.setdefault("env_cfg", {})
    cfg.env_cfg.setdefault("dist_cfg", {})
    cfg.env_cfg.dist_cfg["backend"] = "gloo"
    wrapper = dict(cfg.get("model_wrapper_cfg") or {})
    if wrapper.get("type", "MMDistributedDataParallel") in ("MMDistributedDataParallel", None):
        wrapper["type"] = "cpvt_mm.CPUDistributedDataParallel"
        wrapper.setdefault("broadcast_buffers", False)
        wrapper.setdefault("find_unused_parameters", cfg.get("find_unused_parameters", False))
        cfg.model_wrapper_cfg = wrapper
    return cfg
