"""oneDNN's linear kernel for every ``Linear`` (and ``Linear -> GELU``) of the models on CPU, eager only.

On CPU, ``nn.Linear`` runs ``addmm``: the bias is first broadcast-copied into the output, then MKL's GEMM
accumulates onto it, and ``nn.GELU`` is a separate pass over the (4x wider) hidden activations. In a profile
of PCPVT-S inference those were 54% (GEMM), 11% (the bias copies) and 24% (GELU) of the time. oneDNN's
``linear_pointwise`` kernel adds the bias and applies the exact (erf) GELU inside the GEMM's epilogue, which
measured here about 2x faster for the MLP's first layer and 1.2-2x for a plain linear layer, with results
within 1e-5 of the eager ones. It is the kernel inductor itself picks for CPU inference.

Inference (no gradient to record) calls the kernel directly. Training goes through two autograd functions
whose forward and backward products all run on the kernel (for the backward's products 1.3-2.3x faster than
``mm`` at the models' shapes, except the narrowest, 64 x 64, layers): :class:`_Linear` for attention's
projections and :class:`_GeluMlp` for the MLP, which also recomputes its GELU in the backward instead of
keeping the widest activation of the block.

The kernel is used only where it is a pure replacement: float32 tensors on the CPU (the MLP's memory saving
applies on any device), no autocast, plain eager tensors (not while tracing, compiling or exporting:
compilers fuse on their own, exporters need standard ops), and nobody watching the call (module or global
hooks, FLOP counters and other dispatch modes). Everywhere else, and with ``CPVT_ONEDNN_LINEAR=0`` or
:func:`set_onednn_linear` ``(False)``, the layer is called as the module it is (then ``F.gelu``): bit for
bit what ``nn.Linear`` and ``nn.GELU`` do, hooks included.
"""

from __future__ import annotations

import os

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.modules import module as nn_module

__all__ = ["gelu_mlp", "linear", "onednn_linear_available", "set_onednn_linear"]


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


def _plain(x: Tensor) -> bool:
    """An eager tensor outside tracers, compilers, exporters and autocast: custom kernels may replace ops."""
    return (
        type(x) in (Tensor, nn.Parameter)  # not a FakeTensor / FunctionalTensor of a tracer
        and x.device.type in ("cpu", "cuda")  # not meta (shape checks), not devices this was not tried on
        and not torch.jit.is_tracing()
        and not _exporting()
        and not torch.is_autocast_enabled(x.device.type)
    )


def _fast(x: Tensor, weight: Tensor) -> bool:
    return (
        _enabled
        and _plain(x)
        and type(weight) in (Tensor, nn.Parameter)
        and x.device.type == "cpu"
        and x.dtype == torch.float32
        and weight.dtype == torch.float32
        and x.numel() > 0
        and not (torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad))
    )


def linear(x: Tensor, layer: nn.Linear, gelu: bool = False) -> Tensor:
    """``layer(x)``, followed by the exact GELU when ``gelu``; fused by oneDNN where that is safe."""
    if _fast(x, layer.weight) and not _observed(layer):
        flat = x.reshape(-1, x.shape[-1])  # (..., in) -> (M, in): a view for contiguous inputs
        attr, algorithm = ("gelu", "none") if gelu else ("none", "")  # "none": erf GELU, as nn.GELU()
        out = torch.ops.mkldnn._linear_pointwise(flat, layer.weight, layer.bias, attr, [], algorithm)
        return out.reshape(*x.shape[:-1], out.shape[-1])
    if (
        _trainable(x, layer)
        and x.device.type == "cpu"
        and x.dtype == layer.weight.dtype == torch.float32
        and type(layer.weight) in (Tensor, nn.Parameter)
    ):
        out = _Linear.apply(x, layer.weight, layer.bias)  # training: oneDNN products forward and backward
    else:
        out = layer(x)  # through the module, so its hooks see the call as they would with nn.Linear
    return F.gelu(out) if gelu else out


def _trainable(x: Tensor, *layers: nn.Linear) -> bool:
    """Autograd records this call, nothing watches the layers, and no tracer, compiler or autocast is on."""
    return (
        _enabled
        and torch.is_grad_enabled()
        and (x.requires_grad or any(layer.weight.requires_grad for layer in layers))
        and _plain(x)
        and not any(_observed(layer) for layer in layers)
    )


def _onednn_ok(x: Tensor) -> bool:
    return _enabled and x.device.type == "cpu" and x.dtype == torch.float32 and x.numel() > 0


