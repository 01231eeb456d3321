# Twins-PCPVT-B: PEG after the first block of every stage.
_base_ = ["./_base_/models/twins.py", "./_base_/in1k_recipe.py"]

model = dict(backbone=dict(type="cpvt_mm.PCPVT", arch="base", drop_path_rate=0.3), head=dict(in_channels=512))
train_dataloader = dict(batch_size=128)
optim_wrapper = dict(optimizer=dict(lr=5e-4 * 1024 / 512))
