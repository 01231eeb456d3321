# RetinaNet + FPN on COCO with a cpvt_mm pyramid backbone: the Twins authors' 1x recipe. Single scale 1333x800,
# AdamW lr 1e-4, wd 1e-4, 12 epochs, lr x0.1 after epochs 8 and 11, 500-iteration linear warm-up; the FPN starts
# at stage 1 (start_level=1; stages count from 0) and builds P6/P7 with extra convs on the input map; total batch
# 16 (8 GPUs x 2 images). PEG and norm parameters train without weight decay ('peg' matches cpvt_mm's
# ``stages.{s}.peg.proj``). Children set the backbone type / arch, its checkpoint and the FPN in_channels;
# PCPVT-S is the default here.
_base_ = [
    "mmdet::_base_/models/retinanet_r50_fpn.py",
    "mmdet::_base_/datasets/coco_detection.py",
    "mmdet::_base_/schedules/schedule_1x.py",
    "mmdet::_base_/default_runtime.py",
]
custom_imports = dict(imports=["cpvt_mm"], allow_failed_imports=False)

model = dict(
    # Padding-aware batches (cpvt_mm.models.padding): padded positions never reach an image's own features.
    data_preprocessor=dict(type="cpvt_mm.PaddingAwareDetDataPreprocessor"),
    # ... and the dense head predicts over each image's own grid, not over the batch padding (same arguments).
    bbox_head=dict(type="cpvt_mm.PaddingAwareRetinaHead"),
    backbone=dict(
        _delete_=True,
        type="cpvt_mm.PCPVT",
        arch="small",
        out_indices=(0, 1, 2, 3),
        # FPN skips stage 0 (start_level=1), so its map gets no norm: an output norm nothing reads would be a
        # parameter without gradient (DDP would then need find_unused_parameters).
        out_norms=(False, True, True, True),
        drop_path_rate=0.2,  # the authors' detection backbones
        # ImageNet weights converted with tools/model_converters/convert_checkpoint.py (see docs/detection.md)
        init_cfg=dict(type="Pretrained", checkpoint="work_dirs/pretrained/pcpvt-small_in1k.pth", prefix="backbone."),
    ),
    neck=dict(in_channels=[64, 128, 320, 512], start_level=1, add_extra_convs="on_input", num_outs=5),
)

optim_wrapper = dict(
    optimizer=dict(_delete_=True, type="AdamW", lr=1e-4, betas=(0.9, 0.999), weight_decay=1e-4),
    paramwise_cfg=dict(custom_keys={"peg": dict(decay_mult=0.0), "norm": dict(decay_mult=0.0)}),
)
