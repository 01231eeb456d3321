"""Evaluate a checkpoint on a config's test set (classification accuracy, COCO bbox/segm, mIoU).

python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--out results.pkl] [--cfg-options k=v ...]
"""

from __future__ import annotations

import argparse
import os
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

import cpvt_mm  # noqa: F401
from cpvt_mm.apis import ConfigOptionError, DatasetError, load_config, validate_datasets
from cpvt_mm.checkpoint import CheckpointError
from cpvt_mm.engine import prepare_distributed


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
    p.add_argument("--cfg-options", nargs="+", action=DictAction)
    p.add_argument("--launcher", choices=["none", "pytorch", "slurm", "mpi"], default="none")
    p.add_argument("--local_rank", "--local-rank", type=int, default=0)
    args = p.parse_args(argv)
    os.environ.setdefault("LOCAL_RANK", str(args.local_rank))
    return args


def main(argv: list[str] | None = None) -> dict:
    """Evaluate; returns the metrics. Config, data and checkpoint problems exit with one line (status 1)."""
    try:
        return _test(parse_args(argv))
    except (CheckpointError, FileNotFoundError, ConfigOptionError, DatasetError) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)


def _test(args: argparse.Namespace) -> dict:
    from mmengine.evaluator import DumpResults
    from mmengine.registry import RUNNERS
    from mmengine.runner import Runner

    if not osp.isfile(args.checkpoint):
        raise FileNotFoundError(f"checkpoint {args.checkpoint} not found")
    cfg = load_config(args.config, args.cfg_options)
    validate_datasets(cfg, ("test",))
    if args.tta:
        if "tta_model" not in cfg or "tta_pipeline" not in cfg:
            raise ValueError(f"--tta: {args.config} defines no tta_model / tta_pipeline")
        cfg.test_dataloader.dataset.pipeline = cfg.tta_pipeline
        cfg.tta_model.module = cfg.model
        cfg.model = cfg.tta_model
    cfg.work_dir = (
        args.work_dir or cfg.get("work_dir") or osp.join("work_dirs", osp.splitext(osp.basename(args.config))[0])
    )
    cfg.load_from = args.checkpoint
    cfg.resume = False
    cfg = prepare_distributed(cfg, args.launcher)
    runner = RUNNERS.build(cfg) if "runner_type" in cfg else Runner.from_cfg(cfg)
    if args.out:
        runner.test_evaluator.metrics.append(DumpResults(out_file_path=args.out))
    return runner.test()


if __name__ == "__main__":
    main()
