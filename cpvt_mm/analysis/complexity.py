"""Parameters and FLOPs of a model at a given input size, attention included.

Counting runs on the meta device (no memory, no arithmetic: a full-size model at 800x1216 takes a second)
with torch's ``FlopCounterMode``, which counts matmuls and convolutions at the dispatcher. Torch registers
formulas for the CUDA SDPA kernels but not for the CPU / meta ones (``_scaled_dot_product_flash_attention_for_cpu``),
so a counter used as is on CPU silently drops every attention; here :func:`sdpa_flops` is registered for all
of them. Masked attention (the LSA windows, padding-aware keys) costs what unmasked attention over the same
keys costs: the kernels compute every score and then mask.

Convention: 1 multiply-accumulate = 2 FLOPs. The papers quote MACs ("FLOPs" in their tables): PCPVT-S 3.8 G,
SVT-S 2.9 G at 224x224; :attr:`Complexity.gmacs` is comparable with those numbers. Elementwise work (norms,
GELU, softmax, residual adds) is not counted, as in the papers and fvcore.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode
from torch.utils.flop_counter import FlopCounterMode

__all__ = ["Complexity", "count_complexity", "mfu", "sdpa_flops"]

aten = torch.ops.aten


def sdpa_flops(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
    """``Q K^T`` and ``A V``: 2 * B * heads * Lq * Lk * (d_qk + d_v) FLOPs (batch dims flattened)."""
    *batch, lq, dqk = query_shape
    lk, dv = key_shape[-2], value_shape[-1]
    n = 1
    for b in batch:
        n *= b
    return 2 * n * lq * lk * (dqk + dv)


def _sdpa_ops() -> list:
    names = (
        "_scaled_dot_product_flash_attention_for_cpu",
        "_scaled_dot_product_fused_attention_overrideable",
        "_scaled_dot_product_flash_attention",
        "_scaled_dot_product_efficient_attention",
        "_scaled_dot_product_cudnn_attention",
    )
    return [getattr(aten, n) for n in names if hasattr(aten, n)]


@dataclass
class Complexity:
    """Counts for one forward pass at ``input_shape``."""

    input_shape: tuple[int, ...]
    params: int
    flops: int  # 2 per multiply-accumulate
    attention_flops: int

    @property
    def gmacs(self) -> float:
        return self.flops / 2e9

    @property
    def attention_share(self) -> float:
        return self.attention_flops / self.flops if self.flops else 0.0


def count_complexity(model: nn.Module, input_shape: Sequence[int]) -> Complexity:
    """Parameters and forward FLOPs of ``model`` on one input of ``input_shape`` (e.g. ``(1, 3, 224, 224)``).

    The model is copied to the meta device for counting (``model`` itself is untouched); whatever dispatch
    SDPA takes there, its FLOPs are counted by :func:`sdpa_flops`.
    """
    params = sum(p.numel() for p in model.parameters())
    meta = _to_meta(model)
    counter = FlopCounterMode(display=False, custom_mapping=dict.fromkeys(_sdpa_ops(), sdpa_flops))
    attention = _AttentionCounter()
    with counter, attention, torch.no_grad():
        meta(torch.empty(*input_shape, device="meta"))
    # The total holds each attention once, whether SDPA reached a fused kernel (counted by sdpa_flops) or was
    # decomposed into matmuls (counted as such); the share comes from the calls themselves.
    return Complexity(tuple(input_shape), params, counter.get_total_flops(), attention.flops)


class _AttentionCounter(TorchFunctionMode):
    """FLOPs of every ``F.scaled_dot_product_attention`` call, from its argument shapes."""

    def __init__(self) -> None:
        super().__init__()
        self.flops = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if func is F.scaled_dot_product_attention:
            q, k, v = args[:3]
            self.flops += sdpa_flops(q.shape, k.shape, v.shape)
        return func(*args, **(kwargs or {}))


def _to_meta(model: nn.Module) -> nn.Module:
    import copy

    from ..models import set_fused_attn

    clone = copy.deepcopy(model)  # cheap for a meta model; a real one is copied once, then freed
    # Count the model's arithmetic, not the path it is set to: the reference attention is plain matmuls the
    # attention counter could not tell from the MLP's. Both paths compute the same FLOPs.
    return set_fused_attn(clone.to("meta"), True).eval()


def mfu(flops_per_image: float, images_per_s: float, peak_flops: float, train: bool = False) -> float:
    """Model FLOPs utilisation: achieved / peak. A training step costs ~3x the forward (forward + 2x backward)."""
    return flops_per_image * (3 if train else 1) * images_per_s / peak_flops
