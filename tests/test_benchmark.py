"""The benchmark tool runs all three implementations side by side and reports ratios (no timing asserted)."""

import json

from helpers import load_tool


def test_benchmark_reports_all_implementations_with_ratios(tmp_path, capsys):
    bench = load_tool("tools/analysis_tools/benchmark.py")
    out = tmp_path / "bench.json"
    args = ["--arch", "svt-small", "--batch-size", "1", "--size", "64", "--rounds", "1", "--iters", "1"]
    bench.main([*args, "--warmup", "0", "--json", str(out)])
    report = json.loads(out.read_text())
    assert set(report["results"]) == {"cpvt_mm", "timm", "mmpretrain"}
    for r in report["results"].values():
        assert r["img_per_s"] > 0 and r["peak_mib"] > 0
    table = capsys.readouterr().out
    assert "speed ratio (cpvt_mm / this)" in table and "| timm |" in table


def test_benchmark_times_the_padding_aware_mode_against_the_plain_forward(tmp_path, capsys):
    bench = load_tool("tools/analysis_tools/benchmark.py")
    out = tmp_path / "bench.json"
    args = ["--arch", "pcpvt-small", "--padding", "--size", "64x96", "--batch-size", "2", "--mode", "train"]
    bench.main([*args, "--rounds", "1", "--iters", "1", "--warmup", "0", "--json", str(out)])
    report = json.loads(out.read_text())
    assert set(report["results"]) == {"cpvt_mm", "cpvt_mm padding-aware"}
    assert report["config"]["size"] == "64x96" and report["config"]["what"] == "backbone, padded batch"
    assert "| cpvt_mm padding-aware |" in capsys.readouterr().out


def test_dense_sweep_compares_four_backbones_and_plots(tmp_path):
    sweep = load_tool("tools/analysis_tools/dense_sweep.py")
    out = tmp_path / "dense"
    fast = ["--batch-size", "1", "--rounds", "1", "--iters", "1", "--warmup", "0"]
    reports = sweep.main(
        ["--arch", "svt-small", "--size", "64", "64x96", "--mode", "train", "--out", str(out), "--", *fast]
    )
    assert [r["config"]["size"] for r in reports] == ["64x64", "64x96"]
    assert all(set(r["results"]) == {"cpvt_mm", "timm", "mmpretrain", "mmseg"} for r in reports)
    assert reports[0]["config"]["what"] == "backbone" and reports[0]["gflops_per_image"] > 0
    assert (tmp_path / "dense.png").stat().st_size > 0 and "| mmseg |" in (tmp_path / "dense.md").read_text()
