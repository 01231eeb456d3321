# Several PEGs: after blocks 0, 1 and 2 of 4 (the paper puts five after blocks 0..4 of 12: 73.4 vs 72.4).
_base_ = ["./_base_/fmnist-native28.py"]

model = dict(backbone=dict(peg_positions=(0, 1, 2), abs_pos_embed=None))
