"""Convert a Twins-PCPVT / Twins-SVT checkpoint file to cpvt_mm's parameter names, checked before it is written.

:mod:`cpvt_mm.models.converters` maps the names (authors' / timm, mmpretrain and mmsegmentation layouts); this
module adds what a file conversion needs around it: the source is read with cpvt_mm's safe loader (weights
only, checked allow-list), the result is checked strictly against the matching cpvt_mm backbone (names *and*
shapes, and a linear head if any), and only then written, atomically and with a SHA-256 of its tensors that
every cpvt_mm load verifies. A failed or interrupted conversion never leaves a half-written or silently
mismatched file behind. ``tools/model_converters/convert_checkpoint.py`` is the command line.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..checkpoint import CheckpointError, load_checkpoint_file, save_checkpoint
from ..models.converters import FAMILIES, KeyReport, check_state_dict, convert_twins_checkpoint
from ..registry import MODELS

__all__ = ["ARCHS", "ConversionError", "ConvertedCheckpoint", "backbone_config", "convert_checkpoint_file", "validate"]

ARCHS = tuple(f"{family}-{size}" for family, cls in FAMILIES.items() for size in cls.arch_zoo)


class ConversionError(ValueError):
    """The source cannot be read or converted, or the result does not fit any cpvt_mm backbone; nothing written."""


@dataclass
class ConvertedCheckpoint:
    """What :func:`convert_checkpoint_file` wrote."""

    src: str
    dst: str
    backbone_cfg: dict[str, Any]
    meta: dict[str, Any]
    num_params: int  # backbone parameters

    def summary(self) -> str:
        """The lines ``convert_checkpoint.py`` prints."""
        meta = self.meta
        head = f"linear head, {meta['num_classes']} classes" if meta.get("num_classes") else "no classification head"
        lines = [
            f"converted {self.src} ({meta.get('source_format')} layout) -> {self.dst}",
            f"  backbone: {self.backbone_cfg}, {self.num_params / 1e6:.2f} M parameters; {head}",
        ]
        dropped = meta.get("dropped_keys") or []
        if dropped:
            parts = sorted({k.split(".")[0] for k in dropped})
            lines.append(
                f"  dropped {len(dropped)} key(s) outside the backbone and head: {', '.join(p + '.*' for p in parts)}"
            )
        return "\n".join(lines)


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


def convert_checkpoint_file(src: str, dst: str, arch: str | None = None) -> ConvertedCheckpoint:
    """Convert ``src`` into ``dst`` for the ``arch`` backbone (default: inferred from the weights).

    Raises:
        ConversionError: ``src`` cannot be read or converted, its dims match no zoo arch and none was given,
            or the converted weights do not fit the backbone; ``dst`` is not touched.
    """
    try:
        checkpoint = load_checkpoint_file(src, map_location="cpu")
        converted = convert_twins_checkpoint(checkpoint, arch)
    except (OSError, CheckpointError, ValueError, KeyError, TypeError) as e:
        raise ConversionError(f"cannot convert {src}: {e}") from e
    state_dict, meta = converted["state_dict"], converted["meta"]
    arch = arch or meta.get("arch")
    if arch is None:
        raise ConversionError(
            f"{src} holds a {meta.get('family', 'Twins')} with embed dims {meta.get('embed_dims')} "
            f"and depths {meta.get('depths')}, which match no zoo arch; pass --arch (one of {', '.join(ARCHS)})"
        )
    cfg = backbone_config(arch, state_dict)
    report = validate(state_dict, cfg)
    if not report.ok:
        raise ConversionError(f"{src} does not fit {arch} ({cfg}); nothing written.\n{report.format()}")
    meta["arch"] = arch
    save_checkpoint(converted, dst)  # atomic, with a tensor digest that loading verifies
    num_params = sum(v.numel() for k, v in state_dict.items() if k.startswith("backbone."))
    return ConvertedCheckpoint(src, dst, cfg, meta, num_params)
