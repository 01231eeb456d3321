# Twins-SVT-L: PEG after the first block of every stage.
_base_ = ["./_base_/models/twins.py", "./_base_/in1k_recipe.py"]

model = dict(backbone=dict(type="cpvt_mm.SVT", arch="large", drop_path_rate=0.5), head=dict(in_channels=1024))
train_dataloader = dict(batch_size=128)
optim_wrapper = dict(optimizer=dict(lr=5e-4 * 1024 / 512))
