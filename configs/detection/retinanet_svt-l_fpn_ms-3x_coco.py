# Twins-SVT-L RetinaNet, ms-3x schedule (no published number).
_base_ = "./_base_/retinanet_fpn_ms-3x_coco.py"

checkpoint = "work_dirs/pretrained/svt-large_in1k.pth"  # converted ImageNet weights, docs/detection.md
model = dict(
    backbone=dict(type="cpvt_mm.SVT", arch="large", init_cfg=dict(checkpoint=checkpoint)),
    neck=dict(in_channels=[128, 256, 512, 1024]),
)
