"""Write a small procedurally drawn dataset in the exact COCO layout, for smoke tests and tutorials.

    python tools/dataset_converters/make_toy_coco.py data/toy_coco --num-train 64 --num-val 16 --seed 0

OUT_DIR gets ``train2017/``, ``val2017/`` and ``annotations/instances_{train,val}2017.json``, which mmdet's own
``CocoDataset`` and ``CocoMetric`` read as they read COCO: point a config's ``data_root`` at it and set the
three class names. What is drawn: :mod:`cpvt_mm.datasets.toy_coco`; this file only parses the command line.
"""

from __future__ import annotations

import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))  # run from a checkout

from cpvt_mm.datasets.toy_coco import CLASSES, make_toy_coco


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Write a toy COCO-format instance-segmentation dataset")
    p.add_argument("out_dir", help="dataset root (gets train2017/, val2017/, annotations/)")
    p.add_argument("--num-train", type=int, default=64)
    p.add_argument("--num-val", type=int, default=16)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--rle", action="store_true", help="store masks as compressed RLE instead of polygons")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        make_toy_coco(args.out_dir, args.num_train, args.num_val, args.seed, args.rle)
    except (OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"wrote {args.num_train} train / {args.num_val} val images to {args.out_dir} (classes: {', '.join(CLASSES)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
