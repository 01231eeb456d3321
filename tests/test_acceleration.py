"""cpvt_mm.acceleration: the opt-in oneDNN fusion equals the plain model, keeps its state_dict, undoes itself."""

import copy

import pytest
import torch
import torch.nn.functional as F
from toy import TINY_CPVT, TINY_PCPVT, TINY_SVT

from cpvt_mm.acceleration import CpuFusionError, cpu_fusion_unavailable, fuse_cpu, is_cpu_fused, unfuse_cpu
from cpvt_mm.acceleration.cpu import FusedLinear, FusedMlp
from cpvt_mm.models import CPVT, PCPVT, SVT
from cpvt_mm.models.attention import Attention, GlobalSubsampledAttention, LocallyGroupedAttention
from cpvt_mm.models.layers import Mlp

pytestmark = pytest.mark.skipif(cpu_fusion_unavailable() is not None, reason=str(cpu_fusion_unavailable()))


def tiny_model(kind: str) -> torch.nn.Module:
    return {"cpvt": lambda: CPVT(arch=TINY_CPVT, patch_size=4), "pcpvt": lambda: PCPVT(TINY_PCPVT),
            "svt": lambda: SVT(TINY_SVT)}[kind]()  # fmt: skip


def _grad_fns(outs) -> set[str]:
    names, seen, stack = set(), set(), [o.grad_fn for o in outs]
    while stack:
        node = stack.pop()
        if node is not None and node not in seen:
            seen.add(node)
            names.add(type(node).__name__)
            stack.extend(n for n, _ in node.next_functions)
    return names


@pytest.mark.parametrize("cls", ["cpvt", "pcpvt", "svt"])
def test_fused_model_matches_the_plain_one_in_inference_and_training_and_is_reversible(cls):
    plain = tiny_model(cls)
    fused = fuse_cpu(copy.deepcopy(plain))
    assert is_cpu_fused(fused) and not is_cpu_fused(plain)
    kinds = {type(m) for m in fused.modules()}
    assert {FusedMlp, FusedLinear} <= kinds and not {Mlp, Attention, GlobalSubsampledAttention} & kinds
    assert fused.state_dict().keys() == plain.state_dict().keys()
    x = torch.randn(2, 3, 64, 96)
    with torch.inference_mode():
        for a, b in zip(plain.eval()(x), fused.eval()(x)):
            torch.testing.assert_close(b, a, atol=1e-5, rtol=1e-4)
    results = []
    for model in (plain.train(), fused.train()):
        outs = model(x)
        loss = sum((o**2).mean() for o in outs)
        loss.backward()
        results.append([loss.detach(), *(p.grad for p in model.parameters())])
    assert {"_LinearBackward", "_GeluMlpBackward"} <= _grad_fns(fused(x))  # training runs on the kernel too
    for a, b in zip(*results, strict=True):
        torch.testing.assert_close(b, a, atol=1e-5, rtol=1e-4)
    restored = unfuse_cpu(fused)
    assert not is_cpu_fused(restored) and Mlp in {type(m) for m in restored.modules()}
    assert restored.state_dict().keys() == plain.state_dict().keys()
    assert all(type(m) is not FusedLinear for m in restored.modules())
    assert {type(m) for m in restored.modules()} == {type(m) for m in plain.modules()}
    for (n, p), (m, q) in zip(restored.named_parameters(), plain.named_parameters(), strict=True):
        assert n == m and torch.equal(p, q)


def test_fused_layers_share_the_parameters_and_keep_hooks_and_mode():
    model = tiny_model("pcpvt").eval()
    params = {n: p for n, p in model.named_parameters()}
    attn = model.stages[0].blocks[0].attn
    seen = []
    attn.q.register_forward_hook(lambda m, i, o: seen.append(o.shape))
    fuse_cpu(model)
    assert all(p is params[n] for n, p in model.named_parameters())  # an optimizer built before still works
    assert not model.training and type(model.stages[0].blocks[0].attn.q) is FusedLinear
    with torch.no_grad():
        model(torch.randn(1, 3, 32, 32))
    assert seen  # the hook on the attention's q layer moved with it


