# UperNet + Twins-SVT-S, ADE20K 512x512, 160k iterations, 8 GPUs x 2 images.
_base_ = "./_base_/twins_upernet_160k_ade20k-512x512.py"

# ImageNet-1k backbone weights in cpvt_mm's layout: convert the authors' / timm's / mmseg's checkpoint
# with tools/model_converters/convert_checkpoint.py, or train configs/classification/svt-small_8xb128_in1k.py
# (see docs/segmentation.md). Loaded by init_weights() at the start of training only.
checkpoint = "work_dirs/pretrained/svt-small_in1k.pth"
model = dict(
    backbone=dict(
        type="cpvt_mm.SVT", arch="small", init_cfg=dict(type="Pretrained", checkpoint=checkpoint, prefix="backbone.")
    ),
    decode_head=dict(in_channels=[64, 128, 256, 512]),
    auxiliary_head=dict(in_channels=256),
)
