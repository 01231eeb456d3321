# Pyramid CPVT / SVT classifier: last stage (final LayerNorm) -> global average pool -> LinearClsHead.
model = dict(
    type="ImageClassifier",
    backbone=dict(type="cpvt_mm.PCPVT", arch="small", out_indices=(3,), drop_path_rate=0.2),
    neck=dict(type="GlobalAveragePooling"),
    head=dict(
        type="LinearClsHead",
        num_classes=1000,
        in_channels=512,
        loss=dict(type="LabelSmoothLoss", label_smooth_val=0.1, mode="original"),
        init_cfg=dict(type="TruncNormal", layer="Linear", std=0.02),
        cal_acc=False,
    ),
    train_cfg=dict(augments=[dict(type="Mixup", alpha=0.8), dict(type="CutMix", alpha=1.0)]),
)
