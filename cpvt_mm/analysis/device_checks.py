"""Model checks for an accelerator: what the CPU test suite proves, re-proved on the device in a minute.

The test suite runs on CPU; kernels differ on CUDA (flash / memory-efficient SDPA with and without masks,
cuDNN convs, bf16). These checks run tiny-width PCPVT, SVT (7x7 windows, so the LSA mask is live) and CPVT at
sizes that are not multiples of the strides, and compare on the device: against the CPU, fused vs reference
attention, bf16 autocast vs fp32 (forward and backward), padding-aware batches vs each image alone, and a
dynamic-shape compile vs eager. ``scripts/gpu_check.sh`` runs them (``--dry-run``: on CPU, in ``make test``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch
from torch import nn

from ..models import CPVT, PCPVT, SVT, set_fused_attn

__all__ = ["CheckResult", "run_compile_checks", "run_device_checks"]

_PYRAMID = dict(embed_dims=[16, 32, 48, 64], depths=[1, 2, 2, 1], num_heads=[1, 2, 2, 4],
                mlp_ratios=[2, 2, 2, 2], sr_ratios=[4, 2, 2, 1])  # fmt: skip
BUILDERS: dict[str, Callable[[], nn.Module]] = {
    "PCPVT": lambda: PCPVT(arch=_PYRAMID),
    "SVT": lambda: SVT(arch=dict(_PYRAMID, window_sizes=[7, 7, 7, 7])),
    "CPVT": lambda: CPVT(arch=dict(embed_dims=32, depth=4, num_heads=2, mlp_ratio=2.0), patch_size=8),
}
SHAPE = (2, 3, 97, 131)


@dataclass
class CheckResult:
    name: str
    ok: bool
    detail: str

    def as_dict(self) -> dict:
        return asdict(self)


def _rel(a: tuple[torch.Tensor, ...], b: tuple[torch.Tensor, ...]) -> float:
    """Largest relative difference over all outputs (max |a - b| / max |b|)."""
    return max(
        float((x.float().cpu() - y.float().cpu()).abs().max() / y.float().cpu().abs().max().clamp_min(1e-12))
        for x, y in zip(a, b)
    )


def _check(name: str, value: float, tol: float) -> CheckResult:
    return CheckResult(name, bool(value <= tol), f"relative difference {value:.2e} (tolerance {tol:.0e})")


def run_device_checks(device: str | torch.device, compile_backend: str | None = "inductor") -> list[CheckResult]:
    """Run every check on ``device``; ``compile_backend=None`` skips the compile check."""
    device = torch.device(device)
    torch.backends.cuda.matmul.allow_tf32 = False  # fp32 comparisons mean fp32 (TF32 has a 10-bit mantissa)
    torch.backends.cudnn.allow_tf32 = False
    results = []
    gen = torch.Generator().manual_seed(0)
    x_cpu = torch.randn(*SHAPE, generator=gen)
    x = x_cpu.to(device)
    for name, build in BUILDERS.items():
        torch.manual_seed(0)
        model = build().eval()
        with torch.no_grad():
            ref_cpu = model(x_cpu)
            model.to(device)
            out = model(x)
            results.append(_check(f"{name}: {device.type} vs CPU, fp32", _rel(out, ref_cpu), 1e-4))
            reference = set_fused_attn(model, False)(x)
            set_fused_attn(model, True)
            results.append(_check(f"{name}: fused vs reference attention", _rel(out, reference), 1e-4))
            with torch.autocast(device.type, dtype=torch.bfloat16):
                low = model(x)
            results.append(_check(f"{name}: bf16 autocast vs fp32", _rel(low, out), 5e-2))
        results.append(_backward_check(name, model, x))
        if name != "CPVT":
            results.append(_padding_check(name, model, x))
        if compile_backend:
            results.append(_compile_check(name, model, device, compile_backend))
    return results


def run_compile_checks(device: str | torch.device, backend: str = "inductor") -> list[CheckResult]:
    """Only the dynamic-shape compile checks (slow to compile: the GPU check runs them last, time-limited)."""
    device = torch.device(device)
    results = []
    for name, build in BUILDERS.items():
        torch.manual_seed(0)
        results.append(_compile_check(name, build().eval().to(device), device, backend))
    return results


def _backward_check(name: str, model: nn.Module, x: torch.Tensor) -> CheckResult:
    model.train()
    with torch.autocast(x.device.type, dtype=torch.bfloat16):
        loss = sum(o.float().square().mean() for o in model(x))
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    model.zero_grad(set_to_none=True)
    model.eval()
    missing = sum(g is None for g in grads)
    finite = all(g is not None and bool(torch.isfinite(g).all()) for g in grads)
    return CheckResult(
        f"{name}: bf16 backward", missing == 0 and finite, f"{len(grads) - missing}/{len(grads)} gradients, finite"
    )


def _padding_check(name: str, model: nn.Module, x: torch.Tensor) -> CheckResult:
    """Image 1 cropped to 61x90 and padded into the batch gives what it gives alone."""
    h, w = 61, 90
    batch = x.clone()
    batch[1, :, h:] = 0
    batch[1, :, :, w:] = 0
    with torch.no_grad():
        padded = model(batch, valid_sizes=torch.tensor([[x.shape[2], x.shape[3]], [h, w]]))
        alone = model(batch[1:2, :, :h, :w])
    crops = tuple(p[1:2, :, : a.shape[2], : a.shape[3]] for p, a in zip(padded, alone))
    return _check(f"{name}: padding-aware batch vs alone", _rel(crops, alone), 1e-4)


def _compile_check(name: str, model: nn.Module, device: torch.device, backend: str) -> CheckResult:
    from ..deployment import compile_model, count_compiles

    torch._dynamo.reset()
    compiled = compile_model(model, backend=backend)
    worst = 0.0
    with count_compiles() as stats, torch.no_grad():
        for shape in [(2, 3, 97, 131), (1, 3, 160, 224), (3, 3, 128, 96)]:
            xi = torch.randn(shape, device=device)
            worst = max(worst, _rel(compiled(xi), model(xi)))
    torch._dynamo.reset()
    ok = worst <= 1e-4 and stats.graph_breaks == 0 and stats.recompiles == 0
    return CheckResult(
        f"{name}: compiled ({backend}, dynamic) vs eager, 3 sizes",
        ok,
        f"relative difference {worst:.2e}, {stats.graphs} graph(s), {stats.recompiles} recompiles, "
        f"{stats.graph_breaks} graph breaks",
    )
