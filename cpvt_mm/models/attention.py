"""The attentions: global (plain CPVT), global sub-sampled (Twins GSA) and locally-grouped (Twins LSA).

Each runs ``F.scaled_dot_product_attention`` (``fused_attn``, the default) or a reference path that spells out
``softmax(q k^T / sqrt(d)) v`` (analysis hooks its dropout to read the probabilities); :func:`set_fused_attn`
switches a whole model, and the tests check both paths agree under every mask.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from .padding import Grid
from .utils import dense, is_symbolic, tokens_to_map

__all__ = ["Attention", "GlobalSubsampledAttention", "LocallyGroupedAttention", "set_fused_attn", "use_fused_attn"]


def use_fused_attn() -> bool:
    """Default attention path for newly built modules: SDPA (:func:`set_fused_attn` changes a built model)."""
    return True


def set_fused_attn(model: nn.Module, enabled: bool) -> nn.Module:
    """Switch every cpvt_mm attention inside ``model`` between the SDPA and the reference path."""
    for module in (m for m in model.modules() if isinstance(m, _AttentionBase)):
        module.fused_attn = bool(enabled)
    return model


class _AttentionBase(nn.Module):
    def __init__(self, dim: int, num_heads: int, attn_drop: float, proj_drop: float) -> None:
        super().__init__()
        if dim % num_heads != 0:
            raise ValueError(f"dim {dim} must be divisible by num_heads {num_heads}")
        self.num_heads, self.head_dim = num_heads, dim // num_heads
        self.attn_drop = nn.Dropout(attn_drop)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)
        self.fused_attn = use_fused_attn()

    def _split_heads(self, t: Tensor, rows: int, length: int, parts: int) -> tuple[Tensor, ...]:
        """A q / kv / qkv linear's output as ``parts`` views of (rows, heads, length, head_dim). ``unbind`` on the
        linear's layout, not ``qkv[i]``: its backward stacks the gradients straight into that layout, where indexing
        zero-fills a full-size gradient per index and sums them (18% of a small model's step)."""
        # (rows, length, parts*C) -> parts x (rows, length, heads, hd) -> parts x (rows, heads, length, hd)
        t = t.reshape(rows, length, parts, self.num_heads, self.head_dim)
        return tuple(part.transpose(1, 2) for part in t.unbind(2))

    def _sdpa(self, q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None = None) -> Tensor:
        """Attention over the last two dims; ``mask`` is boolean, True = may attend. cpvt_mm's masks never leave a
        query without a key, so both paths agree everywhere."""
        if self.fused_attn:
            dropout = self.attn_drop.p if self.training else 0.0
            return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout)
        return self._reference(q, k, v, mask)

    def _reference(self, q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None = None) -> Tensor:
        attn = (q * self.head_dim**-0.5) @ k.transpose(-2, -1)  # (..., Nq, Nk)
        if mask is not None:
            attn = attn.masked_fill(~mask, float("-inf"))
        return self.attn_drop(attn.softmax(dim=-1)) @ v

    def extra_repr(self) -> str:
        return f"num_heads={self.num_heads}, fused_attn={self.fused_attn}"


class Attention(_AttentionBase):
    """Global multi-head self-attention over all tokens (plain CPVT)."""

    def __init__(
        self, dim: int, num_heads: int, qkv_bias: bool = True, attn_drop: float = 0.0, proj_drop: float = 0.0
    ) -> None:
        super().__init__(dim, num_heads, attn_drop, proj_drop)
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)

    def forward(self, x: Tensor, grid: Grid | tuple[int, int] | None = None) -> Tensor:
        """``grid``: with a padded batch's grid, padded tokens are never keys."""
        B, N, C = x.shape
        q, k, v = self._split_heads(self.qkv(x), B, N, 3)  # 3 x (B, heads, N, head_dim)
        x = self._sdpa(q, k, v, None if grid is None else Grid.of(grid).key_mask())
        x = x.transpose(1, 2).reshape(B, N, C)  # (B, heads, N, head_dim) -> (B, N, C)
        return self.proj_drop(self.proj(x))


