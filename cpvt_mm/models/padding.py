"""Token grids, and padded batches: an image's features must not depend on its batch-mates or on padding.

Detection and segmentation zero-pad images of different sizes into one batch, where a transformer would let
padded tokens act as keys and a patch embedding turns zero pixels into non-zero tokens. Given each image's valid
size, the backbones treat padded positions as absent: never keys, zeros wherever a PEG or strided conv reads them
(the border an image sees alone), zeros in the outputs; features equal the image's alone (tested to 1e-5).

The sizes are data on the batch: a padding-aware data preprocessor sets ``inputs.valid_sizes`` (:func:`attach`)
for the backbone to read (:func:`lookup`), or a caller passes ``valid_sizes=``. A crop or resized copy is a new
tensor without the field: the plain forward. Backbones set it on their output maps too, for a neck to read.
Inside, one :class:`Grid` (map size and, if padded, the real tokens) goes through the layers; unpadded, its
masking methods return their input, so layers call them without a branch.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from .utils import dense, is_symbolic

__all__ = ["Grid", "attach", "lookup"]

Size2D = tuple[int, int]


def _checked(sizes: Tensor | Sequence[Sequence[int]], x: Tensor) -> Tensor:
    sizes = torch.as_tensor(sizes, dtype=torch.long, device="cpu").reshape(-1, 2)
    hw = torch.tensor(x.shape[-2:])
    if x.ndim != 4 or sizes.shape[0] != x.shape[0] or bool((sizes < 1).any()) or bool((sizes > hw).any()):
        raise ValueError(
            f"valid_sizes must hold one (h, w) per image within the {tuple(hw.tolist())} map of an NCHW batch; "
            f"got {sizes.tolist()} for shape {tuple(x.shape)}"
        )
    return sizes


def attach(tensor: Tensor, sizes: Tensor | Sequence[Sequence[int]] | None) -> Tensor:
    """Set ``tensor.valid_sizes`` (returns ``tensor``): image ``b`` of the NCHW ``tensor`` is real in its top-left
    ``sizes[b]`` corner, in the tensor's own grid (pixels for images, tokens for maps); None: nothing padded."""
    if sizes is not None:
        tensor.valid_sizes = _checked(sizes, tensor)
    return tensor


def lookup(tensor: Tensor) -> Tensor | None:
    """``tensor.valid_sizes`` if :func:`attach` set it, else None; None while compiling, exporting or tracing: a graph
    cannot take a Python attribute as input, so padding awareness is eager-only (``docs/deployment.md``)."""
    if torch.compiler.is_compiling() or torch.jit.is_tracing():
        return None
    return getattr(tensor, "valid_sizes", None)


