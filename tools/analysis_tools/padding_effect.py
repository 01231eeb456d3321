"""How much an image's detections depend on its batch-mate, with and without the padding-aware mode.

    python tools/analysis_tools/padding_effect.py PHOTO MATE --box X1 Y1 X2 Y2 [--iters 40]

Trains a Mask R-CNN from a shipped config (random init, one class) for a few steps on PHOTO with one box (and
its rectangle as the mask), so that its scores mean something, then runs PHOTO alone and in a batch with the
larger MATE, once through mmdet's own preprocessor and once through the padding-aware one the configs use.
Prints the backbone features' relative change inside the photo's region per stage, and the change of the
top detections (scores, box corners, mask IoU). docs/detection.md records a run.
"""

from __future__ import annotations

import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

import cv2
import numpy as np
import torch

import cpvt_mm  # noqa: F401  (compat layer and registries)


def sample(image: np.ndarray, box: list[float] | None = None):
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
            bboxes=torch.tensor([box], dtype=torch.float32), labels=torch.tensor([0]), masks=BitmapMasks(mask, h, w)
        )
    return s


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("photo")
    p.add_argument("mate", help="a larger image to batch the photo with")
    p.add_argument("--box", nargs=4, type=float, required=True, help="x1 y1 x2 y2 of the object in PHOTO")
    p.add_argument("--config", default="configs/detection/mask-rcnn_pcpvt-s_fpn_1x_coco.py")
    p.add_argument("--iters", type=int, default=40)
    args = p.parse_args()
    from mmdet.registry import MODELS
    from mmengine.config import Config
    from mmengine.logging import MMLogger
    from mmengine.optim import OptimWrapper
    from mmengine.registry import DefaultScope

    cfg = Config.fromfile(args.config)
    cfg.model.backbone.init_cfg = None
    cfg.model.roi_head.bbox_head.num_classes = cfg.model.roi_head.mask_head.num_classes = 1
    torch.manual_seed(0)
    with DefaultScope.overwrite_default_scope("mmdet"):
        det = MODELS.build(cfg.model)
        plain_prep = MODELS.build({**cfg.model.data_preprocessor, "type": "DetDataPreprocessor"})
    MMLogger.get_current_instance().setLevel("WARNING")  # init_weights reports every parameter at INFO
    det.init_weights()
    aware_prep = det.data_preprocessor
    photo, mate = (torch.from_numpy(cv2.imread(f)).permute(2, 0, 1).contiguous() for f in (args.photo, args.mate))
    optim = OptimWrapper(torch.optim.AdamW(det.parameters(), lr=1e-4, weight_decay=1e-4))
    det.train()
    for i in range(args.iters):
        log = det.train_step(dict(inputs=[photo], data_samples=[sample(cv2.imread(args.photo), args.box)]), optim)
        if i % 10 == 0 or i == args.iters - 1:
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
    print(f"\nphoto {shape[0]}x{shape[1]}, batched with {tuple(mate.shape[-2:])}, {args.iters} training steps")


if __name__ == "__main__":
    main()
