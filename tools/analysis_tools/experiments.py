"""The paper's claims on Fashion-MNIST, with seeds (``make experiments``; about 2.5 hours on 2 CPU cores).

    bash scripts/get_fashion_mnist.sh && python tools/analysis_tools/experiments.py
    python tools/analysis_tools/experiments.py --seeds 0 1 2 3 4 --jobs 2       # more seeds; reruns skip done runs
    python tools/analysis_tools/experiments.py --quick --work-dir /tmp/exp      # a few steps: checks the plumbing
    python tools/analysis_tools/experiments.py --epochs 4 --work-dir work_dirs/experiments-4ep  # half the schedule

Trains the variants of ``configs/classification/experiments/`` (none / learned table / PEG; PEG before or after
block 0; one or three PEGs; class token or average pooling) under two resolution protocols, tests each at the
protocol's sizes, probes token positions, and writes ``report.md``, ``summary.json`` and figures into the work
dir. What runs and why: ``projects/cpvt_experiments/cpvt_experiments/experiments.py``; results:
``docs/experiments.md``.
"""

from __future__ import annotations

import argparse
import os.path as osp
import sys

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, ROOT)  # run from a checkout without install
sys.path.insert(0, osp.join(ROOT, "projects", "cpvt_experiments"))  # the research code lives outside cpvt_mm

import cpvt_mm  # noqa: F401, E402  (compat layer and registries before any toolkit import)
from cpvt_mm.cli import add_fashion_mnist_root  # noqa: E402

try:
    from cpvt_experiments.experiments import QUICK_OPTIONS, run_experiments
except ModuleNotFoundError as e:  # an installed cpvt_mm (.mim/tools) ships no projects/
    if e.name != "cpvt_experiments":
        raise
    raise SystemExit(f"{__file__}: the research code is in projects/cpvt_experiments of a cpvt_mm checkout") from None


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="PEG vs table vs none, placement and pooling ablations, with seeds, on Fashion-MNIST",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    add_fashion_mnist_root(p, ROOT)
    p.add_argument("--work-dir", default="work_dirs/experiments", help="runs, report and figures")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="one run per variant and seed")
    p.add_argument("--jobs", type=int, default=2, help="runs side by side, one CPU thread each")
    p.add_argument("--variants", nargs="+", help="only these, as <protocol>-<variant> (e.g. native28-peg)")
    p.add_argument(
        "--epochs", type=int, help="train this many epochs instead of the configs' 8 (the cosine spans them)"
    )
    p.add_argument("--quick", action="store_true", help="a few hundred images and 2 epochs per run (plumbing check)")
    p.add_argument("--no-figures", action="store_true", help="skip the attention-map panel")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> str:
    args = parse_args(argv)
    extra = dict(QUICK_OPTIONS) if args.quick else {}
    if args.epochs is not None:
        if args.epochs < 2:
            raise SystemExit("--epochs: at least 2 (the learning curve needs two points)")
        extra["train_cfg.max_epochs"] = args.epochs
    return run_experiments(
        args.data_root, args.work_dir, args.seeds, args.jobs, args.variants, extra, figures=not args.no_figures
    )


if __name__ == "__main__":
    main()
