# Placement ablation: the PEG on the patch embedding, before block 0 (the paper's position -1, Table 6:
# 70.6 vs 72.4 after block 0 on ImageNet with DeiT-Ti).
_base_ = ["./_base_/fmnist-native28.py"]

model = dict(backbone=dict(peg_positions=("embed",), abs_pos_embed=None))
