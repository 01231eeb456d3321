# CPVT-B with a PEG after each of blocks 0..4 (the paper's stronger variant).
_base_ = ["./_base_/models/cpvt.py", "./_base_/in1k_recipe.py"]

model = dict(backbone=dict(arch="base", peg_positions=(0, 1, 2, 3, 4), drop_path_rate=0.1), head=dict(in_channels=768))
train_dataloader = dict(batch_size=128)
optim_wrapper = dict(optimizer=dict(lr=5e-4 * 1024 / 512))
