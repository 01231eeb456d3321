"""Plain CPVT: a DeiT-shaped vision transformer whose position table is replaced by PEGs.

Chu et al., arXiv 2102.10882; the authors never released it, so this follows the paper: patch-16 embedding, no
position table, a PEG after block 0 (or blocks 0..4, the stronger variant), class token or average pool (GAP).

Parameter names are public API: ``patch_embed``, ``cls_token``, ``blocks.{i}``, ``pegs.{i}`` (the PEG after block
i; ``pegs.embed`` before block 0), ``norm`` (``docs/checkpoints.md``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..registry import MODELS
from .attention import Attention
from .base import Backbone
from .layers import PatchEmbed, TransformerBlock, init_weights_
from .padding import Grid, lookup
from .peg import PEG
from .utils import check_image_batch, check_in_channels, is_symbolic, normalize_indices, resolve_arch, tokens_to_map

__all__ = ["CPVT"]

OUT_TYPES = ("cls_token", "avg_featmap", "featmap", "raw")


@MODELS.register_module()
class CPVT(Backbone):
    """Plain (single-scale) CPVT.

    Args:
        arch: ``'tiny'``, ``'small'``, ``'base'`` (or ``'t'``, ``'s'``, ``'b'``) or a dict with exactly
            ``embed_dims``, ``depth``, ``num_heads``, ``mlp_ratio``.
        patch_size: Patch size of the embedding (16 in the paper).
        peg_positions: Blocks after which a PEG is applied: ``(0,)`` the paper's default, ``(0, 1, 2, 3, 4)`` its
            stronger variant; ``'embed'`` puts one before block 0 (the paper's "position -1", Table 6). Negative
            integers count from the last block, as ``out_indices`` do.
        with_cls_token: Class token (CPVT) or none (CPVT-GAP).
        out_type: ``'cls_token'`` (B, C), ``'avg_featmap'`` (B, C) patch-token mean, ``'featmap'`` (B, C, H, W)
            for dense tasks, ``'raw'`` (B, N, C). Default: ``'cls_token'`` with a class token, else ``'avg_featmap'``.
        out_indices: Blocks whose outputs are returned (default: the last).
        final_norm: LayerNorm (eps 1e-6) on the last block's output.
        abs_pos_embed: Baseline only (ablations, the demo): a DeiT-style learned table for a ``(h, w)`` token
            grid, bicubic-resized to other grids. ``None`` (CPVT): no table; with ``peg_positions=()`` the
            model has no position information at all.
        frozen_stages: Freeze the embedding, class token and blocks ``0 .. frozen_stages-1`` with their PEGs.
        with_cp: Gradient checkpointing of every block.
        peg_padding_mode, peg_dilation: The PEGs' padding and tap spacing; see :class:`~cpvt_mm.models.peg.PEG`.
    """

    arch_zoo: dict[str, dict[str, Any]] = {
        "tiny": dict(embed_dims=192, depth=12, num_heads=3, mlp_ratio=4.0),
        "small": dict(embed_dims=384, depth=12, num_heads=6, mlp_ratio=4.0),
        "base": dict(embed_dims=768, depth=12, num_heads=12, mlp_ratio=4.0),
    }
    required_keys = ("embed_dims", "depth", "num_heads", "mlp_ratio")

    def __init__(
        self,
        arch: str | Mapping[str, Any] = "tiny",
        in_channels: int = 3,
        patch_size: int = 16,
        peg_positions: Sequence[int | str] = (0,),
        abs_pos_embed: Sequence[int] | None = None,
        peg_kernel_size: int = 3,
        with_cls_token: bool = True,
        out_type: str | None = None,
        out_indices: int | Sequence[int] = -1,
        final_norm: bool = True,
        qkv_bias: bool = True,
        drop_rate: float = 0.0,
        attn_drop_rate: float = 0.0,
        drop_path_rate: float = 0.0,
        frozen_stages: int = -1,
        with_cp: bool = False,
        init_cfg: dict | list[dict] | None = None,
        peg_padding_mode: str = "zeros",
        peg_dilation: int = 1,
    ) -> None:
        super().__init__(init_cfg=init_cfg)
        check_in_channels(in_channels, "CPVT")
        self.arch = resolve_arch(arch, self.arch_zoo, self.required_keys, "CPVT")
        dim, depth = int(self.arch["embed_dims"]), int(self.arch["depth"])
        if out_type is None:
            out_type = "cls_token" if with_cls_token else "avg_featmap"
        if out_type not in OUT_TYPES:
            raise ValueError(f"CPVT: out_type must be one of {OUT_TYPES}, got {out_type!r}")
        if out_type == "cls_token" and not with_cls_token:
            raise ValueError("CPVT: out_type='cls_token' needs with_cls_token=True")
        self.check_frozen_stages(frozen_stages, depth, "CPVT")
        self.in_channels, self.patch_size, self.embed_dims, self.depth = in_channels, patch_size, dim, depth
        self.num_layers = depth + 2  # embedding, blocks, norm
        self.out_type, self.frozen_stages, self.num_prefix_tokens = out_type, frozen_stages, int(with_cls_token)
        self.out_indices = normalize_indices(out_indices, depth, "CPVT.out_indices")
        self.peg_on_embed, self.peg_positions = _split_peg_positions(peg_positions, depth)

        self.patch_embed = PatchEmbed(in_channels, dim, patch_size, norm=False)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim)) if with_cls_token else None
        self.pos_embed = None if abs_pos_embed is None else nn.Parameter(torch.zeros(1, dim, *map(int, abs_pos_embed)))
        self.pos_drop = nn.Dropout(drop_rate)
        dpr = torch.linspace(0, drop_path_rate, depth, device="cpu").tolist()  # works under a meta device
        heads, mlp_ratio = int(self.arch["num_heads"]), float(self.arch["mlp_ratio"])
        self.blocks = nn.ModuleList(
            TransformerBlock(dim, Attention(dim, heads, qkv_bias, attn_drop_rate, drop_rate), mlp_ratio, drop_rate, p)
            for p in dpr
        )
        # ModuleDict keyed by block index: ``pegs.0`` is the PEG after block 0, ``pegs.embed`` the one before it.
        keys = ["embed"] * self.peg_on_embed + [str(i) for i in self.peg_positions]
        self.pegs = nn.ModuleDict(
            {k: PEG(dim, peg_kernel_size, self.num_prefix_tokens, peg_padding_mode, peg_dilation) for k in keys}
        )
        self.norm = nn.LayerNorm(dim, eps=1e-6) if final_norm else nn.Identity()
        self.apply(init_weights_)
        for p in (self.cls_token, self.pos_embed):
            if p is not None:
                nn.init.trunc_normal_(p, std=0.02)
        self.set_grad_checkpointing(with_cp)
        self._freeze_stages()

    def _format(self, x: Tensor, grid: Grid) -> Tensor:
        prefix, patches = x[:, : self.num_prefix_tokens], x[:, self.num_prefix_tokens :]
        if self.out_type == "cls_token":
            return x[:, 0]
        if self.out_type == "avg_featmap":
            return grid.mean_tokens(patches)  # over each image's real tokens
        if self.out_type == "raw":
            return torch.cat((prefix, grid.zero_tokens(patches)), dim=1) if grid.padded else x
        out = tokens_to_map(patches, grid.hw)  # (B, N, C) -> (B, C, H, W)
        return grid.output(out)

    def _add_pos_embed(self, x: Tensor, grid: Grid) -> Tensor:
        """Add the (baseline) learned table, bicubic-resized to each image's own grid as DeiT does."""

        def resized(hw: tuple[int, int]) -> Tensor:
            if is_symbolic(*hw) or tuple(self.pos_embed.shape[-2:]) != hw:  # an exported graph follows any size
                return F.interpolate(self.pos_embed, size=hw, mode="bicubic", align_corners=False)
            return self.pos_embed

        if not grid.padded:
            return x + resized(grid.hw).flatten(2).transpose(1, 2)  # (1, C, h, w) -> (1, N, C)
        tables = x.new_zeros(x.shape[0], x.shape[2], *grid.hw)  # each image's table on its own real grid
        for b, (h, w) in enumerate(grid.sizes.tolist()):
            tables[b, :, :h, :w] = resized((h, w))[0]
        return x + tables.flatten(2).transpose(1, 2)  # (B, C, h, w) -> (B, N, C)

    def forward(self, x: Tensor, valid_sizes: Tensor | None = None) -> tuple[Tensor, ...]:
        """(B, C, H, W) -> tuple with one output per ``out_indices`` entry, shaped by ``out_type``.

        ``valid_sizes``: ``(B, 2)`` real ``(h, w)`` per image of a padded batch, as for :meth:`PCPVT.forward`;
        padded tokens are then never keys, zeros for the PEGs and outputs, and left out of ``avg_featmap``.
        """
        check_image_batch(x, self.in_channels, self.patch_size, "CPVT", self.patch_embed)
        grid = Grid.of_batch(x, lookup(x) if valid_sizes is None else valid_sizes)
        x, hw = self.patch_embed(x, grid)
        grid = grid.downsample(self.patch_size, hw, self.num_prefix_tokens)
        if self.pos_embed is not None:
            x = self._add_pos_embed(x, grid)
        if self.cls_token is not None:
            x = torch.cat((self.cls_token.expand(x.shape[0], -1, -1), x), dim=1)
        x = self.pos_drop(x)
        if self.peg_on_embed:
            x = self.pegs["embed"](x, grid)
        outs = []
        for i, blk in enumerate(self.blocks[: self.out_indices[-1] + 1]):
            x = blk(x, grid)
            if str(i) in self.pegs:
                x = self.pegs[str(i)](x, grid)
            if i in self.out_indices:
                outs.append(self._format(self.norm(x) if i == self.depth - 1 else x, grid))
        return tuple(outs)

    def _frozen_modules(self) -> list[nn.Module | nn.Parameter | None]:
        frozen = [self.patch_embed, *self.blocks[: self.frozen_stages], self.cls_token, self.pos_embed]
        return frozen + [self.pegs[k] for k in self.pegs if k == "embed" or int(k) < self.frozen_stages]

    def _layer_id(self, name: str) -> int | None:
        """Embedding, class token and the embedding's PEG: 0; block i and the PEG after it: i + 1."""
        if name.startswith(("patch_embed", "cls_token", "pos_embed", "pegs.embed.")):
            return 0
        if name.startswith(("blocks.", "pegs.")):
            return int(name.split(".")[1]) + 1
        return None


def _split_peg_positions(positions: Sequence[int | str], depth: int) -> tuple[bool, tuple[int, ...]]:
    """``(0, 'embed', 2)`` -> ``(True, (0, 2))``: whether a PEG sits on the embedding, and the block indices."""
    positions = (positions,) if isinstance(positions, str | int) else tuple(positions)
    names = [p for p in positions if isinstance(p, str)]
    if any(p != "embed" for p in names) or len(names) > 1:
        raise ValueError(f"CPVT.peg_positions: entries are block indices or the string 'embed' (once), got {positions}")
    blocks = normalize_indices(tuple(p for p in positions if not isinstance(p, str)), depth, "CPVT.peg_positions")
    return bool(names), blocks