def _affine(x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
    """``x @ weight.T + bias`` for 2-D ``x``: oneDNN's kernel on CPU (no broadcast copy of the bias)."""
    if _onednn_ok(x):
        return torch.ops.mkldnn._linear_pointwise(x, weight, bias, "none", [], "")
    return F.linear(x, weight, bias)


# The backward's two products, on CPU through the same oneDNN kernel as the forward. On a quiet machine here
# (2 cores, fp32, the layer shapes of PCPVT-S at 512x512) it was 1.3-2.3x faster than ``torch.mm`` for them,
# and 0.85x for the 64 x 64 layers of the first stage. The kernel computes ``a @ b.T`` and reads strided
# operands, so the transposes below are views (the kernel copies the activation it needs contiguous).
# Double backward needs differentiable ops, so with ``create_graph`` these fall back to ``mm``.
def _grad_input(grad: Tensor, weight: Tensor) -> Tensor:
    """``grad @ weight``: (M, out) x (out, in) -> (M, in)."""
    if _onednn_ok(grad) and not torch.is_grad_enabled():
        return torch.ops.mkldnn._linear_pointwise(grad, weight.t(), None, "none", [], "")
    return grad.mm(weight)


def _grad_weight(grad: Tensor, x: Tensor) -> Tensor:
    """``grad.T @ x``: (out, M) x (M, in) -> (out, in), contiguous like the weight."""
    if _onednn_ok(grad) and not torch.is_grad_enabled():
        kernel = torch.ops.mkldnn._linear_pointwise
        # oneDNN is fast when the product's rows are the shorter side (measured both ways; the other
        # orientation was up to 4x slower), so compute the transpose when ``out > in``.
        if grad.shape[1] <= x.shape[1]:
            return kernel(grad.t(), x.t(), None, "none", [], "")
        return kernel(x.t(), grad.t(), None, "none", [], "").t().contiguous()
    return grad.t().mm(x)


class _Linear(torch.autograd.Function):
    """``F.linear`` whose forward and backward products run on oneDNN (CPU float32 training)."""

    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
        flat = x.reshape(-1, x.shape[-1])  # (..., in) -> (M, in)
        out = _affine(flat, weight, bias)  # (M, out)
        ctx.save_for_backward(x, weight)
        ctx.has_bias = bias is not None
        return out.reshape(*x.shape[:-1], out.shape[-1])

    @staticmethod
    def backward(ctx, grad_out: Tensor):
        x, weight = ctx.saved_tensors
        need_x, need_w, need_b = ctx.needs_input_grad
        grad = grad_out.reshape(-1, grad_out.shape[-1])  # (..., out) -> (M, out)
        grad_x = _grad_input(grad, weight).reshape(x.shape) if need_x else None
        grad_w = _grad_weight(grad, x.reshape(-1, x.shape[-1])) if need_w else None
        grad_b = grad.sum(0) if need_b and ctx.has_bias else None
        return grad_x, grad_w, grad_b


class _GeluMlp(torch.autograd.Function):
    """``fc2(gelu(fc1(x)))`` whose backward recomputes the GELU instead of keeping its output.

    Autograd through ``nn.Linear -> nn.GELU -> nn.Linear`` keeps three tensors per MLP for the backward
    pass: fc1's input, GELU's input and fc2's input (the GELU output). The last two are the widest
    activations of a block (``mlp_ratio`` x the width: 8x in the first two stages of PCPVT and SVT). This
    function keeps fc1's input and the pre-activation only and recomputes the GELU (one elementwise pass)
    in the backward: the largest saved activation of every block is gone, and the gradients are the same
    products in the same order. The backward is built from differentiable ops, so double backward works.
    """

    @staticmethod
    def forward(ctx, x: Tensor, w1: Tensor, b1: Tensor | None, w2: Tensor, b2: Tensor | None) -> Tensor:
        flat = x.reshape(-1, x.shape[-1])  # (..., in) -> (M, in)
        pre = _affine(flat, w1, b1)  # (M, hidden)
        out = _affine(F.gelu(pre), w2, b2)  # (M, out)
        ctx.save_for_backward(x, pre, w1, b1, w2)
        ctx.has_bias = b2 is not None
        return out.reshape(*x.shape[:-1], out.shape[-1])

    @staticmethod
    def backward(ctx, grad_out: Tensor):
        x, pre, w1, b1, w2 = ctx.saved_tensors
        flat = x.reshape(-1, x.shape[-1])  # (..., in) -> (M, in)
        if torch.is_grad_enabled():  # create_graph (double backward): the pre-activation must be a function of
            pre = F.linear(flat, w1, b1)  # the inputs, not the constant the forward computed without autograd
        grad_out = grad_out.reshape(-1, grad_out.shape[-1])  # (..., out) -> (M, out)
        need_x, need_w1, need_b1, need_w2, need_b2 = ctx.needs_input_grad  # frozen weights: no product
        grad_w2 = _grad_weight(grad_out, F.gelu(pre)) if need_w2 else None  # the recomputed GELU lives only here
        grad_b2 = grad_out.sum(0) if need_b2 and ctx.has_bias else None
        grad_pre = _grad_input(grad_out, w2)  # (M, hidden): the GELU output's gradient, then in place its input's
        if torch.is_grad_enabled():  # double backward: an op autograd can differentiate
            grad_pre = torch.ops.aten.gelu_backward(grad_pre, pre)
        else:  # in place: no second (M, hidden) buffer, whose fresh pages cost as much as the pass itself
            torch.ops.aten.gelu_backward.grad_input(grad_pre, pre, grad_input=grad_pre)
        grad_w1 = _grad_weight(grad_pre, flat) if need_w1 else None
        grad_b1 = grad_pre.sum(0) if need_b1 and b1 is not None else None
        grad_x = _grad_input(grad_pre, w1).reshape(x.shape) if need_x else None
        return grad_x, grad_w1, grad_b1, grad_w2, grad_b2


def gelu_mlp(x: Tensor, fc1: nn.Linear, fc2: nn.Linear) -> Tensor:
    """``fc2(gelu(fc1(x)))`` (exact GELU): the oneDNN fast path in inference, and in training a backward
    that recomputes the GELU (:class:`_GeluMlp`: less activation memory, same gradients).

    The training path is taken for eager tensors under autograd on any device, unless something watches
    the layers (hooks, dispatch modes), autocast is on (its casts belong to the modules' own ops) or the
    call is traced, compiled or exported (the compilers see the standard ops and plan memory themselves).
    """
    if _trainable(x, fc1, fc2):
        return _GeluMlp.apply(x, fc1.weight, fc1.bias, fc2.weight, fc2.bias)
    return linear(linear(x, fc1, gelu=True), fc2)
