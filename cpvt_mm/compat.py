"""Compatibility fixes for the pinned OpenMMLab 2.x stack on modern PyTorch / numpy.

Applied once when ``cpvt_mm`` is imported. Each fix names the symptom it cures, is a no-op where the
symptom cannot occur, and has a test in ``tests/test_compat.py`` that fails without it.

1. ``torchvision`` on a CPU-only torch. The package index's torchvision for torch 2.13 is a CUDA build;
   its compiled ops fail to load with a CPU torch, and its meta registrations then die with
   ``RuntimeError: operator torchvision::nms does not exist``, which breaks ``import mmpretrain.models``
   and timm. Fix: when (and only when) torch has no GPU backend and torchvision's ``_C`` library does not
   load, define the ``torchvision::nms`` / ``torchvision::qnms`` schemas with a pure-PyTorch CPU kernel
   before torchvision is imported, and route ``torchvision.ops.nms`` to it. torchvision's other ops
   (``roi_align`` ...) then use their own pure-PyTorch fallbacks.

2. Resuming under torch >= 2.6, where ``torch.load`` defaults to ``weights_only=True``. An mmengine
   ``Runner`` checkpoint holds a few non-tensor objects (``HistoryBuffer`` in the message hub, numpy
   arrays and scalars), so resume dies with ``UnpicklingError: Unsupported global:
   mmengine.logging.history_buffer.HistoryBuffer``. Fix: allow-list exactly those objects with
   ``torch.serialization.add_safe_globals`` and make mmengine's local-file loader always use
   ``weights_only=True``. Anything else in a checkpoint (``os.system``, a lambda, an arbitrary class) is
   refused with :class:`UnsafeCheckpointError` before any of it runs; there is no unsafe fallback.

4. ``cpvt_mm::`` config references. MMEngine resolves ``package::path`` only for packages in its own
   ``MODULE2PACKAGE`` table; cpvt_mm adds itself so configs can inherit ``cpvt_mm::classification/...``
   (the files ship inside the package under ``cpvt_mm/.mim``) once cpvt_mm is imported. MMEngine also
   looks for the package next to its dist-info, which is wrong for PEP 660 editable installs (the
   dist-info sits in site-packages, the code in the checkout); cpvt_mm's own path is answered from the
   imported package instead.

3. numpy 2.x removed ``np.in1d``, which mmpretrain's retrieval / multi-label metrics still call; it is
   restored as an alias of ``np.isin`` (same semantics for the 1-D inputs they pass) only when missing.
"""

from __future__ import annotations

import glob
import importlib.util
import os.path as osp
import pickle
import sys
from typing import Any

import numpy as np
import torch

__all__ = ["UnsafeCheckpointError", "apply", "load_checkpoint_file", "safe_checkpoint_globals"]

_APPLIED = False
_TORCHVISION_LIB: Any = None  # keeps the torch.library registration alive


class UnsafeCheckpointError(pickle.UnpicklingError):
    """A checkpoint holds pickled objects outside the allow-list; it was not loaded and nothing ran."""


# --------------------------------------------------------------------------- 1. torchvision on CPU torch
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


def patch_torchvision() -> bool:
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


# --------------------------------------------------------------------------- 2. safe checkpoints
def safe_checkpoint_globals() -> list[Any]:
    """Exactly the non-tensor objects an mmengine ``Runner`` checkpoint holds (beyond torch's defaults)."""
    from mmengine.logging.history_buffer import HistoryBuffer

    core = np._core if hasattr(np, "_core") else np.core  # numpy 2 renamed core -> _core
    allowed: list[Any] = [
        HistoryBuffer,
        (_history_buffer_getattr, "builtins.getattr"),
        core.multiarray._reconstruct,
        core.multiarray.scalar,
        np.ndarray,
        np.dtype,
    ]
    # numpy >= 1.25 pickles dtypes through their classes (np.dtypes.Float64DType, ...).
    dtypes = getattr(np, "dtypes", None)
    if dtypes is not None:
        allowed += [getattr(dtypes, n) for n in dir(dtypes) if n.endswith("DType")]
    return allowed


def _history_buffer_getattr(obj: Any, name: str) -> Any:
    """Stand-in for ``builtins.getattr`` inside checkpoints, limited to ``HistoryBuffer``'s statistics.

    mmengine pickles the message hub's ``HistoryBuffer`` with its statistics methods, which pickle as
    ``getattr(HistoryBuffer, 'min')``. Allow-listing the real ``getattr`` would let a checkpoint reach any
    attribute of any allowed object (``__globals__`` and from there ``os``), so only these lookups resolve.
    """
    from mmengine.logging.history_buffer import HistoryBuffer

    if obj is HistoryBuffer and name in ({"min", "max", "mean", "current"} | set(HistoryBuffer._statistics_methods)):
        return getattr(obj, name)
    raise UnsafeCheckpointError(
        f"checkpoint asks for getattr({obj!r}, {name!r}); only HistoryBuffer statistics are allowed"
    )


def load_checkpoint_file(filename: str, map_location: Any = None) -> Any:
    """``torch.load`` with ``weights_only=True`` that explains a refusal instead of suggesting unsafe loads."""
    try:
        return torch.load(filename, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        # torch wraps the unpickler's reason in advice to retry with weights_only=False; keep the reason only.
        text = str(e)
        reason = text.split("WeightsUnpickler error:", 1)[-1].split("Check the documentation", 1)[0].strip()
        raise UnsafeCheckpointError(
            f"Refusing to load checkpoint {filename!r}: it contains pickled objects that are not on cpvt_mm's "
            f"allow-list of checkpoint contents ({reason}). Loading it could execute arbitrary code, so "
            "nothing was loaded. Only load checkpoints written by mmengine/torch (tensors, dicts, numpy "
            "arrays, mmengine HistoryBuffer); convert foreign checkpoints to a plain state dict first."
        ) from None


def patch_checkpoint_loading() -> None:
    torch.serialization.add_safe_globals(safe_checkpoint_globals())
    from mmengine.runner.checkpoint import CheckpointLoader

    def load_from_local(filename: str, map_location: Any = None) -> Any:
        filename = osp.expanduser(filename)
        if not osp.isfile(filename):
            raise FileNotFoundError(f"{filename} can not be found.")
        return load_checkpoint_file(filename, map_location)

    # '' is mmengine's scheme for local paths; force=True replaces its loader (same signature).
    CheckpointLoader.register_scheme(prefixes="", loader=load_from_local, force=True)


# --------------------------------------------------------------------------- 3. numpy 2
def patch_numpy() -> None:
    if not hasattr(np, "in1d"):
        np.in1d = np.isin  # type: ignore[attr-defined]


# --------------------------------------------------------------------------- 4. cpvt_mm:: configs
def register_config_package() -> None:
    from mmengine.config.utils import MODULE2PACKAGE

    MODULE2PACKAGE.setdefault("cpvt_mm", "cpvt_mm")
    import mmengine.config.config as config_module

    original = config_module.get_installed_path
    if getattr(original, "_cpvt_mm", False):
        return

    def get_installed_path(package: str) -> str:
        if package == "cpvt_mm":
            return osp.dirname(osp.abspath(__file__))
        return original(package)

    get_installed_path._cpvt_mm = True  # type: ignore[attr-defined]
    config_module.get_installed_path = get_installed_path


def apply() -> None:
    """Apply every fix once (idempotent)."""
    global _APPLIED
    if _APPLIED:
        return
    patch_torchvision()
    patch_numpy()
    patch_checkpoint_loading()
    register_config_package()
    _APPLIED = True


apply()
