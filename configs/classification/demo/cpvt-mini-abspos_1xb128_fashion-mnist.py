# Demo model (b): the DeiT baseline. A learned absolute position table for the 7x7 training grid and no PEG;
# at other input sizes the table is resized bicubically to the new grid (what DeiT / timm do).
_base_ = ["./_base_/cpvt-mini_fashion-mnist.py"]

model = dict(backbone=dict(peg_positions=(), abs_pos_embed=(7, 7)))
