"""Runner building shared by training, testing and the resolution sweep: mixed precision, work dirs, loading.

``tools/train.py``, ``tools/test.py`` and ``tools/analysis_tools/eval_resolutions.py`` used to build their
runners and precision settings each their own way; they all go through here now.
"""

from __future__ import annotations

import os.path as osp

from mmengine.config import Config

from .dist import prepare_distributed

__all__ = ["build_runner", "checkpoint_dirs", "default_work_dir", "prepare_checkpoint_runner_config", "use_amp"]

# optimizer wrapper types that --amp can turn into a mixed-precision one
_AMP_WRAPPABLE = ("OptimWrapper", "AmpOptimWrapper", "cpvt_mm.AutocastOptimWrapper")


def use_amp(cfg: Config, dtype: str | None = None) -> Config:
    """Train ``cfg`` in mixed precision on this machine (``tools/train.py --amp``); returns ``cfg``.

    On CUDA: mmengine's ``AmpOptimWrapper``, fp16 (default) with *dynamic* loss scaling (large Twins models
    overflow after warm-up with a static scale) or bf16 without scaling. Without CUDA: bf16 through
    :class:`~cpvt_mm.engine.AutocastOptimWrapper`, as mmengine's ``AmpOptimWrapper`` refuses CPUs.
    """
    import torch

    wrapper = cfg.optim_wrapper
    kind = wrapper.get("type", "OptimWrapper")
    if kind not in _AMP_WRAPPABLE:
        raise ValueError(f"--amp needs an OptimWrapper config, got {kind}")
    on_gpu = torch.cuda.is_available()
    dtype = dtype or ("float16" if on_gpu else "bfloat16")
    if on_gpu:
        wrapper.type = "AmpOptimWrapper"
        wrapper.loss_scale = "dynamic" if dtype == "float16" else 1.0
    else:
        if dtype == "float16":
            raise ValueError("--amp on CPU supports bfloat16 only (fp16 autocast needs CUDA)")
        wrapper.type = "cpvt_mm.AutocastOptimWrapper"
        wrapper.pop("loss_scale", None)
    wrapper.dtype = dtype
    return cfg


def default_work_dir(config_path: str) -> str:
    """``work_dirs/<config file name without .py>``, OpenMMLab's default."""
    return osp.join("work_dirs", osp.splitext(osp.basename(config_path))[0])


def checkpoint_dirs(cfg: Config) -> tuple[str, ...]:
    """Where the checkpoint hook writes besides the work dir (its ``out_dir``/<work dir name>)."""
    out_dir = (cfg.get("default_hooks") or {}).get("checkpoint", {}).get("out_dir")
    return (osp.join(out_dir, osp.basename(cfg.work_dir.rstrip(osp.sep))),) if out_dir else ()


def prepare_checkpoint_runner_config(cfg: Config, checkpoint: str, work_dir: str, launcher: str = "none") -> Config:
    """``cfg`` set up to evaluate ``checkpoint`` (loaded, not resumed) with logs in ``work_dir``."""
    if not osp.isfile(checkpoint):
        raise FileNotFoundError(f"checkpoint {checkpoint} not found")
    cfg.work_dir = work_dir
    cfg.load_from = checkpoint
    cfg.resume = False
    return prepare_distributed(cfg, launcher)


def build_runner(cfg: Config):
    """The config's own runner type (``runner_type``) if it names one, else MMEngine's ``Runner``.

    The run's log starts with the compatibility fixes ``import cpvt_mm`` applied (:mod:`cpvt_mm.compat`).
    """
    from mmengine.registry import RUNNERS
    from mmengine.runner import Runner

    from .. import compat

    runner = RUNNERS.build(cfg) if "runner_type" in cfg else Runner.from_cfg(cfg)
    runner.logger.info(compat.summary())  # what importing cpvt_mm changed in the host stack, in the run's log
    return runner
