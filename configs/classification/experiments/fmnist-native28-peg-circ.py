# The control for claim 4 ("the zero padding is where a PEG's position comes from"): the PEG after block 0
# exactly as in fmnist-native28-peg.py, but padding the token map circularly. The map then has no border, the
# conv is equivariant to any shift of it, and the PEG can no longer tell a token where it is; what remains is
# its local mixing of neighbouring tokens. PEG (zeros) vs this: what position adds; this vs none: what the
# mixing adds.
_base_ = ["./_base_/fmnist-native28.py"]

model = dict(backbone=dict(peg_positions=(0,), abs_pos_embed=None, peg_padding_mode="circular"))
