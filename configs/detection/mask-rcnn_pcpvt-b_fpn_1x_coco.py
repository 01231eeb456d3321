# Twins-PCPVT-B Mask R-CNN, 1x schedule (paper: 44.6 / 40.9 box / mask AP).
_base_ = "./_base_/mask-rcnn_fpn_1x_coco.py"

checkpoint = "work_dirs/pretrained/pcpvt-base_in1k.pth"  # converted ImageNet weights, docs/detection.md
model = dict(backbone=dict(type="cpvt_mm.PCPVT", arch="base", init_cfg=dict(checkpoint=checkpoint)))
