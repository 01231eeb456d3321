# The position-encoding demo (tools/demo.py, `make demo`): a small plain CPVT on Fashion-MNIST, sized so one
# model trains in about 2.5 minutes on a 2-core CPU. 28x28 grayscale images, patch 4 -> a 7x7 token grid,
# global average pooling (no class token). The three demo configs inherit this file and change ONLY how the
# model learns where a token is (PEG / learned absolute table / nothing).
#
# Data: the four uncompressed IDX files in data/fashion_mnist/ (`bash scripts/get_fashion_mnist.sh` puts them
# there), read by mmpretrain's FashionMNIST with download=False. Two epochs over the first 50k of the 60k
# training images (the demo's time budget; far from converged, drop `indices` for all); all 10k test images.
_base_ = ["mmpretrain::_base_/default_runtime.py"]
custom_imports = dict(imports=["cpvt_mm"], allow_failed_imports=False)

model = dict(
    type="ImageClassifier",
    data_preprocessor=dict(type="ClsDataPreprocessor", num_classes=10, mean=[72.94], std=[90.02], to_rgb=False),
    backbone=dict(
        type="cpvt_mm.CPVT",
        arch=dict(embed_dims=64, depth=4, num_heads=2, mlp_ratio=2.0),
        in_channels=1,
        patch_size=4,
        with_cls_token=False,
        peg_positions=(0,),
        abs_pos_embed=None,
    ),
    neck=None,
    head=dict(
        type="LinearClsHead",
        num_classes=10,
        in_channels=64,
        loss=dict(type="LabelSmoothLoss", label_smooth_val=0.1, mode="original"),
        init_cfg=dict(type="TruncNormal", layer="Linear", std=0.02),
    ),
)

# mmpretrain's MNIST datasets pick the split from `test_mode`, not from `split`, so the test set needs both.
dataset_type = "mmpretrain.FashionMNIST"
data_root = "data/fashion_mnist"
# Random resized crops zoom in by up to 2x (a quarter of the area), as ImageNet's crops do, so a test image
# enlarged to 56 px shows objects at scales the models know, on a token grid (14x14) they have never seen:
# what changes is the grid, which is what the position encoding has to cope with.
train_pipeline = [
    dict(type="RandomResizedCrop", scale=28, crop_ratio_range=(0.25, 1.0)),
    dict(type="RandomFlip", prob=0.5, direction="horizontal"),
    dict(type="PackInputs"),
]
# A no-op at 28x28; it is the step tools/analysis_tools/eval_resolutions.py re-parameterises per test size.
test_pipeline = [dict(type="Resize", scale=(28, 28)), dict(type="PackInputs")]
train_dataloader = dict(
    batch_size=128,
    num_workers=1,
    persistent_workers=True,
    sampler=dict(type="DefaultSampler", shuffle=True),
    dataset=dict(
        type=dataset_type, data_root=data_root, split="train", download=False, indices=50000, pipeline=train_pipeline
    ),
)
test_dataloader = dict(
    batch_size=256,
    num_workers=1,
    persistent_workers=True,
    sampler=dict(type="DefaultSampler", shuffle=False),
    dataset=dict(
        type=dataset_type, data_root=data_root, split="test", test_mode=True, download=False, pipeline=test_pipeline
    ),
)
test_evaluator = dict(type="Accuracy", topk=(1,))
# No validation during training: the demo tests every model right after it (tools/test.py does the same).

optim_wrapper = dict(
    optimizer=dict(type="AdamW", lr=2e-3, weight_decay=0.05, betas=(0.9, 0.999)),
    paramwise_cfg=dict(norm_decay_mult=0.0, bias_decay_mult=0.0, flat_decay_mult=0.0),
    clip_grad=dict(max_norm=5.0),
)
param_scheduler = [
    dict(type="LinearLR", start_factor=0.01, by_epoch=False, end=100),
    dict(type="CosineAnnealingLR", eta_min=1e-5, by_epoch=False, begin=100),
]
train_cfg = dict(by_epoch=True, max_epochs=2)
test_cfg = dict()

default_hooks = dict(
    logger=dict(interval=50),
    checkpoint=dict(interval=1, max_keep_ckpts=1),
)
randomness = dict(seed=0, deterministic=False)
