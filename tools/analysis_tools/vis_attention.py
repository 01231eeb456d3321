"""Attention maps of a trained cpvt_mm model: where chosen query tokens look, per block and head.

    python tools/analysis_tools/vis_attention.py CONFIG CHECKPOINT IMAGE [IMAGE ...] --out maps.png
        [--layers 0 -1] [--queries 0.5,0.5 0,0] [--head 2] [--size 224] [--cfg-options ...]

Works on any checkpoint of the three toolkits whose backbone is a cpvt_mm model: plain CPVT (global
attention), Twins-PCPVT (GSA) and Twins-SVT (LSA windows and GSA). Rows: the chosen attention layers in
execution order (0 = the first block, -1 = the last); columns: each image and query. A query is a position
given as fractions of the image (row, col), drawn as a cross; the map is the mean over heads unless ``--head``
picks one. Images are resized to ``--size`` (default: the config's test size when its pipeline has one,
else the image's own size). What runs: :mod:`cpvt_mm.analysis.attention_maps`.
"""

from __future__ import annotations

import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))  # run from a checkout

import cpvt_mm  # noqa: F401  (compat layer and registries before any toolkit import)
from cpvt_mm.cli import image_size


def query(text: str) -> tuple[float, float]:
    """``argparse`` type for a query position: ``ROW,COL`` as fractions of the image in [0, 1]."""
    try:
        r, c = (float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected ROW,COL fractions such as 0.5,0.5, got {text!r}") from None
    if not (0 <= r <= 1 and 0 <= c <= 1):
        raise argparse.ArgumentTypeError(f"query fractions must lie in [0, 1], got {text!r}")
    return r, c


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    from mmengine.config import DictAction

    p = argparse.ArgumentParser(description="Draw attention maps of a cpvt_mm model for chosen query tokens")
    p.add_argument("config")
    p.add_argument("checkpoint")
    p.add_argument("images", nargs="+", metavar="IMAGE")
    p.add_argument("--out", required=True, help="PNG to write")
    p.add_argument("--layers", type=int, nargs="+", default=[0, -1], help="attention layers, execution order")
    p.add_argument("--queries", type=query, nargs="+", default=[(0.5, 0.5), (0.0, 0.0)], help="ROW,COL fractions")
    p.add_argument("--head", type=int, help="one head (default: the mean over heads)")
    p.add_argument("--size", type=image_size, help="input size, 224 or HxW (default: the config's test size)")
    p.add_argument("--cfg-options", nargs="+", action=DictAction, help="override config entries, key=value")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    from cpvt_mm.analysis.attention_maps import draw_checkpoint_attention
    from cpvt_mm.checkpoint import CheckpointError

    args = parse_args(argv)
    try:
        out = draw_checkpoint_attention(
            args.config, args.checkpoint, args.images, args.out, args.layers, args.queries, args.head, args.size,
            args.cfg_options,
        )  # fmt: skip
    except (FileNotFoundError, ValueError, CheckpointError) as e:  # paths, layers, heads, sizes, weights
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
