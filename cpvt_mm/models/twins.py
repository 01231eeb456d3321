"""Pyramid CPVT (Twins-PCPVT) and Twins-SVT backbones (Chu et al., arXiv 2104.13840).

Four stages of patch embedding, pre-norm transformer blocks and a PEG after the first block; no position table,
so any input size works. One definition serves mmpretrain, mmdet and mmseg: per-stage NCHW maps.

Parameter names are public API: ``stages.{s}.{patch_embed,blocks.{j},peg,norm}`` (``docs/checkpoints.md``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from ..registry import MODELS
from .attention import GlobalSubsampledAttention, LocallyGroupedAttention
from .base import Backbone
from .layers import PatchEmbed, TransformerBlock, init_weights_
from .padding import Grid, lookup
from .peg import PEG
from .utils import check_image_batch, check_in_channels, normalize_indices, resolve_arch, tokens_to_map

__all__ = ["PCPVT", "SVT", "PyramidStage"]


class PyramidStage(nn.Module):
    """Patch embedding -> blocks, with a PEG after block 0. The output norm is for the stage's *output* only; the
    un-normed tokens feed the next stage, as in the authors' model (one final norm after the last stage)."""

    def __init__(
        self,
        patch_embed: PatchEmbed,
        blocks: Sequence[nn.Module],
        peg: PEG,
        drop_rate: float = 0.0,
        out_norm: bool = False,
    ) -> None:
        super().__init__()
        self.patch_embed = patch_embed
        self.pos_drop = nn.Dropout(drop_rate)
        self.blocks = nn.ModuleList(blocks)
        self.peg = peg
        self.norm = nn.LayerNorm(peg.proj.in_channels, eps=1e-6) if out_norm else nn.Identity()

    def forward(self, x: Tensor, grid: Grid) -> tuple[Tensor, Grid]:
        """(B, C_in, H, W) and its grid -> tokens (B, h*w, C) before the output norm, and their grid."""
        x, hw = self.patch_embed(x, grid)
        grid = grid.downsample(self.patch_embed.patch_size, hw)
        x = self.pos_drop(grid.zero_tokens(x))
        for j, blk in enumerate(self.blocks):
            x = blk(x, grid)
            if j == 0:
                x = self.peg(x, grid)
        return x, grid


