# Twins-PCPVT-S RetinaNet, 1x schedule (paper: 43.0 box AP).
_base_ = "./_base_/retinanet_fpn_1x_coco.py"

checkpoint = "work_dirs/pretrained/pcpvt-small_in1k.pth"  # converted ImageNet weights, docs/detection.md
model = dict(backbone=dict(type="cpvt_mm.PCPVT", arch="small", init_cfg=dict(checkpoint=checkpoint)))
