"""A simple feature pyramid for plain (single-scale) backbones, after ViTDet.

Li et al., "Exploring Plain Vision Transformer Backbones for Object Detection", arXiv 2203.16527, Sec. 3:
a plain ViT keeps one stride-16 map to the end, and detectors that expect a pyramid (RPN, RoI heads, FPN-style
dense heads) can be fed from that single map alone: deconvolutions for the finer levels, a max-pool for the
coarser one, then a 1x1 and a 3x3 conv (each with a channel LayerNorm) per level. The paper finds this as
good as building an FPN from intermediate blocks, so the plain CPVT needs no hierarchy to detect.

mmdet 3.3.0 ships its ``SimpleFPN`` only inside ``projects/ViTDet``, which the wheel does not install; this
module is cpvt_mm's own, registered as ``cpvt_mm.SimpleFeaturePyramid``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch.nn.functional as F
from mmengine.model import BaseModule
from torch import Tensor, nn

from ..registry import MODELS
from .padding import Grid, lookup

__all__ = ["LayerNorm2d", "SimpleFeaturePyramid"]


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channels of an NCHW map.

    Detection batches are small (2 images per GPU), which rules out BatchNorm in the neck; a per-position
    LayerNorm over channels is what ViTDet uses instead and what the transformer's tokens already saw.
    """

    def forward(self, x: Tensor) -> Tensor:
        x = x.permute(0, 2, 3, 1)  # (B, C, H, W) -> (B, H, W, C): normalise the last dim
        x = F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)  # (B, H, W, C) -> (B, C, H, W)


