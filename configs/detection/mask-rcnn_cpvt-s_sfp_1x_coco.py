# Plain CPVT-S (DeiT-S shaped, one PEG after block 0, class token) as a Mask R-CNN backbone. A plain ViT has one
# stride-16 map, so a ViTDet-style simple feature pyramid (cpvt_mm.SimpleFeaturePyramid) makes strides 4-32 from
# it with deconvs / max-pool, plus a stride-64 level for the RPN. Same 1x recipe as the pyramid backbones
# (AdamW 2e-4, wd 1e-4, 12 epochs); the class token also trains without weight decay. No published number: the
# authors never released a detector for the plain CPVT.
_base_ = "./_base_/mask-rcnn_fpn_1x_coco.py"
custom_imports = dict(imports=["cpvt_mm"], allow_failed_imports=False)

checkpoint = "work_dirs/pretrained/cpvt-small_in1k.pth"  # an ImageNet CPVT-S trained with cpvt_mm, docs/detection.md
model = dict(
    backbone=dict(
        _delete_=True,
        type="cpvt_mm.CPVT",
        arch="small",
        out_type="featmap",  # (B, 384, H/16, W/16) patch tokens, class token dropped
        drop_path_rate=0.1,
        init_cfg=dict(type="Pretrained", checkpoint=checkpoint, prefix="backbone."),
    ),
    neck=dict(_delete_=True, type="cpvt_mm.SimpleFeaturePyramid", in_channels=384, out_channels=256, num_outs=5),
)
optim_wrapper = dict(paramwise_cfg=dict(custom_keys={"cls_token": dict(decay_mult=0.0)}))
