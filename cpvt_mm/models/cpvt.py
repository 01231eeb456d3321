"""Plain CPVT: a DeiT-shaped vision transformer whose position table is replaced by PEGs.

Chu et al., "Conditional Positional Encodings for Vision Transformers", arXiv 2102.10882. The authors
never released this model; this is a from-the-paper implementation: patch-16 embedding, no position table
at the input, one PEG after encoder block 0 (or after blocks 0..4 for the paper's stronger variant),
class-token or global-average-pool (CPVT-GAP) classification.

Parameter names (public API)::

    patch_embed.proj, cls_token, blocks.{i}.{norm1,attn.qkv,attn.proj,norm2,mlp.fc1,mlp.fc2},
    pegs.{i}.proj  (the PEG applied after block i), pegs.embed.proj (the PEG before block 0), norm
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..registry import MODELS
from .base import Backbone
from .layers import PEG, Attention, PatchEmbed, TransformerBlock, checkpoint_block, init_weights_, tokens_to_map
from .padding import Padding, attach, lookup
from .utils import check_image_batch, check_in_channels, is_symbolic, normalize_indices, output_map, resolve_arch

__all__ = ["CPVT"]

OUT_TYPES = ("cls_token", "avg_featmap", "featmap", "raw")


@MODELS.register_module()
class CPVT(Backbone):
    """Plain (single-scale) CPVT.

    Args:
        arch: ``'tiny'``, ``'small'``, ``'base'`` (or ``'t'``, ``'s'``, ``'b'``) or a dict with exactly
            ``embed_dims``, ``depth``, ``num_heads``, ``mlp_ratio``.
        patch_size: Patch size of the embedding (16 in the paper).
        peg_positions: Blocks after which a PEG is applied; ``(0,)`` is the paper's default, ``(0, 1, 2,
            3, 4)`` its stronger variant (marked with a double dagger in the paper). The entry ``'embed'``
            places a PEG on the patch embedding, before block 0: the paper's "position -1" ablation (Table 6),
            which it finds worse than after block 0. Negative integers count from the last block, as
            ``out_indices`` do, so -1 is the last block, not the paper's position -1.
        with_cls_token: Class token (CPVT) or none (CPVT-GAP).
        out_type: ``'cls_token'`` (B, C), ``'avg_featmap'`` (B, C) mean of the patch tokens,
            ``'featmap'`` (B, C, H, W) for dense tasks, ``'raw'`` (B, N, C). Defaults to ``'cls_token'``
            with a class token and ``'avg_featmap'`` without.
        out_indices: Blocks whose outputs are returned (default: the last).
        final_norm: LayerNorm (eps 1e-6) on the last block's output.
        abs_pos_embed: Baseline only (for ablations such as the demo): a DeiT-style learned absolute
            position table for a ``(h, w)`` token grid, added to the patch tokens after the embedding and
            bicubic-interpolated when the input gives another grid. ``None`` (the CPVT default) means no
            table anywhere; combine with ``peg_positions=()`` for a model with no position information.
        frozen_stages: Freeze the patch embedding, class token and blocks ``0 .. frozen_stages-1`` (with
            their PEGs); re-applied by ``train()``.
        with_cp: Gradient checkpointing of every block.
        peg_padding_mode: How the PEGs pad the token map: ``'zeros'`` (the paper; where position comes from)
            or ``'circular'`` (no border: the PEGs then mix neighbours without telling position, the
            experiment suite's control); see :class:`~cpvt_mm.models.peg.PEG`.
        peg_dilation: Spacing of the PEG kernels' taps in tokens (1 in training). Weights do not depend on
            it: testing a model on images enlarged ``d`` times with ``peg_dilation=d`` (e.g.
            ``--cfg-options model.backbone.peg_dilation=2``) lets its PEGs see objects at the scale they
            learned.
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
        self.in_channels = in_channels
        self.patch_size = patch_size
        self.embed_dims = dim
        self.depth = depth
        self.out_type = out_type
        self.out_indices = normalize_indices(out_indices, depth, "CPVT.out_indices")
        self.peg_on_embed, self.peg_positions = _split_peg_positions(peg_positions, depth)
        self.frozen_stages = frozen_stages
        self.num_prefix_tokens = 1 if with_cls_token else 0

        self.patch_embed = PatchEmbed(in_channels, dim, patch_size, norm=False)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim)) if with_cls_token else None
        if abs_pos_embed is not None:
            gh, gw = (int(v) for v in abs_pos_embed)
            self.pos_embed = nn.Parameter(torch.zeros(1, dim, gh, gw))
        else:
            self.pos_embed = None
        self.pos_drop = nn.Dropout(drop_rate)
        dpr = torch.linspace(0, drop_path_rate, depth, device="cpu").tolist()  # works under a meta device
        self.blocks = nn.ModuleList(
            TransformerBlock(
                dim,
                Attention(dim, int(self.arch["num_heads"]), qkv_bias, attn_drop_rate, drop_rate),
                float(self.arch["mlp_ratio"]),
                drop=drop_rate,
                drop_path=dpr[i],
            )
            for i in range(depth)
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
        self.with_cp = bool(with_cp)
        self._freeze_stages()

    def _format(self, x: Tensor, hw: tuple[int, int], padding: Padding | None) -> Tensor:
        if self.out_type == "raw":
            if padding is None:
                return x
            prefix, patches = x[:, : self.num_prefix_tokens], x[:, self.num_prefix_tokens :]
            return torch.cat((prefix, padding.zero_tokens(patches)), dim=1)
        if self.out_type == "cls_token":
            return x[:, 0]
        patches = x[:, self.num_prefix_tokens :]
        if self.out_type == "avg_featmap":
            if padding is None:
                return patches.mean(dim=1)
            # mean over each image's real tokens only
            return padding.zero_tokens(patches).sum(dim=1) / padding.keep(patches.dtype).sum(dim=1)
        out = tokens_to_map(patches, hw)  # (B, N, C) -> (B, C, H, W)
        if padding is None:
            return output_map(out)
        return attach(output_map(padding.zero_map(out)), padding.sizes.cpu())

    def _add_pos_embed(self, x: Tensor, hw: tuple[int, int], padding: Padding | None) -> Tensor:
        """Add the (baseline) learned table, bicubic-resized to each image's own grid as DeiT does."""
        table = self.pos_embed
        if padding is None:
            if is_symbolic(*hw) or tuple(table.shape[-2:]) != hw:  # an exported graph must follow any size
                table = F.interpolate(table, size=hw, mode="bicubic", align_corners=False)
            return x + table.flatten(2).transpose(1, 2)  # (1, C, h, w) -> (1, N, C)
        # A padded batch: the table must follow each image's real grid, not the padded one.
        tables = x.new_zeros(x.shape[0], x.shape[2], *hw)
        for b, (h, w) in enumerate(padding.sizes.tolist()):
            resized = (
                table
                if (h, w) == tuple(table.shape[-2:])
                else F.interpolate(table, size=(h, w), mode="bicubic", align_corners=False)
            )
            tables[b, :, :h, :w] = resized[0]
        return x + tables.flatten(2).transpose(1, 2)  # (B, C, h, w) -> (B, N, C)

    def forward(self, x: Tensor, valid_sizes: Tensor | None = None) -> tuple[Tensor, ...]:
        """(B, C, H, W) -> tuple with one output per ``out_indices`` entry, shaped by ``out_type``.

        ``valid_sizes``: ``(B, 2)`` real ``(h, w)`` of each image in a padded batch; see :meth:`PCPVT.forward`.
        Padded tokens are then never attended to, read as zeros by the PEGs, excluded from ``avg_featmap``
        and zero in ``featmap`` / ``raw`` outputs.
        """
        check_image_batch(x, self.in_channels, self.patch_size, "CPVT", self.patch_embed)
        padding = Padding.from_pixels(lookup(x) if valid_sizes is None else valid_sizes, x)
        x, hw = self.patch_embed(x, padding)
        if padding is not None:
            padding = padding.downsample(self.patch_size, hw, self.num_prefix_tokens)
        if self.pos_embed is not None:
            x = self._add_pos_embed(x, hw, padding)
        if self.cls_token is not None:
            x = torch.cat((self.cls_token.expand(x.shape[0], -1, -1), x), dim=1)
        x = self.pos_drop(x)
        if self.peg_on_embed:
            x = self.pegs["embed"](x, hw, padding)
        outs = []
        for i, blk in enumerate(self.blocks[: self.out_indices[-1] + 1]):
            if self.with_cp and self.training and x.requires_grad:
                x = checkpoint_block(blk, x, hw, padding)
            else:
                x = blk(x, hw, padding)
            if str(i) in self.pegs:
                x = self.pegs[str(i)](x, hw, padding)
            if i in self.out_indices:
                out = self.norm(x) if i == self.depth - 1 else x
                outs.append(self._format(out, hw, padding))
        return tuple(outs)

    # ------------------------------------------------------------------ layout for the Backbone base
    @property
    def num_layers(self) -> int:
        return self.depth + 2

    def _frozen_modules(self) -> list[nn.Module | nn.Parameter | None]:
        frozen = [self.patch_embed, *self.blocks[: self.frozen_stages], self.cls_token, self.pos_embed]
        return frozen + [self.pegs[k] for k in self.pegs if k == "embed" or int(k) < self.frozen_stages]

    def _no_decay_extra(self) -> set[str]:
        return {"cls_token", "pos_embed"}

    def _layer_id(self, name: str) -> int | None:
        """Embedding, class token and the embedding's PEG: 0; block i and the PEG after it: i + 1."""
        if name.startswith(("patch_embed", "cls_token", "pos_embed", "pegs.embed.")):
            return 0
        if name.startswith(("blocks.", "pegs.")):
            return int(name.split(".")[1]) + 1
        return None


def _split_peg_positions(positions: Sequence[int | str], depth: int) -> tuple[bool, tuple[int, ...]]:
    """``(0, 'embed', 2)`` -> ``(True, (0, 2))``: whether a PEG sits on the embedding, and the block indices."""
    if isinstance(positions, str | int):
        positions = (positions,)
    positions = tuple(positions)
    names = [p for p in positions if isinstance(p, str)]
    if any(p != "embed" for p in names) or len(names) > 1:
        raise ValueError(f"CPVT.peg_positions: entries are block indices or the string 'embed' (once), got {positions}")
    blocks = normalize_indices(tuple(p for p in positions if not isinstance(p, str)), depth, "CPVT.peg_positions")
    return bool(names), blocks
