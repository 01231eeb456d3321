"""The prepared GPU check: model checks on the device, every task trained end to end, then bf16 benchmarks.

    python tools/analysis_tools/gpu_check.py --out work_dirs/gpu_check     # on a CUDA machine
    python tools/analysis_tools/gpu_check.py --dry-run --out /tmp/check    # the plan on CPU, tiny (see below)

Usually started through ``scripts/gpu_check.sh``, which first installs what a bare GPU host lacks. In order:
the model checks; classification, segmentation and detection trained through ``tools/train.py`` /
``tools/dist_train.sh`` on generated data (:mod:`gpu_tasks`: s/iter, peak memory, losses, final metrics, with
mmseg's own Twins config side by side); which SDPA kernel runs attention with a key mask (the padding-aware
mode); then the benchmarks (img/s, speed and memory ratios to timm and mmpretrain, MFU) while the time budget
lasts. ``results.json`` and ``results.md`` are rewritten after every step, so a run cut short still reports what
it finished. Exits 1 when a check or a task run fails; a benchmark that fails is recorded, not fatal.

``--dry-run`` (``make test``) proves the plumbing on CPU at tiny sizes. Dry run: one task run per distinct path
(task kind, launcher, flags, mmseg's Twins; :func:`gpu_tasks.runs`), without checkpoints; the compile checks
are left to the GPU.
"""

from __future__ import annotations

import argparse
import json
import os
import os.path as osp
import subprocess
import sys
import time
import traceback

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))  # run from a checkout

import torch
import torch.nn.functional as F

import cpvt_mm  # noqa: F401  (compat layer before timm / mmpretrain)
from cpvt_mm.analysis import benchmark as bench
from cpvt_mm.analysis.device_checks import run_device_checks

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
import gpu_tasks

# Dense bf16 peak of the GPUs these sessions get (TFLOP/s, no sparsity), for MFU.
PEAK_BF16_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0, "L40S": 362.0}


def plan(dry_run: bool) -> list[list[str]]:
    """benchmark.py argument lists: the padding-aware mode's cost, then eager and compiled, inference and
    training, with_cp for memory (most informative first: the budget may end the list early)."""
    if dry_run:  # the same kinds of run on CPU, tiny: proves the plumbing, measures nothing
        common = ["--size", "64", "--batch-size", "1", "--rounds", "1", "--iters", "1", "--warmup", "0"]
        return [
            ["--arch", "svt-small", "--mode", "infer", *common],
            ["--arch", "svt-small", "--mode", "train", "--with-cp", "--impls", "cpvt_mm", *common],
        ]
    runs = [["--arch", "svt-small", "--padding", "--mode", "train", "--dtype", "bf16", "--size", "512x512",
             "--batch-size", "8", "--rounds", "3", "--iters", "5", "--warmup", "2"]]  # fmt: skip
    for arch in ("pcpvt-small", "svt-small"):
        common = ["--arch", arch, "--dtype", "bf16", "--rounds", "5", "--iters", "10", "--warmup", "3"]
        runs.append([*common, "--mode", "infer", "--batch-size", "128"])
        runs.append([*common, "--mode", "train", "--batch-size", "64"])
        runs.append([*common, "--mode", "train", "--batch-size", "64", "--with-cp", "--impls", "cpvt_mm"])
    for arch in ("pcpvt-small", "svt-small"):  # compiled last: cpvt_mm and timm (compile time included)
        common = ["--arch", arch, "--dtype", "bf16", "--rounds", "5", "--iters", "10", "--warmup", "3"]
        for mode, batch in (("infer", "128"), ("train", "64")):
            runs.append([*common, "--mode", mode, "--batch-size", batch, "--compile", "--impls", "cpvt_mm", "timm"])
    return runs


