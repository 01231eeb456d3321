# A small CPVT (the demo's model: 64 wide, 4 blocks, patch 4) on a folder of your own SMALL images, e.g.
# 32x32 grayscale digits or shapes: docs/custom_data.md walks through it. Everything not set here is the
# Fashion-MNIST demo config it derives from. Change the marked settings to your data; tools/train.py and
# tools/test.py check them before training (split and class folders, unreadable images, num_classes, image
# channels against the model, the schedule against max_epochs).
_base_ = "../demo/cpvt-mini-peg_1xb128_fashion-mnist.py"

# (1) where the data is: <data_root><train_dir><class>/*.png and <data_root><val_dir><class>/*.png
data_root = "data/my_images/"
train_dir, val_dir = "train/", "val/"
# (2) the class names = the class folder names, in label order. Read once, here: every split is numbered by
#     this one list (mmpretrain's CustomDataset numbers each split by its own folders instead)
classes = ("circle", "cross", "square", "triangle")
# (3) the size the network sees (every image is resized to img_size x img_size) and the channels it reads:
#     1 = grayscale (images are loaded with color_type="grayscale"), 3 = colour
img_size = 32
in_channels = 1
# (4) the length of the run: warm-up (first 10%) and cosine decay (the rest) are fractions of it
#     (cpvt_mm.WarmupCosineLR), so any max_epochs is valid, e.g. --cfg-options train_cfg.max_epochs=5
max_epochs = 30
lr, batch_size = 2e-3, 32

num_classes = len(classes)
color_type = "grayscale" if in_channels == 1 else "color"
dataset_type = "cpvt_mm.ClassFolderDataset"
metainfo = dict(classes=classes)

model = dict(
    data_preprocessor=dict(
        num_classes=num_classes, mean=[127.5] * in_channels, std=[127.5] * in_channels, to_rgb=in_channels == 3
    ),
    backbone=dict(in_channels=in_channels),
    head=dict(num_classes=num_classes),
)

# Add dict(type="RandomFlip", prob=0.5, direction="horizontal") when a mirrored image keeps its class (it
# does not for digits or letters).
train_pipeline = [
    dict(type="LoadImageFromFile", color_type=color_type),
    dict(type="RandomResizedCrop", scale=img_size, crop_ratio_range=(0.6, 1.0)),
    dict(type="PackInputs"),
]
# The Resize is also the step tools/analysis_tools/eval_resolutions.py re-sizes to test other sizes.
test_pipeline = [
    dict(type="LoadImageFromFile", color_type=color_type),
    dict(type="Resize", scale=(img_size, img_size)),
    dict(type="PackInputs"),
]
# `_delete_=True`: the demo's loaders read Fashion-MNIST files (split=..., download=...), which a folder
# dataset does not take. The demo has no val loader, so val_dataloader is new and needs no `_delete_`.
train_dataloader = dict(
    _delete_=True,
    batch_size=batch_size,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type="DefaultSampler", shuffle=True),
    dataset=dict(
        type=dataset_type, data_root=data_root, data_prefix=train_dir, metainfo=metainfo, pipeline=train_pipeline
    ),
)
val_dataloader = dict(
    batch_size=64,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type="DefaultSampler", shuffle=False),
    dataset=dict(
        type=dataset_type, data_root=data_root, data_prefix=val_dir, metainfo=metainfo, pipeline=test_pipeline
    ),
)
test_dataloader = dict(val_dataloader, _delete_=True)
val_evaluator = dict(type="Accuracy", topk=(1,))
test_evaluator = val_evaluator

optim_wrapper = dict(optimizer=dict(lr=lr))
# No `end`: the runner sets it to max_epochs, so the cycle always spans the whole run.
param_scheduler = [
    dict(type="cpvt_mm.WarmupCosineLR", warmup_fraction=0.1, eta_min=1e-5, by_epoch=True, convert_to_iter_based=True),
]
train_cfg = dict(by_epoch=True, max_epochs=max_epochs, val_interval=5)
val_cfg = dict()
default_hooks = dict(logger=dict(interval=10), checkpoint=dict(interval=1, max_keep_ckpts=1))