class GlobalSubsampledAttention(_AttentionBase):
    """Global sub-sampled attention (Twins GSA, also PVT's spatial-reduction attention).

    Keys and values come from the token map reduced by a conv with kernel = stride = ``sr_ratio`` and a LayerNorm
    (cost ``N * N / sr_ratio^2``); sides that are not multiples are zero-padded (``ceil``): no border token dropped.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        sr_ratio: int = 1,
        qkv_bias: bool = True,
        attn_drop: float = 0.0,
        proj_drop: float = 0.0,
    ) -> None:
        super().__init__(dim, num_heads, attn_drop, proj_drop)
        self.q = nn.Linear(dim, dim, bias=qkv_bias)
        self.kv = nn.Linear(dim, dim * 2, bias=qkv_bias)
        self.sr_ratio = sr_ratio
        self.sr = nn.Conv2d(dim, dim, kernel_size=sr_ratio, stride=sr_ratio) if sr_ratio > 1 else None
        self.norm = nn.LayerNorm(dim, eps=1e-5) if sr_ratio > 1 else None

    def forward(self, x: Tensor, grid: Grid | tuple[int, int]) -> Tensor:
        """In a padded batch, padded tokens are zero where the sub-sampling conv reads them and never keys."""
        grid = Grid.of(grid)
        B, N, C = x.shape
        q = self.q(x).reshape(B, N, self.num_heads, self.head_dim).transpose(1, 2)  # (B, heads, N, hd)
        if self.sr is not None:
            H, W = grid.hw
            feat = tokens_to_map(grid.zero_tokens(x), grid.hw)  # (B, N, C) -> (B, C, H, W)
            pad_h, pad_w = -H % self.sr_ratio, -W % self.sr_ratio
            if is_symbolic(pad_h, pad_w) or pad_h or pad_w:
                feat = F.pad(feat, (0, pad_w, 0, pad_h))
            feat = self.sr(feat)
            x = self.norm(feat.flatten(2).transpose(1, 2))  # (B, C, h, w) -> (B, M, C)
            grid = grid.downsample(self.sr_ratio, feat.shape[-2:])
        k, v = self._split_heads(self.kv(x), B, x.shape[1], 2)  # 2 x (B, heads, M, head_dim)
        x = self._sdpa(q, k, v, grid.key_mask())
        x = x.transpose(1, 2).reshape(B, N, C)  # (B, heads, N, hd) -> (B, N, C)
        return self.proj_drop(self.proj(x))


class LocallyGroupedAttention(_AttentionBase):
    """Locally-grouped self-attention (Twins LSA): attention inside non-overlapping ``ws x ws`` windows.

    The map is zero-padded at the bottom / right to multiples of ``ws``, and padded tokens are masked out as keys
    (the authors', mmpretrain's and mmseg's ``mask[:, -pad:]`` masks nothing where ``pad == 0``; timm never masks).
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        window_size: int = 7,
        qkv_bias: bool = True,
        attn_drop: float = 0.0,
        proj_drop: float = 0.0,
    ) -> None:
        super().__init__(dim, num_heads, attn_drop, proj_drop)
        if window_size < 1:
            raise ValueError(f"window_size must be >= 1, got {window_size}")
        self.window_size = window_size
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)

    def forward(self, x: Tensor, grid: Grid | tuple[int, int]) -> Tensor:
        """In a padded batch, the batch's padding is masked out of every window like the map's own ceil padding."""
        grid = Grid.of(grid)
        B, N, C = x.shape
        (H, W), ws = grid.hw, self.window_size
        nh, nw = (H + ws - 1) // ws, (W + ws - 1) // ws  # windows per side (ceil); the map is padded to multiples of ws
        Hp, Wp = nh * ws, nw * ws
        sym = is_symbolic(H, W)
        x = x.reshape(B, H, W, C)
        if sym or Hp != H or Wp != W:
            x = F.pad(x, (0, 0, 0, Wp - W, 0, Hp - H))
        # (B, Hp, Wp, C) -> (B, nh, ws, nw, ws, C) -> (B, nh*nw, ws*ws, C)
        x = dense(x.reshape(B, nh, ws, nw, ws, C).transpose(2, 3), sym).reshape(B, nh * nw, ws * ws, C)
        # (B, nW, ws*ws, 3C) -> 3 x (B*nW, heads, ws*ws, head_dim)
        q, k, v = self._split_heads(self.qkv(x), B * nh * nw, ws * ws, 3)
        x = self._sdpa(q, k, v, grid.window_key_mask(ws, x))
        # (B*nW, heads, ws*ws, hd) -> (B, nh, nw, ws, ws, C) -> (B, Hp, Wp, C) -> crop -> (B, N, C)
        x = dense(x.transpose(1, 2), sym).reshape(B, nh, nw, ws, ws, C)
        x = dense(x.transpose(2, 3), sym).reshape(B, Hp, Wp, C)
        x = dense(x[:, :H, :W], sym).reshape(B, N, C)
        return self.proj_drop(self.proj(x))
