"""Fix ``checkpoints``: every checkpoint mmengine loads or saves goes through cpvt_mm's safe path.

Symptoms without it, under torch >= 2.6 (``torch.load`` defaults to ``weights_only=True``):

- an mmengine ``Runner`` checkpoint holds a few non-tensor objects (``HistoryBuffer`` in the message hub,
  numpy arrays and scalars), so resume dies with ``UnpicklingError: Unsupported global:
  mmengine.logging.history_buffer.HistoryBuffer``;
- mmengine's URL loaders (``https://``, ``torchvision://``, ``open-mmlab://``, ``mmcls://`` ...) go through
  ``torch.hub.load_state_dict_from_url``, whose default ``weights_only=False`` runs whatever a downloaded file
  pickled;
- mmengine writes checkpoints in place, so a kill during a save leaves a truncated file.

Fix: every scheme mmengine registers is re-registered with a loader that ends in
:func:`cpvt_mm.checkpoint.load_checkpoint_file` (a checked allow-list, always ``weights_only=True``
explicitly, so ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD`` cannot reopen it); schemes cpvt_mm does not know are
refused. The ``save_checkpoint`` that mmengine's ``Runner`` and ``CheckpointHook`` call is replaced by one that
writes local files atomically and durably, with a tensor digest (:mod:`cpvt_mm.checkpoint`).
"""

from __future__ import annotations

import io
import os
import os.path as osp
import sys
import tempfile
from typing import Any
from urllib.parse import urlparse

import torch

from ..checkpoint import (
    UnsafeCheckpointError,
    _install_allow_list,
    add_digest,
    load_checkpoint_file,
    save_checkpoint,
)


def load_from_local(filename: str, map_location: Any = None) -> Any:
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


def load_from_http(
    filename: str, map_location: Any = None, model_dir: str | None = None, progress: bool = False
) -> Any:
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


def load_from_torchvision(filename: str, map_location: Any = None) -> Any:
    """``torchvision://NAME`` (and the deprecated ``modelzoo://NAME``): torchvision's model URL table."""
    from mmengine.runner.checkpoint import get_torchvision_models

    name = filename.split("://", 1)[1]
    urls = get_torchvision_models()
    if name not in urls:
        raise KeyError(f"{filename}: torchvision has no model named {name!r}")
    return load_from_http(urls[name], map_location)


def load_from_openmmlab(filename: str, map_location: Any = None) -> Any:
    """``open-mmlab://NAME`` / ``openmmlab://NAME``: mmengine's model table (URLs or files in its home)."""
    from mmengine.runner.checkpoint import _get_mmengine_home, get_deprecated_model_names, get_external_models

    name = filename.split("://", 1)[1]
    name = get_deprecated_model_names().get(name, name)
    urls = get_external_models()
    if name not in urls:
        raise KeyError(f"{filename}: mmengine knows no OpenMMLab model named {name!r}")
    url = urls[name]
    if url.startswith(("http://", "https://")):
        return load_from_http(url, map_location)
    return load_from_local(osp.join(_get_mmengine_home(), url), map_location)


def load_from_mmcls(filename: str, map_location: Any = None) -> Any:
    """``mmcls://NAME``: mmengine's mmcls model table, with mmcls's key renaming."""
    from mmengine.runner.checkpoint import _process_mmcls_checkpoint, get_mmcls_models

    name = filename.split("://", 1)[1]
    urls = get_mmcls_models()
    if name not in urls:
        raise KeyError(f"{filename}: mmengine knows no mmcls model named {name!r}")
    return _process_mmcls_checkpoint(load_from_http(urls[name], map_location))


def load_from_pavi(filename: str, map_location: Any = None) -> Any:
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


def load_from_object_storage(filename: str, map_location: Any = None, backend: str = "petrel") -> Any:
    """``s3://`` / ``petrel://``: fetch the bytes with mmengine's file backend, then load them safely."""
    from mmengine.fileio import get_file_backend

    data = get_file_backend(filename, backend_args={"backend": backend}).get(filename)
    with io.BytesIO(data) as buffer:
        buffer.name = filename  # named in error messages
        return load_checkpoint_file(buffer, map_location)


# mmengine 0.10.7's schemes (runner/checkpoint.py) -> the safe loader for each. The loaders are named
# ``load_from_<backend>`` as mmengine's are: ``CheckpointLoader.load_checkpoint`` logs
# ``Loads checkpoint by {loader.__name__[10:]} backend``, so ``_load_local`` was logged as "by l backend".
SAFE_LOADERS: dict[str, Any] = {
    "": load_from_local,
    "http://": load_from_http,
    "https://": load_from_http,
    "pavi://": load_from_pavi,
    r"(\S+\:)?s3://": load_from_object_storage,
    r"(\S+\:)?petrel://": load_from_object_storage,
    "modelzoo://": load_from_torchvision,
    "torchvision://": load_from_torchvision,
    "open-mmlab://": load_from_openmmlab,
    "openmmlab://": load_from_openmmlab,
    "mmcls://": load_from_mmcls,
}


def _refuse_unknown_scheme(prefix: str) -> Any:
    def load(filename: str, map_location: Any = None, *args: Any, **kwargs: Any) -> Any:
        raise UnsafeCheckpointError(
            f"refusing to load checkpoint {filename}: its scheme {prefix!r} has no weights-only loader in "
            "cpvt_mm (mmengine's own loader for it would unpickle with weights_only=False)"
        )

    load.__name__ = "load_from_refused"  # mmengine logs the name minus its first 10 characters
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


def apply() -> bool:
    patch_checkpoint_loading()
    patch_checkpoint_saving()
    return True
