# RetinaNet 3x with multi-scale training (the Twins authors' 3x recipe): shorter side drawn from 480..800 in steps
# of 32, longer side at most 1333; AdamW lr 1e-4, wd 0.05; 36 epochs, lr x0.1 after epochs 27 and 33. The
# authors also mixed in a DETR-style random-crop branch (mmdet's `ms-crop-3x` pipelines); see docs/detection.md.
_base_ = "./retinanet_fpn_1x_coco.py"

train_pipeline = [
    dict(type="LoadImageFromFile", backend_args={{_base_.backend_args}}),
    dict(type="LoadAnnotations", with_bbox=True),
    dict(
        type="RandomChoiceResize",
        scales=[(1333, 480), (1333, 512), (1333, 544), (1333, 576), (1333, 608), (1333, 640),
                (1333, 672), (1333, 704), (1333, 736), (1333, 768), (1333, 800)],
        keep_ratio=True,
    ),
    dict(type="RandomFlip", prob=0.5),
    dict(type="PackDetInputs"),
]  # fmt: skip
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))

max_epochs = 36
train_cfg = dict(max_epochs=max_epochs)
param_scheduler = [
    dict(type="LinearLR", start_factor=0.001, by_epoch=False, begin=0, end=500),
    dict(type="MultiStepLR", begin=0, end=max_epochs, by_epoch=True, milestones=[27, 33], gamma=0.1),
]
optim_wrapper = dict(optimizer=dict(lr=1e-4, weight_decay=0.05))
