# Twins-PCPVT-S Mask R-CNN, 1x schedule (paper: 42.9 / 40.0 box / mask AP).
_base_ = "./_base_/mask-rcnn_fpn_1x_coco.py"

checkpoint = "work_dirs/pretrained/pcpvt-small_in1k.pth"  # converted ImageNet weights, docs/detection.md
model = dict(backbone=dict(type="cpvt_mm.PCPVT", arch="small", init_cfg=dict(checkpoint=checkpoint)))