def test_fused_layers_step_aside_for_flop_counters_and_other_dtypes():
    from torch.utils.flop_counter import FlopCounterMode

    mlp = fuse_cpu(torch.nn.Sequential(Mlp(8, 16)))[0]
    assert type(mlp) is FusedMlp
    x = torch.randn(4, 8)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        mlp(x)
    assert counter.get_total_flops() == 2 * 2 * 4 * 8 * 16  # the GEMMs are counted, not hidden in oneDNN's op
    want = mlp.fc2(F.gelu(mlp.fc1(x.double().float())))
    torch.testing.assert_close(mlp(x), want, atol=1e-6, rtol=1e-5)
    mlp.double()
    torch.testing.assert_close(mlp(x.double()), mlp.fc2(F.gelu(mlp.fc1(x.double()))))


def test_fused_linear_handles_frozen_weights_no_bias_and_double_backward():
    for plain in (torch.nn.Linear(24, 40, bias=False), torch.nn.Linear(40, 24)):  # both product orientations
        layer = copy.deepcopy(plain)
        layer.__class__ = FusedLinear
        x = torch.randn(3, 5, plain.in_features, requires_grad=True)
        out = layer(x)
        assert type(out.grad_fn).__name__ == "_LinearBackward"
        got = torch.autograd.grad(out.pow(2).sum(), [x, *layer.parameters()])
        want = torch.autograd.grad(plain(x).pow(2).sum(), [x, *plain.parameters()])
        for a, b in zip(got, want):
            torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
            assert a.is_contiguous()  # the weight's gradient is laid out like the weight (DDP's buckets)
        layer.requires_grad_(False)  # frozen: only the input's gradient
        (g,) = torch.autograd.grad(layer(x).sum(), x)
        torch.testing.assert_close(g, torch.autograd.grad(plain(x).sum(), x)[0])
        layer.requires_grad_(True)
        second = []  # a gradient penalty differentiates the backward itself
        for fn, w in ((layer, layer.weight), (plain, plain.weight)):
            (g,) = torch.autograd.grad(fn(x).pow(2).sum(), x, create_graph=True)
            second.append(torch.autograd.grad(g.pow(2).sum(), w)[0])
        torch.testing.assert_close(second[0], second[1], atol=1e-4, rtol=1e-4)


def test_fused_mlp_keeps_less_for_backward_with_the_same_gradients_and_double_backward():
    """The fused MLP recomputes its GELU in the backward: the widest activation of a block is not kept."""
    plain = Mlp(16, 128)
    fused = fuse_cpu(torch.nn.Sequential(copy.deepcopy(plain)))[0]
    x = torch.randn(2, 50, 16, requires_grad=True)
    grad = torch.randn(2, 50, 16)
    results = []
    for mlp in (fused, plain):
        saved: list[torch.Tensor] = []
        x.grad = None
        with torch.autograd.graph.saved_tensors_hooks(lambda t, saved=saved: saved.append(t) or t, lambda t: t):
            out = mlp(x)
        out.backward(grad)
        kept = sum({t.data_ptr(): t.numel() for t in saved if t.shape[0] in (2, 100)}.values())  # not the weights
        results.append(([out.detach(), x.grad, *(p.grad for p in mlp.parameters())], kept))
    (got, kept_fused), (want, kept_plain) = results
    assert kept_fused == 100 * (16 + 128) and kept_plain == 100 * (16 + 128 + 128)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    second = []
    for mlp in (fused, plain):
        (g,) = torch.autograd.grad(mlp(x).pow(2).sum(), x, create_graph=True)
        second.append(torch.autograd.grad(g.pow(2).sum(), mlp.fc1.weight)[0])
    torch.testing.assert_close(second[0], second[1], atol=1e-5, rtol=1e-4)
    dropout = fuse_cpu(torch.nn.Sequential(Mlp(16, 32, drop=0.1)))[0].train()
    assert "_GeluMlpBackward" not in type(dropout(x).grad_fn).__name__  # dropout active: the plain path


