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


def resolve_arch(
    arch: str | Mapping[str, Any],
    zoo: Mapping[str, Mapping[str, Any]],
    required: Sequence[str],
    name: str,
    optional: Sequence[str] = (),
) -> dict:
    """Return a copy of the named arch from ``zoo``, or validate a custom dict.

    Names are case-insensitive and accept mmpretrain's short forms (``'s'`` for ``'small'`` ...), so an
    mmpretrain config's ``arch`` works unchanged. Custom dicts must carry every key in ``required`` and nothing
    outside ``required`` + ``optional``: a typo, or a backbone argument such as ``patch_sizes`` put inside
    ``arch``, would otherwise be ignored silently; the error names the offending keys.
    """
    if isinstance(arch, str):
        key = arch.lower()
        key = ARCH_ALIASES.get(key, key) if ARCH_ALIASES.get(key) in zoo else key
        if key not in zoo:
            short = sorted(k for k, v in ARCH_ALIASES.items() if v in zoo)
            raise ValueError(f"{name}: unknown arch {arch!r}; choose one of {sorted(zoo)} (or {short}) or pass a dict")
        return {k: (list(v) if isinstance(v, (list, tuple)) else v) for k, v in zoo[key].items()}
    if not isinstance(arch, Mapping):
        raise TypeError(f"{name}: arch must be a str or a dict, got {type(arch).__name__}")
    missing = [k for k in required if k not in arch]
    if missing:
        raise ValueError(f"{name}: custom arch is missing keys {missing}; required keys are {list(required)}")
    unknown = [k for k in arch if k not in required and k not in optional]
    if unknown:
        arguments = [k for k in unknown if k in _ARGUMENT_KEYS]
        hint = f"; {arguments} are arguments of {name} itself, not arch entries" if arguments else ""
        raise ValueError(
            f"{name}: custom arch has unknown keys {unknown}; allowed keys are {[*required, *optional]}{hint}"
        )
    return dict(arch)


def is_symbolic(*sizes: int | torch.SymInt) -> bool:
    """Whether any size is symbolic: traced by ``torch.export`` / the ONNX exporter or by ``torch.compile`` with
    dynamic shapes.

    A Python branch on a symbolic size (``if pad_h:``) would either specialise the graph to the example input
    (an exported file that only runs at one size) or guard on it (a recompile per divisibility pattern). The
    models therefore take the branch that is right for every size when this is True (pad by a possibly-zero
    amount, build the mask) and keep the cheaper concrete-size branches in eager mode.

    Under ``torch.compile`` this is always True: dynamo presents a symbolic size to ``isinstance`` as an int,
    and one generic graph (the zero-amount pad is free once compiled) beats a recompile whenever the input
    size crosses a divisibility pattern.
    """
    return torch.compiler.is_compiling() or any(isinstance(s, torch.SymInt) for s in sizes)


def check_in_channels(in_channels: int, name: str) -> None:
    """``in_channels`` must be a positive int (0 built a model whose every forward failed)."""
    if isinstance(in_channels, bool) or not isinstance(in_channels, int) or in_channels < 1:
        raise ValueError(f"{name}: in_channels must be a positive int (3 for RGB images), got {in_channels!r}")


def check_image_batch(
    x: Tensor, in_channels: int, min_size: int, name: str, first_layer: nn.Module | None = None
) -> None:
    """Reject inputs that would otherwise fail obscurely (or silently) inside the first conv.

    With ``first_layer``, a floating dtype other than its weights' (fp16 / bf16 / fp64 images into an fp32
    model) is refused outside autocast, naming both dtypes and the fixes; under autocast the convs cast.
    """
    expected = f"a float tensor of shape (B, {in_channels}, H, W) with H, W >= {min_size}"
    if not isinstance(x, Tensor):
        raise ValueError(f"{name} expects {expected}, got {type(x).__name__}")
    if x.ndim != 4:
        raise ValueError(f"{name} expects {expected}, got a {x.ndim}-D tensor of shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise ValueError(f"{name} expects {expected}, got dtype {x.dtype} (convert images with .float())")
    weight = next(first_layer.parameters(), None) if first_layer is not None else None
    if weight is not None and x.dtype != weight.dtype and not torch.is_autocast_enabled(x.device.type):
        raise ValueError(
            f"{name}: input dtype {x.dtype} differs from the model's weights ({weight.dtype}); cast the input "
            f"(x.to({weight.dtype})) or the model (model.to({x.dtype})), or run under torch.autocast"
        )
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


def tokens_to_map(x: Tensor, hw: tuple[int, int]) -> Tensor:
    """``(B, H*W, C)`` tokens -> ``(B, C, H, W)`` map for a conv.

    In eager mode this is a view (channels-last strides, no copy; the convs accept it). With symbolic sizes
    (export, dynamic compile) it is made contiguous: the convs' channels-last stride checks on a view of a
    symbolic size add guards such as ``w * min(C, C * w) == C * w`` that the exporter cannot prove, and it then
    bakes the example's size into the graph. A compiler plans the layout of a traced graph anyway.
    """
    B, _, C = x.shape  # explicit B and C: with B == 0 a -1 would be ambiguous
    if is_symbolic(*hw):
        return x.transpose(1, 2).contiguous().reshape(B, C, hw[0], hw[1])  # (B, N, C) -> (B, C, H, W)
    if x.is_contiguous():
        # Through (B, H, W, C) so that the view gets the canonical channels-last strides. The transpose route
        # keeps whatever stride an elementwise op gave the size-1 batch dim of a batch of one (e.g. C instead
        # of H*W*C); oneDNN's convs then do not recognise the layout and return an NCHW map, whose tokens
        # are no longer contiguous: every later LayerNorm and linear of the stage copied them (batch 1,
        # 512x512, PCPVT-S training: 11% of the step was such copies).
        return x.view(B, hw[0], hw[1], C).permute(0, 3, 1, 2)  # (B, N, C) -> (B, H, W, C) -> (B, C, H, W)
    return x.transpose(1, 2).reshape(B, C, hw[0], hw[1])  # (B, N, C) -> (B, C, N) -> (B, C, H, W)


def output_map(x: Tensor) -> Tensor:
    """An output feature map in NCHW-contiguous memory, as every cpvt_mm backbone and neck returns them.

    Token -> map reshapes and channel LayerNorms leave channels-last strides, and mmcv's RoIAlign (CPU and
    CUDA kernels alike) reads its input as raw NCHW memory without checking: the RoI heads of a detector would
    pool scrambled features from such a view. A no-op when ``x`` is already contiguous.
    """
    return x.contiguous()
