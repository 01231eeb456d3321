# Demo model (a): CPVT, one PEG after block 0 and no position table, the paper's default placement.
_base_ = ["./_base_/cpvt-mini_fashion-mnist.py"]

model = dict(backbone=dict(peg_positions=(0,), abs_pos_embed=None))
