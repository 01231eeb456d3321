"""Building blocks shared by every cpvt_mm model: patch embedding, MLP, drop path, the pre-norm block, init (the
PEG is in :mod:`.peg`, the attentions in :mod:`.attention`)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .padding import Grid, Size2D
from .utils import is_symbolic

__all__ = ["DropPath", "Mlp", "PatchEmbed", "TransformerBlock", "init_weights_"]


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


class PatchEmbed(nn.Module):
    """Non-overlapping patch embedding: a conv with kernel = stride = ``patch_size``, then an optional LayerNorm.
    Sides are zero-padded at the bottom / right to multiples (a ``ceil`` grid: no pixel dropped; the authors floor)."""

    def __init__(self, in_channels: int, embed_dim: int, patch_size: int, norm: bool = True) -> None:
        super().__init__()
        self.patch_size = patch_size
        self.proj = nn.Conv2d(in_channels, embed_dim, kernel_size=patch_size, stride=patch_size)
        self.norm = nn.LayerNorm(embed_dim, eps=1e-5) if norm else nn.Identity()

    def forward(self, x: Tensor, grid: Grid | None = None) -> tuple[Tensor, Size2D]:
        """(B, C, H, W) -> tokens (B, h*w, C) and (h, w). In a padded batch (``grid``, the input map's), padded
        positions read as zeros, as beyond an image's border."""
        if grid is not None:
            x = grid.zero_map(x)
        p = self.patch_size
        pad_h, pad_w = -x.shape[-2] % p, -x.shape[-1] % p
        if is_symbolic(pad_h, pad_w) or pad_h or pad_w:  # symbolic (export, dynamic compile): always pad
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
    """Pre-norm transformer block: ``x + attn(norm1(x), grid)``, then ``x + mlp(norm2(x))`` (LayerNorm eps 1e-6)."""

    def __init__(self, dim: int, attn: nn.Module, mlp_ratio: float = 4.0, drop: float = 0.0, drop_path: float = 0.0):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = attn
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), drop=drop)
        self.with_cp = False  # set by the backbone's set_grad_checkpointing: recompute activations in backward

    def forward(self, x: Tensor, grid: Grid | Size2D) -> Tensor:
        if self.with_cp and self.training and x.requires_grad:  # non-reentrant: passes the grid (not a tensor) through
            return torch.utils.checkpoint.checkpoint(self._forward, x, grid, use_reentrant=False)
        return self._forward(x, grid)

    def _forward(self, x: Tensor, grid: Grid | Size2D) -> Tensor:
        x = x + self.drop_path(self.attn(self.norm1(x), grid))
        return x + self.drop_path(self.mlp(self.norm2(x)))


def init_weights_(module: nn.Module) -> None:
    """The authors' initialisation: Linear trunc_normal(0.02); conv N(0, sqrt(2 / fan_out)) with ``fan_out =
    k_h * k_w * out_channels / groups`` (depthwise PEGs get the authors' ``PosCNN`` scale); LayerNorm (1, 0)."""
    if isinstance(module, nn.Linear | nn.Conv2d) and module.bias is not None:
        nn.init.zeros_(module.bias)
    if isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=0.02)
    elif isinstance(module, nn.Conv2d):
        fan_out = module.kernel_size[0] * module.kernel_size[1] * module.out_channels // module.groups
        nn.init.normal_(module.weight, 0.0, math.sqrt(2.0 / fan_out))
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)
