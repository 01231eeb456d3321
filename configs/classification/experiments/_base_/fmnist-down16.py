# Protocol (b), the paper's situation: train on images DOWNSAMPLED to 16x16 (patch 2: an 8x8 token grid),
# then test at 20, 24 and 28 px, where each larger size shows more real detail of the same 28-px original, up
# to the native image (a 14x14 grid, 1.75x the training grid: CPVT's 224 -> 384 step on ImageNet is 1.71x).
# Apart from the input size and the patch size, everything is protocol (a)'s (fmnist-native28.py).
_base_ = ["./fmnist-native28.py"]

model = dict(backbone=dict(patch_size=2))
train_pipeline = [
    dict(type="RandomResizedCrop", scale=16, crop_ratio_range=(0.5, 1.0)),
    dict(type="RandomFlip", prob=0.5, direction="horizontal"),
    dict(type="PackInputs"),
]
# The 28-px test image resized to the training size; eval_resolutions scales this step to each test size.
test_pipeline = [dict(type="Resize", scale=(16, 16)), dict(type="PackInputs")]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = dict(dataset=dict(pipeline=test_pipeline))
