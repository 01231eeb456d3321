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

2. Checkpoints under torch >= 2.6, where ``torch.load`` defaults to ``weights_only=True``. An mmengine
   ``Runner`` checkpoint holds a few non-tensor objects (``HistoryBuffer`` in the message hub, numpy
   arrays and scalars), so resume dies with ``UnpicklingError: Unsupported global:
   mmengine.logging.history_buffer.HistoryBuffer``; and mmengine's URL loaders (``https://``,
   ``torchvision://``, ``open-mmlab://``, ``mmcls://`` ...) go through ``torch.hub.load_state_dict_from_url``,
   whose default ``weights_only=False`` runs whatever a downloaded file pickled. Fix: every scheme
   mmengine registers is re-registered with a loader that ends in :func:`cpvt_mm.checkpoint.load_checkpoint_file`
   (a checked allow-list, always ``weights_only=True`` explicitly, so ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD``
   cannot reopen it). Saving goes the other way: mmengine writes checkpoints in place (a kill leaves a
   truncated file); the ``save_checkpoint`` its ``Runner`` and ``CheckpointHook`` call is replaced by one
   that writes local files atomically and durably, with a tensor digest (:mod:`cpvt_mm.checkpoint`).

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
import io
import os
import os.path as osp
import sys
import tempfile
from typing import Any
from urllib.parse import urlparse

import numpy as np
import torch

from .checkpoint import (
    CheckpointError,
    CorruptCheckpointError,
    UnsafeCheckpointError,
    _install_allow_list,
    add_digest,
    load_checkpoint_file,
    safe_checkpoint_globals,
    save_checkpoint,
)

__all__ = [
    "CheckpointError",
    "CorruptCheckpointError",
    "UnsafeCheckpointError",
    "apply",
    "load_checkpoint_file",
    "safe_checkpoint_globals",
]

_APPLIED = False
_TORCHVISION_LIB: Any = None  # keeps the torch.library registration alive


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
def _load_local(filename: str, map_location: Any = None) -> Any:
    """mmengine's ``''`` scheme: a path on this machine."""
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise FileNotFoundError(f"checkpoint {filename} not found")
    return load_checkpoint_file(filename, map_location)


def _hub_cache_path(url: str, model_dir: str | None = None) -> str:
    """Where torch hub keeps ``url`` (``$TORCH_HOME/hub/checkpoints/<name>``), the cache mmengine also uses."""
    model_dir = model_dir or osp.join(torch.hub.get_dir(), "checkpoints")
    return osp.join(model_dir, osp.basename(urlparse(url).path))


def _download(url: str, cached: str, progress: bool) -> None:
    if osp.exists(cached):
        return
    os.makedirs(osp.dirname(cached), exist_ok=True)
    sys.stderr.write(f"Downloading: {url!r} to {cached}\n")
    torch.hub.download_url_to_file(url, cached, progress=progress)  # writes a temp file, then renames


def _load_http(filename: str, map_location: Any = None, model_dir: str | None = None, progress: bool = False) -> Any:
    """``http(s)://``: download once into torch hub's cache (rank 0 first), then load it like a local file."""
    from mmengine.dist import get_dist_info

    cached = _hub_cache_path(filename, model_dir)
    rank, world_size = get_dist_info()
    if rank == 0:
        _download(filename, cached, progress)
    if world_size > 1:
        torch.distributed.barrier()
        _download(filename, cached, progress)  # ranks on other machines
    return load_checkpoint_file(cached, map_location)


def _load_torchvision(filename: str, map_location: Any = None) -> Any:
    """``torchvision://NAME`` (and the deprecated ``modelzoo://NAME``): torchvision's model URL table."""
    from mmengine.runner.checkpoint import get_torchvision_models

    name = filename.split("://", 1)[1]
    urls = get_torchvision_models()
    if name not in urls:
        raise KeyError(f"{filename}: torchvision has no model named {name!r}")
    return _load_http(urls[name], map_location)


def _load_openmmlab(filename: str, map_location: Any = None) -> Any:
    """``open-mmlab://NAME`` / ``openmmlab://NAME``: mmengine's model table (URLs or files in its home)."""
    from mmengine.runner.checkpoint import _get_mmengine_home, get_deprecated_model_names, get_external_models

    name = filename.split("://", 1)[1]
    name = get_deprecated_model_names().get(name, name)
    urls = get_external_models()
    if name not in urls:
        raise KeyError(f"{filename}: mmengine knows no OpenMMLab model named {name!r}")
    url = urls[name]
    if url.startswith(("http://", "https://")):
        return _load_http(url, map_location)
    return _load_local(osp.join(_get_mmengine_home(), url), map_location)


