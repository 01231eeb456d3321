# UperNet (+ FCN auxiliary head on the stride-16 map) on a cpvt_mm pyramid backbone (Twins-PCPVT /
# Twins-SVT), ADE20K, 512x512 crops, 160k iterations. The authors' recipe (Swin's UperNet setting): AdamW
# lr 6e-5, betas (0.9, 0.999), wd 0.01, 1500-iteration linear warm-up, then poly (power 1) to 0; 16 images
# per batch (8 GPUs x 2). PEG and LayerNorm parameters train without weight decay ('peg' matches cpvt_mm's
# `stages.{s}.peg.proj.*`, 'norm' every LayerNorm in the backbone).
#
# Backbone outputs: all four stages, each through its own LayerNorm (out_norms=True); see
# twins_fpn_80k_ade20k-512x512.py for why. Every parameter is used: no find_unused_parameters.
#
# Stochastic depth 0.2; 0.3 where mmseg's Twins configs use it (the large-capacity children).
#
# Children set the arch, its pretrained checkpoint and the heads' input channels.
_base_ = [
    "mmseg::_base_/models/upernet_r50.py",
    "./datasets/ade20k.py",
    "mmseg::_base_/default_runtime.py",
    "mmseg::_base_/schedules/schedule_160k.py",
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
    decode_head=dict(in_channels=[64, 128, 320, 512], num_classes=150),
    auxiliary_head=dict(in_channels=320, in_index=2, num_classes=150),
)

optim_wrapper = dict(
    _delete_=True,
    type="OptimWrapper",
    optimizer=dict(type="AdamW", lr=6e-5, betas=(0.9, 0.999), weight_decay=0.01),
    paramwise_cfg=dict(custom_keys={"peg": dict(decay_mult=0.0), "norm": dict(decay_mult=0.0)}),
)
param_scheduler = [
    dict(type="LinearLR", start_factor=1e-6, by_epoch=False, begin=0, end=1500),
    dict(type="PolyLR", eta_min=0.0, power=1.0, by_epoch=False, begin=1500, end=160000),
]

# 8 GPUs x 2 images
train_dataloader = dict(batch_size=2)
