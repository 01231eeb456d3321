# No position information at all: no PEG, no table. With average pooling the model sees a bag of patches
# (only the content of a patch, e.g. background at the border, hints where it is).
_base_ = ["./_base_/fmnist-down16.py"]

model = dict(backbone=dict(peg_positions=(), abs_pos_embed=None))
