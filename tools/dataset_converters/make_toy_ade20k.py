"""Write a small synthetic dataset in the ADE20K layout, for smoke-testing segmentation configs end to end.

    python tools/dataset_converters/make_toy_ade20k.py data/toy_ade --num-train 48 --num-val 8 --size 64 112
    # then: --cfg-options train_dataloader.dataset.data_root=data/toy_ade ...

mmseg's own ``ADE20KDataset`` reads it unchanged, exactly as it reads ``ADEChallengeData2016``. What is drawn:
:mod:`cpvt_mm.datasets.toy_ade20k`; this file only parses the command line.
"""

from __future__ import annotations

import argparse
import os.path as osp
import sys
from collections.abc import Sequence

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))  # run from a checkout

from cpvt_mm.datasets.toy_ade20k import make_toy_ade20k


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Write a small synthetic dataset in the ADE20K layout.")
    parser.add_argument("out_dir", help="dataset root to create (images/ and annotations/ go inside)")
    parser.add_argument("--num-train", type=int, default=48, help="training images (default 48)")
    parser.add_argument("--num-val", type=int, default=8, help="validation images (default 8)")
    parser.add_argument(
        "--size",
        type=int,
        nargs="+",
        default=[64, 112],
        metavar="SIDE",
        help="SIDE for square images, or MIN MAX for random heights and widths in that range (default 64 112)",
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    out = make_toy_ade20k(args.out_dir, args.num_train, args.num_val, args.size, args.seed)
    print(f"wrote {args.num_train} training and {args.num_val} validation images in the ADE20K layout to {out}")


if __name__ == "__main__":
    main()
