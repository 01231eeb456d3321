"""Evaluating a checkpoint on a config's test set, as ``tools/test.py`` does it."""

from __future__ import annotations

import os.path as osp
from collections.abc import Mapping
from typing import Any

from mmengine.config import Config

from ..engine import build_runner, default_work_dir, prepare_checkpoint_runner_config
from .config import load_config
from .datasets import validate_datasets
from .inference import accelerate_on_cpu

__all__ = ["check_out_file", "prepare_test_config", "run_test"]


def check_out_file(out: str | None, option: str, example: str) -> None:
    """Refuse an output path that names a folder (the write would fail after all the work is done)."""
    if out and osp.isdir(out):
        raise IsADirectoryError(f"{option} {out} is a folder; give a file name, e.g. {osp.join(out, example)}")


def prepare_test_config(
    config: str,
    checkpoint: str,
    *,
    work_dir: str | None = None,
    out: str | None = None,
    tta: bool = False,
    cfg_options: Mapping[str, Any] | None = None,
    launcher: str = "none",
) -> Config:
    """The config of ``tools/test.py CONFIG CHECKPOINT [options]``, checked; ``tta`` wraps the model in the
    config's ``tta_model`` and tests through its ``tta_pipeline``; ``out`` (the pickle ``--out`` writes) must
    not be a folder, checked before anything runs."""
    if not osp.isfile(checkpoint):
        raise FileNotFoundError(f"checkpoint {checkpoint} not found")
    cfg = load_config(config, cfg_options)
    check_out_file(out, "--out", "results.pkl")
    validate_datasets(cfg, ("test",))
    if tta:
        if "tta_model" not in cfg or "tta_pipeline" not in cfg:
            raise ValueError(f"--tta: {config} defines no tta_model / tta_pipeline")
        cfg.test_dataloader.dataset.pipeline = cfg.tta_pipeline
        cfg.tta_model.module = cfg.model
        cfg.model = cfg.tta_model
    work_dir = work_dir or cfg.get("work_dir") or default_work_dir(config)
    return prepare_checkpoint_runner_config(cfg, checkpoint, work_dir, launcher)


def run_test(cfg: Config, out: str | None = None, compile: bool = False) -> dict:
    """Run the test loop of ``cfg`` (from :func:`prepare_test_config`); ``out`` also dumps the raw predictions
    to that pickle file; ``compile`` compiles the backbone (dynamic sizes, inductor). Returns the metrics."""
    from mmengine.evaluator import DumpResults

    runner = build_runner(cfg)
    if compile:
        from ..deployment.compile import compile_backbone

        compile_backbone(runner.model)
    else:
        accelerate_on_cpu(runner.model)
    if out:
        runner.test_evaluator.metrics.append(DumpResults(out_file_path=out))
    return runner.test()