def _load_mmcls(filename: str, map_location: Any = None) -> Any:
    """``mmcls://NAME``: mmengine's mmcls model table, with mmcls's key renaming."""
    from mmengine.runner.checkpoint import _process_mmcls_checkpoint, get_mmcls_models

    name = filename.split("://", 1)[1]
    urls = get_mmcls_models()
    if name not in urls:
        raise KeyError(f"{filename}: mmengine knows no mmcls model named {name!r}")
    return _process_mmcls_checkpoint(_load_http(urls[name], map_location))


def _load_pavi(filename: str, map_location: Any = None) -> Any:
    """``pavi://``: download from pavi's model cloud into a temporary folder, then load safely."""
    try:
        from pavi import modelcloud
    except ImportError as e:
        raise ImportError("Please install pavi to load checkpoint from modelcloud.") from e
    model = modelcloud.get(filename[len("pavi://") :])
    with tempfile.TemporaryDirectory() as tmp:
        path = osp.join(tmp, model.name)
        model.download(path)
        return load_checkpoint_file(path, map_location)


def _load_object_storage(filename: str, map_location: Any = None, backend: str = "petrel") -> Any:
    """``s3://`` / ``petrel://``: fetch the bytes with mmengine's file backend, then load them safely."""
    from mmengine.fileio import get_file_backend

    data = get_file_backend(filename, backend_args={"backend": backend}).get(filename)
    with io.BytesIO(data) as buffer:
        buffer.name = filename  # named in error messages
        return load_checkpoint_file(buffer, map_location)


# mmengine 0.10.7's schemes (runner/checkpoint.py) -> the safe loader for each
SAFE_LOADERS: dict[str, Any] = {
    "": _load_local,
    "http://": _load_http,
    "https://": _load_http,
    "pavi://": _load_pavi,
    r"(\S+\:)?s3://": _load_object_storage,
    r"(\S+\:)?petrel://": _load_object_storage,
    "modelzoo://": _load_torchvision,
    "torchvision://": _load_torchvision,
    "open-mmlab://": _load_openmmlab,
    "openmmlab://": _load_openmmlab,
    "mmcls://": _load_mmcls,
}


def _refuse_unknown_scheme(prefix: str) -> Any:
    def load(filename: str, map_location: Any = None, *args: Any, **kwargs: Any) -> Any:
        raise UnsafeCheckpointError(
            f"refusing to load checkpoint {filename}: its scheme {prefix!r} has no weights-only loader in "
            "cpvt_mm (mmengine's own loader for it would unpickle with weights_only=False)"
        )

    return load


def patch_checkpoint_loading() -> None:
    """Route every scheme mmengine registered through the safe loader; refuse schemes we do not know."""
    from mmengine.runner.checkpoint import CheckpointLoader

    _install_allow_list()
    for prefix in list(CheckpointLoader._schemes):
        loader = SAFE_LOADERS.get(prefix) or _refuse_unknown_scheme(prefix)
        CheckpointLoader.register_scheme(prefixes=prefix, loader=loader, force=True)


def _safe_save_checkpoint(
    checkpoint: dict,
    filename: str,
    file_client_args: dict | None = None,
    backend_args: dict | None = None,
) -> None:
    """mmengine's ``save_checkpoint`` signature; local files are written atomically, with a digest."""
    if "://" in filename or file_client_args is not None or (backend_args or {}).get("backend") not in (None, "local"):
        add_digest(checkpoint)
        _MMENGINE_SAVE_CHECKPOINT(checkpoint, filename, file_client_args, backend_args)
        return
    save_checkpoint(checkpoint, filename)


_MMENGINE_SAVE_CHECKPOINT: Any = None


def patch_checkpoint_saving() -> None:
    """Make the ``save_checkpoint`` that ``Runner.save_checkpoint`` and ``CheckpointHook`` call atomic."""
    global _MMENGINE_SAVE_CHECKPOINT
    import mmengine.hooks.checkpoint_hook as hook_module
    import mmengine.runner.checkpoint as checkpoint_module
    import mmengine.runner.runner as runner_module

    if _MMENGINE_SAVE_CHECKPOINT is None:
        _MMENGINE_SAVE_CHECKPOINT = checkpoint_module.save_checkpoint
    runner_module.save_checkpoint = _safe_save_checkpoint
    hook_module.save_checkpoint = _safe_save_checkpoint


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
    patch_checkpoint_saving()
    register_config_package()
    _APPLIED = True


apply()
