"""The Position Encoding Generator (PEG), CPVT's one idea: position from a depthwise conv over the token map."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .padding import Padding
from .utils import tokens_to_map

Size2D = tuple[int, int]

__all__ = ["PADDING_MODES", "PEG"]

PADDING_MODES = ("zeros", "circular", "replicate", "reflect")


class PEG(nn.Module):
    """Position Encoding Generator (CPVT, arXiv 2102.10882, Sec. 3.2).

    A ``k x k`` depthwise convolution with zero padding over the token map, added back to the tokens.
    The zero padding is what gives tokens near the border a sense of absolute position, and because the
    kernel is local, any token grid works: nothing is tied to a training resolution.

    Args:
        dim: Token channels.
        kernel_size: Odd kernel size (3 in the paper).
        num_prefix_tokens: Leading tokens (e.g. the class token) passed through untouched.
        padding_mode: ``'zeros'`` (the paper's PEG). ``'circular'`` wraps the map around, so the conv has no
            border to see and is exactly equivariant to shifts of the map: the control that tells the PEG's
            position signal (from the zero border) apart from its local mixing of neighbouring tokens.
            ``'replicate'`` and ``'reflect'`` are accepted as well (torch's modes). A mode other than zeros
            pads each map at its own border, which a zero-padded batch (``valid_sizes``) cannot provide, so
            such a PEG refuses padded batches.
        dilation: Spacing of the kernel's taps, in tokens (1: the paper's PEG). The weights do not depend on
            it, so it can be changed on a trained model (:meth:`set_dilation`): a model trained on one image
            scale and tested on images enlarged ``d`` times sees each object ``d`` times as many tokens wide,
            and a PEG dilated by ``d`` reads the same parts of it as it did in training
            (docs/experiments.md, claim 2).
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
        # The conv pads zeros itself; the other modes pad the map first (forward), so the conv pads nothing.
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

    def forward(self, x: Tensor, hw: Size2D, padding: Padding | None = None) -> Tensor:
        """``padding``: padded tokens read as zeros (the border an image sees alone) and come out zero."""
        prefix, tokens = x[:, : self.num_prefix_tokens], x[:, self.num_prefix_tokens :]
        N = tokens.shape[1]
        H, W = hw
        if N != H * W:
            raise ValueError(f"PEG got {N} tokens for a {H}x{W} map")
        if padding is not None:
            if self.padding_mode != "zeros":
                raise ValueError(
                    f"PEG with padding_mode={self.padding_mode!r} cannot run a padded batch (valid_sizes): it "
                    "would pad each image at the batch's border, not at its own. Run such images one at a time "
                    "or at one size"
                )
            tokens = padding.zero_tokens(tokens)
        feat = tokens_to_map(tokens, hw)  # (B, N, C) -> (B, C, H, W)
        if self.padding_mode == "zeros":
            out = self.proj(feat)
        else:  # wrap / replicate / reflect the map's own border, then the conv (which pads nothing)
            out = self.proj(F.pad(feat, (self.pad,) * 4, mode=self.padding_mode))
        out += feat  # in place: the conv's backward needs its input, not its output
        tokens = out.flatten(2).transpose(1, 2)  # (B, C, H, W) -> (B, N, C)
        if padding is not None:
            tokens = padding.zero_tokens(tokens)
        return torch.cat((prefix, tokens), dim=1) if self.num_prefix_tokens else tokens
