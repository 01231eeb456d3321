"""Fix ``checkpoints``: every checkpoint mmengine loads or saves goes through cpvt_mm's safe path.

Symptoms without it, under torch >= 2.6 (``torch.load`` defaults to ``weights_only=True``):

- an mmengine ``Runner`` checkpoint holds a few non-tensor objects (``HistoryBuffer`` in the message hub,
  numpy arrays and scalars), so resume dies with ``UnpicklingError: Unsupported global:
  mmengine.logging.history_buffer.HistoryBuffer``;
- mmengine's URL loaders (``https://``, ``torchvision://``, ``open-mmlab://``, ``mmcls://`` ...) go through
  ``torch.hub.load_state_dict_from_url``, whose default ``weights_only=False`` runs whatever a downloaded file
  pickled;
- mmengine writes checkpoints in place, so a kill during a save leaves a truncated file.

Fix: this module only installs; the functions live in :mod:`cpvt_mm.checkpoint`. Every scheme mmengine
registers is re-registered with the package's loader for it (:data:`cpvt_mm.checkpoint.SAFE_LOADERS`, all
ending in :func:`cpvt_mm.checkpoint.load_checkpoint_file`: a checked allow-list, always ``weights_only=True``
explicitly, so ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD`` cannot reopen it); schemes cpvt_mm does not know are
refused. The ``save_checkpoint`` that mmengine's ``Runner`` and ``CheckpointHook`` call becomes
:func:`cpvt_mm.checkpoint.save_checkpoint_for_mmengine` (local files atomic and durable, with a tensor digest).
"""

from __future__ import annotations

from ..checkpoint.load import (  # noqa: F401  (the loaders' old import path)
    SAFE_LOADERS,
    UnsafeCheckpointError,
    _install_allow_list,
    _refuse_unknown_scheme,
    load_from_http,
    load_from_local,
    load_from_mmcls,
    load_from_object_storage,
    load_from_openmmlab,
    load_from_pavi,
    load_from_torchvision,
)
from ..checkpoint.save import save_checkpoint_for_mmengine

_safe_save_checkpoint = save_checkpoint_for_mmengine  # old private name


def patch_checkpoint_loading() -> None:
    """Route every scheme mmengine registered through the safe loader; refuse schemes we do not know."""
    from mmengine.runner.checkpoint import CheckpointLoader

    _install_allow_list()
    for prefix in list(CheckpointLoader._schemes):
        loader = SAFE_LOADERS.get(prefix) or _refuse_unknown_scheme(prefix)
        CheckpointLoader.register_scheme(prefixes=prefix, loader=loader, force=True)


def patch_checkpoint_saving() -> None:
    """Make the ``save_checkpoint`` that ``Runner.save_checkpoint`` and ``CheckpointHook`` call atomic."""
    import mmengine.hooks.checkpoint_hook as hook_module
    import mmengine.runner.runner as runner_module

    runner_module.save_checkpoint = save_checkpoint_for_mmengine
    hook_module.save_checkpoint = save_checkpoint_for_mmengine


def apply() -> bool:
    patch_checkpoint_loading()
    patch_checkpoint_saving()
    return True
