# Twins-PCPVT-L Mask R-CNN, ms-3x schedule (no published number).
_base_ = "./_base_/mask-rcnn_fpn_ms-3x_coco.py"

checkpoint = "work_dirs/pretrained/pcpvt-large_in1k.pth"  # converted ImageNet weights, docs/detection.md
model = dict(backbone=dict(type="cpvt_mm.PCPVT", arch="large", init_cfg=dict(checkpoint=checkpoint)))
