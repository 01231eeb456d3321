# ADE20K (data/ade/ADEChallengeData2016), mmseg's pipelines: RandomResize (2048, 512) x 0.5-2.0, RandomCrop
# 512 (cat_max_ratio 0.75), flip, PhotoMetricDistortion; single-scale test at short side 512 (keep ratio);
# the predictions are resized back to each image's own size before mIoU.
#
# Multi-scale + flip TTA: mmseg 1.x's tta_pipeline scales the *raw* image by the ratios, while its
# single-scale test (and mmseg 0.x's MultiScaleFlipAug, which produced the papers' ms numbers) resizes to
# (2048, 512) first. Here the ratios scale (2048, 512), as in the authors' multi-scale evaluation.
_base_ = ["mmseg::_base_/datasets/ade20k.py"]

img_scale = (2048, 512)
img_ratios = [0.5, 0.75, 1.0, 1.25, 1.5, 1.75]
tta_pipeline = [
    dict(type="LoadImageFromFile", backend_args=None),
    dict(
        type="TestTimeAug",
        transforms=[
            [
                dict(type="Resize", scale=(int(img_scale[0] * r), int(img_scale[1] * r)), keep_ratio=True)
                for r in img_ratios
            ],
            [
                dict(type="RandomFlip", prob=0.0, direction="horizontal"),
                dict(type="RandomFlip", prob=1.0, direction="horizontal"),
            ],
            [dict(type="LoadAnnotations")],
            [dict(type="PackSegInputs")],
        ],
    ),
]
