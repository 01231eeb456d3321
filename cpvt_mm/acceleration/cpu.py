"""oneDNN's fused linear kernel for the linear layers of cpvt_mm models on CPU: an explicit, reversible transform.

On CPU, ``nn.Linear`` runs ``addmm``: the bias is first broadcast-copied into the output, then MKL's GEMM
accumulates onto it, and ``nn.GELU`` is a separate pass over the (4x wider) hidden activations. In a profile of
PCPVT-S inference those were 54% (GEMM), 11% (the bias copies) and 24% (GELU) of the time. oneDNN's
``linear_pointwise`` kernel (the one inductor picks for CPU inference) adds the bias and applies the exact GELU
inside the GEMM's epilogue; here about 1.4x the throughput of the plain model (docs/benchmarks.md).

:func:`fuse_cpu` swaps, in a built model, every cpvt_mm ``Mlp`` for a :class:`FusedMlp` and every linear layer of a
cpvt_mm attention for a :class:`FusedLinear`; the attentions themselves take two matmuls instead of SDPA for small
maps in CPU-autocast training (:data:`SMALL_ATTENTION_MAP`), and patch embeddings take channels-last images
(:class:`FusedPatchEmbed`). All keep the same parameters under the same names
(the state_dict is unchanged) and :func:`unfuse_cpu` swaps the plain modules back, in the style of
``fuse_conv_bn`` or ``torch.ao.quantization.fuse_modules``. The fused linear layers use the kernel for eager
float32 CPU tensors outside autocast and dispatch modes (FLOP counters see the standard ops); elsewhere they
compute exactly what the plain modules do. In training, forward and backward products both run on the kernel
(:class:`_Linear`), and the MLP recomputes its GELU in the backward instead of keeping the block's widest
activation (:class:`_GeluMlp`).

It relies on a private op (``torch.ops.mkldnn._linear_pointwise``) and on torch internals, so it checks the torch
version it was written for, and it refuses to run under ``torch.compile``, export or tracing: compilers fuse on
their own, exporters need standard ops. Hooks on ``mlp.fc1`` / ``mlp.act`` / ``mlp.fc2`` do not fire while the
MLP is fused (it calls the kernel, not the submodules); unfuse to observe them.
"""

from __future__ import annotations

import copy
import warnings

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..models.attention import Attention, GlobalSubsampledAttention, LocallyGroupedAttention, _AttentionBase
from ..models.layers import Mlp, PatchEmbed
from ..models.padding import Grid
from ..models.utils import is_symbolic

__all__ = [
    "CpuFusionError",
    "FusedAttention",
    "FusedGlobalSubsampledAttention",
    "FusedLinear",
    "FusedLocallyGroupedAttention",
    "FusedMlp",
    "FusedPatchEmbed",
    "cpu_fusion_unavailable",
    "fuse_cpu",
    "fuse_cpu_for_device",
    "is_cpu_fused",
    "unfuse_cpu",
]

# The torch releases this was written and tested against (major, minor), both ends included.
TORCH_VERSIONS = ((2, 4), (2, 13))


class CpuFusionError(RuntimeError):
    """The CPU fusion cannot be applied here (torch build or version) or was called where it must not run."""


def _torch_version() -> tuple[int, int]:
    major, minor = torch.__version__.split("+")[0].split(".")[:2]
    return int(major), int(minor)