@MODELS.register_module()
class PCPVT(Backbone):
    """Pyramid CPVT (Twins-PCPVT): global sub-sampled attention in every block, PEG after block 0 of each stage.

    Args:
        arch: ``'small'``, ``'base'``, ``'large'`` (or mmpretrain's ``'s'``, ``'b'``, ``'l'``) or a dict with
            ``embed_dims``, ``depths``, ``num_heads``, ``mlp_ratios``, ``sr_ratios`` (and ``window_sizes`` for
            SVT), one entry per stage; unknown keys are refused.
        patch_sizes: Patch-embedding stride of each stage (4, 2, 2, 2: total stride 32).
        out_indices: Stages whose NCHW maps are returned (negative indices allowed).
        out_norms: LayerNorm on each stage's output; ``None``: only on the last stage (the authors' final
            norm); a bool: all stages; or one bool per stage.
        drop_rate, attn_drop_rate, drop_path_rate: Dropouts; stochastic depth grows linearly to the rate.
        frozen_stages: Stages ``0 .. frozen_stages-1`` get no gradient and stay in eval mode; -1: none.
        with_cp: Gradient checkpointing of every block (same outputs, less activation memory).
        init_cfg: mmengine init config, e.g. ``dict(type='Pretrained', checkpoint=..., prefix='backbone.')``.
        peg_kernel_size, peg_padding_mode, peg_dilation: The PEGs' options (:class:`~cpvt_mm.models.peg.PEG`).
    """

    arch_zoo: dict[str, dict[str, Any]] = {
        "small": dict(embed_dims=[64, 128, 320, 512], depths=[3, 4, 6, 3], num_heads=[1, 2, 5, 8],
                      mlp_ratios=[8, 8, 4, 4], sr_ratios=[8, 4, 2, 1]),
        "base": dict(embed_dims=[64, 128, 320, 512], depths=[3, 4, 18, 3], num_heads=[1, 2, 5, 8],
                     mlp_ratios=[8, 8, 4, 4], sr_ratios=[8, 4, 2, 1]),
        "large": dict(embed_dims=[64, 128, 320, 512], depths=[3, 8, 27, 3], num_heads=[1, 2, 5, 8],
                      mlp_ratios=[8, 8, 4, 4], sr_ratios=[8, 4, 2, 1]),
    }  # fmt: skip
    required_keys: tuple[str, ...] = ("embed_dims", "depths", "num_heads", "mlp_ratios", "sr_ratios")
    local_windows: bool = False  # SVT's layout: locally-grouped (even blocks) and global sub-sampled (odd) attention

    def __init__(
        self,
        arch: str | Mapping[str, Any] = "small",
        in_channels: int = 3,
        patch_sizes: Sequence[int] = (4, 2, 2, 2),
        out_indices: int | Sequence[int] = (0, 1, 2, 3),
        out_norms: bool | Sequence[bool] | None = None,
        qkv_bias: bool = True,
        drop_rate: float = 0.0,
        attn_drop_rate: float = 0.0,
        drop_path_rate: float = 0.0,
        peg_kernel_size: int = 3,
        frozen_stages: int = -1,
        with_cp: bool = False,
        init_cfg: dict | list[dict] | None = None,
        peg_padding_mode: str = "zeros",
        peg_dilation: int = 1,
    ) -> None:
        super().__init__(init_cfg=init_cfg)
        name = type(self).__name__
        check_in_channels(in_channels, name)
        if not self.local_windows and isinstance(arch, Mapping) and "window_sizes" in arch:
            raise ValueError(
                f"{name}: 'window_sizes' in the arch selects Twins-SVT's locally-grouped attention; "
                "build type='cpvt_mm.SVT' with this arch instead"
            )
        a = self.arch = resolve_arch(arch, self.arch_zoo, self.required_keys, name)
        dims, depths = list(a["embed_dims"]), list(a["depths"])
        num_stages = len(depths)
        if out_norms is None:
            out_norms = [s == num_stages - 1 for s in range(num_stages)]
        out_norms = [out_norms] * num_stages if isinstance(out_norms, bool) else list(out_norms)
        lengths = {k: len(v) for k, v in a.items()} | {"patch_sizes": len(patch_sizes), "out_norms": len(out_norms)}
        if bad := {k: n for k, n in lengths.items() if n != num_stages}:
            raise ValueError(f"{name}: every per-stage setting needs {num_stages} entries, got lengths {bad}")
        self.check_frozen_stages(frozen_stages, num_stages, name)
        self.in_channels, self.embed_dims, self.depths, self.num_stages = in_channels, dims, depths, num_stages
        self.num_layers = sum(depths) + 2  # embedding, blocks, norms
        self.out_indices = normalize_indices(out_indices, num_stages, f"{name}.out_indices")
        self.frozen_stages = frozen_stages
        dpr = iter(torch.linspace(0, drop_path_rate, sum(depths), device="cpu").tolist())  # works under a meta device

        def block(s: int, j: int) -> TransformerBlock:
            dim, heads, attn_args = dims[s], a["num_heads"][s], (qkv_bias, attn_drop_rate, drop_rate)
            if self.local_windows and j % 2 == 0:
                attn: nn.Module = LocallyGroupedAttention(dim, heads, a["window_sizes"][s], *attn_args)
            else:
                attn = GlobalSubsampledAttention(dim, heads, a["sr_ratios"][s], *attn_args)
            return TransformerBlock(dim, attn, a["mlp_ratios"][s], drop_rate, next(dpr))

        self.stages = nn.ModuleList(
            PyramidStage(
                PatchEmbed(in_channels if s == 0 else dims[s - 1], dims[s], patch_sizes[s]),
                [block(s, j) for j in range(depths[s])],
                PEG(dims[s], peg_kernel_size, padding_mode=peg_padding_mode, dilation=peg_dilation),
                drop_rate,
                bool(out_norms[s]),
            )
            for s in range(num_stages)
        )
        self.apply(init_weights_)
        self.set_grad_checkpointing(with_cp)
        self._freeze_stages()

    def forward(self, x: Tensor, valid_sizes: Tensor | None = None) -> tuple[Tensor, ...]:
        """(B, C, H, W) -> tuple of NCHW maps for ``out_indices`` (stage s has stride 4 * 2**s).

        ``valid_sizes``: ``(B, 2)`` real ``(h, w)`` per image of a padded batch (default: ``x.valid_sizes``, set by a
        padding-aware data preprocessor); padded positions then behave as absent (:mod:`cpvt_mm.models.padding`).
        """
        patch_embed = self.stages[0].patch_embed
        check_image_batch(x, self.in_channels, patch_embed.patch_size, type(self).__name__, patch_embed)
        grid = Grid.of_batch(x, lookup(x) if valid_sizes is None else valid_sizes)
        outs = []
        for s, stage in enumerate(self.stages[: self.out_indices[-1] + 1]):
            tokens, grid = stage(x, grid)
            x = tokens_to_map(tokens, grid.hw)  # (B, N, C) -> (B, C, h, w), the next stage's input
            if s in self.out_indices:
                out = tokens_to_map(stage.norm(tokens), grid.hw)  # (B, N, C) -> (B, C, h, w), output norm applied
                outs.append(grid.output(out))
        return tuple(outs)

    def _frozen_modules(self) -> list[nn.Module]:
        return list(self.stages[: self.frozen_stages])

    def _layer_id(self, name: str) -> int | None:
        """Blocks are 1..sum(depths); a stage's patch embedding and PEG share its first block's id; norms: last."""
        parts = name.split(".")
        if parts[0] != "stages" or len(parts) < 3 or parts[2] == "norm":
            return None
        first = sum(self.depths[: int(parts[1])]) + 1
        return first + int(parts[3]) if parts[2] == "blocks" else first  # patch_embed, peg


@MODELS.register_module()
class SVT(PCPVT):
    """Twins-SVT: blocks alternate 7x7 locally-grouped (even) and global sub-sampled attention (odd); PEG after
    block 0 of each stage. Same arguments as :class:`PCPVT`; arch dicts also carry ``window_sizes``."""

    arch_zoo = {
        "small": dict(embed_dims=[64, 128, 256, 512], depths=[2, 2, 10, 4], num_heads=[2, 4, 8, 16],
                      mlp_ratios=[4, 4, 4, 4], sr_ratios=[8, 4, 2, 1], window_sizes=[7, 7, 7, 7]),
        "base": dict(embed_dims=[96, 192, 384, 768], depths=[2, 2, 18, 2], num_heads=[3, 6, 12, 24],
                     mlp_ratios=[4, 4, 4, 4], sr_ratios=[8, 4, 2, 1], window_sizes=[7, 7, 7, 7]),
        "large": dict(embed_dims=[128, 256, 512, 1024], depths=[2, 2, 18, 2], num_heads=[4, 8, 16, 32],
                      mlp_ratios=[4, 4, 4, 4], sr_ratios=[8, 4, 2, 1], window_sizes=[7, 7, 7, 7]),
    }  # fmt: skip
    required_keys = (*PCPVT.required_keys, "window_sizes")
    local_windows = True
