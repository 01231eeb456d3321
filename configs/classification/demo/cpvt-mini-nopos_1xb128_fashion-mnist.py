# Demo model (c): no position information at all (no PEG, no table): with global average pooling the model
# sees the image as an unordered bag of patches.
_base_ = ["./_base_/cpvt-mini_fashion-mnist.py"]

model = dict(backbone=dict(peg_positions=(), abs_pos_embed=None))