def cpu_fusion_unavailable() -> str | None:
    """Why :func:`fuse_cpu` would refuse on this torch, or None where it applies."""
    low, high = TORCH_VERSIONS
    if not low <= _torch_version() <= high:
        return (
            f"cpvt_mm's CPU fusion was written for torch {low[0]}.{low[1]}-{high[0]}.{high[1]} (it uses a private "
            f"oneDNN op), this is torch {torch.__version__}"
        )
    if not (torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")):
        return "this torch build has no oneDNN linear kernel (torch.ops.mkldnn._linear_pointwise)"
    return None


def cpu_fused_model_cannot_be_compiled_call_unfuse_cpu_first(x: Tensor) -> None:
    """Called first by every fused module. Dynamo (``torch.compile``, ``torch.export``) refuses to trace it
    (``forbid_in_graph``: an error naming this function, where a plain ``raise`` would become a graph break and
    the kernel would be traced after it); ``torch.jit.trace`` and fake-tensor tracers get :class:`CpuFusionError`."""
    if torch.jit.is_tracing() or type(x) not in (Tensor, nn.Parameter):
        raise CpuFusionError(
            "a model with cpvt_mm's CPU fusion cannot be compiled, exported or traced: call "
            "cpvt_mm.acceleration.unfuse_cpu(model) first (compilers fuse on their own)"
        )


torch._dynamo.forbid_in_graph(cpu_fused_model_cannot_be_compiled_call_unfuse_cpu_first)
_refuse_traced = cpu_fused_model_cannot_be_compiled_call_unfuse_cpu_first


def _fast(x: Tensor, *weights: Tensor) -> bool:
    """Eager float32 CPU tensors, no autocast, and nothing intercepting ops (FLOP counters, dispatch modes)."""
    return (
        x.device.type == "cpu"
        and x.dtype == torch.float32
        and x.numel() > 0
        and all(w.dtype == torch.float32 and type(w) in (Tensor, nn.Parameter) for w in weights)
        and not torch.is_autocast_enabled("cpu")
        and not torch._C._len_torch_dispatch_stack()
        and not torch._C._len_torch_function_stack()
    )


def _needs_grad(x: Tensor, *params: Tensor | None) -> bool:
    return torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in (x, *params))


def _kernel(x: Tensor, weight: Tensor, bias: Tensor | None, gelu: bool = False) -> Tensor:
    """``x @ weight.T + bias`` (then the exact GELU) for 2-D ``x``, in one oneDNN call."""
    attr, algorithm = ("gelu", "none") if gelu else ("none", "")  # "none": the erf GELU, as nn.GELU()
    return torch.ops.mkldnn._linear_pointwise(x, weight, bias, attr, [], algorithm)


def _flat(x: Tensor) -> Tensor:
    return x.reshape(-1, x.shape[-1])  # (..., in) -> (M, in): a view for contiguous inputs


# The backward's two products through the same kernel as the forward. On 2 cores (fp32, PCPVT-S's layer shapes at
# 512x512) 1.3-2.3x faster than ``torch.mm``, 0.85x for the 64 x 64 layers. The kernel computes ``a @ b.T`` and
# reads strided operands, so the transposes are views. Double backward needs differentiable ops: with
# ``create_graph`` (grad enabled in the backward) these are ``mm``.
def _grad_input(grad: Tensor, weight: Tensor) -> Tensor:
    """``grad @ weight``: (M, out) x (out, in) -> (M, in)."""
    return grad.mm(weight) if torch.is_grad_enabled() else _kernel(grad, weight.t(), None)


def _grad_weight(grad: Tensor, x: Tensor) -> Tensor:
    """``grad.T @ x``: (out, M) x (M, in) -> (out, in), contiguous like the weight."""
    if torch.is_grad_enabled():
        return grad.t().mm(x)
    if grad.shape[1] <= x.shape[1]:  # oneDNN is fast when the product's rows are the shorter side (up to 4x)
        return _kernel(grad.t(), x.t(), None)
    return _kernel(x.t(), grad.t(), None).t().contiguous()


class _Linear(torch.autograd.Function):
    """``F.linear`` whose forward and backward products run on oneDNN."""

    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
        out = _kernel(_flat(x), weight, bias)  # (M, out)
        ctx.save_for_backward(x, weight)
        ctx.has_bias = bias is not None
        return out.reshape(*x.shape[:-1], out.shape[-1])

    @staticmethod
    def backward(ctx, grad_out: Tensor):
        x, weight = ctx.saved_tensors
        need_x, need_w, need_b = ctx.needs_input_grad
        grad = _flat(grad_out)  # (..., out) -> (M, out)
        grad_x = _grad_input(grad, weight).reshape(x.shape) if need_x else None
        grad_w = _grad_weight(grad, _flat(x)) if need_w else None
        grad_b = grad.sum(0) if need_b and ctx.has_bias else None
        return grad_x, grad_w, grad_b