def test_fusion_is_refused_under_compile_and_tracing_and_for_compiled_models():
    model = fuse_cpu(tiny_model("pcpvt").eval())
    x = torch.randn(1, 3, 32, 32)
    with pytest.raises(CpuFusionError, match="unfuse_cpu"):
        torch.jit.trace(model, x, check_trace=False)
    with pytest.raises(Exception, match="unfuse_cpu"):
        torch.export.export(model, (x,))
    with pytest.raises(Exception, match="unfuse_cpu"):
        torch.compile(model)(x)
    with pytest.raises(CpuFusionError, match=r"torch\.compile"):
        fuse_cpu(torch.compile(tiny_model("pcpvt")))
    torch.export.export(unfuse_cpu(model), (x,))  # the plain model exports


def test_fusion_checks_the_torch_version(monkeypatch):
    import cpvt_mm.acceleration.cpu as cpu

    monkeypatch.setattr(cpu.torch, "__version__", "9.1.0")
    assert "written for torch" in cpu.cpu_fusion_unavailable()
    with pytest.raises(CpuFusionError, match=r"this is torch 9\.1\.0"):
        fuse_cpu(tiny_model("svt"))
    with pytest.warns(UserWarning, match="plain model"):
        model = cpu.fuse_cpu_for_device(tiny_model("svt"), "cpu")
    assert not is_cpu_fused(model)


def test_small_attention_maps_take_matmuls_only_in_cpu_autocast_training(monkeypatch):
    """Window-sized attention (49 x 49) trains faster under CPU autocast as two matmuls than through SDPA's
    kernel; the switch must give SDPA's result (masked keys included) and leave SDPA everywhere else:
    inference, float32 training and large maps."""
    import cpvt_mm.models.attention as att

    calls = []
    sdpa = F.scaled_dot_product_attention
    monkeypatch.setattr(att.F, "scaled_dot_product_attention", lambda *a, **k: calls.append(1) or sdpa(*a, **k))
    attn = fuse_cpu(torch.nn.Sequential(LocallyGroupedAttention(32, 2, window_size=7)))[0]
    q, k, v = (torch.randn(6, 2, 49, 16, requires_grad=True) for _ in range(3))
    mask = torch.rand(6, 1, 1, 49) > 0.3
    mask[..., 0] = True  # every window keeps a real key, as cpvt_mm's masks guarantee
    with torch.autocast("cpu", dtype=torch.bfloat16):
        want = sdpa(q, k, v, attn_mask=mask)
        got = attn._sdpa(q, k, v, mask)
        assert not calls and got.dtype == torch.bfloat16
        grads = torch.autograd.grad(got.float().sum(), (q, k, v))
        grads_sdpa = torch.autograd.grad(want.float().sum(), (q, k, v))
    torch.testing.assert_close(got.float(), want.float(), atol=3e-2, rtol=3e-2)
    for a, b in zip(grads, grads_sdpa):
        torch.testing.assert_close(a.float(), b.float(), atol=5e-2, rtol=5e-2)
    attn._sdpa(q, k, v, mask).sum().backward()  # float32 training: SDPA
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        attn._sdpa(q, k, v, mask)  # inference: SDPA
    with torch.autocast("cpu", dtype=torch.bfloat16):
        big = torch.randn(1, 1, 3136, 16, requires_grad=True)
        attn._sdpa(big, big[:, :, :49], big[:, :, :49])  # a large map: SDPA
    assert len(calls) == 3
    assert type(unfuse_cpu(torch.nn.Sequential(attn))[0]) is LocallyGroupedAttention


def test_the_image_layout_is_the_transforms_business_not_the_models():
    """The plain patch embedding hands its conv the image as given (no device branch in the model); the CPU
    transform feeds it a channels-last copy, and unfusing takes that back."""
    model = PCPVT(TINY_PCPVT).eval()
    seen = []
    model.stages[0].patch_embed.proj.register_forward_pre_hook(
        lambda m, args: seen.append(args[0].is_contiguous(memory_format=torch.channels_last))
    )
    x = torch.randn(2, 3, 64, 96)
    with torch.no_grad():
        model(x)
        fuse_cpu(model)(x)
        unfuse_cpu(model)(x)
    assert seen == [False, True, False]
