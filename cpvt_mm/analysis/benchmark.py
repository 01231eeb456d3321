"""Throughput and peak memory of cpvt_mm vs timm vs mmpretrain (vs mmseg for backbones) in one run: the library
behind ``tools/analysis_tools/benchmark.py``.

    python tools/analysis_tools/benchmark.py --arch pcpvt-small --batch-size 8 --size 224
    python tools/analysis_tools/benchmark.py --arch svt-small --mode train --dtype bf16 --device cuda
    python tools/analysis_tools/benchmark.py --arch pcpvt-small --padding --size 800x1216 --batch-size 2
    python tools/analysis_tools/benchmark.py --arch svt-small --backbone --impls cpvt_mm mmseg --size 512

``--padding`` measures the cost of cpvt_mm's padding-aware mode instead: the backbone alone (all four stage
maps, as detection and segmentation read them) on one zero-padded batch whose odd images are 3/4 of the
padded size, run plainly ("cpvt_mm") and padding-aware ("cpvt_mm padding-aware"); the speed ratio column is
then the plain forward's throughput over the padding-aware one's (1.05 = the mode costs 5%).

``--backbone`` compares backbones only (four stage maps each; timm's ``features_only``), where mmseg's Twins
is a fourth implementation (``--impls ... mmseg``); ``dense_sweep.py`` runs it across sizes and plots.
``--cpu-fusion`` adds cpvt_mm with :func:`cpvt_mm.acceleration.fuse_cpu` applied (oneDNN linear kernels, what
the tools run on CPU) as a row next to the plain model, same weights, in the same interleaved rounds.
``--compile`` compiles every implementation alike; ``--peak-tflops`` adds MFU (forward FLOPs from
:func:`cpvt_mm.analysis.count_complexity`, attention included).

Every implementation is the full classifier (backbone + final norm + average pool + 1000-way linear head),
with the same random weights where the key maps allow (cpvt_mm's weights are converted from timm's so all
three compute the same function). Timed rounds are interleaved across implementations so machine drift hits
all of them alike; the reported figure is the median round. Ratios are cpvt_mm / peer (> 1 means cpvt_mm is
faster, or for memory, < 1 means cpvt_mm uses less).

Peak memory: on CUDA, ``torch.cuda.max_memory_allocated`` per step; on CPU, the peak of torch's CPU
allocator during one step, replayed from the profiler's allocation and free records (activations, gradients
and workspace; what existed before the step is excluded).
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .. import compat  # noqa: F401  (before timm / mmpretrain import torchvision)
from ..acceleration import fuse_cpu
from ..cli import image_size
from ..deployment import compile_model
from ..models import PCPVT, SVT, attach
from ..models.converters import convert_twins_checkpoint
from .complexity import count_complexity, mfu

ARCHS = {
    "pcpvt-small": ("pcpvt", "small", "twins_pcpvt_small"),
    "pcpvt-base": ("pcpvt", "base", "twins_pcpvt_base"),
    "pcpvt-large": ("pcpvt", "large", "twins_pcpvt_large"),
    "svt-small": ("svt", "small", "twins_svt_small"),
    "svt-base": ("svt", "base", "twins_svt_base"),
    "svt-large": ("svt", "large", "twins_svt_large"),
}
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


class CpvtClassifier(nn.Module):
    """cpvt_mm backbone (last stage, final norm) + global average pool + linear head."""

    def __init__(self, family: str, arch: str, num_classes: int = 1000) -> None:
        super().__init__()
        self.backbone = (PCPVT if family == "pcpvt" else SVT)(arch=arch, out_indices=(3,))
        self.head = nn.Linear(self.backbone.embed_dims[-1], num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.backbone(x)[-1].mean(dim=(2, 3)))


class MMPretrainClassifier(nn.Module):
    """mmpretrain's backbone with its classification defaults + the same pool and head."""

    def __init__(self, family: str, arch: str, num_classes: int = 1000) -> None:
        super().__init__()
        from mmpretrain.models.backbones.twins import PCPVT as MMPCPVT
        from mmpretrain.models.backbones.twins import SVT as MMSVT

        cls = MMPCPVT if family == "pcpvt" else MMSVT
        self.backbone = cls(arch=arch, out_indices=(3,), norm_after_stage=[False, False, False, True])
        self.head = nn.Linear(self.backbone.embed_dims[-1], num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.backbone(x)[-1].mean(dim=(2, 3)))


