# CPVT-S-GAP: no class token, average of the patch tokens, PEGs after blocks 0..4
# (the paper's best CPVT variant).
_base_ = ["./_base_/models/cpvt.py", "./_base_/in1k_recipe.py"]

model = dict(
    backbone=dict(arch="small", with_cls_token=False, peg_positions=(0, 1, 2, 3, 4), drop_path_rate=0.1),
    head=dict(in_channels=384),
)
train_dataloader = dict(batch_size=256)
optim_wrapper = dict(optimizer=dict(lr=5e-4 * 2048 / 512))
