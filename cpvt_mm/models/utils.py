"""Helpers shared by the backbones: arch resolution and input validation."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

# mmpretrain's short arch names (its Twins zoo accepts 's' / 'b' / 'l'; CPVT adds 't' for tiny)
ARCH_ALIASES = {"t": "tiny", "s": "small", "b": "base", "l": "large"}
# settings people put inside ``arch`` that are backbone arguments: named in the error instead of dropped
_ARGUMENT_KEYS = {"patch_sizes", "patch_size", "strides", "in_channels", "out_indices", "drop_path_rate"}


def resolve_arch(arch: str | Mapping[str, Any], zoo: Mapping[str, Mapping], required: Sequence[str], name: str) -> dict:
    """A copy of the named arch from ``zoo`` (case-insensitive; mmpretrain's short names such as ``'s'`` work, so
    its configs' ``arch`` does), or a custom dict checked to carry exactly the ``required`` keys: a typo, or a
    backbone argument such as ``patch_sizes`` put inside ``arch``, would otherwise be ignored silently."""
    if isinstance(arch, str):
        key = ARCH_ALIASES.get(arch.lower(), arch.lower())
        key = key if key in zoo else arch.lower()
        if key not in zoo:
            short = sorted(k for k, v in ARCH_ALIASES.items() if v in zoo)
            raise ValueError(f"{name}: unknown arch {arch!r}; choose one of {sorted(zoo)} (or {short}) or pass a dict")
        return {k: (list(v) if isinstance(v, list | tuple) else v) for k, v in zoo[key].items()}
    if not isinstance(arch, Mapping):
        raise TypeError(f"{name}: arch must be a str or a dict, got {type(arch).__name__}")
    if missing := [k for k in required if k not in arch]:
        raise ValueError(f"{name}: custom arch is missing keys {missing}; required keys are {list(required)}")
    if unknown := [k for k in arch if k not in required]:
        arguments = [k for k in unknown if k in _ARGUMENT_KEYS]
        hint = f"; {arguments} are arguments of {name} itself, not arch entries" if arguments else ""
        raise ValueError(f"{name}: custom arch has unknown keys {unknown}; allowed keys are {list(required)}{hint}")
    return dict(arch)


def is_symbolic(*sizes: int | torch.SymInt) -> bool:
    """Whether a size is symbolic (export; always under ``torch.compile``, where dynamo shows SymInts as ints).

    A branch on a symbolic size (``if pad_h:``) would specialise an exported graph to the example or recompile per
    divisibility pattern, so the models then take the branch right for every size (pad by a possibly-zero amount).
    """
    return torch.compiler.is_compiling() or any(isinstance(s, torch.SymInt) for s in sizes)


def dense(x: Tensor, symbolic: bool) -> Tensor:
    """A contiguous copy when sizes are symbolic, else ``x``: whether ``reshape`` of a transposed tensor is a view
    depends on the sizes, a guard per answer under a dynamic compile; the compiler fuses the copy away."""
    return x.clone(memory_format=torch.contiguous_format) if symbolic else x


def check_in_channels(in_channels: int, name: str) -> None:
    """``in_channels`` must be a positive int (0 built a model whose every forward failed)."""
    if isinstance(in_channels, bool) or not isinstance(in_channels, int) or in_channels < 1:
        raise ValueError(f"{name}: in_channels must be a positive int (3 for RGB images), got {in_channels!r}")


def check_image_batch(x: Tensor, in_channels: int, min_size: int, name: str, first_layer: nn.Module) -> None:
    """Reject inputs that would fail obscurely (or silently) inside the first conv: the error names the expected
    shape; a floating dtype other than the weights' is refused outside autocast (under autocast the convs cast)."""
    expected = f"a float tensor of shape (B, {in_channels}, H, W) with H, W >= {min_size}"
    if not isinstance(x, Tensor) or x.ndim != 4 or not x.is_floating_point():
        got = f"a {x.dtype} tensor of shape {tuple(x.shape)}" if isinstance(x, Tensor) else type(x).__name__
        raise ValueError(f"{name} expects {expected}, got {got} (images: .float())")
    if x.shape[1] != in_channels or min(x.shape[2], x.shape[3]) < min_size:
        raise ValueError(f"{name} expects {expected}, got shape {tuple(x.shape)}")
    weight = next(first_layer.parameters())
    if x.dtype != weight.dtype and not torch.is_autocast_enabled(x.device.type):
        raise ValueError(
            f"{name}: input dtype {x.dtype} differs from the model's weights ({weight.dtype}); cast the input "
            f"(x.to({weight.dtype})) or the model (model.to({x.dtype})), or run under torch.autocast"
        )


def normalize_indices(indices: int | Sequence[int], length: int, name: str) -> tuple[int, ...]:
    """Map possibly negative indices into ``range(length)``, rejecting out-of-range ones."""
    indices = (indices,) if isinstance(indices, int) else tuple(indices)
    if bad := [i for i in indices if not -length <= i < length]:
        raise ValueError(f"{name}: index {bad[0]} is out of range for {length} entries")
    out = [i % length for i in indices]
    if len(set(out)) != len(out):
        raise ValueError(f"{name}: duplicate indices in {tuple(indices)}")
    return tuple(sorted(out))


def tokens_to_map(x: Tensor, hw: tuple[int, int]) -> Tensor:
    """``(B, H*W, C)`` tokens -> ``(B, C, H, W)`` map for a conv: a view in eager mode, no copy (channels-last for
    contiguous tokens, so even a batch of one gets canonical channels-last strides: oneDNN's convs return NCHW maps
    otherwise, which every later norm and linear copies). Contiguous with symbolic sizes: stride checks on a symbolic
    view add guards an exporter cannot prove.
    """
    if is_symbolic(*hw):
        B, _, C = x.shape  # explicit B and C: with B == 0 a -1 would be ambiguous
        return x.transpose(1, 2).contiguous().reshape(B, C, hw[0], hw[1])  # (B, N, C) -> (B, C, H, W)
    return x.unflatten(1, hw).permute(0, 3, 1, 2)  # (B, N, C) -> (B, H, W, C) -> (B, C, H, W)
