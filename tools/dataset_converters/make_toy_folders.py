"""Write a small generated image-classification set in the folder layout: ``train/<class>/*.png``, ``val/...``.

    python tools/dataset_converters/make_toy_folders.py data/my_images --num-train 50 --num-val 20 --size 32

Four classes (circle, cross, square, triangle), grayscale PNGs; the layout that
``configs/classification/examples/`` read. What is drawn: :mod:`cpvt_mm.datasets.toy_folders`; this file only
parses the command line.
"""

from __future__ import annotations

import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))  # run from a checkout

from cpvt_mm.datasets.toy_folders import CLASSES, make_toy_folders


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Write a toy image-classification set as one folder per class")
    p.add_argument("out_dir", help="dataset root (gets train/<class>/ and val/<class>/)")
    p.add_argument("--num-train", type=int, default=50, help="training images per class")
    p.add_argument("--num-val", type=int, default=20, help="validation images per class")
    p.add_argument("--size", type=int, default=32, help="image side in pixels")
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        make_toy_folders(args.out_dir, args.num_train, args.num_val, args.size, args.seed)
    except (OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(
        f"wrote {args.num_train} train / {args.num_val} val images per class to {args.out_dir} "
        f"(classes: {', '.join(CLASSES)}; {args.size}x{args.size} grayscale PNG)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
