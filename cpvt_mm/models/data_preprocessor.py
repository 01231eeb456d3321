"""Data preprocessors: multi-resolution classification batches, and padding-aware dense-task batches.

Only a model without a position table can take a different input size every batch without tricks: a CPVT sees
a different token grid each time and its PEG adapts, where a ViT/DeiT would need its table interpolated.
Detection and segmentation go further and put images of different sizes into one zero-padded batch; the
padding-aware preprocessors tell the backbone where each image ends (:mod:`cpvt_mm.models.padding`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from mmengine.model import BaseDataPreprocessor

from ..registry import MODELS
from .host import host_subclass
from .padding import attach

__all__ = ["MultiScaleTrainPreprocessor", "PaddingAwareDetDataPreprocessor", "PaddingAwareSegDataPreProcessor"]


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
        seed: Draw ``k`` comes from a generator seeded with ``(seed, k)``, so every rank of a distributed run
            draws the same size for the same step without communicating, and the count of draws so far is
            saved in the model's state dict (``data_preprocessor._extra_state``): a resumed run continues the
            sequence an uninterrupted run would have drawn instead of starting it over.
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
        self.seed = int(seed)
        self.draws = 0

    def get_extra_state(self) -> dict:
        return {"draws": self.draws}

    def set_extra_state(self, state: dict) -> None:
        self.draws = int(state["draws"])

    def _next_size(self) -> tuple[int, int]:
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.draws)
        self.draws += 1
        return self.sizes[int(torch.randint(len(self.sizes), (1,), generator=generator))]

    def forward(self, data: dict, training: bool = False) -> dict:
        data = self.preprocessor(data, training)
        if training and self.sizes:
            size = self._next_size()
            inputs = data["inputs"]
            if tuple(inputs.shape[-2:]) != size:
                kw = {} if self.mode == "nearest" else {"align_corners": False}
                data["inputs"] = F.interpolate(inputs, size=size, mode=self.mode, **kw)
        return data


# --------------------------------------------------------------------------- padding-aware dense batches
def _valid_sizes(data_in: dict, data_out: dict) -> list[tuple[int, int]]:
    """Each image's real ``(h, w)`` inside the padded batch ``data_out['inputs']``.

    ``img_shape`` in the data samples is authoritative (mmdet's batch augments and mmseg's ``stack_batch``
    keep it current); without data samples, the shapes of the unpadded input list are used.
    """
    inputs = data_out["inputs"]
    samples = data_out.get("data_samples")
    if samples is not None and all("img_shape" in s.metainfo for s in samples):
        sizes = [tuple(int(v) for v in s.metainfo["img_shape"][:2]) for s in samples]
    elif isinstance(data_in.get("inputs"), (list, tuple)):
        sizes = [tuple(int(v) for v in t.shape[-2:]) for t in data_in["inputs"]]
    else:  # already a stacked tensor: nothing was padded here
        sizes = [tuple(inputs.shape[-2:])] * inputs.shape[0]
    H, W = inputs.shape[-2:]
    return [(min(h, H), min(w, W)) for h, w in sizes]


class AttachValidSizes:
    """After the host's padding, attach each image's valid size to the batch tensor (``padding.attach``)."""

    def forward(self, data: dict, training: bool = False) -> dict:
        shapes = {"inputs": list(data["inputs"])} if isinstance(data.get("inputs"), (list, tuple)) else {}
        out = super().forward(data, training)  # type: ignore[misc]
        attach(out["inputs"], _valid_sizes(shapes, out))
        return out


@MODELS.register_module()
def PaddingAwareDetDataPreprocessor(**kwargs: Any) -> BaseDataPreprocessor:
    """mmdet's ``DetDataPreprocessor`` (same arguments) whose batches carry each image's valid size."""
    cls = host_subclass(
        AttachValidSizes, "mmdet.models.data_preprocessors", "DetDataPreprocessor", "PaddingAwareDetDataPreprocessor"
    )
    return cls(**kwargs)


@MODELS.register_module()
def PaddingAwareSegDataPreProcessor(**kwargs: Any) -> BaseDataPreprocessor:
    """mmseg's ``SegDataPreProcessor`` (same arguments) whose batches carry each image's valid size.

    Pair it with ``test_cfg=dict(size_divisor=32)``: whole-image inference then pads to the total stride and
    mmseg crops the logits back, which is pixel-aligned at any size once padding does not leak.
    """
    cls = host_subclass(
        AttachValidSizes, "mmseg.models.data_preprocessor", "SegDataPreProcessor", "PaddingAwareSegDataPreProcessor"
    )
    return cls(**kwargs)
