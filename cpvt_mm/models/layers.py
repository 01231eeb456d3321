"""Building blocks shared by every cpvt_mm model: patch embedding, MLP, drop path, the pre-norm block, init.

The PEG lives in :mod:`.peg` and the attentions in :mod:`.attention` (one concept per file); they are
re-exported here for code that imported them from ``layers``.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .attention import (
    Attention,
    GlobalSubsampledAttention,
    LocallyGroupedAttention,
    set_fused_attn,
    use_fused_attn,
)
from .padding import Padding
from .peg import PEG
from .utils import is_symbolic, tokens_to_map

Size2D = tuple[int, int]

__all__ = [
    "PEG",
    "Attention",
    "DropPath",
    "GlobalSubsampledAttention",
    "LocallyGroupedAttention",
    "Mlp",
    "PatchEmbed",
    "TransformerBlock",
    "checkpoint_block",
    "init_weights_",
    "set_fused_attn",
    "tokens_to_map",
    "use_fused_attn",
]


class DropPath(nn.Module):
    """Stochastic depth: drops the whole residual branch per sample (Huang et al., 2016)."""

    def __init__(self, drop_prob: float = 0.0) -> None:
        super().__init__()
        self.drop_prob = float(drop_prob)

    def forward(self, x: Tensor) -> Tensor:
        if self.drop_prob == 0.0 or not self.training:
            return x
        keep = 1.0 - self.drop_prob
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
        return x * mask.div_(keep)

    def extra_repr(self) -> str:
        return f"drop_prob={self.drop_prob}"


class PatchEmbed(nn.Module):
    """Non-overlapping patch embedding: a conv with kernel = stride = ``patch_size``, then an optional norm.

    Sides that are not a multiple of ``patch_size`` are zero-padded at the bottom / right up to the next
    multiple (the token grid is ``ceil(H / p) x ceil(W / p)``), so no pixel is dropped. The authors' code
    instead floors (drops the last rows/columns); both agree whenever the side is a multiple.
    """

    def __init__(
        self, in_channels: int, embed_dim: int, patch_size: int, norm: bool = True, norm_eps: float = 1e-5
    ) -> None:
        super().__init__()
        self.patch_size = patch_size
        self.proj = nn.Conv2d(in_channels, embed_dim, kernel_size=patch_size, stride=patch_size)
        self.norm = nn.LayerNorm(embed_dim, eps=norm_eps) if norm else nn.Identity()

    def forward(self, x: Tensor, padding: Padding | None = None) -> tuple[Tensor, Size2D]:
        """``padding`` (of the input map): padded positions read as zeros, as beyond an image's border."""
        if padding is not None:
            x = padding.zero_map(x)
        p = self.patch_size
        pad_h, pad_w = -x.shape[-2] % p, -x.shape[-1] % p
        symbolic = is_symbolic(pad_h, pad_w)
        if x.device.type == "cpu" and not symbolic:
            # oneDNN's conv returns the layout it is given. A channels-last input (a copy of a 3-channel image;
            # free for the token maps of later stages, which are channels-last views) gives a channels-last
            # output, whose tokens below are contiguous; from an NCHW image they would not be, and the
            # LayerNorm would copy them forward and backward (3.5x the time of conv + norm at 512x512).
            x = x.contiguous(memory_format=torch.channels_last)  # F.pad keeps the layout
        if symbolic or pad_h or pad_w:  # symbolic (export, dynamic compile): always pad
            x = F.pad(x, (0, pad_w, 0, pad_h))
        x = self.proj(x)
        hw = (x.shape[-2], x.shape[-1])
        x = x.flatten(2).transpose(1, 2)  # (B, C, H, W) -> (B, H*W, C)
        return self.norm(x), hw


class Mlp(nn.Module):
    """Transformer feed-forward: Linear -> GELU -> Linear (dropout after each)."""

    def __init__(self, dim: int, hidden_dim: int, drop: float = 0.0) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden_dim)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden_dim, dim)
        self.drop = nn.Dropout(drop)

    def forward(self, x: Tensor) -> Tensor:
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))


class TransformerBlock(nn.Module):
    """Pre-norm transformer block: ``x + attn(norm1(x))``, then ``x + mlp(norm2(x))``.

    Args:
        attn: The token mixer; takes ``(x, hw, padding)``.
        norm_eps: LayerNorm eps (1e-6 in CPVT, PCPVT and SVT blocks).
    """

    def __init__(
        self,
        dim: int,
        attn: nn.Module,
        mlp_ratio: float = 4.0,
        drop: float = 0.0,
        drop_path: float = 0.0,
        norm_eps: float = 1e-6,
    ) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=norm_eps)
        self.attn = attn
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.norm2 = nn.LayerNorm(dim, eps=norm_eps)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), drop=drop)

    def forward(self, x: Tensor, hw: Size2D, padding: Padding | None = None) -> Tensor:
        x = x + self.drop_path(self.attn(self.norm1(x), hw, padding))
        return x + self.drop_path(self.mlp(self.norm2(x)))


def init_weights_(module: nn.Module) -> None:
    """The authors' initialisation: Linear trunc_normal(0.02); conv N(0, sqrt(2 / fan_out)); LN (1, 0).

    ``fan_out = k_h * k_w * out_channels / groups``, so depthwise PEG kernels get the same scale as the
    authors' ``PosCNN``.
    """
    if isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.Conv2d):
        fan_out = module.kernel_size[0] * module.kernel_size[1] * module.out_channels // module.groups
        nn.init.normal_(module.weight, 0.0, math.sqrt(2.0 / fan_out))
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


def checkpoint_block(fn: Callable[..., Tensor], *args) -> Tensor:
    """Activation checkpointing of one block call (recomputed in backward); non-tensor args (``hw``, padding) pass
    through, which the non-reentrant implementation allows."""
    return torch.utils.checkpoint.checkpoint(fn, *args, use_reentrant=False)
