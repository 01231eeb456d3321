"""Multi-resolution training for classification: a random input size per batch.

Only a model without a position table can do this without tricks: a CPVT sees a different token grid each
batch and its PEG adapts, where a ViT/DeiT would need its table interpolated every step.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from mmengine.model import BaseDataPreprocessor

from ..registry import MODELS

__all__ = ["MultiScaleTrainPreprocessor"]


@MODELS.register_module()
class MultiScaleTrainPreprocessor(BaseDataPreprocessor):
    """Wraps a toolkit's data preprocessor and resizes each *training* batch to a size drawn from ``sizes``.

    Resizing happens after the wrapped preprocessor (normalisation, Mixup/CutMix), on the whole batch, so
    one batch has one size. Only the images change, which is right for classification labels; detection
    and segmentation have their own target-aware multi-scale pipelines. Evaluation batches pass through
    untouched.

    Args:
        preprocessor: Config of the wrapped preprocessor, e.g. ``dict(type='mmpretrain.ClsDataPreprocessor',
            ...)``. Extra keyword arguments (such as the ``batch_augments`` that mmpretrain's
            ``ImageClassifier`` injects) are forwarded to it.
        sizes: Candidate sizes: ints (square) or ``(h, w)`` pairs. Empty or ``None`` disables resizing.
        seed: The size sequence comes from a generator seeded with this, so every rank of a distributed
            run draws the same size for the same step without communicating.
        mode: Interpolation mode for ``F.interpolate``.
    """

    def __init__(
        self,
        preprocessor: dict,
        sizes: Sequence[int | Sequence[int]] | None = None,
        seed: int = 0,
        mode: str = "bilinear",
        **kwargs,
    ) -> None:
        super().__init__()
        self.preprocessor = MODELS.build({**preprocessor, **kwargs})
        self.sizes = [(s, s) if isinstance(s, int) else tuple(s) for s in (sizes or [])]
        if any(len(s) != 2 or min(s) < 1 for s in self.sizes):
            raise ValueError(f"sizes must be positive ints or (h, w) pairs, got {sizes}")
        self.mode = mode
        self._generator = torch.Generator().manual_seed(seed)

    def forward(self, data: dict, training: bool = False) -> dict:
        data = self.preprocessor(data, training)
        if training and self.sizes:
            idx = int(torch.randint(len(self.sizes), (1,), generator=self._generator))
            inputs = data["inputs"]
            if tuple(inputs.shape[-2:]) != self.sizes[idx]:
                kw = {} if self.mode == "nearest" else {"align_corners": False}
                data["inputs"] = F.interpolate(inputs, size=self.sizes[idx], mode=self.mode, **kw)
        return data
