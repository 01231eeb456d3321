# Twins-PCPVT-L RetinaNet, 1x schedule (paper: 45.1 box AP).
_base_ = "./_base_/retinanet_fpn_1x_coco.py"

checkpoint = "work_dirs/pretrained/pcpvt-large_in1k.pth"  # converted ImageNet weights, docs/detection.md
model = dict(backbone=dict(type="cpvt_mm.PCPVT", arch="large", init_cfg=dict(checkpoint=checkpoint)))
