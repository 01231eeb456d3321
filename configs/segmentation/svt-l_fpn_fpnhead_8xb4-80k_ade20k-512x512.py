# Semantic FPN + Twins-SVT-L, ADE20K 512x512, 80k iterations, 8 GPUs x 4 images.
_base_ = "./_base_/twins_fpn_80k_ade20k-512x512.py"

# ImageNet-1k backbone weights in cpvt_mm's layout: convert the authors' / timm's / mmseg's checkpoint
# with tools/model_converters/convert_checkpoint.py, or train configs/classification/svt-large_8xb128_in1k.py
# (see docs/segmentation.md). Loaded by init_weights() at the start of training only.
checkpoint = "work_dirs/pretrained/svt-large_in1k.pth"
model = dict(
    backbone=dict(
        type="cpvt_mm.SVT",
        arch="large",
        drop_path_rate=0.3,
        init_cfg=dict(type="Pretrained", checkpoint=checkpoint, prefix="backbone."),
    ),
    neck=dict(in_channels=[128, 256, 512, 1024]),
)
