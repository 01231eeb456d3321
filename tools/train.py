"""Train a model from an mmpretrain, mmdet or mmseg config (the config's ``default_scope`` says which).

python tools/train.py configs/classification/pcpvt-small_8xb128_in1k.py
python tools/train.py CONFIG --resume                 # resume from the latest checkpoint in work_dir
python tools/train.py CONFIG --amp                    # mixed precision (bf16 on CPU, fp16 on CUDA)
python tools/train.py CONFIG --from-scratch           # without the config's pretrained backbone weights
bash tools/dist_train.sh CONFIG 8                     # 8 GPUs (torchrun); gloo on CPU-only machines
"""

from __future__ import annotations

import argparse
import os
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # run from a checkout without install

import cpvt_mm  # noqa: F401  (compat layer and registries before any toolkit import)
from cpvt_mm.apis import (
    ConfigOptionError,
    DatasetError,
    check_pretrained_weights,
    disable_pretrained_weights,
    merge_cfg_options,
    validate_datasets,
)
from cpvt_mm.checkpoint import CheckpointError
from cpvt_mm.engine import (
    WorkDirBusyError,
    WorkDirLock,
    find_resume_checkpoint,
    prepare_distributed,
    process_rank,
    use_safe_checkpoint_hook,
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    from mmengine.config import DictAction

    p = argparse.ArgumentParser(description="Train a cpvt_mm model with MMEngine")
    p.add_argument("config", help="config file path")
    p.add_argument("--work-dir", help="where logs and checkpoints go (default: work_dirs/<config name>)")
    p.add_argument(
        "--resume",
        nargs="?",
        type=str,
        const="auto",
        help="resume from this checkpoint, or without a value from the latest one in work_dir",
    )
    p.add_argument("--amp", action="store_true", help="automatic mixed precision")
    p.add_argument(
        "--amp-dtype", choices=["float16", "bfloat16"], help="AMP dtype (default: float16 on CUDA, bfloat16 on CPU)"
    )
    p.add_argument("--auto-scale-lr", action="store_true", help="scale the lr by the actual total batch size")
    p.add_argument(
        "--from-scratch",
        action="store_true",
        help="ignore the config's pretrained backbone weights (init_cfg type Pretrained): random initialisation",
    )
    p.add_argument("--cfg-options", nargs="+", action=DictAction, help="override config entries, key=value")
    p.add_argument("--launcher", choices=["none", "pytorch", "slurm", "mpi"], default="none")
    p.add_argument("--local_rank", "--local-rank", type=int, default=0)
    args = p.parse_args(argv)
    os.environ.setdefault("LOCAL_RANK", str(args.local_rank))
    return args


def build_config(args: argparse.Namespace):
    import torch
    from mmengine.config import Config

    if not osp.isfile(args.config):
        raise FileNotFoundError(f"config not found: {args.config}")
    cfg = merge_cfg_options(Config.fromfile(args.config), args.cfg_options)
    if args.from_scratch:
        cleared = disable_pretrained_weights(cfg)
        if cleared:
            print(f"--from-scratch: no pretrained weights ({', '.join(cleared)} cleared)")
    if args.work_dir:
        cfg.work_dir = args.work_dir
    elif cfg.get("work_dir") is None:
        cfg.work_dir = osp.join("work_dirs", osp.splitext(osp.basename(args.config))[0])
    if args.amp:
        wrapper = cfg.optim_wrapper
        kind = wrapper.get("type", "OptimWrapper")
        if kind not in ("OptimWrapper", "AmpOptimWrapper", "cpvt_mm.AutocastOptimWrapper"):
            raise ValueError(f"--amp needs an OptimWrapper config, got {kind}")
        on_gpu = torch.cuda.is_available()
        dtype = args.amp_dtype or ("float16" if on_gpu else "bfloat16")
        if on_gpu:
            # fp16 needs dynamic loss scaling (large Twins models overflow after warm-up); bf16 does not.
            wrapper.type = "AmpOptimWrapper"
            wrapper.loss_scale = "dynamic" if dtype == "float16" else 1.0
        else:
            if dtype == "float16":
                raise ValueError("--amp on CPU supports bfloat16 only (fp16 autocast needs CUDA)")
            wrapper.type = "cpvt_mm.AutocastOptimWrapper"  # mmengine's AmpOptimWrapper refuses CPUs
            wrapper.pop("loss_scale", None)
        wrapper.dtype = dtype
    if args.auto_scale_lr:
        if "auto_scale_lr" not in cfg or "base_batch_size" not in cfg.auto_scale_lr:
            raise ValueError("--auto-scale-lr needs `auto_scale_lr = dict(base_batch_size=...)` in the config")
        cfg.auto_scale_lr.enable = True
    if args.resume == "auto":
        cfg.resume = True
        cfg.load_from = None
    elif args.resume is not None:
        if not osp.isfile(args.resume):
            raise FileNotFoundError(f"--resume {args.resume}: no such checkpoint file")
        cfg.resume = True
        cfg.load_from = args.resume
    check_pretrained_weights(cfg)  # before anything is built: a missing file is named with the way out
    validate_datasets(cfg, ("train", "val") if cfg.get("val_cfg") else ("train",))
    use_safe_checkpoint_hook(cfg)  # atomic saves, pointer after file, deletions last: whatever the config says
    return prepare_distributed(cfg, args.launcher)


def _checkpoint_dirs(cfg) -> tuple[str, ...]:
    """Where the checkpoint hook writes besides the work dir (its ``out_dir``/<work dir name>)."""
    out_dir = (cfg.get("default_hooks") or {}).get("checkpoint", {}).get("out_dir")
    return (osp.join(out_dir, osp.basename(cfg.work_dir.rstrip(osp.sep))),) if out_dir else ()


def main(argv: list[str] | None = None) -> int:
    """Train; returns the exit status. Config, data, checkpoint and work-dir problems end in one line."""
    from mmengine.registry import RUNNERS
    from mmengine.runner import Runner

    args = parse_args(argv)
    try:
        cfg = build_config(args)
        lock = WorkDirLock(cfg.work_dir).acquire() if process_rank() == 0 else None
        try:
            if args.resume == "auto":
                found = find_resume_checkpoint(cfg.work_dir, _checkpoint_dirs(cfg))
                cfg.resume, cfg.load_from = found is not None, found
            runner = RUNNERS.build(cfg) if "runner_type" in cfg else Runner.from_cfg(cfg)
            runner.train()
        finally:
            if lock is not None:
                lock.release()
    except (CheckpointError, WorkDirBusyError, FileNotFoundError, ConfigOptionError, DatasetError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
