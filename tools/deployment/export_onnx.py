"""Export a cpvt_mm backbone or a whole toolkit model to ONNX with dynamic batch, height and width.

    python tools/deployment/export_onnx.py pcpvt-small --out work_dirs/pcpvt-small.onnx
    python tools/deployment/export_onnx.py configs/classification/svt-small_8xb128_in1k.py CKPT --out svt.onnx
    python tools/deployment/export_onnx.py CONFIG CKPT --backbone-only --out backbone.onnx --check 224 333x517

An architecture name exports the backbone (four NCHW stage maps; CPVT: the class token). A config exports the
model in ``mode='tensor'`` (a classifier's logits), inputs normalised as its data preprocessor would. After the
export, ONNX Runtime is compared with PyTorch at the ``--check`` sizes. Limits: ``docs/deployment.md``.
"""

from __future__ import annotations

import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))  # run from a checkout

import cpvt_mm  # noqa: F401  (compat layer and registries first)
from cpvt_mm.cli import image_size
from cpvt_mm.deployment import ARCHS, build_deployable, check_onnx, export_onnx
from cpvt_mm.deployment.onnx import DEFAULT_OPSET


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Export to ONNX with dynamic batch / height / width")
    p.add_argument("target", help=f"a config file, or one of {', '.join(sorted(ARCHS))}")
    p.add_argument("checkpoint", nargs="?", help="weights (default: random, enough to check the export)")
    p.add_argument("--out", required=True, help="the .onnx file to write")
    p.add_argument("--backbone-only", action="store_true", help="with a config: export model.backbone only")
    p.add_argument("--opset", type=int, default=DEFAULT_OPSET, help=f"ONNX opset (>= 18; default {DEFAULT_OPSET})")
    p.add_argument("--check", nargs="*", type=image_size, default=[(224, 224), (333, 517)], help="sizes to verify")
    p.add_argument("--batch", type=int, default=1, help="batch size of the check inputs")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    try:
        model = build_deployable(args.target, args.checkpoint, backbone_only=args.backbone_only)
    except (FileNotFoundError, ValueError) as e:
        raise SystemExit(f"export_onnx: {e}") from None
    in_channels = getattr(getattr(model, "model", model), "in_channels", None) or 3
    path = export_onnx(model, args.out, in_channels=in_channels, opset=args.opset)
    print(f"wrote {path} (opset {args.opset}, dynamic batch / height / width)")
    shapes = [(args.batch, in_channels, h, w) for h, w in args.check]
    for check in check_onnx(model, path, shapes):
        print(f"  {check.shape}: outputs {check.output_shapes}, max |onnxruntime - torch| = {check.max_abs_diff:.2e}")


if __name__ == "__main__":
    main()
