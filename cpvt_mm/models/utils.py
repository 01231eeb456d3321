"""Helpers shared by the backbones: arch resolution and input validation."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from torch import Tensor


def resolve_arch(
    arch: str | Mapping[str, Any], zoo: Mapping[str, Mapping[str, Any]], required: Sequence[str], name: str
) -> dict:
    """Return a copy of the named arch from ``zoo``, or validate a custom dict.

    Custom dicts must carry every key in ``required``; the error names the missing ones so a typo in a
    config is caught at build time rather than surfacing as a shape error deep in the forward pass.
    """
    if isinstance(arch, str):
        key = arch.lower()
        if key not in zoo:
            raise ValueError(f"{name}: unknown arch {arch!r}; choose one of {sorted(zoo)} or pass a dict")
        return {k: (list(v) if isinstance(v, (list, tuple)) else v) for k, v in zoo[key].items()}
    if not isinstance(arch, Mapping):
        raise TypeError(f"{name}: arch must be a str or a dict, got {type(arch).__name__}")
    missing = [k for k in required if k not in arch]
    if missing:
        raise ValueError(f"{name}: custom arch is missing keys {missing}; required keys are {list(required)}")
    return dict(arch)


def check_image_batch(x: Tensor, in_channels: int, min_size: int, name: str) -> None:
    """Reject inputs that would otherwise fail obscurely (or silently) inside the first conv."""
    expected = f"a float tensor of shape (B, {in_channels}, H, W) with H, W >= {min_size}"
    if not isinstance(x, Tensor):
        raise ValueError(f"{name} expects {expected}, got {type(x).__name__}")
    if x.ndim != 4:
        raise ValueError(f"{name} expects {expected}, got a {x.ndim}-D tensor of shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise ValueError(f"{name} expects {expected}, got dtype {x.dtype} (convert images with .float())")
    if x.shape[1] != in_channels:
        raise ValueError(f"{name} expects {expected}, got {x.shape[1]} channels (shape {tuple(x.shape)})")
    if x.shape[2] < min_size or x.shape[3] < min_size:
        raise ValueError(f"{name} expects {expected}, got {x.shape[2]}x{x.shape[3]}: smaller than one patch")


def normalize_indices(indices: int | Sequence[int], length: int, name: str) -> tuple[int, ...]:
    """Map possibly negative indices into ``range(length)``, rejecting out-of-range ones."""
    if isinstance(indices, int):
        indices = (indices,)
    out = []
    for i in indices:
        j = i + length if i < 0 else i
        if not 0 <= j < length:
            raise ValueError(f"{name}: index {i} is out of range for {length} entries")
        out.append(j)
    if len(set(out)) != len(out):
        raise ValueError(f"{name}: duplicate indices in {tuple(indices)}")
    return tuple(sorted(out))
