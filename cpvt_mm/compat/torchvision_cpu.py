"""Fix ``torchvision_cpu``: make torchvision importable on a CPU-only torch.

Symptom without it: the package index's torchvision for torch 2.13 is a CUDA build; its compiled ops fail to
load with a CPU torch, and its meta registrations then die with ``RuntimeError: operator torchvision::nms does
not exist``, which breaks ``import mmpretrain.models`` and timm.

Fix: when (and only when) torch has no GPU backend and torchvision's ``_C`` library does not load, define the
``torchvision::nms`` / ``torchvision::qnms`` schemas with a pure-PyTorch CPU kernel before torchvision is
imported, and route ``torchvision.ops.nms`` to it. torchvision's other ops (``roi_align`` ...) then use their
own pure-PyTorch fallbacks. A no-op on GPU builds of torch and wherever torchvision's ops load.
"""

from __future__ import annotations

import glob
import importlib.util
import os.path as osp
import sys
from typing import Any

import torch

_TORCHVISION_LIB: Any = None  # keeps the torch.library registration alive


def _nms_reference(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """Greedy NMS with torchvision's semantics: keep boxes in score order, drop IoU > threshold."""
    if boxes.numel() == 0:
        return torch.empty(0, dtype=torch.long, device=boxes.device)
    order = scores.argsort(descending=True)
    b = boxes[order].float()
    areas = (b[:, 2] - b[:, 0]).clamp(min=0) * (b[:, 3] - b[:, 1]).clamp(min=0)
    suppressed = torch.zeros(b.shape[0], dtype=torch.bool, device=b.device)
    for i in range(b.shape[0]):  # one vectorised IoU row per kept box: O(N) memory
        if suppressed[i]:
            continue
        lt = torch.maximum(b[i, :2], b[i + 1 :, :2])
        rb = torch.minimum(b[i, 2:], b[i + 1 :, 2:])
        inter = (rb - lt).clamp(min=0).prod(dim=1)
        iou = inter / (areas[i] + areas[i + 1 :] - inter)
        suppressed[i + 1 :] |= iou > iou_threshold
    return order[~suppressed]


def _torch_has_gpu_backend() -> bool:
    return bool(torch.version.cuda or getattr(torch.version, "hip", None))


def _torchvision_ops_load() -> bool | None:
    """Whether torchvision's compiled ops load; None when torchvision is not installed."""
    spec = importlib.util.find_spec("torchvision")
    if spec is None or not spec.submodule_search_locations:
        return None
    libs = glob.glob(osp.join(next(iter(spec.submodule_search_locations)), "_C*.so"))
    if not libs:
        return False
    try:
        torch.ops.load_library(libs[0])
    except (OSError, ImportError, RuntimeError):
        return False
    return hasattr(torch.ops.torchvision, "nms")


def apply() -> bool:
    """Make torchvision importable on CPU-only torch. Returns True when the shim was installed."""
    global _TORCHVISION_LIB
    if _TORCHVISION_LIB is not None:
        return True
    if _torch_has_gpu_backend() or "torchvision" in sys.modules:
        return False
    if _torchvision_ops_load() in (None, True):
        return False
    lib = torch.library.Library("torchvision", "DEF")
    lib.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    lib.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    lib.impl("nms", _nms_reference, "CPU")
    _TORCHVISION_LIB = lib

    import torchvision.ops
    import torchvision.ops.boxes as tv_boxes

    def nms(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
        return torch.ops.torchvision.nms(boxes, scores, iou_threshold)

    nms.__doc__ = tv_boxes.nms.__doc__
    tv_boxes.nms = nms  # batched_nms looks it up here
    torchvision.ops.nms = nms
    return True


patch_torchvision = apply  # the name earlier releases exported