def build_models(arch_name: str, impls: list[str]) -> dict[str, nn.Module]:
    import timm

    family, arch, timm_name = ARCHS[arch_name]
    models: dict[str, nn.Module] = {}
    ref = timm.create_model(timm_name, pretrained=False)
    if "timm" in impls:
        models["timm"] = ref
    if "cpvt_mm" in impls:
        ours = CpvtClassifier(family, arch)
        sd = convert_twins_checkpoint(ref.state_dict())["state_dict"]
        ours.load_state_dict({k.replace("head.fc.", "head."): v for k, v in sd.items()}, strict=True)
        models["cpvt_mm"] = ours
    if "mmpretrain" in impls:
        models["mmpretrain"] = MMPretrainClassifier(family, arch)
    return models


@dataclass
class Result:
    samples: list[float]  # images/s per round
    peak_mib: float | None

    @property
    def median(self) -> float:
        return statistics.median(self.samples)


# mmseg's own Twins backbone arguments (its configs' small models), for the dense-size comparison
MMSEG_SMALL = {
    "pcpvt": dict(embed_dims=[64, 128, 320, 512], num_heads=[1, 2, 5, 8], mlp_ratios=[8, 8, 4, 4],
                  depths=[3, 4, 6, 3], sr_ratios=[8, 4, 2, 1], qkv_bias=True),
    "svt": dict(embed_dims=[64, 128, 256, 512], num_heads=[2, 4, 8, 16], mlp_ratios=[4, 4, 4, 4],
                depths=[2, 2, 10, 4], sr_ratios=[8, 4, 2, 1], windiow_sizes=[7, 7, 7, 7], qkv_bias=True),
}  # fmt: skip


