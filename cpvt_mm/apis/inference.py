"""Inference helpers: refuse weights that leave the model partly random, and keep segmentation memory bounded.

**Checkpoint coverage.** mmengine loads checkpoints non-strictly and only *logs* the parameters it could not
fill. A classifier's checkpoint on a detection config thus gives a detector with an ImageNet backbone and a
random head, which happily draws boxes. :func:`check_checkpoint_covers_model` refuses that.

**Bounded segmentation post-processing.** mmseg's ``postprocess_result`` resizes the logits of each image to
the image's original size and takes the argmax: ``C x H x W`` floats at full resolution. For a 4000x6000
photo and ADE20K's 150 classes that is one 14.4 GB allocation, which fails or swaps, although the network
itself ran at 512 px. :func:`bounded_seg_postprocess` computes the same bilinear resize (PyTorch's formula,
``align_corners`` either way) in horizontal stripes of at most ``budget_bytes`` of logits, and keeps only the
argmax of each stripe: peak memory is the low-resolution logits, one stripe and the ``H x W`` prediction.
"""

from __future__ import annotations

import math
import types
from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..checkpoint import load_checkpoint_file

__all__ = [
    "UninitializedWeightsError",
    "accelerate_on_cpu",
    "bounded_seg_postprocess",
    "check_checkpoint_covers_model",
    "use_bounded_seg_postprocess",
]

DEFAULT_BUDGET_BYTES = 64 * 2**20  # logits of one stripe: 64 MiB


class UninitializedWeightsError(ValueError):
    """A checkpoint leaves some of the model's weights at their random initial values."""


def _state_dict_of(checkpoint: Any) -> Mapping[str, Tensor]:
    state = checkpoint.get("state_dict", checkpoint) if isinstance(checkpoint, Mapping) else None
    if not isinstance(state, Mapping):
        raise UninitializedWeightsError("the checkpoint holds no state_dict")
    return {k.removeprefix("module."): v for k, v in state.items()}


def check_checkpoint_covers_model(model: nn.Module, checkpoint: str | Mapping[str, Any]) -> None:
    """Raise unless ``checkpoint`` provides every parameter of ``model`` with the right shape.

    Buffers are not required (e.g. BatchNorm's ``num_batches_tracked``); parameters are. The message groups the
    missing names by top-level module (``backbone``, ``bbox_head`` ...) so a checkpoint of another task or of
    a config with another number of classes is recognisable at a glance.
    """
    name = checkpoint if isinstance(checkpoint, str) else "the checkpoint"
    state = _state_dict_of(load_checkpoint_file(checkpoint) if isinstance(checkpoint, str) else checkpoint)
    missing, mismatched = [], []
    for key, param in model.named_parameters():
        if key not in state:
            missing.append(key)
        elif tuple(state[key].shape) != tuple(param.shape):
            mismatched.append(f"{key} {tuple(state[key].shape)} vs {tuple(param.shape)}")
    if not missing and not mismatched:
        return
    parts = []
    if missing:
        modules = sorted({k.split(".")[0] for k in missing})
        parts.append(f"{len(missing)} parameters are missing (in {', '.join(modules)}; e.g. {missing[0]})")
    if mismatched:
        parts.append(f"{len(mismatched)} have another shape (e.g. {mismatched[0]}: checkpoint vs model)")
    raise UninitializedWeightsError(
        f"{name} does not fit the model of this config: {'; '.join(parts)}. Those weights would stay random; "
        "was it trained with another config (another task, or another number of classes)?"
    )


def _source_index(out_size: int, in_size: int, align_corners: bool, device: torch.device) -> tuple[Tensor, ...]:
    """PyTorch's bilinear source indices and weights along one axis: (lower index, upper index, upper weight)."""
    dst = torch.arange(out_size, dtype=torch.float64, device=device)
    if align_corners:
        src = dst * ((in_size - 1) / (out_size - 1)) if out_size > 1 else torch.zeros_like(dst)
    else:
        src = ((dst + 0.5) * (in_size / out_size) - 0.5).clamp(min=0)
    lo = src.floor().long().clamp(max=in_size - 1)
    hi = (lo + 1).clamp(max=in_size - 1)
    return lo, hi, (src - lo).float()


