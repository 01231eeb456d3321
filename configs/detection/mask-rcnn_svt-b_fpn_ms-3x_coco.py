# Twins-SVT-B Mask R-CNN, ms-3x schedule (paper: 48.0 / 43.0 box / mask AP).
_base_ = "./_base_/mask-rcnn_fpn_ms-3x_coco.py"

checkpoint = "work_dirs/pretrained/svt-base_in1k.pth"  # converted ImageNet weights, docs/detection.md
model = dict(
    backbone=dict(type="cpvt_mm.SVT", arch="base", init_cfg=dict(checkpoint=checkpoint)),
    neck=dict(in_channels=[96, 192, 384, 768]),
)
