"""The prepared GPU check runs its plan on CPU with --dry-run, as `make test` requires: model checks, every task
kind trained end to end through the tools (dry run: one run per distinct path, i.e. task kind, the dist launcher,
--amp, mmseg's Twins side by side), the SDPA probe and the benchmarks."""

import json
import os
import subprocess
import sys

from helpers import ROOT, run_tool_in_process


def test_gpu_check_dry_run_writes_checks_and_benchmarks(tmp_path):
    env = dict(os.environ, OUT=str(tmp_path), PYTHON=sys.executable, OMP_NUM_THREADS="1")
    res = subprocess.run(
        ["bash", "scripts/gpu_check.sh", "--dry-run"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
    )
    assert res.returncode == 0, res.stderr[-3000:]
    report = json.loads((tmp_path / "results.json").read_text())
    assert report["checks"] and all(c["ok"] for c in report["checks"]), report["checks"]
    names = {c["name"] for c in report["checks"]}
    assert {"SVT: padding-aware batch vs alone", "PCPVT: bf16 backward", "CPVT: fused vs reference attention"} <= names
    tasks = {t["name"]: t for t in report["tasks"]}
    assert set(tasks) == {  # each distinct path once: a task kind, the dist launcher or --amp dropped fails here
        "CPVT-Ti multi-scale 160-288",
        "Semantic FPN PCPVT-S (cpvt_mm)",
        "Semantic FPN PCPVT-S (mmseg's Twins)",
        "Mask R-CNN PCPVT-S ms-3x (dist_train.sh, 1 process)",
        "RetinaNet SVT-S --amp",
    }
    assert {t["task"] for t in tasks.values()} == {"classification", "segmentation", "detection"}
    assert all(t["ok"] and t["s_per_iter"] and t["losses"] for t in tasks.values()), tasks
    assert "accuracy/top1" in tasks["CPVT-Ti multi-scale 160-288"]["metrics"]
    assert "mIoU" in tasks["Semantic FPN PCPVT-S (mmseg's Twins)"]["metrics"]
    assert "coco/segm_mAP" in tasks["Mask R-CNN PCPVT-S ms-3x (dist_train.sh, 1 process)"]["metrics"]
    assert not any(t["warnings"] for t in tasks.values()), tasks  # e.g. DDP's grad-stride warning
    assert report["sdpa"]["accepts_mask"]["MATH"] is True
    assert [b["config"]["mode"] for b in report["benchmarks"]] == ["infer", "train"]
    assert set(report["benchmarks"][0]["results"]) == {"cpvt_mm", "timm", "mmpretrain"}
    assert report["benchmarks"][1]["config"]["with_cp"] is True
    md = (tmp_path / "results.md").read_text()
    assert "| timm |" in md
    side_by_side = md.partition("ratio to mmseg's own Twins")[2]
    assert "| Semantic FPN PCPVT-S (cpvt_mm) |" in side_by_side, md


def test_gpu_check_refuses_to_run_without_cuda_unless_dry(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # also on a GPU machine: never start the real plan
    _, err = run_tool_in_process("tools/analysis_tools/gpu_check.py", expect=1)
    assert "no CUDA device visible" in err


def test_dry_runs_evaluate_at_tiny_sizes(tmp_path, monkeypatch):
    """A dry run's evaluation is its val loop, whose pipeline is a copy of the test one once the config is loaded:
    it must shrink too (left at full size, dry runs evaluated at 512 x 683 and 1333 x 800)."""
    from mmengine.config import Config

    monkeypatch.syspath_prepend(str(ROOT / "tools/analysis_tools"))
    import gpu_tasks

    data = {task: str(tmp_path / task) for task in ("classification", "segmentation", "detection")}
    for i, run in enumerate(gpu_tasks.runs(dry=True)):
        cfg = Config.fromfile(gpu_tasks.task_config(run, data, str(tmp_path / f"run{i}"), dry=True))
        for loader in ("val_dataloader", "test_dataloader"):
            sides = [s for step in cfg[loader].dataset.pipeline if "scale" in step for s in _sides(step.scale)]
            assert sides and max(sides) <= 256, (run.name, loader, cfg[loader].dataset.pipeline)


def _sides(scale) -> list[int]:
    return [scale] if isinstance(scale, int) else list(scale)
