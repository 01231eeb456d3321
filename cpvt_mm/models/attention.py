"""The attentions: global (plain CPVT), global sub-sampled (Twins GSA) and locally-grouped (Twins LSA).

Every attention has two paths selected by ``fused_attn``: ``F.scaled_dot_product_attention`` (the default; flash /
memory-efficient kernels where the backend has them) and a readable reference path that spells out
``softmax(q k^T / sqrt(d)) v``. Both take the same mask, and the tests check they agree; :func:`set_fused_attn`
switches a whole model.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .padding import Padding
from .utils import is_symbolic, tokens_to_map

Size2D = tuple[int, int]

__all__ = [
    "Attention",
    "GlobalSubsampledAttention",
    "LocallyGroupedAttention",
    "set_fused_attn",
    "use_fused_attn",
]


def use_fused_attn() -> bool:
    """Default attention path for newly built modules: SDPA (:func:`set_fused_attn` changes a built model)."""
    return True


def set_fused_attn(model: nn.Module, enabled: bool) -> nn.Module:
    """Switch every cpvt_mm attention inside ``model`` between the SDPA and the reference path."""
    for module in model.modules():
        if isinstance(module, _AttentionBase):
            module.fused_attn = bool(enabled)
    return model


class _AttentionBase(nn.Module):
    def __init__(self, dim: int, num_heads: int, attn_drop: float, proj_drop: float) -> None:
        super().__init__()
        if dim % num_heads != 0:
            raise ValueError(f"dim {dim} must be divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.attn_drop = nn.Dropout(attn_drop)  # a module: analysis hooks it to read the reference path's probabilities
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)
        self.fused_attn = use_fused_attn()

    def _split_heads(self, t: Tensor, rows: int, length: int, parts: int) -> tuple[Tensor, ...]:
        """A q / kv / qkv linear's output as ``parts`` tensors of (rows, heads, length, head_dim), views of it.

        ``unbind`` on the linear's own layout, not ``qkv[i]`` of a (parts, rows, heads, length, head_dim)
        permutation: in backward it stacks the gradients straight into that layout, where indexing zero-fills
        a full-size gradient per index, sums them and copies the sum back (18% of a small model's step).
        """
        # (rows, length, parts*C) -> parts x (rows, length, heads, hd) -> parts x (rows, heads, length, hd)
        t = t.reshape(rows, length, parts, self.num_heads, self.head_dim)
        return tuple(part.transpose(1, 2) for part in t.unbind(2))

    def _sdpa(self, q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None = None) -> Tensor:
        """Scaled dot-product attention over the last two dims; ``mask`` is boolean, True = may attend.

        cpvt_mm's window and padding masks never leave a query without a key, so both paths agree everywhere.
        """
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

    def forward(self, x: Tensor, hw: Size2D | None = None, padding: Padding | None = None) -> Tensor:
        B, N, C = x.shape
        q, k, v = self._split_heads(self.qkv(x), B, N, 3)  # 3 x (B, heads, N, head_dim)
        x = self._sdpa(q, k, v, None if padding is None else padding.key_mask())
        x = x.transpose(1, 2).reshape(B, N, C)  # (B, heads, N, head_dim) -> (B, N, C)
        return self.proj_drop(self.proj(x))


class GlobalSubsampledAttention(_AttentionBase):
    """Global sub-sampled attention (Twins GSA, also PVT's spatial-reduction attention).

    Keys and values come from the token map reduced by a conv with kernel = stride = ``sr_ratio`` (then a
    LayerNorm, eps 1e-5), so the cost is ``N * N / sr_ratio^2``. The reduced map uses ``ceil`` via zero
    padding when a side is not a multiple of ``sr_ratio``, so border tokens are never dropped.
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
        if sr_ratio > 1:
            self.sr = nn.Conv2d(dim, dim, kernel_size=sr_ratio, stride=sr_ratio)
            self.norm = nn.LayerNorm(dim, eps=1e-5)
        else:
            self.sr = None
            self.norm = None

    def forward(self, x: Tensor, hw: Size2D, padding: Padding | None = None) -> Tensor:
        """``padding``: padded tokens are zero where the sub-sampling conv reads them and never keys."""
        B, N, C = x.shape
        q = self.q(x).reshape(B, N, self.num_heads, self.head_dim).transpose(1, 2)  # (B, heads, N, hd)
        mask = None
        if self.sr is not None:
            H, W = hw
            if padding is not None:
                x = padding.zero_tokens(x)
            feat = tokens_to_map(x, hw)  # (B, N, C) -> (B, C, H, W)
            r = self.sr_ratio
            pad_h, pad_w = -H % r, -W % r
            if is_symbolic(pad_h, pad_w) or pad_h or pad_w:
                feat = F.pad(feat, (0, pad_w, 0, pad_h))
            feat = self.sr(feat)
            x = self.norm(feat.flatten(2).transpose(1, 2))  # (B, C, h, w) -> (B, M, C)
            if padding is not None:
                mask = padding.downsample(r, feat.shape[-2:]).key_mask()
        elif padding is not None:
            mask = padding.key_mask()
        M = x.shape[1]
        k, v = self._split_heads(self.kv(x), B, M, 2)  # 2 x (B, heads, M, head_dim)
        x = self._sdpa(q, k, v, mask)
        x = x.transpose(1, 2).reshape(B, N, C)  # (B, heads, N, hd) -> (B, N, C)
        return self.proj_drop(self.proj(x))


class LocallyGroupedAttention(_AttentionBase):
    """Locally-grouped self-attention (Twins LSA): attention inside non-overlapping ``ws x ws`` windows.

    The map is zero-padded at the bottom / right to a multiple of ``ws``. Padded tokens are masked out as
    keys in every window, whichever sides are padded; the windows are built with reshapes only, so the
    cost has no Python-level per-window work. The authors', mmpretrain's and mmseg's mask selects
    ``mask[:, -pad:]``, which with ``pad == 0`` on one side selects everything and masks nothing there;
    timm never masks. Every window keeps at least one real token because ``pad < ws``.
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

    @staticmethod
    def key_padding_mask(hw: Size2D, ws: int, device: torch.device) -> Tensor | None:
        """Boolean (1, nWh*nWw, 1, 1, ws*ws) mask, True where the key is a real token; None without padding.

        With a symbolic size (export, ``torch.compile(dynamic=True)``) whether the map needs padding is not
        known while tracing, so the mask is always built (all True where nothing is padded): one graph then
        serves every size instead of one per divisibility pattern.
        """
        H, W = hw
        nh, nw = (H + ws - 1) // ws, (W + ws - 1) // ws  # windows per side (ceil)
        if not is_symbolic(H, W) and nh * ws == H and nw * ws == W:
            return None
        # Sizes as multiples (nh * ws), not H + (-H % ws): a tracer can then prove the reshape below is exact.
        # Comparisons against the size, not an in-place fill, so the mask follows a symbolic (runtime) size.
        rows = torch.arange(nh * ws, device=device) < H
        cols = torch.arange(nw * ws, device=device) < W
        # (Hp, Wp) -> (nWh, ws, nWw, ws) -> (nWh*nWw, ws*ws)
        valid = (rows[:, None] & cols[None, :]).reshape(nh, ws, nw, ws).transpose(1, 2)
        valid = _dense(valid, is_symbolic(H, W)).reshape(-1, ws * ws)
        return valid[None, :, None, None, :]

    def forward(self, x: Tensor, hw: Size2D, padding: Padding | None = None) -> Tensor:
        """``padding``: batch padding is masked out of every window like the map's own ceil padding."""
        B, N, C = x.shape
        H, W = hw
        ws = self.window_size
        nh, nw = (H + ws - 1) // ws, (W + ws - 1) // ws  # windows per side (ceil); the map is padded to multiples of ws
        Hp, Wp = nh * ws, nw * ws
        sym = is_symbolic(H, W)
        x = x.reshape(B, H, W, C)
        if sym or Hp != H or Wp != W:
            x = F.pad(x, (0, 0, 0, Wp - W, 0, Hp - H))
        # (B, Hp, Wp, C) -> (B, nh, ws, nw, ws, C) -> (B, nh*nw, ws*ws, C)
        x = _dense(x.reshape(B, nh, ws, nw, ws, C).transpose(2, 3), sym).reshape(B, nh * nw, ws * ws, C)
        # (B, nW, ws*ws, 3C) -> 3 x (B*nW, heads, ws*ws, head_dim)
        q, k, v = self._split_heads(self.qkv(x), B * nh * nw, ws * ws, 3)
        if padding is not None:
            mask = padding.window_key_mask(ws)  # covers the ceil padding above as well
        elif (mask := self.key_padding_mask(hw, ws, x.device)) is not None:
            # (1, nW, 1, 1, L) -> (B*nW, 1, 1, L): one row per window, broadcast over heads and queries
            mask = _dense(mask.expand(B, -1, -1, -1, -1), sym).reshape(B * nh * nw, 1, 1, ws * ws)
        x = self._sdpa(q, k, v, mask)
        # (B*nW, heads, ws*ws, hd) -> (B, nh, nw, ws, ws, C) -> (B, Hp, Wp, C) -> crop -> (B, N, C)
        x = _dense(x.transpose(1, 2), sym).reshape(B, nh, nw, ws, ws, C)
        x = _dense(x.transpose(2, 3), sym).reshape(B, Hp, Wp, C)
        x = _dense(x[:, :H, :W], sym).reshape(B, N, C)
        return self.proj_drop(self.proj(x))


def _dense(x: Tensor, symbolic: bool) -> Tensor:
    """A contiguous copy when sizes are symbolic, else ``x`` (whose ``reshape`` copies only if it must).

    Whether ``reshape`` of a transposed or cropped tensor can be a view depends on the sizes (one window per
    side, batch 1, no crop); under a dynamic-shape compile each answer would be a guard and every change of
    answer a recompile. Copying unconditionally keeps one graph; a compiler fuses the copy into its neighbours.
    """
    return x.clone(memory_format=torch.contiguous_format) if symbolic else x
