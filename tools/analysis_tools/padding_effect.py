"""How much an image's detections depend on its batch-mate, with and without the padding-aware mode.

    python tools/analysis_tools/padding_effect.py PHOTO MATE --box X1 Y1 X2 Y2 [--iters 40]

Trains a Mask R-CNN from a shipped config (random init, one class) for a few steps on PHOTO with one box (and
its rectangle as the mask), so that its scores mean something, then runs PHOTO alone and in a batch with the
larger MATE, once through mmdet's own preprocessor and once through the padding-aware one the configs use.
Prints the backbone features' relative change inside the photo's region per stage, and the change of the
top detections (scores, box corners, mask IoU). docs/detection.md records a run. What runs:
:mod:`cpvt_mm.evaluation.padding`; this file only parses the command line.
"""

from __future__ import annotations

import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

import cpvt_mm  # noqa: F401  (compat layer and registries)
from cpvt_mm.evaluation.padding import DEFAULT_CONFIG, measure_padding_effect


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("photo")
    p.add_argument("mate", help="a larger image to batch the photo with")
    p.add_argument("--box", nargs=4, type=float, required=True, help="x1 y1 x2 y2 of the object in PHOTO")
    p.add_argument("--config", default=DEFAULT_CONFIG)
    p.add_argument("--iters", type=int, default=40)
    args = p.parse_args()
    measure_padding_effect(args.photo, args.mate, args.box, args.config, args.iters)


if __name__ == "__main__":
    main()
