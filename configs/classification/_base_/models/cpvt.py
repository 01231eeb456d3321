# Plain CPVT classifier: class token (or GAP) -> LinearClsHead. No position table anywhere.
model = dict(
    type="ImageClassifier",
    backbone=dict(type="cpvt_mm.CPVT", arch="tiny", peg_positions=(0,), with_cls_token=True, drop_path_rate=0.1),
    neck=None,
    head=dict(
        type="LinearClsHead",
        num_classes=1000,
        in_channels=192,
        loss=dict(type="LabelSmoothLoss", label_smooth_val=0.1, mode="original"),
        init_cfg=dict(type="TruncNormal", layer="Linear", std=0.02),
        cal_acc=False,
    ),
    train_cfg=dict(augments=[dict(type="Mixup", alpha=0.8), dict(type="CutMix", alpha=1.0)]),
)
