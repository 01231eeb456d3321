"""Fix ``numpy_in1d``: numpy 2.x removed ``np.in1d``.

Symptom without it: mmpretrain's retrieval / multi-label metrics still call ``np.in1d`` and fail with
``AttributeError`` on numpy >= 2.4. Fix: restore it as an alias of ``np.isin`` (same semantics for the 1-D
inputs they pass), only when missing.
"""

from __future__ import annotations

import numpy as np


def apply() -> bool:
    if hasattr(np, "in1d"):
        return False
    np.in1d = np.isin  # type: ignore[attr-defined]
    return True
