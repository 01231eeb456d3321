# UperNet + plain CPVT-S (one PEG after block 0, class token), ADE20K 512x512, 160k iterations, 8 GPUs x 2
# images. A single-scale transformer feeds a pyramid head the way mmseg's ViT/DeiT UperNet configs do:
# the patch maps (stride 16) after blocks 2, 5, 8 and 11 (the last through the final norm) go through
# mmseg's MultiLevelNeck, which projects them (1x1 conv) and rescales them by 4, 2, 1, 0.5 to strides
# 4, 8, 16, 32. The recipe is the pyramid models' UperNet one, with the class token also free of weight decay.
# For the paper's stronger CPVT-S weights (PEGs after blocks 0..4, or CPVT-S-GAP without class token) set
# peg_positions=(0, 1, 2, 3, 4) (and with_cls_token=False) to match the checkpoint.
_base_ = "./_base_/twins_upernet_160k_ade20k-512x512.py"

# ImageNet-1k weights of configs/classification/cpvt-small_8xb256_in1k.py (the authors released none).
checkpoint = "work_dirs/pretrained/cpvt-small_in1k.pth"
model = dict(
    backbone=dict(
        _delete_=True,
        type="cpvt_mm.CPVT",
        arch="small",
        peg_positions=(0,),
        with_cls_token=True,
        out_type="featmap",
        out_indices=(2, 5, 8, 11),
        drop_path_rate=0.1,
        init_cfg=dict(type="Pretrained", checkpoint=checkpoint, prefix="backbone."),
    ),
    neck=dict(type="MultiLevelNeck", in_channels=[384, 384, 384, 384], out_channels=384, scales=[4, 2, 1, 0.5]),
    decode_head=dict(in_channels=[384, 384, 384, 384]),
    auxiliary_head=dict(in_channels=384, in_index=2),
)
optim_wrapper = dict(paramwise_cfg=dict(custom_keys={"cls_token": dict(decay_mult=0.0)}))
