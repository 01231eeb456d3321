"""The Position Encoding Generator (PEG), CPVT's one idea: position from a depthwise conv over the token map."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .padding import Grid
from .utils import tokens_to_map

__all__ = ["PADDING_MODES", "PEG"]

PADDING_MODES = ("zeros", "circular", "replicate", "reflect")


class PEG(nn.Module):
    """Position Encoding Generator (CPVT, arXiv 2102.10882, Sec. 3.2).

    A ``k x k`` depthwise convolution with zero padding over the token map, added back to the tokens. The zero
    padding tells border tokens where they are; the kernel is local, so any token grid works.

    Args:
        dim, kernel_size: Token channels; the odd kernel size (3 in the paper).
        num_prefix_tokens: Leading tokens (e.g. the class token) passed through untouched.
        padding_mode: ``'zeros'`` (the paper's). ``'circular'``: no border, exactly shift-equivariant, the control
            separating position from local mixing; ``'replicate'`` / ``'reflect'`` as in torch. Refused with padded
            batches (each map must be padded at its own border).
        dilation: Tap spacing in tokens (1: the paper's); weights do not depend on it, so a model tested on images
            enlarged ``d`` times reads, dilated by ``d``, what it read in training (docs/experiments.md, claim 2).
    """

    def __init__(
        self, dim: int, kernel_size: int = 3, num_prefix_tokens: int = 0, padding_mode: str = "zeros", dilation: int = 1
    ) -> None:
        super().__init__()
        if kernel_size % 2 != 1:
            raise ValueError(f"PEG kernel_size must be odd so the map keeps its size, got {kernel_size}")
        if padding_mode not in PADDING_MODES:
            raise ValueError(f"PEG padding_mode must be one of {PADDING_MODES}, got {padding_mode!r}")
        self.num_prefix_tokens = num_prefix_tokens
        self.padding_mode = padding_mode
        self.proj = nn.Conv2d(dim, dim, kernel_size, padding=0, groups=dim)
        # The token map is a channels-last view, so the conv's weight gradient comes back channels-last:
        # (C, 1, k, k) with strides (k*k, 1, k, 1). Stored the same way (same memory order), the weight's strides
        # match its gradient's, and DDP's gradient buckets (laid out like the weights) need no strided copy.
        self.proj.weight = nn.Parameter(self.proj.weight.detach().to(memory_format=torch.channels_last))
        self.set_dilation(dilation)

    def set_dilation(self, dilation: int) -> None:
        """Space the kernel's taps ``dilation`` tokens apart (padding follows, so the map keeps its size)."""
        if isinstance(dilation, bool) or not isinstance(dilation, int) or dilation < 1:
            raise ValueError(f"PEG dilation must be a positive integer, got {dilation!r}")
        self.pad = dilation * (self.proj.kernel_size[0] // 2)
        self.proj.dilation = (dilation, dilation)
        if self.padding_mode == "zeros":
            self.proj.padding = (self.pad, self.pad)

    def forward(self, x: Tensor, grid: Grid | tuple[int, int]) -> Tensor:
        """``(B, P + H*W, C)`` -> same; padded tokens of a padded batch read as zeros (an image's border) and stay 0."""
        grid = Grid.of(grid)
        prefix, tokens = x[:, : self.num_prefix_tokens], x[:, self.num_prefix_tokens :]
        H, W = grid.hw
        if tokens.shape[1] != H * W:
            raise ValueError(f"PEG got {tokens.shape[1]} tokens for a {H}x{W} map")
        if grid.padded and self.padding_mode != "zeros":
            raise ValueError(
                f"PEG with padding_mode={self.padding_mode!r} cannot run a padded batch (valid_sizes): it would pad "
                "each image at the batch's border, not at its own. Run such images one at a time or at one size"
            )
        feat = tokens_to_map(grid.zero_tokens(tokens), grid.hw)  # (B, N, C) -> (B, C, H, W)
        # the conv pads zeros itself; the other modes pad the map's own border first (the conv then pads nothing)
        out = self.proj(feat if self.padding_mode == "zeros" else F.pad(feat, (self.pad,) * 4, mode=self.padding_mode))
        out += feat  # in place: the conv's backward needs its input, not its output
        tokens = grid.zero_tokens(out.flatten(2).transpose(1, 2))  # (B, C, H, W) -> (B, N, C)
        return torch.cat((prefix, tokens), dim=1) if self.num_prefix_tokens else tokens
