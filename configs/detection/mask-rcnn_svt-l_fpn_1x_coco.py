# Twins-SVT-L Mask R-CNN, 1x schedule (paper: 45.9 / 41.6 box / mask AP).
_base_ = "./_base_/mask-rcnn_fpn_1x_coco.py"

checkpoint = "work_dirs/pretrained/svt-large_in1k.pth"  # converted ImageNet weights, docs/detection.md
model = dict(
    backbone=dict(type="cpvt_mm.SVT", arch="large", init_cfg=dict(checkpoint=checkpoint)),
    neck=dict(in_channels=[128, 256, 512, 1024]),
)
