# Semantic FPN + Twins-PCPVT-S on a segmentation dataset of your own (docs/custom_data.md).
# ADE20KDataset only takes ADE20K's class names and only reads .jpg images; your own data goes through
# mmseg's generic BaseSegDataset. Everything not set here is the shipped 80k recipe.
_base_ = "../pcpvt-s_fpn_fpnhead_8xb4-80k_ade20k-512x512.py"

# (1) where the data is: <data_root>/images/{train,val}/x.png with labels <data_root>/labels/{train,val}/x.png
data_root = "data/my_seg/"
img_suffix, seg_map_suffix = ".png", ".png"  # the suffixes of your images and of your label maps
# (2) class names and colours; label value k in the PNGs is classes[k], 255 is ignored
classes = ("background", "disc", "square")
palette = [[0, 0, 0], [220, 40, 40], [40, 200, 40]]
# label value 0 = "ignore" and classes start at 1 (ADE20K's convention)? then set reduce_zero_label=True
reduce_zero_label = False
# (3) sizes that must change together: the training crop and the data preprocessor's size (batches are
#     padded up to it); the test scale resizes whole images (keep ratio) before inference
crop_size = (256, 256)
scale = (1024, 256)

metainfo = dict(classes=classes, palette=palette)
model = dict(
    data_preprocessor=dict(size=crop_size),
    decode_head=dict(num_classes=len(classes)),
)
train_pipeline = [
    dict(type="LoadImageFromFile"),
    dict(type="LoadAnnotations"),  # reduce_zero_label comes from the dataset
    dict(type="RandomResize", scale=scale, ratio_range=(0.5, 2.0), keep_ratio=True),
    dict(type="RandomCrop", crop_size=crop_size, cat_max_ratio=0.75),
    dict(type="RandomFlip", prob=0.5),
    dict(type="PhotoMetricDistortion"),
    dict(type="PackSegInputs"),
]
test_pipeline = [
    dict(type="LoadImageFromFile"),
    dict(type="Resize", scale=scale, keep_ratio=True),
    dict(type="LoadAnnotations"),
    dict(type="PackSegInputs"),
]
dataset = dict(
    _delete_=True,
    type="BaseSegDataset",
    data_root=data_root,
    metainfo=metainfo,
    img_suffix=img_suffix,
    seg_map_suffix=seg_map_suffix,
    reduce_zero_label=reduce_zero_label,
)
train_dataloader = dict(
    batch_size=4,
    dataset=dict(
        dataset, data_prefix=dict(img_path="images/train", seg_map_path="labels/train"), pipeline=train_pipeline
    ),
)
val_dataloader = dict(
    dataset=dict(dataset, data_prefix=dict(img_path="images/val", seg_map_path="labels/val"), pipeline=test_pipeline)
)
test_dataloader = val_dataloader

# a short schedule for a small dataset
train_cfg = dict(type="IterBasedTrainLoop", max_iters=2000, val_interval=500)
param_scheduler = [dict(type="PolyLR", eta_min=0.0, power=0.9, begin=0, end=2000, by_epoch=False)]
default_hooks = dict(checkpoint=dict(type="CheckpointHook", by_epoch=False, interval=500))
