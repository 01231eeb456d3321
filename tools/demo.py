"""The built-in demo (``make demo``): does a PEG let a vision transformer read sizes it never saw?

    bash scripts/get_fashion_mnist.sh && python tools/demo.py      # what `make demo` runs
    python tools/demo.py --data-root /path/to/fashion-mnist --sizes 28 36 44 56

Trains three small transformers that differ only in position encoding (PEG, learned table, none) on
Fashion-MNIST at 28x28 (``cpvt_mm.apis.train``), tests them at unseen sizes
(``cpvt_mm.evaluation.evaluate_sizes``) and merges the reports into ``work_dirs/demo/``. What runs and why:
``projects/cpvt_experiments/cpvt_experiments/demo.py``; this file only parses the command line.
"""

from __future__ import annotations

import argparse
import os.path as osp
import sys

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, ROOT)  # run from a checkout without install
sys.path.insert(0, osp.join(ROOT, "projects", "cpvt_experiments"))  # the research code lives outside cpvt_mm

import cpvt_mm  # noqa: F401, E402  (compat layer and registries before any toolkit import)
from cpvt_mm.cli import add_fashion_mnist_root  # noqa: E402

try:
    from cpvt_experiments.demo import DEFAULT_SIZES, run_demo
except ModuleNotFoundError as e:  # an installed cpvt_mm (.mim/tools) ships no projects/
    if e.name != "cpvt_experiments":
        raise
    raise SystemExit(f"{__file__}: the research code is in projects/cpvt_experiments of a cpvt_mm checkout") from None


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Train PEG / learned-table / no-position transformers on Fashion-MNIST, test at unseen sizes",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    add_fashion_mnist_root(p, ROOT)
    p.add_argument("--work-dir", default="work_dirs/demo", help="checkpoints, logs and the merged report")
    p.add_argument("--sizes", type=int, nargs="+", default=list(DEFAULT_SIZES), help="test sizes in pixels")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> str:
    args = parse_args(argv)
    return run_demo(args.data_root, args.work_dir, args.sizes, root=ROOT)


if __name__ == "__main__":
    main()