class _GeluMlp(torch.autograd.Function):
    """``fc2(gelu(fc1(x)))`` whose backward recomputes the GELU instead of keeping its output.

    Autograd through Linear -> GELU -> Linear keeps fc1's input, GELU's input and fc2's input (the GELU output);
    the last two are the widest activations of a block (``mlp_ratio`` x the width). This keeps fc1's input and the
    pre-activation only and recomputes the GELU (one elementwise pass) in the backward: same products, same order.
    """

    @staticmethod
    def forward(ctx, x: Tensor, w1: Tensor, b1: Tensor | None, w2: Tensor, b2: Tensor | None) -> Tensor:
        pre = _kernel(_flat(x), w1, b1)  # (M, hidden)
        out = _kernel(F.gelu(pre), w2, b2)  # (M, out)
        ctx.save_for_backward(x, pre, w1, b1, w2)
        ctx.has_bias = b2 is not None
        return out.reshape(*x.shape[:-1], out.shape[-1])

    @staticmethod
    def backward(ctx, grad_out: Tensor):
        x, pre, w1, b1, w2 = ctx.saved_tensors
        flat = _flat(x)
        if torch.is_grad_enabled():  # double backward: the pre-activation must be a function of the inputs
            pre = F.linear(flat, w1, b1)
        grad_out = _flat(grad_out)  # (..., out) -> (M, out)
        need_x, need_w1, need_b1, need_w2, need_b2 = ctx.needs_input_grad  # frozen weights: no product
        grad_w2 = _grad_weight(grad_out, F.gelu(pre)) if need_w2 else None  # the recomputed GELU lives only here
        grad_b2 = grad_out.sum(0) if need_b2 and ctx.has_bias else None
        grad_pre = _grad_input(grad_out, w2)  # (M, hidden): the GELU output's gradient, then its input's
        if torch.is_grad_enabled():
            grad_pre = torch.ops.aten.gelu_backward(grad_pre, pre)
        else:  # in place: no second (M, hidden) buffer (its fresh pages cost as much as the pass itself)
            torch.ops.aten.gelu_backward.grad_input(grad_pre, pre, grad_input=grad_pre)
        grad_w1 = _grad_weight(grad_pre, flat) if need_w1 else None
        grad_b1 = grad_pre.sum(0) if need_b1 and b1 is not None else None
        grad_x = _grad_input(grad_pre, w1).reshape(x.shape) if need_x else None
        return grad_x, grad_w1, grad_b1, grad_w2, grad_b2


class FusedLinear(nn.Linear):
    """``nn.Linear`` through oneDNN's kernel (forward and backward) where :func:`_fast` allows."""

    def forward(self, x: Tensor) -> Tensor:
        _refuse_traced(x)
        if not _fast(x, self.weight):
            return F.linear(x, self.weight, self.bias)
        if _needs_grad(x, self.weight, self.bias):
            return _Linear.apply(x, self.weight, self.bias)
        out = _kernel(_flat(x), self.weight, self.bias)
        return out.reshape(*x.shape[:-1], out.shape[-1])


class FusedMlp(Mlp):
    """cpvt_mm's ``Mlp`` (exact GELU) as one fused kernel call per linear; in training without dropout, a backward
    that recomputes the GELU (:class:`_GeluMlp`)."""

    def forward(self, x: Tensor) -> Tensor:
        _refuse_traced(x)
        fc1, fc2 = self.fc1, self.fc2
        if not _fast(x, fc1.weight, fc2.weight) or (self.training and self.drop.p > 0):
            return super().forward(x)
        if _needs_grad(x, *fc1.parameters(), *fc2.parameters()):
            return _GeluMlp.apply(x, fc1.weight, fc1.bias, fc2.weight, fc2.bias)
        out = _kernel(_kernel(_flat(x), fc1.weight, fc1.bias, gelu=True), fc2.weight, fc2.bias)
        return out.reshape(*x.shape[:-1], out.shape[-1])


# Attention maps of at most this many entries (SVT's 7x7 windows: 49 x 49) train faster under CPU autocast as two
# matmuls than through SDPA's CPU backward: bf16 SVT-S training measured 0.82-0.89x timm (which uses matmuls for its
# windows) with SDPA and 1.06-1.20x with matmuls, peak memory +1% (2 cores, 2026-12-02, docs/benchmarks.md). Measured
# on that machine only. Inference and float32 training keep SDPA (as fast, less memory).
SMALL_ATTENTION_MAP = 64 * 64


class _SmallMapsAsMatmuls:
    """SDPA, except the reference path's two matmuls for small maps in CPU-autocast training."""

    def _sdpa(self, q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None = None) -> Tensor:
        _refuse_traced(q)
        if (
            self.fused_attn
            and q.device.type == "cpu"
            and torch.is_autocast_enabled("cpu")
            and _needs_grad(q)
            and q.shape[-2] * k.shape[-2] <= SMALL_ATTENTION_MAP
        ):
            return self._reference(q, k, v, mask)
        return super()._sdpa(q, k, v, mask)