class Maps(nn.Module):
    """A backbone returning its four stage maps as a tuple, whatever container the implementation uses."""

    def __init__(self, backbone: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone

    def forward(self, x: Tensor) -> tuple[Tensor, ...]:
        return tuple(self.backbone(x))


def build_backbones(arch_name: str, impls: list[str]) -> dict[str, nn.Module]:
    """Backbones only (all four stage maps, as detection and segmentation read them), mmseg's as a fourth."""
    import timm

    family, arch, timm_name = ARCHS[arch_name]
    models: dict[str, nn.Module] = {}
    if "cpvt_mm" in impls:
        models["cpvt_mm"] = (PCPVT if family == "pcpvt" else SVT)(arch=arch)
    if "timm" in impls:
        models["timm"] = Maps(timm.create_model(timm_name, pretrained=False, features_only=True))
    if "mmpretrain" in impls:
        from mmpretrain.models.backbones.twins import PCPVT as MMPCPVT
        from mmpretrain.models.backbones.twins import SVT as MMSVT

        models["mmpretrain"] = Maps((MMPCPVT if family == "pcpvt" else MMSVT)(arch=arch))
    if "mmseg" in impls:
        if arch != "small":
            raise SystemExit("benchmark: mmseg's Twins is compared for the small models only")
        from mmseg.models.backbones.twins import PCPVT as SegPCPVT
        from mmseg.models.backbones.twins import SVT as SegSVT

        models["mmseg"] = Maps((SegPCPVT if family == "pcpvt" else SegSVT)(**MMSEG_SMALL[family]))
    return models


def build_padding_pair(arch_name: str) -> dict[str, nn.Module]:
    """cpvt_mm's backbone twice (the same module): plain, and fed batches that carry their valid sizes."""
    family, arch, _ = ARCHS[arch_name]
    backbone = (PCPVT if family == "pcpvt" else SVT)(arch=arch, out_norms=True)
    return {"cpvt_mm": backbone, "cpvt_mm padding-aware": backbone}


def padded_sizes(batch_size: int, h: int, w: int) -> list[tuple[int, int]]:
    """Even images fill the batch, odd ones are 3/4 of it (the rest is padding)."""
    return [(h, w) if b % 2 == 0 else (3 * h // 4, 3 * w // 4) for b in range(batch_size)]


def make_step(model: nn.Module, x: Tensor, mode: str, dtype: torch.dtype, device: torch.device) -> Callable[[], None]:
    """One inference or training step; a model returning a tuple of maps (a backbone) gets a mean-based loss."""
    autocast = torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32)
    if mode == "infer":
        model.eval()

        def step() -> None:
            with torch.inference_mode(), autocast:
                model(x)

        return step
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=1e-4)
    target = torch.randint(0, 1000, (x.shape[0],), device=device)

    def loss_of(out: Tensor | tuple[Tensor, ...]) -> Tensor:
        if isinstance(out, tuple):
            return sum(o.float().mean() for o in out)
        return nn.functional.cross_entropy(out, target)

    def step() -> None:
        with autocast:
            loss = loss_of(model(x))
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    return step


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def peak_memory(step: Callable[[], None], device: torch.device) -> float:
    """Peak bytes allocated during one step (MiB), beyond what was allocated before it."""
    if device.type == "cuda":
        sync(device)
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        step()
        sync(device)
        return (torch.cuda.max_memory_allocated() - base) / 2**20
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        step()
    # Replay the allocator's own records (one per allocation and one per free, frees negative) in time order
    # to find the high-water mark. The per-op events (``prof.events()``) carry an allocation but miss most
    # frees (those outside an op, e.g. autograd releasing saved tensors), so summing them gives the total
    # bytes allocated in the step, not its peak: in a training step that overstates the peak several-fold.
    records = sorted(
        (e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]" and e.device_type().name == "CPU"),
        key=lambda e: e.start_ns(),
    )
    cur = peak = 0
    for e in records:
        cur += e.nbytes()
        peak = max(peak, cur)
    return peak / 2**20


def run(args: argparse.Namespace) -> dict:
    device = torch.device(args.device)
    dtype = DTYPES[args.dtype]
    torch.manual_seed(0)
    if device.type == "cpu" and args.threads:
        torch.set_num_threads(args.threads)
    h, w = args.size
    x = torch.randn(args.batch_size, 3, h, w, device=device)
    inputs = {}
    if args.padding:
        models = build_padding_pair(args.arch)
        sizes = padded_sizes(args.batch_size, h, w)
        for b, (hb, wb) in enumerate(sizes):
            x[b, :, hb:] = 0
            x[b, :, :, wb:] = 0
        inputs["cpvt_mm padding-aware"] = attach(x.clone(), sizes)
    elif args.backbone:
        models = build_backbones(args.arch, args.impls)
    else:
        models = build_models(args.arch, [i for i in args.impls if i != "mmseg"])
    if args.with_cp and "cpvt_mm" in models:
        backbone = getattr(models["cpvt_mm"], "backbone", models["cpvt_mm"])
        backbone.set_grad_checkpointing(True)
    # forward FLOPs of one image (cpvt_mm's model; all implementations compute the same function)
    counted = models.get("cpvt_mm") or next(iter(models.values()))
    flops = count_complexity(counted, (1, 3, h, w)).flops
    steps = {}
    for name, model in models.items():
        model.to(device)
        eager = model
        if args.compile:  # fixed size here, so a static graph: the same treatment for every implementation
            model = compile_model(model, dynamic=False)
        steps[name] = make_step(model, inputs.get(name, x), args.mode, dtype, device)
        if args.also_compiled and not args.compile:
            compiled = compile_model(eager, dynamic=False)
            steps[f"{name} compiled"] = make_step(compiled, inputs.get(name, x), args.mode, dtype, device)
    if args.cpu_fusion and "cpvt_mm" in models:
        fused = fuse_cpu(copy.deepcopy(models["cpvt_mm"]))  # same weights, oneDNN modules swapped in
        steps["cpvt_mm cpu-fused"] = make_step(fused, inputs.get("cpvt_mm", x), args.mode, dtype, device)
    if args.mode == "infer" and not (args.padding or args.backbone) and {"timm", "cpvt_mm"} <= set(models):
        with torch.inference_mode():
            diff = (models["timm"].eval()(x) - models["cpvt_mm"].eval()(x)).abs().max().item()
        print(f"max |logits(cpvt_mm) - logits(timm)| = {diff:.2e} (same weights)", file=sys.stderr)
    for step in steps.values():  # warm-up (allocator, kernels, autotuning)
        for _ in range(args.warmup):
            step()
    sync(device)
    samples: dict[str, list[float]] = {n: [] for n in steps}
    for _ in range(args.rounds):
        for name, step in steps.items():
            sync(device)
            t0 = time.perf_counter()
            for _ in range(args.iters):
                step()
            sync(device)
            samples[name].append(args.batch_size * args.iters / (time.perf_counter() - t0))
    results = {n: Result(samples[n], peak_memory(steps[n], device) if not args.no_memory else None) for n in steps}
    return dict(
        config=dict(
            arch=args.arch,
            mode=args.mode,
            batch_size=args.batch_size,
            size=f"{h}x{w}",
            what="backbone, padded batch" if args.padding else "backbone" if args.backbone else "classifier",
            dtype=args.dtype,
            device=torch.cuda.get_device_name()
            if device.type == "cuda"
            else f"cpu ({torch.get_num_threads()} threads)",
            torch=torch.__version__,
            rounds=args.rounds,
            iters=args.iters,
            compiled=args.compile,
            also_compiled=args.also_compiled,
            with_cp=args.with_cp,
        ),
        gflops_per_image=flops / 1e9,
        results={
            n: dict(
                img_per_s=r.median,
                samples=r.samples,
                peak_mib=r.peak_mib,
                mfu=mfu(flops, r.median, args.peak_tflops * 1e12, train=args.mode == "train")
                if args.peak_tflops
                else None,
            )
            for n, r in results.items()
        },
    )


def to_markdown(report: dict) -> str:
    cfg, res = report["config"], report["results"]
    ours = res.get("cpvt_mm")
    lines = [
        f"{cfg['arch']} {cfg['what']} {cfg['mode']}, batch {cfg['batch_size']}, {cfg['size']}, {cfg['dtype']}, "
        f"{cfg['device']}, torch {cfg['torch']}{', compiled' if cfg.get('compiled') else ''}"
        f"{', with_cp' if cfg.get('with_cp') else ''} (median of {cfg['rounds']} interleaved rounds of "
        f"{cfg['iters']}; {report.get('gflops_per_image', 0):.2f} GFLOPs per image forward)",
        "",
        "| implementation | img/s | speed ratio (cpvt_mm / this) | peak MiB | memory ratio (cpvt_mm / this) | MFU |",
        "|---|---|---|---|---|---|",
    ]
    for name, r in res.items():
        speed = f"{ours['img_per_s'] / r['img_per_s']:.2f}" if ours else "-"
        mem = f"{r['peak_mib']:.0f}" if r["peak_mib"] is not None else "-"
        mem_ratio = (
            f"{ours['peak_mib'] / r['peak_mib']:.2f}"
            if ours and r["peak_mib"] and ours["peak_mib"] is not None
            else "-"
        )
        util = f"{r['mfu']:.1%}" if r.get("mfu") is not None else "-"
        lines.append(f"| {name} | {r['img_per_s']:.1f} | {speed} | {mem} | {mem_ratio} | {util} |")
    return "\n".join(lines)


def parse_size(text: str) -> tuple[int, int]:
    return image_size(text, minimum=32)  # below one stride-32 token the pyramid models have nothing to time


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--arch", default="pcpvt-small", choices=sorted(ARCHS))
    p.add_argument("--mode", default="infer", choices=["infer", "train"])
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--size", type=parse_size, default=(224, 224), help="input size: 224 or HxW (800x1216)")
    p.add_argument("--padding", action="store_true", help="time the padding-aware mode against the plain forward")
    p.add_argument("--dtype", default="fp32", choices=sorted(DTYPES))
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument(
        "--impls",
        nargs="+",
        default=["cpvt_mm", "timm", "mmpretrain"],
        choices=["cpvt_mm", "timm", "mmpretrain", "mmseg"],
    )
    p.add_argument("--backbone", action="store_true", help="backbones only (4 stage maps); mmseg is an --impls option")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--iters", type=int, default=3, help="steps per timed round")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--threads", type=int, default=0, help="CPU threads (0: torch's default)")
    p.add_argument("--no-memory", action="store_true", help="skip the peak-memory measurement")
    p.add_argument("--compile", action="store_true", help="torch.compile every implementation (inductor)")
    p.add_argument(
        "--also-compiled", action="store_true", help="time every implementation both eager and compiled, one run"
    )
    p.add_argument(
        "--cpu-fusion",
        "--plain-linear",  # the option's old name, from when the fusion was on by default
        action="store_true",
        help="also cpvt_mm with cpvt_mm.acceleration.fuse_cpu (CPU, eager), side by side with the plain model",
    )
    p.add_argument("--with-cp", action="store_true", help="gradient checkpointing in cpvt_mm's backbone")
    p.add_argument("--peak-tflops", type=float, default=0.0, help="device peak for the dtype: report MFU")
    p.add_argument("--json", help="also write the report as JSON here")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.cpu_fusion and (torch.device(args.device).type != "cpu" or args.compile):
        raise SystemExit("--cpu-fusion: the oneDNN fusion is for eager CPU runs (not --compile, not GPUs)")
    report = run(args)
    print(to_markdown(report))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(report, f, indent=2)


if __name__ == "__main__":
    main()
