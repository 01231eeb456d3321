"""Evaluate a checkpoint on a config's test set (classification accuracy, COCO bbox/segm, mIoU).

python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--out results.pkl] [--tta] [--compile] [--cfg-options k=v ...]

The work is done by :mod:`cpvt_mm.apis.test`; this file only parses the command line.
"""

from __future__ import annotations

import argparse
import os
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

import cpvt_mm  # noqa: F401
from cpvt_mm.apis.test import prepare_test_config, run_test
from cpvt_mm.apis.train import TOOL_ERRORS


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    from mmengine.config import DictAction

    p = argparse.ArgumentParser(description="Test a cpvt_mm model with MMEngine")
    p.add_argument("config")
    p.add_argument("checkpoint")
    p.add_argument("--work-dir")
    p.add_argument("--out", help="dump the raw predictions to this pickle file")
    p.add_argument(
        "--tta", action="store_true", help="test-time augmentation from the config's tta_model / tta_pipeline"
    )
    p.add_argument("--compile", action="store_true", help="torch.compile the backbone (dynamic sizes, inductor)")
    p.add_argument("--cfg-options", nargs="+", action=DictAction)
    p.add_argument("--launcher", choices=["none", "pytorch", "slurm", "mpi"], default="none")
    p.add_argument("--local_rank", "--local-rank", type=int, default=0)
    args = p.parse_args(argv)
    os.environ.setdefault("LOCAL_RANK", str(args.local_rank))
    return args


def main(argv: list[str] | None = None) -> dict:
    """Evaluate; returns the metrics. Config, data and checkpoint problems exit with one line (status 1)."""
    args = parse_args(argv)
    try:
        cfg = prepare_test_config(
            args.config,
            args.checkpoint,
            work_dir=args.work_dir,
            out=args.out,
            tta=args.tta,
            cfg_options=args.cfg_options,
            launcher=args.launcher,
        )
        return run_test(cfg, args.out, compile=args.compile)
    except TOOL_ERRORS as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