class FusedPatchEmbed(PatchEmbed):
    """cpvt_mm's ``PatchEmbed`` fed a channels-last image on CPU.

    oneDNN's conv returns the layout it is given. From a channels-last input (a copy of a 3-channel image; free for
    the token maps of later stages, already channels-last views) the output's tokens are contiguous; from an NCHW
    image they would not be, and the LayerNorm after it copies them forward and backward (3.5x the time of conv +
    norm at 512x512, 2 cores, 2026-12-03).
    """

    def forward(self, x: Tensor, grid: Grid | None = None) -> tuple[Tensor, tuple[int, int]]:
        if x.device.type == "cpu" and not is_symbolic(*x.shape[-2:]):
            x = x.contiguous(memory_format=torch.channels_last)  # the zero-fill and F.pad keep the layout
        return super().forward(x, grid)


class FusedAttention(_SmallMapsAsMatmuls, Attention):
    pass


class FusedGlobalSubsampledAttention(_SmallMapsAsMatmuls, GlobalSubsampledAttention):
    pass


class FusedLocallyGroupedAttention(_SmallMapsAsMatmuls, LocallyGroupedAttention):
    pass


_FUSED = {
    Mlp: FusedMlp,
    PatchEmbed: FusedPatchEmbed,
    nn.Linear: FusedLinear,
    Attention: FusedAttention,
    GlobalSubsampledAttention: FusedGlobalSubsampledAttention,
    LocallyGroupedAttention: FusedLocallyGroupedAttention,
}
_PLAIN = {fused: plain for plain, fused in _FUSED.items()}


def _swap(module: nn.Module, cls: type[nn.Module]) -> nn.Module:
    """A ``cls`` holding ``module``'s parameters, children, hooks and mode under the same names."""
    new = cls.__new__(cls)
    new.__dict__.update({k: copy.copy(v) if isinstance(v, dict) else v for k, v in module.__dict__.items()})
    return new


def _replace(model: nn.Module, pick) -> int:
    """Replace every module ``pick`` maps to a class, deepest first (a swapped parent copies its swapped children)."""
    swaps = []
    for parent in model.modules():
        for name, child in parent.named_children():
            cls = pick(parent, child)
            if cls is not None:
                swaps.append((parent, name, child, cls))
    for parent, name, child, cls in reversed(swaps):
        setattr(parent, name, _swap(child, cls))
    return len(swaps)


def fuse_cpu(model: nn.Module) -> nn.Module:
    """Swap oneDNN-fused modules into ``model`` (in place; returned): every cpvt_mm MLP with an exact GELU and every
    linear layer of a cpvt_mm attention. Parameters, their names and values are unchanged; :func:`unfuse_cpu`
    restores the plain modules. Raises :class:`CpuFusionError` on a torch it was not written for, and on a
    compiled model."""
    if (reason := cpu_fusion_unavailable()) is not None:
        raise CpuFusionError(reason)
    if isinstance(model, torch._dynamo.eval_frame.OptimizedModule) or torch.compiler.is_compiling():
        raise CpuFusionError("fuse_cpu takes the plain model, not a torch.compile'd one (compilers fuse on their own)")

    def pick(parent: nn.Module, child: nn.Module) -> type[nn.Module] | None:
        if type(child) is Mlp and not (type(child.act) is nn.GELU and child.act.approximate == "none"):
            return None  # another activation: not the fused kernel's
        if type(child) is nn.Linear and not isinstance(parent, _AttentionBase):
            return None  # heads and necks stay as they are
        return _FUSED.get(type(child))

    _replace(model, pick)
    return model


def unfuse_cpu(model: nn.Module) -> nn.Module:
    """Undo :func:`fuse_cpu`: the plain ``Mlp`` and ``nn.Linear`` modules, same parameters (in place; returned)."""
    _replace(model, lambda parent, child: _PLAIN.get(type(child)))
    return model


def is_cpu_fused(model: nn.Module) -> bool:
    return any(type(m) in _PLAIN for m in model.modules())


def fuse_cpu_for_device(model: nn.Module, device: str | torch.device) -> nn.Module:
    """:func:`fuse_cpu` where ``device`` is the CPU and the fusion applies; elsewhere, or with a warning where this
    torch is not one it was written for, the plain model. What the tools call."""
    if torch.device(device).type != "cpu":
        return model
    if (reason := cpu_fusion_unavailable()) is not None:
        warnings.warn(f"running the plain model: {reason}", stacklevel=2)
        return model
    return fuse_cpu(model)
