# CPVT-Ti trained on a random resolution per batch (160..288), which only a model without a position table
# can do without interpolating anything. Same recipe otherwise; evaluate at any size with
# tools/analysis_tools/eval_resolutions.py.
_base_ = ["./cpvt-tiny_8xb256_in1k.py"]

model = dict(
    data_preprocessor=dict(
        type="cpvt_mm.MultiScaleTrainPreprocessor",
        preprocessor=dict(
            type="mmpretrain.ClsDataPreprocessor",
            num_classes=1000,
            mean=[123.675, 116.28, 103.53],
            std=[58.395, 57.12, 57.375],
            to_rgb=True,
        ),
        sizes=[160, 192, 224, 256, 288],
    )
)
