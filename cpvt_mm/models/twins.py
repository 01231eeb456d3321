"""Pyramid CPVT (Twins-PCPVT) and Twins-SVT backbones (Chu et al., arXiv 2104.13840).

Four stages; each stage is a patch embedding, a stack of pre-norm transformer blocks, and a PEG after the
first block. There is no position table anywhere, so any input size works. One definition serves
classification (mmpretrain), detection (mmdet) and segmentation (mmseg): the backbone returns per-stage
NCHW maps for ``out_indices``.

Parameter names (public API, see ``docs/checkpoints.md``)::

    stages.{s}.patch_embed.proj / .norm
    stages.{s}.blocks.{j}.norm1 / .attn.{q,kv,proj,sr,norm} (GSA) or .attn.{qkv,proj} (LSA)
    stages.{s}.blocks.{j}.norm2 / .mlp.fc1 / .mlp.fc2
    stages.{s}.peg.proj
    stages.{s}.norm                       (output LayerNorm, present where out_norms[s] is True)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from ..registry import MODELS
from .base import Backbone
from .layers import (
    PEG,
    GlobalSubsampledAttention,
    LocallyGroupedAttention,
    PatchEmbed,
    Size2D,
    TransformerBlock,
    checkpoint_block,
    init_weights_,
    tokens_to_map,
)
from .padding import Padding, attach, lookup
from .utils import check_image_batch, check_in_channels, normalize_indices, output_map, resolve_arch

__all__ = ["PCPVT", "SVT", "PyramidStage"]


class PyramidStage(nn.Module):
    """Patch embedding -> blocks (PEG after block 0) -> optional output norm.

    The output norm is applied to the stage's *output* only; the un-normed tokens feed the next stage, as
    in the authors' model (whose single final norm sits after the last stage).
    """

    def __init__(
        self,
        in_channels: int,
        dim: int,
        depth: int,
        num_heads: int,
        mlp_ratio: float,
        sr_ratio: int,
        window_size: int | None,
        patch_size: int,
        drop_path: Sequence[float],
        drop_rate: float = 0.0,
        attn_drop_rate: float = 0.0,
        qkv_bias: bool = True,
        peg_kernel_size: int = 3,
        out_norm: bool = False,
        peg_padding_mode: str = "zeros",
        peg_dilation: int = 1,
    ) -> None:
        super().__init__()
        self.patch_embed = PatchEmbed(in_channels, dim, patch_size)
        self.pos_drop = nn.Dropout(drop_rate)
        blocks = []
        for j in range(depth):
            # SVT alternates locally-grouped (even blocks) and global sub-sampled attention (odd blocks).
            if window_size is not None and j % 2 == 0:
                attn: nn.Module = LocallyGroupedAttention(
                    dim, num_heads, window_size, qkv_bias, attn_drop_rate, drop_rate
                )
            else:
                attn = GlobalSubsampledAttention(dim, num_heads, sr_ratio, qkv_bias, attn_drop_rate, drop_rate)
            blocks.append(TransformerBlock(dim, attn, mlp_ratio, drop=drop_rate, drop_path=drop_path[j]))
        self.blocks = nn.ModuleList(blocks)
        self.peg = PEG(dim, peg_kernel_size, padding_mode=peg_padding_mode, dilation=peg_dilation)
        self.norm = nn.LayerNorm(dim, eps=1e-6) if out_norm else nn.Identity()
        self.with_cp = False

    def forward(self, x: Tensor, padding: Padding | None = None) -> tuple[Tensor, Size2D, Padding | None]:
        """(B, C_in, H, W) -> tokens (B, h*w, C) before the output norm, (h, w), and the tokens' padding.

        ``padding`` describes the input map; with it, padded positions do not influence real ones.
        """
        x, hw = self.patch_embed(x, padding)
        if padding is not None:
            padding = padding.downsample(self.patch_embed.patch_size, hw)
            x = padding.zero_tokens(x)
        x = self.pos_drop(x)
        for j, blk in enumerate(self.blocks):
            if self.with_cp and self.training and x.requires_grad:
                x = checkpoint_block(blk, x, hw, padding)
            else:
                x = blk(x, hw, padding)
            if j == 0:
                x = self.peg(x, hw, padding)
        return x, hw, padding


@MODELS.register_module()
class PCPVT(Backbone):
    """Pyramid CPVT (Twins-PCPVT): global sub-sampled attention in every block, PEG after block 0 of each
    stage.

    Args:
        arch: ``'small'``, ``'base'``, ``'large'`` (or mmpretrain's ``'s'``, ``'b'``, ``'l'``) or a dict with
            ``embed_dims``, ``depths``, ``num_heads``, ``mlp_ratios``, ``sr_ratios`` (and ``window_sizes`` for
            SVT); unknown keys are refused.
        in_channels: Image channels.
        patch_sizes: Patch-embedding stride of each stage (4, 2, 2, 2: total stride 32).
        out_indices: Stages whose NCHW maps are returned (negative indices allowed).
        out_norms: LayerNorm on each stage's output; ``None`` means only on the last stage (the authors'
            final norm), a bool applies to all stages, or one bool per stage.
        drop_rate, attn_drop_rate, drop_path_rate: Dropouts; stochastic depth grows linearly to the rate.
        peg_kernel_size: PEG kernel (3 in the paper).
        frozen_stages: Stages ``0 .. frozen_stages-1`` get no gradient and stay in eval mode (re-applied
            by ``train()``); ``-1`` freezes nothing.
        with_cp: Gradient checkpointing of every block (same outputs, less activation memory).
        init_cfg: mmengine init config, e.g. ``dict(type='Pretrained', checkpoint=..., prefix='backbone.')``.
        peg_padding_mode, peg_dilation: The PEGs' padding (``'zeros'``: the paper's) and tap spacing (1 in
            training), as for :class:`~cpvt_mm.models.CPVT`; :meth:`set_peg_dilation` changes the spacing of
            a trained model.
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
    optional_keys: tuple[str, ...] = ()
    # Blocks alternate locally-grouped (even) and global sub-sampled (odd) attention: Twins-SVT's layout. A class
    # property, not a consequence of which keys an arch dict happens to carry.
    local_windows: bool = False

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
        self.arch = resolve_arch(arch, self.arch_zoo, self.required_keys, name, self.optional_keys)
        dims, depths = list(self.arch["embed_dims"]), list(self.arch["depths"])
        num_stages = len(depths)
        per_stage = {k: list(self.arch[k]) for k in ("embed_dims", "depths", "num_heads", "mlp_ratios", "sr_ratios")}
        window_sizes = list(self.arch["window_sizes"]) if self.local_windows else None
        if window_sizes is not None:
            per_stage["window_sizes"] = window_sizes
        per_stage["patch_sizes"] = list(patch_sizes)
        bad = {k: len(v) for k, v in per_stage.items() if len(v) != num_stages}
        if bad:
            raise ValueError(f"{name}: every per-stage setting needs {num_stages} entries, got lengths {bad}")
        if out_norms is None:
            out_norms = [s == num_stages - 1 for s in range(num_stages)]
        elif isinstance(out_norms, bool):
            out_norms = [out_norms] * num_stages
        if len(out_norms) != num_stages:
            raise ValueError(f"{name}: out_norms needs {num_stages} entries, got {len(out_norms)}")
        self.check_frozen_stages(frozen_stages, num_stages, name)

        self.in_channels = in_channels
        self.embed_dims = dims
        self.depths = depths
        self.num_stages = num_stages
        self.out_indices = normalize_indices(out_indices, num_stages, f"{name}.out_indices")
        self.frozen_stages = frozen_stages
        self.min_input_size = patch_sizes[0]
        dpr = torch.linspace(0, drop_path_rate, sum(depths), device="cpu").tolist()  # works under a meta device
        stages = []
        for s in range(num_stages):
            first = sum(depths[:s])
            stages.append(
                PyramidStage(
                    in_channels=in_channels if s == 0 else dims[s - 1],
                    dim=dims[s],
                    depth=depths[s],
                    num_heads=per_stage["num_heads"][s],
                    mlp_ratio=per_stage["mlp_ratios"][s],
                    sr_ratio=per_stage["sr_ratios"][s],
                    window_size=None if window_sizes is None else window_sizes[s],
                    patch_size=patch_sizes[s],
                    drop_path=dpr[first : first + depths[s]],
                    drop_rate=drop_rate,
                    attn_drop_rate=attn_drop_rate,
                    qkv_bias=qkv_bias,
                    peg_kernel_size=peg_kernel_size,
                    out_norm=bool(out_norms[s]),
                    peg_padding_mode=peg_padding_mode,
                    peg_dilation=peg_dilation,
                )
            )
        self.stages = nn.ModuleList(stages)
        self.apply(init_weights_)
        self.set_grad_checkpointing(with_cp)
        self._freeze_stages()

    # ------------------------------------------------------------------ forward
    def forward(self, x: Tensor, valid_sizes: Tensor | None = None) -> tuple[Tensor, ...]:
        """(B, C, H, W) -> tuple of NCHW maps for ``out_indices`` (stage s has stride 4 * 2**s).

        Args:
            x: Image batch.
            valid_sizes: ``(B, 2)`` real ``(h, w)`` of each image inside a padded batch (top-left aligned).
                Padded positions then behave as if they did not exist (:mod:`cpvt_mm.models.padding`), and
                each output map carries its own valid sizes for a neck to read. Defaults to the sizes a
                padding-aware data preprocessor attached to ``x``; without any, the plain forward runs.
        """
        check_image_batch(x, self.in_channels, self.min_input_size, type(self).__name__, self.stages[0].patch_embed)
        padding = Padding.from_pixels(lookup(x) if valid_sizes is None else valid_sizes, x)
        outs = []
        last = self.out_indices[-1]
        for s, stage in enumerate(self.stages[: last + 1]):
            tokens, (h, w), padding = stage(x, padding)
            x = tokens_to_map(tokens, (h, w))  # (B, N, C) -> (B, C, h, w), the next stage's input
            if s in self.out_indices:
                out = tokens_to_map(stage.norm(tokens), (h, w))  # (B, N, C) -> (B, C, h, w), output norm applied
                if padding is not None:
                    out = attach(output_map(padding.zero_map(out)), padding.sizes.cpu())
                outs.append(output_map(out))
        return tuple(outs)

    # ------------------------------------------------------------------ layout for the Backbone base
    @property
    def num_layers(self) -> int:
        return sum(self.depths) + 2

    def _frozen_modules(self) -> list[nn.Module]:
        return list(self.stages[: self.frozen_stages])

    def _layer_id(self, name: str) -> int | None:
        """Blocks are numbered 1..sum(depths) in order; a stage's patch embedding and PEG share the id of its
        first block; output norms count as the last layer."""
        parts = name.split(".")
        if parts[0] != "stages" or len(parts) < 3 or parts[2] == "norm":
            return None
        first = sum(self.depths[: int(parts[1])]) + 1
        return first + int(parts[3]) if parts[2] == "blocks" else first  # patch_embed, peg


@MODELS.register_module()
class SVT(PCPVT):
    """Twins-SVT: blocks alternate 7x7 locally-grouped attention (even) and global sub-sampled attention
    (odd); PEG after block 0 of each stage. Same arguments as :class:`PCPVT`; arch dicts also carry
    ``window_sizes``."""

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
