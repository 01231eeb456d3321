"""The prepared GPU check: model checks on the device, then bf16 benchmarks against timm and mmpretrain.

    python tools/analysis_tools/gpu_check.py --out work_dirs/gpu_check     # on a CUDA machine
    python tools/analysis_tools/gpu_check.py --dry-run --out /tmp/check    # the same plan on CPU, tiny

Usually started through ``scripts/gpu_check.sh``, which first installs what a bare GPU host lacks. Writes
``results.json`` and ``results.md`` (checks, then one table per benchmark: img/s, speed and memory ratios,
MFU from the complexity counter). Exits 1 when a check fails; a benchmark that fails is recorded, not fatal.
"""

from __future__ import annotations

import argparse
import json
import os
import os.path as osp
import sys
import time
import traceback

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))  # run from a checkout

import torch

import cpvt_mm  # noqa: F401  (compat layer before timm / mmpretrain)
from cpvt_mm.analysis import benchmark as bench
from cpvt_mm.analysis.device_checks import run_device_checks

# Dense bf16 peak of the GPUs these sessions get (TFLOP/s, no sparsity), for MFU.
PEAK_BF16_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0, "L40S": 362.0}


def plan(dry_run: bool) -> list[list[str]]:
    """benchmark.py argument lists: eager and compiled, inference and training, with_cp for memory."""
    if dry_run:  # the same kinds of run on CPU, tiny: proves the plumbing, measures nothing
        common = ["--size", "64", "--batch-size", "1", "--rounds", "1", "--iters", "1", "--warmup", "0"]
        return [
            ["--arch", "svt-small", "--mode", "infer", *common],
            ["--arch", "svt-small", "--mode", "train", "--with-cp", "--impls", "cpvt_mm", *common],
        ]
    runs = []
    for arch in ("pcpvt-small", "svt-small"):
        common = ["--arch", arch, "--dtype", "bf16", "--rounds", "5", "--iters", "10", "--warmup", "3"]
        runs.append([*common, "--mode", "infer", "--batch-size", "128"])
        runs.append([*common, "--mode", "train", "--batch-size", "64"])
        runs.append([*common, "--mode", "train", "--batch-size", "64", "--with-cp", "--impls", "cpvt_mm"])
        for mode, batch in (("infer", "128"), ("train", "64")):  # compiled: cpvt_mm and timm (compile time)
            runs.append([*common, "--mode", mode, "--batch-size", batch, "--compile", "--impls", "cpvt_mm", "timm"])
    return runs


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", default="work_dirs/gpu_check", help="folder for results.json / results.md")
    p.add_argument("--dry-run", action="store_true", help="run the plan on CPU with tiny settings")
    args = p.parse_args(argv)
    if not args.dry_run and not torch.cuda.is_available():
        raise SystemExit("gpu_check: no CUDA device visible (torch.cuda.is_available() is False); use --dry-run")
    device = "cpu" if args.dry_run else "cuda"
    name = "cpu" if args.dry_run else torch.cuda.get_device_name()
    peak = next((v for k, v in PEAK_BF16_TFLOPS.items() if k in name), 0.0)
    t0 = time.time()
    checks = [c.as_dict() for c in run_device_checks(device, compile_backend=None if args.dry_run else "inductor")]
    lines = [f"# GPU check on {name}, torch {torch.__version__}", "", "| check | ok | detail |", "|---|---|---|"]
    lines += [f"| {c['name']} | {'yes' if c['ok'] else '**NO**'} | {c['detail']} |" for c in checks]
    reports = []
    for run_args in plan(args.dry_run):
        full = [*run_args, "--device", device] + (["--peak-tflops", str(peak)] if peak else [])
        try:
            report = bench.run(bench.parse_args(full))
            lines += ["", bench.to_markdown(report)]
        except Exception:  # record and go on: one failing peer must not cost the other figures
            report = dict(args=full, error=traceback.format_exc(limit=3))
            lines += ["", f"benchmark {' '.join(full)} failed:", "```", report["error"], "```"]
        reports.append(report)
        print(lines[-1] if "error" not in report else report["error"], flush=True)
    lines += ["", f"total {time.time() - t0:.0f} s"]
    os.makedirs(args.out, exist_ok=True)
    with open(osp.join(args.out, "results.json"), "w", encoding="utf-8") as f:
        json.dump(dict(device=name, torch=torch.__version__, checks=checks, benchmarks=reports), f, indent=2)
    with open(osp.join(args.out, "results.md"), "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines[: 4 + len(checks)]))
    return 0 if all(c["ok"] for c in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