class Grid:
    """A token map of size ``hw`` (may be symbolic); with ``(B, 2)`` ``sizes``, a padded batch whose image ``b`` is
    real in its top-left ``sizes[b]`` corner (mmdet and mmseg pad at the bottom / right). ``num_prefix_tokens``:
    tokens before the map (a class token), always real."""

    def __init__(self, hw: Size2D, sizes: Tensor | None = None, num_prefix_tokens: int = 0) -> None:
        self.hw, self.sizes, self.num_prefix_tokens = (hw[0], hw[1]), sizes, num_prefix_tokens
        self._memo: dict[tuple, object] = {}  # padded grids only (eager): masks and sub-grids, shared by the blocks

    def _once(self, key: tuple, make: Callable[[], Any]) -> Any:
        if key not in self._memo:
            self._memo[key] = make()
        return self._memo[key]

    @property
    def padded(self) -> bool:
        return self.sizes is not None

    @classmethod
    def of_batch(cls, x: Tensor, sizes: Tensor | Sequence[Sequence[int]] | None) -> Grid:
        """The grid of an NCHW batch ``x`` (images or maps) valid in ``sizes`` (None or all full: unpadded)."""
        hw = (x.shape[-2], x.shape[-1])
        if sizes is None:
            return cls(hw)
        if torch.compiler.is_exporting() or torch.jit.is_tracing():
            raise NotImplementedError(
                "valid_sizes (the padding-aware forward) cannot be exported: the masks depend on the sizes' "
                "values. Export the plain forward (valid_sizes=None) and run padded batches in eager mode"
            )
        sizes = _checked(sizes, x)
        return cls(hw, None if bool((sizes == torch.tensor(hw)).all()) else sizes.to(x.device))

    @classmethod
    def of(cls, grid: Grid | Size2D) -> Grid:
        """A layer's grid argument: a :class:`Grid`, or a plain ``(H, W)`` for an unpadded map."""
        return grid if isinstance(grid, Grid) else cls(grid)

    def downsample(self, stride: int, hw: Size2D, num_prefix_tokens: int = 0) -> Grid:
        """The grid a stride-``stride`` conv (zero-padded up, i.e. ``ceil``) makes of this one."""
        if self.sizes is None:
            return Grid(hw, None, num_prefix_tokens)
        key = ("down", stride, int(hw[0]), int(hw[1]), num_prefix_tokens)
        return self._once(key, lambda: Grid(hw, -(-self.sizes // stride), num_prefix_tokens))

    def upsample(self, factor: int, hw: Size2D) -> Grid:
        return Grid(hw, None if self.sizes is None else self.sizes * factor)

    def real(self) -> Tensor:
        """``(B, H, W)`` boolean, True for real tokens (padded grids only)."""

        def make() -> Tensor:
            rows = torch.arange(self.hw[0], device=self.sizes.device) < self.sizes[:, :1]  # (B, H)
            cols = torch.arange(self.hw[1], device=self.sizes.device) < self.sizes[:, 1:]  # (B, W)
            return rows[:, :, None] & cols[:, None, :]

        return self._once(("real",), make)

    def _keep(self, dtype: torch.dtype) -> Tensor:
        """``(B, H*W, 1)`` multiplier: 1 for real tokens, 0 for padded ones."""
        return self._once(("keep", dtype), lambda: self.real().flatten(1)[:, :, None].to(dtype))

    def zero_tokens(self, x: Tensor) -> Tensor:
        """``(B, H*W, C)`` tokens with the padded ones set to zero."""
        return x if self.sizes is None else x * self._keep(x.dtype)

    def mean_tokens(self, x: Tensor) -> Tensor:
        """``(B, H*W, C)`` -> ``(B, C)``: the mean over each image's real tokens."""
        if self.sizes is None:
            return x.mean(dim=1)
        keep = self._keep(x.dtype)
        return (x * keep).sum(dim=1) / keep.sum(dim=1)

    def fill(self, x: Tensor, value: float) -> Tensor:
        """``(B, C, H', W')`` map with ``value`` outside each image's valid region (``H', W'`` >= the grid's)."""
        if self.sizes is None:
            return x
        real = F.pad(self.real(), (0, x.shape[-1] - self.hw[1], 0, x.shape[-2] - self.hw[0]))  # (B, H', W')
        return x.masked_fill(~real[:, None], value)

    def zero_map(self, x: Tensor) -> Tensor:
        return self.fill(x, 0.0)

    def output(self, x: Tensor) -> Tensor:
        """A ``(B, C, H, W)`` output map as backbones and necks return it: zero outside each image, carrying the sizes
        (:func:`attach`), NCHW-contiguous: mmcv's RoIAlign reads raw NCHW memory without checking strides, so RoI heads
        would pool scrambled features from a channels-last view."""
        return attach(self.zero_map(x).contiguous(), self.sizes)

    def key_mask(self) -> Tensor | None:
        """``(B, 1, 1, P + H*W)`` boolean attention mask, True where the key is real; None if nothing is padded."""
        if self.sizes is None:
            return None
        prefix = self.num_prefix_tokens  # (B, H*W) -> (B, 1, 1, P + H*W)
        return self._once(("keys",), lambda: F.pad(self.real().flatten(1), (prefix, 0), value=True)[:, None, None])

    def window_key_mask(self, ws: int, like: Tensor) -> Tensor | None:
        """``(B * nW, 1, 1, ws*ws)`` key mask for ``ws x ws`` windows over the map zero-padded to multiples of
        ``ws``, True where the key is real; None when every window is full. ``like``: the windows' ``(B, ...)``. A
        window all in padding attends to all its keys (never read; a fully masked row is NaN). Always built for a
        symbolic size: one graph for every size, not one per divisibility pattern.
        """
        if self.sizes is not None:  # eager only: one mask for all the window attentions of a stage
            return self._once(("windows", ws, like.shape[0]), lambda: self._windows(ws, like))
        return self._windows(ws, like)

    def _windows(self, ws: int, like: Tensor) -> Tensor | None:
        H, W = self.hw
        sym = is_symbolic(H, W)
        nh, nw = (H + ws - 1) // ws, (W + ws - 1) // ws  # windows per side (ceil)
        if self.sizes is None and not sym and nh * ws == H and nw * ws == W:
            return None
        if self.sizes is None:  # comparisons against the size (not a fill), so the mask follows a symbolic size
            rows = torch.arange(nh * ws, device=like.device) < H
            cols = torch.arange(nw * ws, device=like.device) < W
            real = (rows[:, None] & cols[None, :])[None]  # (1, Hp, Wp)
        else:
            real = F.pad(self.real(), (0, nw * ws - W, 0, nh * ws - H))  # (B, Hp, Wp)
        # (b, Hp, Wp) -> (b, nh, ws, nw, ws) -> (b, nh, nw, ws, ws) -> (b, nW, ws*ws)
        win = dense(real.reshape(-1, nh, ws, nw, ws).transpose(2, 3), sym).reshape(-1, nh * nw, ws * ws)
        win, B = win | ~win.any(dim=-1, keepdim=True), like.shape[0]
        # (b, nW, L) -> (B * nW, 1, 1, L): one row per window, broadcast over heads and queries
        return dense(win.expand(B, -1, -1), sym).reshape(B * nh * nw, 1, 1, ws * ws)
