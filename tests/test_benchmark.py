"""The benchmark tool runs all three implementations side by side and reports ratios (no timing asserted)."""

import json

import pytest
from helpers import ROOT, run_tool

from cpvt_mm.analysis import benchmark as bench
from cpvt_mm.analysis import dense_sweep as sweep


def test_benchmark_reports_all_implementations_with_ratios(tmp_path, capsys):
    out = tmp_path / "bench.json"
    args = ["--arch", "svt-small", "--batch-size", "1", "--size", "64", "--rounds", "1", "--iters", "1"]
    bench.main([*args, "--warmup", "0", "--cpu-fusion", "--json", str(out)])
    report = json.loads(out.read_text())
    assert set(report["results"]) == {"cpvt_mm", "cpvt_mm cpu-fused", "timm", "mmpretrain"}
    for r in report["results"].values():
        assert r["img_per_s"] > 0 and r["peak_mib"] > 0
    table = capsys.readouterr().out
    assert "speed ratio (cpvt_mm / this)" in table and "| timm |" in table


def test_benchmark_times_the_padding_aware_mode_against_the_plain_forward(tmp_path, capsys):
    out = tmp_path / "bench.json"
    args = ["--arch", "pcpvt-small", "--padding", "--size", "64x96", "--batch-size", "2", "--mode", "train"]
    bench.main([*args, "--rounds", "1", "--iters", "1", "--warmup", "0", "--json", str(out)])
    report = json.loads(out.read_text())
    assert set(report["results"]) == {"cpvt_mm", "cpvt_mm padding-aware"}
    assert report["config"]["size"] == "64x96" and report["config"]["what"] == "backbone, padded batch"
    assert "| cpvt_mm padding-aware |" in capsys.readouterr().out


def test_dense_sweep_compares_four_backbones_and_plots(tmp_path):
    out = tmp_path / "dense"
    fast = ["--batch-size", "1", "--rounds", "1", "--iters", "1", "--warmup", "0"]
    reports = sweep.main(
        ["--arch", "svt-small", "--size", "64", "64x96", "--mode", "train", "--out", str(out), "--", *fast]
    )
    assert [r["config"]["size"] for r in reports] == ["64x64", "64x96"]
    assert all(set(r["results"]) == {"cpvt_mm", "timm", "mmpretrain", "mmseg"} for r in reports)
    assert reports[0]["config"]["what"] == "backbone" and reports[0]["gflops_per_image"] > 0
    assert (tmp_path / "dense.png").stat().st_size > 0 and "| mmseg |" in (tmp_path / "dense.md").read_text()


def test_benchmark_command_line_is_the_library_main():
    res = run_tool(str(ROOT / "tools/analysis_tools/benchmark.py"), "--size", "0x5", expect=2)
    assert "expected a size like 224 or 800x1216" in res.stderr or "sizes must be >= 32" in res.stderr


def test_cpu_peak_memory_is_the_high_water_mark_not_the_bytes_allocated():
    """Two 64 MiB buffers that never coexist peak at 64 MiB, and a training step's peak counts the frees
    autograd makes as it goes (the per-op profiler events miss them and summed to the total allocated)."""
    import torch

    from cpvt_mm.analysis.benchmark import peak_memory

    def two_buffers():
        for _ in range(2):
            buf = torch.ones(16 * 2**20)  # 64 MiB, freed outside any op when the name is rebound
            del buf

    assert peak_memory(two_buffers, torch.device("cpu")) == pytest.approx(64, abs=1)

    layers = torch.nn.Sequential(*[torch.nn.Linear(256, 256) for _ in range(8)])
    x = torch.randn(4096, 256, requires_grad=True)  # every layer keeps its 4 MiB input for backward

    def train_step():
        layers(x).sum().backward()

    train_step()  # gradients exist from here on: the step below only refills them
    peak = peak_memory(train_step, torch.device("cpu"))
    assert 4 * 8 <= peak <= 4 * 8 + 3 * 4 + 2  # saved inputs, plus a gradient or two in flight