def bounded_seg_postprocess(
    logits: Tensor, size: Sequence[int], align_corners: bool = False, budget_bytes: int = DEFAULT_BUDGET_BYTES
) -> Tensor:
    """Argmax of ``logits`` (C, h, w) bilinearly resized to ``size`` (H, W), in stripes; returns (1, H, W) int64.

    Equals ``F.interpolate(logits[None], size, mode='bilinear', align_corners=...).argmax(1)`` up to float
    rounding (ties); its peak memory is ``budget_bytes`` of resized logits instead of ``C * H * W * 4`` bytes.
    """
    C, h = logits.shape[:2]
    H, W = (int(s) for s in size)
    out = torch.empty(1, H, W, dtype=torch.long, device=logits.device)
    # columns first (h x W per class, small), then rows stripe by stripe
    cols = F.interpolate(logits[None], size=(h, W), mode="bilinear", align_corners=align_corners)[0]
    lo, hi, frac = _source_index(H, h, align_corners, logits.device)
    rows = max(1, budget_bytes // max(1, C * W * cols.element_size()))
    for start in range(0, H, rows):
        stop = min(H, start + rows)
        f = frac[start:stop].to(cols.dtype)[None, :, None]
        stripe = cols[:, lo[start:stop]] * (1 - f) + cols[:, hi[start:stop]] * f
        out[0, start:stop] = stripe.argmax(0)
    return out


def _full_res_bytes(logits: Tensor, size: Sequence[int]) -> int:
    return logits.shape[1] * math.prod(int(s) for s in size) * logits.element_size()


def use_bounded_seg_postprocess(model: nn.Module, budget_bytes: int = DEFAULT_BUDGET_BYTES) -> nn.Module:
    """Make an mmseg segmentor's ``postprocess_result`` memory-bounded for images whose full-resolution logits
    would exceed ``budget_bytes``; smaller images keep mmseg's own code path (and their ``seg_logits``).

    For the large ones the data samples get ``pred_sem_seg`` (same values up to float ties) and
    ``seg_logits`` at the network's resolution (after padding removal and flip), not at the image's: storing
    them at full resolution is exactly the allocation this avoids. Multi-class (C > 1) models only; binary
    models with a threshold keep mmseg's path. Returns ``model`` (patched in place).
    """
    from mmengine.structures import PixelData

    original = model.postprocess_result

    def postprocess_result(self: nn.Module, seg_logits: Tensor, data_samples: list | None = None) -> list:
        metas = [s.metainfo for s in data_samples] if data_samples is not None else []
        too_big = seg_logits.shape[1] > 1 and any(
            _full_res_bytes(seg_logits, m["ori_shape"]) > budget_bytes for m in metas
        )
        if not too_big:
            return original(seg_logits, data_samples)
        _, _, H, W = seg_logits.shape
        for i, sample in enumerate(data_samples):
            meta = metas[i]
            left, right, top, bottom = meta.get("img_padding_size", meta.get("padding_size", [0] * 4))
            logits = seg_logits[i, :, top : H - bottom, left : W - right]
            if meta.get("flip"):
                logits = logits.flip(dims=(2,) if meta.get("flip_direction") == "horizontal" else (1,))
            pred = bounded_seg_postprocess(logits, meta["ori_shape"], self.align_corners, budget_bytes)
            sample.set_data({"seg_logits": PixelData(data=logits), "pred_sem_seg": PixelData(data=pred)})
        return data_samples

    model.postprocess_result = types.MethodType(postprocess_result, model)
    return model


def accelerate_on_cpu(model: nn.Module) -> nn.Module:
    """What the tools run on CPU: the model with cpvt_mm's oneDNN fusion swapped in
    (:func:`cpvt_mm.acceleration.fuse_cpu`; same parameters, same outputs within 1e-5, about 1.4x the speed).
    On another device, or on a torch the fusion was not written for (with a warning), the model as it is."""
    from mmengine.logging import print_log

    from ..acceleration import fuse_cpu_for_device, is_cpu_fused

    param = next(model.parameters(), None)
    if param is not None and is_cpu_fused(fuse_cpu_for_device(model, param.device)):
        print_log("CPU: oneDNN-fused linear layers swapped in (cpvt_mm.acceleration.fuse_cpu)", logger="current")
    return model
