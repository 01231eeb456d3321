# CPVT: one PEG after block 0 (the paper's default position 0), no table, average pooling (CPVT-GAP).
_base_ = ["./_base_/fmnist-down16.py"]

model = dict(backbone=dict(peg_positions=(0,), abs_pos_embed=None))
