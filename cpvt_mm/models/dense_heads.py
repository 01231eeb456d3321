"""Dense detection heads that predict over each image's own grid, not over its batch padding.

At test time mmdet's anchor heads (``RPNHead``, ``RetinaHead`` ...) score every anchor of the padded batch's
feature maps, including the anchors that lie in another image's padding. Their scores were never trained
(training only uses anchors inside each image's own padded shape), and in ``RPNHead`` they compete for the
``nms_pre`` / ``max_per_img`` slots: measured on the toy set, a trained Mask R-CNN lost real proposals to them
and its second-best detection of an image (0.81 alone) was gone once the image was batched with a larger one.
The heads here crop every level to the image's own extent (``ceil(img_shape / stride)``, the grid the image
has alone) before the host's post-processing, so the anchors, and the candidates they compete with, are those
of the image alone.
"""

from __future__ import annotations

from typing import Any

from mmengine.model import BaseModule
from torch import Tensor

from ..registry import MODELS
from .host import host_subclass

__all__ = ["PaddingAwareRPNHead", "PaddingAwareRetinaHead"]


class PredictOverOwnGrid:
    """Run the host's ``predict_by_feat`` image by image on each level cropped to that image's grid."""

    def predict_by_feat(
        self,
        cls_scores: list[Tensor],
        bbox_preds: list[Tensor],
        score_factors: list[Tensor] | None = None,
        batch_img_metas: list[dict] | None = None,
        **kwargs: Any,
    ) -> list:
        strides = self.prior_generator.strides  # type: ignore[attr-defined]  # (stride_w, stride_h) per level
        results = []
        for i, meta in enumerate(batch_img_metas or []):
            h, w = meta["img_shape"][:2]

            def own(maps: list[Tensor] | None, i: int = i, h: int = h, w: int = w) -> list[Tensor] | None:
                # (B, C, H, W) -> (1, C, ceil(h / stride_h), ceil(w / stride_w)) for each level
                return (
                    None
                    if maps is None
                    else [m[i : i + 1, :, : -(-h // sh), : -(-w // sw)] for m, (sw, sh) in zip(maps, strides)]
                )

            results += super().predict_by_feat(  # type: ignore[misc]
                own(cls_scores), own(bbox_preds), own(score_factors), batch_img_metas=[meta], **kwargs
            )
        return results


@MODELS.register_module()
def PaddingAwareRPNHead(**kwargs: Any) -> BaseModule:
    """mmdet's ``RPNHead`` (same arguments) that proposes only from each image's own grid."""
    return host_subclass(PredictOverOwnGrid, "mmdet.models.dense_heads", "RPNHead", "PaddingAwareRPNHead")(**kwargs)


@MODELS.register_module()
def PaddingAwareRetinaHead(**kwargs: Any) -> BaseModule:
    """mmdet's ``RetinaHead`` (same arguments) that predicts only from each image's own grid."""
    return host_subclass(PredictOverOwnGrid, "mmdet.models.dense_heads", "RetinaHead", "PaddingAwareRetinaHead")(
        **kwargs
    )
