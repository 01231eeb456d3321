# CPVT-T: one PEG after block 0, class token (paper Table 1).
_base_ = ["./_base_/models/cpvt.py", "./_base_/in1k_recipe.py"]

model = dict(backbone=dict(arch="tiny", drop_path_rate=0.1), head=dict(in_channels=192))
train_dataloader = dict(batch_size=256)
optim_wrapper = dict(optimizer=dict(lr=5e-4 * 2048 / 512))
