# Semantic FPN on a cpvt_mm pyramid backbone (Twins-PCPVT / Twins-SVT), ADE20K, 512x512 crops, 80k iterations.
# The authors' recipe (PVT's Semantic FPN setting): AdamW lr 1e-4, wd 1e-4, poly decay (power 0.9) to 0.
# (mmseg's own Twins FPN configs keep schedule_80k's eta_min=1e-4, i.e. a constant lr of 1e-4.)
# PEG and LayerNorm parameters train without weight decay: 'peg' matches cpvt_mm's `stages.{s}.peg.proj.*`
# (mmseg's key 'pos_block' matches no parameter of its own Twins) and 'norm' every LayerNorm in the backbone.
#
# Backbone outputs: all four stages, each through its own LayerNorm (out_norms=True). The authors' dense
# wrapper feeds un-normalised stage maps to the FPN and keeps its final norm as an unused parameter; here
# every stage map is normalised before the FPN's lateral 1x1 convs (no norm of their own), as Swin / PVTv2 /
# SegFormer do, and every backbone parameter is used. The last stage's norm is the classifier's final norm
# (loaded from the checkpoint); the other three start at (1, 0).
#
# Stochastic depth 0.2; 0.3 where mmseg's Twins configs use it (the large-capacity children).
#
# Children set the arch, its pretrained checkpoint and the neck's input channels.
_base_ = [
    "mmseg::_base_/models/fpn_r50.py",
    "./datasets/ade20k.py",
    "mmseg::_base_/default_runtime.py",
    "mmseg::_base_/schedules/schedule_80k.py",
]
custom_imports = dict(imports=["cpvt_mm"], allow_failed_imports=False)

crop_size = (512, 512)
# Padding-aware batches (cpvt_mm.models.padding): an image's logits do not depend on its batch-mates or on the
# padding. Whole-image inference pads to the total stride (32) and mmseg crops the logits back, which keeps them
# pixel-aligned at any size (resizing stride-ceil'd logits onto a non-multiple side shifts them by a few px).
data_preprocessor = dict(type="cpvt_mm.PaddingAwareSegDataPreProcessor", size=crop_size, test_cfg=dict(size_divisor=32))
model = dict(
    data_preprocessor=data_preprocessor,
    pretrained=None,
    backbone=dict(
        _delete_=True,
        type="cpvt_mm.PCPVT",
        arch="small",
        out_indices=(0, 1, 2, 3),
        out_norms=True,
        drop_path_rate=0.2,
    ),
    neck=dict(in_channels=[64, 128, 320, 512], out_channels=256, num_outs=4),
    decode_head=dict(num_classes=150),
)

optim_wrapper = dict(
    _delete_=True,
    type="OptimWrapper",
    optimizer=dict(type="AdamW", lr=1e-4, betas=(0.9, 0.999), weight_decay=1e-4),
    paramwise_cfg=dict(custom_keys={"peg": dict(decay_mult=0.0), "norm": dict(decay_mult=0.0)}),
)
param_scheduler = [dict(type="PolyLR", eta_min=0.0, power=0.9, begin=0, end=80000, by_epoch=False)]

# 8 GPUs x 4 images
train_dataloader = dict(batch_size=4)
