"""How much an image's detections depend on its batch-mate, with and without the padding-aware mode.

Trains a Mask R-CNN from a shipped config (random init, one class) for a few steps on one photo with one box
(and its rectangle as the mask), so that its scores mean something, then runs the photo alone and in a batch
with a larger image, once through mmdet's own preprocessor and once through the padding-aware one the configs
use. Reports the backbone features' relative change inside the photo's region per stage, and the change of the
top detections (scores, box corners, mask IoU) as a Markdown table. docs/detection.md records a run;
``tools/analysis_tools/padding_effect.py`` is the command line.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

import cv2
import numpy as np
import torch

__all__ = ["measure_padding_effect", "sample"]

DEFAULT_CONFIG = "configs/detection/mask-rcnn_pcpvt-s_fpn_1x_coco.py"


def sample(image: np.ndarray, box: Sequence[float] | None = None):
    """An mmdet data sample of ``image``'s size, with ``box`` (and its rectangle as the mask) as ground truth."""
    from mmdet.structures import DetDataSample
    from mmdet.structures.mask import BitmapMasks
    from mmengine.structures import InstanceData

    h, w = image.shape[:2]
    s = DetDataSample(metainfo=dict(img_shape=(h, w), ori_shape=(h, w), scale_factor=(1.0, 1.0)))
    if box is not None:
        x1, y1, x2, y2 = (int(v) for v in box)
        mask = np.zeros((1, h, w), np.uint8)
        mask[0, y1:y2, x1:x2] = 1
        s.gt_instances = InstanceData(
            bboxes=torch.tensor([list(box)], dtype=torch.float32),
            labels=torch.tensor([0]),
            masks=BitmapMasks(mask, h, w),
        )
    return s


def measure_padding_effect(
    photo_path: str, mate_path: str, box: Sequence[float], config: str = DEFAULT_CONFIG, iters: int = 40
) -> None:
    """Train on ``photo_path`` for ``iters`` steps, then print the alone-vs-batched table (progress to stderr)."""
    from mmdet.registry import MODELS
    from mmengine.config import Config
    from mmengine.logging import MMLogger
    from mmengine.optim import OptimWrapper
    from mmengine.registry import DefaultScope

    cfg = Config.fromfile(config)
    cfg.model.backbone.init_cfg = None
    cfg.model.roi_head.bbox_head.num_classes = cfg.model.roi_head.mask_head.num_classes = 1
    torch.manual_seed(0)
    with DefaultScope.overwrite_default_scope("mmdet"):
        det = MODELS.build(cfg.model)
        plain_prep = MODELS.build({**cfg.model.data_preprocessor, "type": "DetDataPreprocessor"})
    MMLogger.get_current_instance().setLevel("WARNING")  # init_weights reports every parameter at INFO
    det.init_weights()
    aware_prep = det.data_preprocessor
    photo, mate = (torch.from_numpy(cv2.imread(f)).permute(2, 0, 1).contiguous() for f in (photo_path, mate_path))
    optim = OptimWrapper(torch.optim.AdamW(det.parameters(), lr=1e-4, weight_decay=1e-4))
    det.train()
    for i in range(iters):
        log = det.train_step(dict(inputs=[photo], data_samples=[sample(cv2.imread(photo_path), box)]), optim)
        if i % 10 == 0 or i == iters - 1:
            print(f"iter {i}: loss {sum(v for k, v in log.items() if k.startswith('loss')):.3f}", file=sys.stderr)
    det.eval()
    feats: list = []
    det.backbone.register_forward_hook(lambda m, i, o: feats.append(o))
    shape = tuple(photo.shape[-2:])
    print("| preprocessor | stage 0 | stage 1 | stage 2 | stage 3 | top-3 scores alone | top-3 scores batched "
          "| max box shift (px) | top mask IoU |\n|---|---|---|---|---|---|---|---|---|")  # fmt: skip
    for name, prep in (("mmdet DetDataPreprocessor", plain_prep), ("cpvt_mm PaddingAware", aware_prep)):
        det.data_preprocessor = prep
        runs = []
        for batch in ([photo], [photo, mate]):
            feats.clear()
            samples = [sample(b.permute(1, 2, 0).numpy()) for b in batch]
            with torch.no_grad():
                runs.append((det.test_step(dict(inputs=batch, data_samples=samples))[0].pred_instances, feats[0]))
        (alone, fa), (batched, fb) = runs
        change = [float((b[0, :, : a.shape[-2], : a.shape[-1]] - a[0]).norm() / a[0].norm()) for a, b in zip(fa, fb)]
        k = min(3, len(alone.scores), len(batched.scores))
        shift = (alone.bboxes[:k] - batched.bboxes[:k]).abs().max().item() if k else float("nan")
        ma, mb = alone.masks[0].bool(), batched.masks[0].bool()
        iou = float((ma & mb).sum() / (ma | mb).sum().clamp_min(1))
        scores = ["/".join(f"{v:.3f}" for v in r.scores[:3].tolist()) for r in (alone, batched)]
        cells = [f"{c:.1e}" for c in change] + scores + [f"{shift:.2f}", f"{iou:.3f}"]
        print(f"| {name} | " + " | ".join(cells) + " |")
    print(f"\nphoto {shape[0]}x{shape[1]}, batched with {tuple(mate.shape[-2:])}, {iters} training steps")
