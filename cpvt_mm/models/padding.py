"""Padding-aware forward passes: an image's features must not depend on its batch-mates or on padding.

Detection and segmentation batch images of different sizes by zero-padding them at the bottom / right (and to
a multiple of a divisor). A CNN only sees that padding at the image border; a transformer with global or
sub-sampled attention would let every padded token act as a key, and a patch embedding turns zero pixels into
non-zero tokens (bias, then LayerNorm). With :class:`Padding` the backbones instead treat every padded
position as if it did not exist:

- padded tokens never act as keys / values in any attention (masked);
- wherever a PEG, a strided patch embedding or a sub-sampling conv reads them they are zero, which is exactly
  the zero padding the image sees at its border when run alone;
- the backbone's output maps are zero there.

The result for each image equals the plain forward of that image cropped to its own size (tested to 1e-5).

How the sizes reach the backbone without changing mmdet's / mmseg's model classes: a padding-aware data
preprocessor (:mod:`cpvt_mm.models.data_preprocessor`) :func:`attach`-es each image's valid size to the batch
tensor it returns, and the backbone :func:`lookup`-s its input. The table is keyed by tensor identity and
holds weak references, so a tensor derived from the batch (a crop, a resized copy) carries nothing and gets
the plain forward, and nothing outlives the batch. The backbone attaches the valid sizes of its output maps in
the same way, so a neck such as :class:`cpvt_mm.SimpleFeaturePyramid` can mask too.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["Padding", "attach", "lookup"]

Size2D = tuple[int, int]

_ATTACHED: dict[int, tuple[weakref.ref, Tensor]] = {}


def attach(tensor: Tensor, sizes: Tensor | Sequence[Sequence[int]]) -> Tensor:
    """Record that image ``b`` of the NCHW ``tensor`` is valid in ``[:sizes[b][0], :sizes[b][1]]``.

    Sizes are in the tensor's own grid (pixels for images, tokens for feature maps); the rest is padding.
    Returns ``tensor`` for chaining. The record disappears with the tensor.
    """
    sizes = torch.as_tensor(sizes, dtype=torch.long, device="cpu").reshape(-1, 2)
    if tensor.ndim != 4 or sizes.shape[0] != tensor.shape[0]:
        raise ValueError(
            f"attach() needs an NCHW tensor and one (h, w) per image; got shape {tuple(tensor.shape)} "
            f"and {sizes.shape[0]} sizes"
        )
    if bool((sizes < 1).any()) or bool((sizes > torch.tensor(tensor.shape[-2:])).any()):
        raise ValueError(f"valid sizes {sizes.tolist()} must lie within the {tuple(tensor.shape[-2:])} map")
    key = id(tensor)
    _ATTACHED[key] = (weakref.ref(tensor, lambda _, key=key: _ATTACHED.pop(key, None)), sizes)
    return tensor


def lookup(tensor: Tensor) -> Tensor | None:
    """The ``(B, 2)`` valid sizes :func:`attach`-ed to exactly this tensor object, or None.

    Always None while ``torch.compile``, ``torch.export`` / the ONNX exporter or ``torch.jit`` trace: the
    table is keyed by Python object identity, which a traced graph cannot express (dynamo would break the
    graph on it, an exporter would bake in one call's answer). Compiled and exported models therefore run
    the plain path; the padding-aware path is an eager-mode feature (``docs/deployment.md``).
    """
    if _tracing():
        return None
    entry = _ATTACHED.get(id(tensor))
    if entry is None or entry[0]() is not tensor:
        return None
    return entry[1]


def _tracing() -> bool:
    return torch.compiler.is_compiling() or torch.jit.is_tracing()


class Padding:
    """Which tokens of a padded ``(B, N, C)`` token grid of size ``hw`` are real.

    Args:
        sizes: ``(B, 2)`` valid rows / columns per image, in tokens of this grid; the valid region of every
            image is its top-left ``sizes[b]`` corner (mmdet and mmseg pad at the bottom / right).
        hw: The padded grid's ``(H, W)``.
        num_prefix_tokens: Tokens before the grid (a class token); always real, always attended to.
    """

    def __init__(self, sizes: Tensor, hw: Size2D, device: torch.device, num_prefix_tokens: int = 0) -> None:
        self.sizes = sizes.to(device=device, dtype=torch.long)
        self.hw = (int(hw[0]), int(hw[1]))
        self.num_prefix_tokens = num_prefix_tokens
        H, W = self.hw
        rows = torch.arange(H, device=device) < self.sizes[:, :1]  # (B, H)
        cols = torch.arange(W, device=device) < self.sizes[:, 1:]  # (B, W)
        self.grid = rows[:, :, None] & cols[:, None, :]  # (B, H, W) bool, True = real token
        self._keep: dict[torch.dtype, Tensor] = {}
        self._cache: dict[tuple, object] = {}  # derived paddings and masks, shared by a stage's blocks

    @classmethod
    def from_pixels(cls, sizes: Tensor | None, x: Tensor) -> Padding | None:
        """The padding of an image batch ``x``; None when no image is padded (the plain path is then exact)."""
        if sizes is None:
            return None
        if torch.compiler.is_exporting() or torch.jit.is_tracing():
            raise NotImplementedError(
                "valid_sizes (the padding-aware forward) cannot be exported: the masks depend on the sizes' "
                "values. Export the plain forward (valid_sizes=None) and run padded batches in eager mode"
            )
        sizes = torch.as_tensor(sizes, dtype=torch.long, device="cpu").reshape(-1, 2)
        H, W = x.shape[-2:]
        if sizes.shape[0] != x.shape[0] or bool((sizes < 1).any()) or bool((sizes > torch.tensor([H, W])).any()):
            raise ValueError(
                f"valid_sizes must hold one (h, w) per image within the {H}x{W} input, got {sizes.tolist()}"
            )
        if bool((sizes == torch.tensor([H, W])).all()):
            return None
        return cls(sizes, (H, W), x.device)

    def downsample(self, stride: int, hw: Size2D, num_prefix_tokens: int = 0) -> Padding:
        """The padding of the grid a stride-``stride`` conv (zero-padded up, i.e. ceil) makes of this one."""
        key = ("down", stride, tuple(hw), num_prefix_tokens)
        if key not in self._cache:
            self._cache[key] = Padding(-(-self.sizes // stride), hw, self.grid.device, num_prefix_tokens)
        return self._cache[key]  # type: ignore[return-value]

    def keep(self, dtype: torch.dtype) -> Tensor:
        """``(B, N, 1)`` multiplier, 1 for real tokens and 0 for padded ones."""
        if dtype not in self._keep:
            self._keep[dtype] = self.grid.flatten(1)[:, :, None].to(dtype)
        return self._keep[dtype]

    def zero_tokens(self, x: Tensor) -> Tensor:
        """``(B, N, C)`` tokens with the padded ones set to zero."""
        return x * self.keep(x.dtype)

    def zero_map(self, x: Tensor) -> Tensor:
        """``(B, C, H', W')`` map with everything outside each image's valid region set to zero.

        ``H', W'`` may exceed the grid (a map already padded further for a conv); the excess is zeroed too.
        """
        grid = self.grid
        if tuple(x.shape[-2:]) != self.hw:
            # (B, H, W) -> (B, H', W'): the extra rows / columns are padding as well
            grid = F.pad(grid, (0, x.shape[-1] - self.hw[1], 0, x.shape[-2] - self.hw[0]))
        return x * grid[:, None].to(x.dtype)

    def key_mask(self) -> Tensor:
        """``(B, 1, 1, P + N)`` boolean attention mask, True where the key is real (P prefix tokens first)."""
        if "keys" not in self._cache:
            keys = self.grid.flatten(1)
            if self.num_prefix_tokens:
                keys = F.pad(keys, (self.num_prefix_tokens, 0), value=True)
            self._cache["keys"] = keys[:, None, None, :]
        return self._cache["keys"]  # type: ignore[return-value]

    def window_key_mask(self, ws: int) -> Tensor:
        """``(B * nW, 1, 1, ws * ws)`` key mask for ``ws x ws`` windows over the grid padded to multiples of ws.

        A window with no real token at all (entirely in the padding) may attend to all of its keys: its
        queries are padded tokens whose outputs are never read, and a fully masked row would give NaN.
        """
        key = ("windows", ws)
        if key not in self._cache:
            H, W = self.hw
            Hp, Wp = H + (-H % ws), W + (-W % ws)
            grid = F.pad(self.grid, (0, Wp - W, 0, Hp - H))  # (B, Hp, Wp), False beyond the grid
            B = grid.shape[0]
            # (B, Hp, Wp) -> (B, nh, ws, nw, ws) -> (B * nh * nw, ws * ws)
            win = grid.reshape(B, Hp // ws, ws, Wp // ws, ws).transpose(2, 3).reshape(-1, ws * ws)
            win = win | ~win.any(dim=1, keepdim=True)
            self._cache[key] = win[:, None, None, :]
        return self._cache[key]  # type: ignore[return-value]
