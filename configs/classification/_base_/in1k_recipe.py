# The CPVT / Twins ImageNet-1k recipe (DeiT's): AdamW, lr 5e-4 x batch / 512, wd 0.05, 300 epochs, cosine
# with 5 warm-up epochs, RandAugment m9 mstd0.5, Mixup 0.8 / CutMix 1.0 (in the model configs), label
# smoothing 0.1, random erasing 0.25, repeated augmentation, gradient clipping. PEG, norm, bias and class
# token parameters train without weight decay: the key 'peg' matches cpvt_mm's parameter names
# (``stages.{s}.peg.*`` and ``pegs.{i}.*``).
_base_ = [
    "mmpretrain::_base_/datasets/imagenet_bs64_swin_224.py",
    "mmpretrain::_base_/schedules/imagenet_bs1024_adamw_swin.py",
    "mmpretrain::_base_/default_runtime.py",
]
custom_imports = dict(imports=["cpvt_mm"], allow_failed_imports=False)

train_dataloader = dict(sampler=dict(_delete_=True, type="RepeatAugSampler", shuffle=True, num_repeats=3))

optim_wrapper = dict(
    optimizer=dict(lr=5e-4 * 1024 / 512),  # set per config from its total batch
    paramwise_cfg=dict(
        _delete_=True,
        norm_decay_mult=0.0,
        bias_decay_mult=0.0,
        flat_decay_mult=0.0,
        custom_keys={"peg": dict(decay_mult=0.0), "cls_token": dict(decay_mult=0.0)},
    ),
    clip_grad=dict(max_norm=5.0),
)
param_scheduler = [
    dict(type="LinearLR", start_factor=1e-3, by_epoch=True, end=5, convert_to_iter_based=True),
    dict(type="CosineAnnealingLR", eta_min=1e-5, by_epoch=True, begin=5),
]
train_cfg = dict(by_epoch=True, max_epochs=300, val_interval=10)
default_hooks = dict(checkpoint=dict(type="CheckpointHook", interval=10, max_keep_ckpts=3, save_best="auto"))
