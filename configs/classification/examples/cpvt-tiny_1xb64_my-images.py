# CPVT-Ti (the paper's ImageNet model) on a folder of your own colour photos at 224x224: the ImageNet recipe
# of cpvt-tiny_8xb256_in1k.py (RandAugment, Mixup / CutMix, label smoothing, AdamW, warm-up + cosine) on
# your classes. For small images (32 px, grayscale) start from cpvt-mini_1xb32_my-small-images.py instead.
# docs/custom_data.md walks through it; tools/train.py and tools/test.py check the marked settings before
# training (split and class folders, unreadable images, num_classes, image channels, the schedule).
_base_ = "../cpvt-tiny_8xb256_in1k.py"

# (1) where the data is: <data_root><train_dir><class>/*.jpg and <data_root><val_dir><class>/*.jpg
data_root = "data/my_images/"
train_dir, val_dir = "train/", "val/"
# (2) the class names = the class folder names, in label order; every split is numbered by this one list
classes = ("circle", "cross", "square", "triangle")
# (3) the size the network sees (random crops of img_size in training, the centre img_size crop of the image
#     resized to img_size * 256 / 224 in testing) and the channels: 3 (colour, loaded as RGB)
img_size = 224
in_channels = 3
# (4) the length of the run: warm-up (first 5%) and cosine decay (cosine, the rest) are fractions of it
#     (cpvt_mm.WarmupCosineLR), so any max_epochs is valid
max_epochs = 100
batch_size = 64
lr = 5e-4 * batch_size / 512

num_classes = len(classes)
dataset_type = "cpvt_mm.ClassFolderDataset"
metainfo = dict(classes=classes)

model = dict(backbone=dict(in_channels=in_channels), head=dict(num_classes=num_classes))
data_preprocessor = dict(num_classes=num_classes)  # Mixup / CutMix make one-hot targets of this many classes

train_pipeline = [
    dict(type="LoadImageFromFile"),
    dict(type="RandomResizedCrop", scale=img_size, backend="pillow", interpolation="bicubic"),
    dict(type="RandomFlip", prob=0.5, direction="horizontal"),
    dict(
        type="RandAugment",
        policies="timm_increasing",
        num_policies=2,
        total_level=10,
        magnitude_level=9,
        magnitude_std=0.5,
        hparams=dict(pad_val=[104, 116, 124], interpolation="bicubic"),
    ),
    dict(
        type="RandomErasing",
        erase_prob=0.25,
        mode="rand",
        min_area_ratio=0.02,
        max_area_ratio=1 / 3,
        fill_color=[103.53, 116.28, 123.675],
        fill_std=[57.375, 57.12, 58.395],
    ),
    dict(type="PackInputs"),
]
test_pipeline = [
    dict(type="LoadImageFromFile"),
    dict(type="ResizeEdge", scale=img_size * 256 // 224, edge="short", backend="pillow", interpolation="bicubic"),
    dict(type="CenterCrop", crop_size=img_size),
    dict(type="PackInputs"),
]
# `_delete_=True`: the base's ImageNet loaders carry ImageNet's fields (split=...) and sampler.
train_dataloader = dict(
    _delete_=True,
    batch_size=batch_size,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type="DefaultSampler", shuffle=True),
    dataset=dict(
        type=dataset_type, data_root=data_root, data_prefix=train_dir, metainfo=metainfo, pipeline=train_pipeline
    ),
)
val_dataloader = dict(
    _delete_=True,
    batch_size=batch_size,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type="DefaultSampler", shuffle=False),
    dataset=dict(
        type=dataset_type, data_root=data_root, data_prefix=val_dir, metainfo=metainfo, pipeline=test_pipeline
    ),
)
test_dataloader = val_dataloader
val_evaluator = dict(type="Accuracy", topk=(1,))
test_evaluator = val_evaluator

optim_wrapper = dict(optimizer=dict(lr=lr))
# No `end`: the runner sets it to max_epochs, so the cycle always spans the whole run.
param_scheduler = [
    dict(type="cpvt_mm.WarmupCosineLR", warmup_fraction=0.05, eta_min=1e-5, by_epoch=True, convert_to_iter_based=True),
]
train_cfg = dict(by_epoch=True, max_epochs=max_epochs, val_interval=5)
default_hooks = dict(checkpoint=dict(interval=5, max_keep_ckpts=2, save_best="auto"))
