# Semantic FPN + Twins-PCPVT-S, ADE20K 512x512, 80k iterations, 8 GPUs x 4 images.
_base_ = "./_base_/twins_fpn_80k_ade20k-512x512.py"

# ImageNet-1k backbone weights in cpvt_mm's layout: convert the authors' / timm's / mmseg's checkpoint
# with tools/model_converters/convert_checkpoint.py, or train configs/classification/pcpvt-small_8xb128_in1k.py
# (see docs/segmentation.md). Loaded by init_weights() at the start of training only.
checkpoint = "work_dirs/pretrained/pcpvt-small_in1k.pth"
model = dict(
    backbone=dict(
        type="cpvt_mm.PCPVT", arch="small", init_cfg=dict(type="Pretrained", checkpoint=checkpoint, prefix="backbone.")
    ),
)
