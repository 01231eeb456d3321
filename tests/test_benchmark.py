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