def sdpa_with_key_mask(device: str) -> dict:
    """Which SDPA backends accept attention with a boolean key mask (what the padding-aware mode and SVT's
    padded windows pass), and which CUDA kernels the default dispatch runs with and without it."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    # SVT-S stage 1 at 512x512: 128x128 tokens in 7x7 windows -> (windows x batch, heads, 49, 32)
    q, k, v = (torch.randn(8 * 361, 2, 49, 32, device=device, dtype=dtype) for _ in range(3))
    mask = torch.ones(8 * 361, 1, 1, 49, dtype=torch.bool, device=device)
    mask[::2, ..., -7:] = False  # a padded border in every other window
    out: dict = {"accepts_mask": {}, "kernels": {}}
    for backend in (SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.CUDNN_ATTENTION,
                    SDPBackend.MATH):  # fmt: skip
        try:
            with sdpa_kernel([backend]):
                F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
            out["accepts_mask"][backend.name] = True
        except RuntimeError as e:
            out["accepts_mask"][backend.name] = str(e).splitlines()[0][:120] or False
    if device == "cuda":
        from torch.profiler import ProfilerActivity, profile

        for name, m in (("with key mask", mask), ("without mask", None)):
            F.scaled_dot_product_attention(q, k, v, attn_mask=m)
            torch.cuda.synchronize()
            with profile(activities=[ProfilerActivity.CUDA]) as prof:
                F.scaled_dot_product_attention(q, k, v, attn_mask=m)
                torch.cuda.synchronize()
            out["kernels"][name] = sorted({e.key[:90] for e in prof.key_averages() if e.device_type.name == "CUDA"})
    return out


def compile_checks(device: str, timeout: float) -> list[dict]:
    """:func:`run_compile_checks` in a child process, so that a compile that takes too long can be stopped."""
    code = (
        "import json, cpvt_mm\n"
        "from cpvt_mm.analysis.device_checks import run_compile_checks\n"
        f"print('CHECKS', json.dumps([c.as_dict() for c in run_compile_checks({device!r})]))\n"
    )
    try:
        res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return [dict(name="compiled (inductor, dynamic) vs eager", ok=False, detail=f"not done in {timeout:.0f} s")]
    found = [ln for ln in res.stdout.splitlines() if ln.startswith("CHECKS ")]
    if res.returncode or not found:
        tail = (res.stderr.strip().splitlines() or ["no output"])[-1][:300]
        return [dict(name="compiled (inductor, dynamic) vs eager", ok=False, detail=f"exit {res.returncode}: {tail}")]
    return json.loads(found[-1][len("CHECKS ") :])


def write(out_dir: str, report: dict, lines: list[str]) -> None:
    """results.json / results.md, rewritten whole (atomically) after every step."""
    os.makedirs(out_dir, exist_ok=True)
    for name, text in (("results.json", json.dumps(report, indent=2, default=str)), ("results.md", "\n".join(lines))):
        tmp = osp.join(out_dir, f".{name}.tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text + "\n")
        os.replace(tmp, osp.join(out_dir, name))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", default="work_dirs/gpu_check", help="folder for results.json / results.md")
    p.add_argument("--dry-run", action="store_true", help="the plan on CPU, tiny: one task run per distinct path")
    p.add_argument("--budget", type=float, default=400.0, help="seconds; task runs and benchmarks start only while "
                   "it lasts (each then runs to its end: about 8 minutes in all on one GPU)")  # fmt: skip
    p.add_argument("--task-timeout", type=float, default=100.0, help="seconds per end-to-end task run")
    args = p.parse_args(argv)
    if not args.dry_run and not torch.cuda.is_available():
        raise SystemExit("gpu_check: no CUDA device visible (torch.cuda.is_available() is False); use --dry-run")
    device = "cpu" if args.dry_run else "cuda"
    name = "cpu" if args.dry_run else torch.cuda.get_device_name()
    peak = next((v for k, v in PEAK_BF16_TFLOPS.items() if k in name), 0.0)
    t0 = time.time()
    report: dict = dict(device=name, torch=torch.__version__, checks=[], tasks=[], sdpa={}, benchmarks=[])
    lines = [f"# GPU check on {name}, torch {torch.__version__}", ""]

    def step(title: str) -> None:
        print(f"[gpu_check] {time.time() - t0:5.0f} s  {title}", flush=True)

    step("model checks")
    try:  # the dynamic-shape compile checks come last (minutes of compiling on torch 2.11)
        report["checks"] = [c.as_dict() for c in run_device_checks(device, compile_backend=None)]
    except Exception:  # the task runs and benchmarks still run and report
        report["checks"] = [dict(name="model checks", ok=False, detail=traceback.format_exc(limit=4))]
    lines += ["## Model checks", "", "| check | ok | detail |", "|---|---|---|"]
    lines += [f"| {c['name']} | {'yes' if c['ok'] else '**NO**'} | {c['detail']} |" for c in report["checks"]]
    write(args.out, report, lines)

    data = gpu_tasks.make_data(osp.join(args.out, "data"), args.dry_run)
    tasks = []
    for run in gpu_tasks.runs(args.dry_run):
        if time.time() - t0 > args.budget:
            tasks.append(gpu_tasks.TaskResult(run.name, run.task, False, 0.0, f"skipped: {args.budget:.0f} s spent"))
            continue
        step(f"task: {run.name}")
        tasks.append(gpu_tasks.run_task(run, data, args.out, args.dry_run, args.task_timeout))
        print(f"    {tasks[-1].detail}, s/iter {tasks[-1].s_per_iter}, peak MB {tasks[-1].peak_mem_mb}", flush=True)
        report["tasks"] = [t.as_dict() for t in tasks]
        write(args.out, report, [*lines, "", "## Every task trained end to end", "", gpu_tasks.to_markdown(tasks)])
    lines += ["", "## Every task trained end to end", "", gpu_tasks.to_markdown(tasks)]

    step("SDPA with a key mask")
    try:
        report["sdpa"] = sdpa_with_key_mask(device)
    except Exception:
        report["sdpa"] = dict(error=traceback.format_exc(limit=3))
    lines += ["", "## SDPA with a key mask (padding-aware mode, padded windows)", "", "```",
              json.dumps(report["sdpa"], indent=1), "```"]  # fmt: skip
    write(args.out, report, lines)

    if not args.dry_run:
        step("compile checks (dynamic shapes, inductor), in a process of their own")
        report["checks"] += compile_checks(device, timeout=max(30.0, min(180.0, args.budget + 120 - time.time() + t0)))
        lines += [f"| {c['name']} | {'yes' if c['ok'] else '**NO**'} | {c['detail']} |" for c in report["checks"][-3:]]
        write(args.out, report, lines)

    lines += ["", "## Benchmarks"]
    for run_args in plan(args.dry_run):
        full = [*run_args, "--device", device] + (["--peak-tflops", str(peak)] if peak else [])
        if time.time() - t0 > args.budget:
            report["benchmarks"].append(dict(args=full, skipped=f"time budget of {args.budget:.0f} s spent"))
            lines += ["", f"benchmark {' '.join(full)}: skipped (time budget spent)"]
            continue
        step("benchmark " + " ".join(run_args))
        try:
            result = bench.run(bench.parse_args(full))
            lines += ["", bench.to_markdown(result)]
        except Exception:  # record and go on: one failing peer must not cost the other figures
            result = dict(args=full, error=traceback.format_exc(limit=3))
            lines += ["", f"benchmark {' '.join(full)} failed:", "```", result["error"], "```"]
        report["benchmarks"].append(result)
        write(args.out, report, lines)
    lines += ["", f"total {time.time() - t0:.0f} s"]
    write(args.out, report, lines)
    failed = [c["name"] for c in report["checks"] if not c["ok"]] + [t.name for t in tasks if not t.ok]
    print("\n".join(lines[: 6 + len(report["checks"])]))
    print(gpu_tasks.to_markdown(tasks))
    if failed:
        print(f"[gpu_check] FAILED: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
