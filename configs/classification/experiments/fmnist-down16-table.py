# DeiT's learned absolute position table for the 8x8 training grid, resized bicubically to other grids.
_base_ = ["./_base_/fmnist-down16.py"]

model = dict(backbone=dict(peg_positions=(), abs_pos_embed=(8, 8)))