def _resample(scale: float, channels: int, eps: float) -> tuple[nn.Module, int]:
    """The module that takes the stride-s map to stride s / ``scale``, and its output channels.

    Upsampling halves the channels per 2x (ViTDet's choice: it keeps the cost of the stride-4 level in check).
    Downsampling pools with ``ceil_mode`` so a map with an odd side keeps its last row / column, matching the
    backbones' ceil convention for sides that are not a multiple of the stride.
    """
    if scale == 4.0:
        return (
            nn.Sequential(
                nn.ConvTranspose2d(channels, channels // 2, kernel_size=2, stride=2),
                LayerNorm2d(channels // 2, eps=eps),
                nn.GELU(),
                nn.ConvTranspose2d(channels // 2, channels // 4, kernel_size=2, stride=2),
            ),
            channels // 4,
        )
    if scale == 2.0:
        return nn.ConvTranspose2d(channels, channels // 2, kernel_size=2, stride=2), channels // 2
    if scale == 1.0:
        return nn.Identity(), channels
    if scale == 0.5:
        return nn.MaxPool2d(kernel_size=2, stride=2, ceil_mode=True), channels
    raise ValueError(f"SimpleFeaturePyramid: scale factors must be among 4.0, 2.0, 1.0, 0.5; got {scale}")


class _PyramidLevel(nn.Module):
    """Resample the backbone map, then 1x1 conv + norm (channel projection) and 3x3 conv + norm (smoothing).

    The convs have no bias: each is followed by a norm whose shift makes a bias redundant.
    """

    def __init__(self, scale: float, in_channels: int, out_channels: int, eps: float) -> None:
        super().__init__()
        self.scale = scale
        self.resample, channels = _resample(scale, in_channels, eps)
        self.lateral_conv = nn.Conv2d(channels, out_channels, kernel_size=1, bias=False)
        self.lateral_norm = LayerNorm2d(out_channels, eps=eps)
        self.output_conv = nn.Conv2d(out_channels, out_channels, kernel_size=3, padding=1, bias=False)
        self.output_norm = LayerNorm2d(out_channels, eps=eps)

    def forward(self, x: Tensor, grid: Grid) -> tuple[Tensor, Grid]:
        """NCHW map and its grid -> resampled, projected map and its grid.

        In a padded batch, padded positions never reach real ones: the max-pool sees them as ``-inf`` and the
        3x3 conv as zeros (what it sees beyond the border of an image alone). The deconvs and 1x1 convs do
        not mix positions.
        """
        if self.scale < 1:
            x = self.resample(grid.fill(x, float("-inf")))
            grid = grid.downsample(2, x.shape[-2:])
            x = grid.zero_map(x)  # windows of padding only pooled -inf
        else:
            x = self.resample(x)
            grid = grid.upsample(int(self.scale), x.shape[-2:])
        x = grid.zero_map(self.lateral_norm(self.lateral_conv(x)))
        return grid.zero_map(self.output_norm(self.output_conv(x))), grid


@MODELS.register_module()
class SimpleFeaturePyramid(BaseModule):
    """Multi-scale maps from one single-scale backbone map (ViTDet's simple feature pyramid).

    With the default ``scale_factors=(4.0, 2.0, 1.0, 0.5)`` and a stride-16 input (``cpvt_mm.CPVT`` with
    ``out_type='featmap'``) the outputs have strides 4, 8, 16, 32, and each further output (``num_outs`` > 4)
    is the previous one max-pooled with kernel 1 / stride 2 (stride 64 for the RPN of Mask R-CNN), as the
    detectors' ``featmap_strides`` / anchor strides expect. An input side of ``h`` tokens gives ``4h``, ``2h``,
    ``h``, ``ceil(h / 2)``, ``ceil(h / 4)``: any input size works.

    Args:
        in_channels: Channels of the backbone map.
        out_channels: Channels of every output level.
        scale_factors: Resampling of each level relative to the input (4.0 up, 2.0 up, 1.0 as is, 0.5 down),
            finest first.
        num_outs: Number of outputs; the levels beyond ``len(scale_factors)`` are max-pooled from the last.
        norm_eps: LayerNorm epsilon.
        init_cfg: mmengine init config (uniform Xavier on the convs, as mmdet's FPN).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        scale_factors: Sequence[float] = (4.0, 2.0, 1.0, 0.5),
        num_outs: int = 5,
        norm_eps: float = 1e-6,
        init_cfg: dict | list[dict] | None = None,
    ) -> None:
        if init_cfg is None:
            init_cfg = dict(type="Xavier", layer=["Conv2d", "ConvTranspose2d"], distribution="uniform")
        super().__init__(init_cfg=init_cfg)
        scale_factors = [float(s) for s in scale_factors]
        if not scale_factors or sorted(scale_factors, reverse=True) != scale_factors:
            raise ValueError(
                f"SimpleFeaturePyramid: scale_factors must be non-empty, finest first; got {scale_factors}"
            )
        if len(set(scale_factors)) != len(scale_factors):
            raise ValueError(f"SimpleFeaturePyramid: duplicate scale factors in {scale_factors}")
        if num_outs < len(scale_factors):
            raise ValueError(f"SimpleFeaturePyramid: num_outs={num_outs} < {len(scale_factors)} scale factors")
        if (4.0 in scale_factors and in_channels % 4) or (2.0 in scale_factors and in_channels % 2):
            raise ValueError(f"SimpleFeaturePyramid: in_channels={in_channels} cannot be halved per 2x upsampling")
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.scale_factors = tuple(scale_factors)
        self.num_outs = num_outs
        self.levels = nn.ModuleList(_PyramidLevel(s, in_channels, out_channels, norm_eps) for s in scale_factors)

    def forward(self, inputs: Sequence[Tensor]) -> tuple[Tensor, ...]:
        """Backbone outputs (the last one, NCHW, is used) -> ``num_outs`` NCHW maps, finest first."""
        x = inputs[-1]
        grid = Grid.of_batch(x, lookup(x))  # sizes set by a padding-aware backbone when the batch is padded
        outs, grids = [], []
        for level in self.levels:
            out, out_grid = level(x, grid)
            outs.append(out)
            grids.append(out_grid)
        while len(outs) < self.num_outs:
            outs.append(F.max_pool2d(outs[-1], kernel_size=1, stride=2))  # ceil(h / 2) x ceil(w / 2)
            grids.append(grids[-1].downsample(2, outs[-1].shape[-2:]))
        # LayerNorm2d's permutes leave channels-last strides
        return tuple(g.output(o) for o, g in zip(outs, grids))
