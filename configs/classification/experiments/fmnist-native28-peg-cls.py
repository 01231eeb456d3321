# Class token instead of average pooling, one PEG after block 0: the paper's CPVT-Ti (72.4) vs CPVT-Ti-GAP
# (74.9). The head reads the class token; the PEG skips it (it only sees the patch-token map).
_base_ = ["./_base_/fmnist-native28.py"]

model = dict(backbone=dict(peg_positions=(0,), abs_pos_embed=None, with_cls_token=True))
