"""Parameters and FLOPs (attention included) of an architecture or a config's model at given input sizes.

    python tools/analysis_tools/get_flops.py pcpvt-small svt-small cpvt-tiny --size 224
    python tools/analysis_tools/get_flops.py configs/detection/mask-rcnn_pcpvt-s_fpn_1x_coco.py --backbone-only \
        --size 800x1216

GMACs are comparable with the papers' "FLOPs" (PCPVT-S 3.8 G, SVT-S 2.9 G at 224); see
:mod:`cpvt_mm.analysis.complexity` for what is counted and why peers' counters miss the attention.
"""

from __future__ import annotations

import argparse
import json
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))  # run from a checkout

import torch

import cpvt_mm  # noqa: F401  (compat layer and registries first)
from cpvt_mm.analysis import count_complexity
from cpvt_mm.cli import image_size
from cpvt_mm.deployment import ARCHS, build_deployable
from cpvt_mm.registry import MODELS


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("targets", nargs="+", help=f"config files or architectures ({', '.join(sorted(ARCHS))})")
    p.add_argument("--size", nargs="+", type=image_size, default=[(224, 224)], help="input sizes, 224 or HxW")
    p.add_argument("--backbone-only", action="store_true", help="with a config: count model.backbone only")
    p.add_argument("--json", help="also write the rows as JSON here")
    return p.parse_args(argv)


def build(target: str, backbone_only: bool) -> torch.nn.Module:
    if target in ARCHS:  # straight on the meta device: no memory even for the large models
        family, arch = ARCHS[target]
        with torch.device("meta"):
            return MODELS.build(dict(type=f"cpvt_mm.{family}", arch=arch))
    return build_deployable(target, backbone_only=backbone_only)


def main(argv: list[str] | None = None) -> list[dict]:
    args = parse_args(argv)
    rows = []
    print("| model | input | params (M) | GMACs | GFLOPs | attention share |\n|---|---|---|---|---|---|")
    for target in args.targets:
        try:
            model = build(target, args.backbone_only)
        except (FileNotFoundError, ValueError) as e:
            raise SystemExit(f"get_flops: {e}") from None
        for h, w in args.size:
            c = count_complexity(model, (1, getattr(model, "in_channels", 3), h, w))
            rows.append(
                dict(model=target, size=f"{h}x{w}", params=c.params, flops=c.flops, attention_flops=c.attention_flops)
            )
            cells = [target, f"{h}x{w}", f"{c.params / 1e6:.1f}", f"{c.gmacs:.2f}", f"{2 * c.gmacs:.2f}"]
            print(f"| {' | '.join(cells)} | {c.attention_share:.1%} |")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(rows, f, indent=2)
    return rows


if __name__ == "__main__":
    main()
