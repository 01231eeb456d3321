"""Convert a Twins-PCPVT / Twins-SVT checkpoint to cpvt_mm's parameter names.

Accepts the authors' / timm layout, mmpretrain's and mmsegmentation's (see
:mod:`cpvt_mm.models.converters`), checks the result strictly against the matching cpvt_mm backbone
(names *and* shapes), and only then writes DST, atomically, so a failed or interrupted conversion never
leaves a half-written or silently mismatched file behind; DST carries a SHA-256 of its tensors, which every
cpvt_mm load verifies. The source is read with cpvt_mm's safe loader (weights only, checked allow-list).

Example::

    python tools/model_converters/convert_checkpoint.py twins_svt_small.pth svt-small_cpvt_mm.pth
    # then, in a config:
    # backbone=dict(type='cpvt_mm.SVT', arch='small',
    #               init_cfg=dict(type='Pretrained', checkpoint='svt-small_cpvt_mm.pth', prefix='backbone.'))
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import torch
from torch import nn

from cpvt_mm import MODELS  # importing cpvt_mm applies its compatibility layer and registers the models
from cpvt_mm.checkpoint import CheckpointError, load_checkpoint_file, save_checkpoint
from cpvt_mm.models.converters import FAMILIES, KeyReport, check_state_dict, convert_twins_checkpoint

ARCHS = tuple(f"{family}-{size}" for family, cls in FAMILIES.items() for size in cls.arch_zoo)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("src", help="checkpoint to convert (authors'/timm, mmpretrain, mmseg or cpvt_mm layout)")
    parser.add_argument("dst", help="where to write the cpvt_mm checkpoint")
    parser.add_argument("--arch", choices=ARCHS, help="expected architecture (default: inferred from the weights)")
    return parser.parse_args(argv)


def backbone_config(arch: str, state_dict: dict[str, torch.Tensor]) -> dict[str, Any]:
    """The cpvt_mm backbone config these weights belong to.

    Stage output norms follow the checkpoint: mmseg's PCPVT and mmpretrain's default build have no final
    norm, and loading them into a model that has one would leave it at its initial values.
    """
    family, size = arch.split("-")
    cls = FAMILIES[family]
    cfg: dict[str, Any] = dict(type=f"cpvt_mm.{cls.__name__}", arch=size)
    num_stages = len(cls.arch_zoo[size]["depths"])
    out_norms = [f"backbone.stages.{s}.norm.weight" in state_dict for s in range(num_stages)]
    if out_norms != [s == num_stages - 1 for s in range(num_stages)]:
        cfg["out_norms"] = out_norms
    return cfg


def validate(state_dict: dict[str, torch.Tensor], cfg: dict[str, Any]) -> KeyReport:
    """Every key and shape must match the backbone built from ``cfg`` (and a linear head, if any)."""
    backbone = MODELS.build(cfg)
    report = check_state_dict(state_dict, backbone, prefix="backbone.")
    head_weight = state_dict.get("head.fc.weight")
    if head_weight is not None:
        head = nn.Linear(backbone.embed_dims[-1], head_weight.shape[0])
        head_report = check_state_dict(state_dict, head, prefix="head.fc.")
        report.missing += [f"head.fc.{k}" for k in head_report.missing]
        report.unexpected += [f"head.fc.{k}" for k in head_report.unexpected]
        report.mismatched += [(f"head.fc.{k}", a, b) for k, a, b in head_report.mismatched]
    report.unexpected += [k for k in state_dict if not k.startswith(("backbone.", "head.fc."))]
    return report


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        checkpoint = load_checkpoint_file(args.src, map_location="cpu")
        converted = convert_twins_checkpoint(checkpoint, args.arch)
    except (OSError, CheckpointError, ValueError, KeyError, TypeError) as e:
        print(f"error: cannot convert {args.src}: {e}", file=sys.stderr)
        return 1
    state_dict, meta = converted["state_dict"], converted["meta"]
    arch = args.arch or meta.get("arch")
    if arch is None:
        print(
            f"error: {args.src} holds a {meta.get('family', 'Twins')} with embed dims {meta.get('embed_dims')} "
            f"and depths {meta.get('depths')}, which match no zoo arch; pass --arch (one of {', '.join(ARCHS)})",
            file=sys.stderr,
        )
        return 1
    cfg = backbone_config(arch, state_dict)
    report = validate(state_dict, cfg)
    if not report.ok:
        print(f"error: {args.src} does not fit {arch} ({cfg}); nothing written.\n{report.format()}", file=sys.stderr)
        return 1

    meta["arch"] = arch
    save_checkpoint(converted, args.dst)  # atomic, with a tensor digest that loading verifies
    num_params = sum(v.numel() for k, v in state_dict.items() if k.startswith("backbone."))
    head = f"linear head, {meta['num_classes']} classes" if meta.get("num_classes") else "no classification head"
    print(f"converted {args.src} ({meta.get('source_format')} layout) -> {args.dst}")
    print(f"  backbone: {cfg}, {num_params / 1e6:.2f} M parameters; {head}")
    dropped = meta.get("dropped_keys") or []
    if dropped:
        parts = sorted({k.split(".")[0] for k in dropped})
        print(f"  dropped {len(dropped)} key(s) outside the backbone and head: {', '.join(p + '.*' for p in parts)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
