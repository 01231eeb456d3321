"""Compatibility fixes for the pinned OpenMMLab 2.x stack on modern PyTorch / numpy.

``import cpvt_mm`` applies them once (so does ``custom_imports=['cpvt_mm']`` in a host config). Each fix is one
module of this package that names the symptom it cures, is a no-op where the symptom cannot occur, and has a
test in ``tests/test_compat.py`` that shows the symptom with the fix switched off:

=================== ==========================================================================================
``torchvision_cpu`` torchvision importable on a CPU-only torch (pure-PyTorch ``nms``); a no-op on GPU builds
``mmcv_ops``        ``mmcv.ops`` on an mmcv without compiled ops: nms, roi_align and sigmoid focal loss from
                    torchvision / PyTorch, every other op a one-line error when called; inert with compiled ops
``mmpretrain_multimodal`` mmpretrain importable next to transformers 5 (its multimodal models become the
                    placeholders it registers without transformers)
``checkpoints``     every mmengine checkpoint scheme loads weights-only through a checked allow-list; saves are
                    atomic, durable and digested
``numpy_in1d``      ``np.in1d`` restored (removed in numpy 2.4, still called by mmpretrain's metrics)
``config_package``  ``cpvt_mm::`` config references resolve, also from an editable install
=================== ==========================================================================================

Opting out: ``CPVT_MM_COMPAT_DISABLE=numpy_in1d,torchvision_cpu`` (comma-separated names, before the first
``import cpvt_mm``) skips those fixes. ``python -m cpvt_mm.compat`` prints what an import applied and why; the
same line goes to the ``cpvt_mm.compat`` logger (INFO), and disabling ``checkpoints`` is logged as a warning
because it reopens code execution through URL checkpoints.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass

from ..checkpoint import (
    CheckpointError,
    CorruptCheckpointError,
    UnsafeCheckpointError,
    load_checkpoint_file,
    safe_checkpoint_globals,
)
from . import checkpoints, config_package, mmcv_ops, mmpretrain_multimodal, numpy2, torchvision_cpu
from .torchvision_cpu import patch_torchvision

__all__ = [
    "DISABLE_ENV",
    "FIXES",
    "CheckpointError",
    "CorruptCheckpointError",
    "Fix",
    "UnsafeCheckpointError",
    "apply",
    "load_checkpoint_file",
    "patch_torchvision",
    "safe_checkpoint_globals",
    "status",
    "summary",
]

DISABLE_ENV = "CPVT_MM_COMPAT_DISABLE"
logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Fix:
    """One compatibility fix: ``apply()`` returns True when it changed something, False when not needed."""

    name: str
    why: str
    apply: Callable[[], bool]


FIXES: tuple[Fix, ...] = (
    Fix("torchvision_cpu", "torchvision's CUDA build does not import on a CPU-only torch", torchvision_cpu.apply),
    Fix("mmcv_ops", "mmcv 2.1 has no compiled ops for current torch/CUDA; mmdet/mmseg import them", mmcv_ops.apply),
    Fix(
        "mmpretrain_multimodal",
        "mmpretrain 1.2's multimodal models fail to import under transformers 5",
        mmpretrain_multimodal.apply,
    ),
    Fix("checkpoints", "mmengine's URL loaders unpickle unsafely; its saves are not atomic", checkpoints.apply),
    Fix("numpy_in1d", "numpy 2.4 removed np.in1d, which mmpretrain's metrics call", numpy2.apply),
    Fix("config_package", "mmengine does not resolve cpvt_mm:: config references", config_package.apply),
)

_STATUS: dict[str, str] = {}  # name -> "applied" | "not needed" | "disabled"


def disabled_fixes() -> set[str]:
    """The fix names listed in ``$CPVT_MM_COMPAT_DISABLE``; an unknown name is an error, not a silent no-op."""
    names = {n.strip() for n in os.environ.get(DISABLE_ENV, "").split(",") if n.strip()}
    unknown = names - {f.name for f in FIXES}
    if unknown:
        raise ValueError(
            f"{DISABLE_ENV} names unknown fixes {sorted(unknown)}; known: {', '.join(f.name for f in FIXES)}"
        )
    return names


def apply() -> dict[str, str]:
    """Apply every fix not disabled, once (idempotent); returns each fix's status."""
    if _STATUS:
        return dict(_STATUS)
    off = disabled_fixes()
    for fix in FIXES:
        if fix.name in off:
            _STATUS[fix.name] = "disabled"
        else:
            _STATUS[fix.name] = "applied" if fix.apply() else "not needed"
    logger.info(summary())
    if "checkpoints" in off:
        logger.warning(
            "cpvt_mm.compat: 'checkpoints' disabled via %s: mmengine's URL checkpoint loaders unpickle with "
            "weights_only=False again, and its saves are not atomic",
            DISABLE_ENV,
        )
    return dict(_STATUS)


def status() -> dict[str, str]:
    """Each fix's status after :func:`apply`."""
    return dict(_STATUS)


def summary() -> str:
    """One line: which fixes the import applied, which were not needed, which were switched off."""
    groups: dict[str, list[str]] = {}
    for name, state in _STATUS.items():
        groups.setdefault(state, []).append(name)
    parts = [f"{state}: {', '.join(names)}" for state, names in groups.items()]
    return f"cpvt_mm.compat fixes {'; '.join(parts)} (opt out with {DISABLE_ENV}=name,...)"


apply()
