"""Train a model from an mmpretrain, mmdet or mmseg config (the config's ``default_scope`` says which).

python tools/train.py configs/classification/pcpvt-small_8xb128_in1k.py
python tools/train.py CONFIG --resume                 # resume from the latest checkpoint in work_dir
python tools/train.py CONFIG --amp                    # mixed precision (bf16 on CPU, fp16 on CUDA)
python tools/train.py CONFIG --from-scratch           # without the config's pretrained backbone weights
bash tools/dist_train.sh CONFIG 8                     # 8 GPUs (torchrun); gloo on CPU-only machines

The work is done by :mod:`cpvt_mm.apis.train`; this file only parses the command line.
"""

from __future__ import annotations

import argparse
import os
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))  # run from a checkout without install

import cpvt_mm  # noqa: F401  (compat layer and registries before any toolkit import)
from cpvt_mm.apis.train import TOOL_ERRORS, prepare_train_config, train


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


def main(argv: list[str] | None = None) -> int:
    """Train; returns the exit status. Config, data, checkpoint and work-dir problems end in one line."""
    args = parse_args(argv)
    try:
        cfg = prepare_train_config(
            args.config,
            work_dir=args.work_dir,
            resume=args.resume,
            amp=args.amp,
            amp_dtype=args.amp_dtype,
            auto_scale_lr=args.auto_scale_lr,
            from_scratch=args.from_scratch,
            cfg_options=args.cfg_options,
            launcher=args.launcher,
        )
        train(cfg, auto_resume=args.resume == "auto")
    except TOOL_ERRORS as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
