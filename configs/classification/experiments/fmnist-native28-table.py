# DeiT's learned absolute position table for the 7x7 training grid, resized bicubically to other grids.
_base_ = ["./_base_/fmnist-native28.py"]

model = dict(backbone=dict(peg_positions=(), abs_pos_embed=(7, 7)))
