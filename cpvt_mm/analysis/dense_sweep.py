"""Backbone time and peak memory against input size for cpvt_mm, timm, mmpretrain and mmseg, and a plot: the
library behind ``tools/analysis_tools/dense_sweep.py``.

    python tools/analysis_tools/dense_sweep.py --arch pcpvt-small svt-small --size 224 512 800x1216 \
        --out docs/figures/dense_benchmark

Each (arch, size, mode) is one ``benchmark.py --backbone`` run: the implementations' timed rounds are
interleaved, so every ratio in the table comes from one run. Writes ``OUT.json``, ``OUT.md`` and ``OUT.png``
(seconds per image and peak MiB against megapixels, one panel per arch and mode).
"""

from __future__ import annotations

import argparse
import json

from . import benchmark as bench


def _pixels(size: str) -> int:
    h, _, w = size.partition("x")  # the report's "800x1216"
    return int(h) * int(w or h)


def plot(reports: list[dict], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = sorted({(r["config"]["arch"], r["config"]["mode"]) for r in reports})
    fig, axes = plt.subplots(2, len(panels), figsize=(4 * len(panels), 6.5), squeeze=False)
    for col, (arch, mode) in enumerate(panels):
        rows = [r for r in reports if (r["config"]["arch"], r["config"]["mode"]) == (arch, mode)]
        mpix = [_pixels(r["config"]["size"]) / 1e6 for r in rows]
        for impl in rows[0]["results"]:
            axes[0, col].plot(mpix, [1 / r["results"][impl]["img_per_s"] for r in rows], "o-", label=impl)
            axes[1, col].plot(mpix, [r["results"][impl]["peak_mib"] for r in rows], "o-", label=impl)
        axes[0, col].set_title(f"{arch} {'forward' if mode == 'infer' else 'forward + backward'}")
        axes[0, col].set_ylabel("s / image")
        axes[1, col].set_ylabel("peak MiB")
        axes[1, col].set_xlabel("megapixels")
        axes[0, col].legend(fontsize=8)
    cfg = reports[0]["config"]
    fig.suptitle(f"backbones, batch {cfg['batch_size']}, {cfg['dtype']}, {cfg['device']}, torch {cfg['torch']}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--arch", nargs="+", default=["pcpvt-small", "svt-small"])
    p.add_argument("--size", nargs="+", default=["224", "512", "800x1216"])
    p.add_argument("--mode", nargs="+", default=["infer", "train"])
    p.add_argument("--impls", nargs="+", default=["cpvt_mm", "timm", "mmpretrain", "mmseg"])
    p.add_argument("--out", default="work_dirs/dense_benchmark", help="path prefix for .json / .md / .png")
    p.add_argument("extra", nargs=argparse.REMAINDER, help="after --: more benchmark.py options")
    args = p.parse_args(argv)
    extra = [a for a in args.extra if a != "--"]
    reports, lines = [], []
    for arch in args.arch:
        for mode in args.mode:
            for size in args.size:
                run = ["--backbone", "--arch", arch, "--mode", mode, "--size", size, "--impls", *args.impls, *extra]
                report = bench.run(bench.parse_args(run))
                reports.append(report)
                lines += [bench.to_markdown(report), ""]
                print(lines[-2], flush=True)
    with open(f"{args.out}.json", "w", encoding="utf-8") as f:
        json.dump(reports, f, indent=2)
    with open(f"{args.out}.md", "w", encoding="utf-8") as f:
        f.write("\n".join(lines))
    plot(reports, f"{args.out}.png")
    return reports


if __name__ == "__main__":
    main()
