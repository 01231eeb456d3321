# Twins-SVT-B RetinaNet, 1x schedule (paper: 45.3 box AP).
_base_ = "./_base_/retinanet_fpn_1x_coco.py"

checkpoint = "work_dirs/pretrained/svt-base_in1k.pth"  # converted ImageNet weights, docs/detection.md
model = dict(
    backbone=dict(type="cpvt_mm.SVT", arch="base", init_cfg=dict(checkpoint=checkpoint)),
    neck=dict(in_channels=[96, 192, 384, 768]),
)
