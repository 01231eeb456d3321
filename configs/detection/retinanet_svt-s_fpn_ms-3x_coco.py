# Twins-SVT-S RetinaNet, ms-3x schedule (paper: 45.6 box AP).
_base_ = "./_base_/retinanet_fpn_ms-3x_coco.py"

checkpoint = "work_dirs/pretrained/svt-small_in1k.pth"  # converted ImageNet weights, docs/detection.md
model = dict(
    backbone=dict(type="cpvt_mm.SVT", arch="small", init_cfg=dict(checkpoint=checkpoint)),
    neck=dict(in_channels=[64, 128, 256, 512]),
)
