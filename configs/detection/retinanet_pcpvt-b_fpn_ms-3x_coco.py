# Twins-PCPVT-B RetinaNet, ms-3x schedule (paper: 46.4 box AP).
_base_ = "./_base_/retinanet_fpn_ms-3x_coco.py"

checkpoint = "work_dirs/pretrained/pcpvt-base_in1k.pth"  # converted ImageNet weights, docs/detection.md
model = dict(backbone=dict(type="cpvt_mm.PCPVT", arch="base", init_cfg=dict(checkpoint=checkpoint)))
