"""Eager CPU inference fast path for ``Linear`` and ``Linear -> GELU``: oneDNN's fused linear kernel.

On CPU, ``nn.Linear`` runs ``addmm``: the bias is first broadcast-copied into the output, then MKL's GEMM
accumulates onto it, and ``nn.GELU`` is a separate pass over the (4x wider) hidden activations. In a profile
of PCPVT-S inference those were 54% (GEMM), 11% (the bias copies) and 24% (GELU) of the time. oneDNN's
``linear_pointwise`` kernel adds the bias and applies the exact (erf) GELU inside the GEMM's epilogue, which
measured here about 2x faster for the MLP's first layer and 1.2-2x for a plain linear layer, with results
within 1e-5 of the eager ones. It is the kernel inductor itself picks for CPU inference.

The fast path is taken only where it is a pure replacement: float32 tensors on the CPU, no gradient to
record (``torch.no_grad`` / ``inference_mode``, or frozen weights and input), no autocast, and plain eager
tensors (not while tracing, compiling or exporting: compilers fuse on their own, exporters need standard
ops), and nobody watching the call (module or global hooks, FLOP counters and other dispatch modes). Everywhere
else, and with ``CPVT_ONEDNN_LINEAR=0`` or :func:`set_onednn_linear` ``(False)``, the layer is called as the
module it is (then ``F.gelu``): bit for bit what ``nn.Linear`` and ``nn.GELU`` do, hooks included.
"""

from __future__ import annotations

import os

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.modules import module as nn_module

__all__ = ["linear", "onednn_linear_available", "set_onednn_linear"]


def onednn_linear_available() -> bool:
    """Whether this torch build has oneDNN's fused linear kernel (CPU builds with MKL-DNN do)."""
    return torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")


_enabled = onednn_linear_available() and os.environ.get("CPVT_ONEDNN_LINEAR", "1").strip().lower() not in (
    "0",
    "false",
    "no",
    "off",
)


def set_onednn_linear(enabled: bool) -> bool:
    """Turn the fast path on or off for the whole process; returns the previous setting."""
    global _enabled
    previous = _enabled
    _enabled = bool(enabled) and onednn_linear_available()
    return previous


def _exporting() -> bool:
    compiler = torch.compiler
    return compiler.is_compiling() or bool(getattr(compiler, "is_exporting", lambda: False)())


def _observed(layer: nn.Module) -> bool:
    """Whether something watches this call: module hooks, global hooks, or a Python dispatch / function mode
    (FLOP counters, tracers) that would not recognise oneDNN's op; then the standard call runs."""
    return bool(
        layer._forward_hooks
        or layer._forward_pre_hooks
        or nn_module._global_forward_hooks
        or nn_module._global_forward_pre_hooks
        or torch._C._len_torch_dispatch_stack()
        or torch._C._len_torch_function_stack()
    )


def _fast(x: Tensor, weight: Tensor) -> bool:
    return (
        _enabled
        and type(x) is Tensor  # not a FakeTensor / FunctionalTensor of a tracer
        and type(weight) in (Tensor, nn.Parameter)
        and x.device.type == "cpu"
        and x.dtype == torch.float32
        and weight.dtype == torch.float32
        and x.numel() > 0
        and not (torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad))
        and not torch.is_autocast_enabled("cpu")
        and not torch.jit.is_tracing()
        and not _exporting()
    )


def linear(x: Tensor, layer: nn.Linear, gelu: bool = False) -> Tensor:
    """``layer(x)``, followed by the exact GELU when ``gelu``; fused by oneDNN where that is safe."""
    if _fast(x, layer.weight) and not _observed(layer):
        flat = x.reshape(-1, x.shape[-1])  # (..., in) -> (M, in): a view for contiguous inputs
        attr, algorithm = ("gelu", "none") if gelu else ("none", "")  # "none": erf GELU, as nn.GELU()
        out = torch.ops.mkldnn._linear_pointwise(flat, layer.weight, layer.bias, attr, [], algorithm)
        return out.reshape(*x.shape[:-1], out.shape[-1])
    out = layer(x)  # through the module, so its hooks see the call as they would with nn.Linear
    return F.gelu(out) if gelu else out
