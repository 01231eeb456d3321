"""Behaviour of the PEG, the attentions and the three backbones (tiny widths, CPU)."""

import math

import pytest
import torch
import torch.nn.functional as F
from helpers import ROOT, run_python
from toy import TINY_CPVT, TINY_PCPVT, TINY_SVT

import cpvt_mm
from cpvt_mm.models import CPVT, PCPVT, PEG, SVT, set_fused_attn
from cpvt_mm.models.attention import Attention, GlobalSubsampledAttention, LocallyGroupedAttention

SIZES = [(224, 224), (225, 225), (333, 517), (511, 683), (800, 1216), (64, 1024)]


def _pyramid(cls, **kw):
    return cls(arch=TINY_SVT if cls is SVT else TINY_PCPVT, **kw).eval()


# --------------------------------------------------------------------------- PEG
def test_peg_is_residual_depthwise_conv_with_zero_padding():
    peg = PEG(8)
    assert peg.proj.groups == 8 and peg.proj.padding == (1, 1) and peg.proj.bias is not None
    x = torch.randn(2, 5 * 7, 8)
    feat = x.transpose(1, 2).reshape(2, 8, 5, 7)
    expected = (F.conv2d(feat, peg.proj.weight, peg.proj.bias, padding=1, groups=8) + feat).flatten(2).transpose(1, 2)
    torch.testing.assert_close(peg(x, (5, 7)), expected)


@pytest.mark.parametrize("cls", [CPVT, PCPVT, SVT])
def test_every_gradient_has_its_parameters_strides(cls):
    """DDP lays its gradient buckets out like the parameters and warns ('Grad strides do not match bucket view
    strides') and copies when a gradient comes back in another layout, as the PEG's did (channels-last)."""
    model = cls(arch=TINY_CPVT) if cls is CPVT else _pyramid(cls)
    model.train()
    out = model(torch.randn(2, 3, 64, 96))
    sum(o.float().mean() for o in (out if isinstance(out, (tuple, list)) else [out])).backward()
    mismatched = [n for n, p in model.named_parameters() if p.grad is not None and p.grad.stride() != p.stride()]
    assert not mismatched


def test_ddp_builds_its_buckets_without_a_layout_warning():
    code = """
import tempfile, warnings, torch, torch.distributed as dist
import cpvt_mm
from cpvt_mm.models import PCPVT
from toy import TINY_PCPVT
dist.init_process_group("gloo", rank=0, world_size=1, init_method="file://" + tempfile.mktemp())
ddp = torch.nn.parallel.DistributedDataParallel(PCPVT(arch=TINY_PCPVT))
with warnings.catch_warnings(record=True) as seen:
    warnings.simplefilter("always")
    for _ in range(2):
        sum(o.mean() for o in ddp(torch.randn(2, 3, 64, 64))).backward()
dist.destroy_process_group()
print([str(w.message).splitlines()[0] for w in seen if "strides" in str(w.message)])
"""
    res = run_python(f"import sys; sys.path.insert(0, {str(ROOT / 'tests')!r})\n" + code)
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.strip().splitlines()[-1] == "[]", res.stdout


def test_peg_leaves_class_token_untouched_and_rejects_wrong_grid():
    peg = PEG(8, num_prefix_tokens=1)
    x = torch.randn(2, 1 + 12, 8)
    out = peg(x, (3, 4))
    assert torch.equal(out[:, 0], x[:, 0])
    with pytest.raises(ValueError, match=r"12 tokens for a 4x4 map"):
        peg(x, (4, 4))
    with pytest.raises(ValueError, match="odd"):
        PEG(8, kernel_size=4)


def test_peg_encodes_absolute_position_at_borders():
    """Identical tokens leave the PEG different at corners than in the interior (zero padding)."""
    peg = PEG(4)
    out = peg(torch.ones(1, 36, 4), (6, 6)).reshape(6, 6, 4)
    assert not torch.allclose(out[0, 0], out[3, 3])
    torch.testing.assert_close(out[2, 2], out[3, 3])


# --------------------------------------------------------------------------- shapes, any size
@pytest.mark.parametrize("cls", [PCPVT, SVT])
@pytest.mark.parametrize("hw", SIZES)
def test_pyramid_shapes_any_size(cls, hw):
    model = _pyramid(cls)
    with torch.no_grad():
        outs = model(torch.randn(1, 3, *hw))
    h, w = hw
    for s, (out, c) in enumerate(zip(outs, TINY_PCPVT["embed_dims"])):
        # ceil at every stride: sides that are not multiples are padded, never cropped
        h, w = math.ceil(h / (4 if s == 0 else 2)), math.ceil(w / (4 if s == 0 else 2))
        assert out.shape == (1, c, h, w)
        assert out.is_contiguous()  # plain NCHW memory: mmcv's RoIAlign reads it raw
        assert torch.isfinite(out).all()


@pytest.mark.parametrize("hw", SIZES)
@pytest.mark.parametrize("with_cls_token", [True, False])
def test_cpvt_shapes_any_size(hw, with_cls_token):
    model = CPVT(arch=TINY_CPVT, with_cls_token=with_cls_token).eval()
    dense = CPVT(arch=TINY_CPVT, with_cls_token=with_cls_token, out_type="featmap", out_indices=(1, 3)).eval()
    x = torch.randn(1, 3, *hw)
    with torch.no_grad():
        (cls_out,) = model(x)
        feats = dense(x)
    assert cls_out.shape == (1, 32) and torch.isfinite(cls_out).all()
    grid = (math.ceil(hw[0] / 16), math.ceil(hw[1] / 16))
    assert [f.shape for f in feats] == [(1, 32, *grid)] * 2


def test_padding_never_drops_pixels():
    """A change in the last row of a 225x225 image (not a multiple of the stride) reaches the output."""
    model = _pyramid(PCPVT)
    x = torch.randn(1, 3, 225, 225)
    y = x.clone()
    y[:, :, -1, :] += 1.0
    with torch.no_grad():
        assert not torch.allclose(model(x)[0][..., -1, :], model(y)[0][..., -1, :])


# --------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("cls", [PCPVT, SVT, CPVT])
def test_bad_input_raises_value_error_naming_expected_shape(cls):
    model = cls(arch=TINY_CPVT if cls is CPVT else (TINY_SVT if cls is SVT else TINY_PCPVT))
    min_size = 16 if cls is CPVT else 4
    cases = [
        torch.randn(1, 1, 64, 64),  # wrong channel count
        torch.randn(3, 64, 64),  # not 4-D
        torch.randn(1, 3, min_size - 1, 64),  # smaller than one patch
        torch.zeros(1, 3, 64, 64, dtype=torch.uint8),  # integer dtype
    ]
    for x in cases:
        with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
            model(x)


def test_bad_arch_and_indices():
    with pytest.raises(ValueError, match="missing keys"):
        PCPVT(arch=dict(embed_dims=[8, 8, 8, 8]))
    with pytest.raises(ValueError, match="unknown arch"):
        SVT(arch="huge")
    with pytest.raises(ValueError, match="out of range"):
        PCPVT(arch=TINY_PCPVT, out_indices=(4,))
    assert PCPVT(arch=TINY_PCPVT, out_indices=(-1, -2)).out_indices == (2, 3)


# --------------------------------------------------------------------------- attentions
def _brute_force_lsa(attn: LocallyGroupedAttention, x, hw):
    """Per window, attention over the window's *real* tokens only (no padding involved at all)."""
    B, N, C = x.shape
    H, W = hw
    ws, nh, hd = attn.window_size, attn.num_heads, attn.head_dim
    grid = x.reshape(B, H, W, C)
    out = torch.zeros_like(grid)
    for i in range(0, H, ws):
        for j in range(0, W, ws):
            win = grid[:, i : i + ws, j : j + ws]
            h, w = win.shape[1:3]
            t = win.reshape(B, h * w, C)
            q, k, v = attn.qkv(t).reshape(B, h * w, 3, nh, hd).permute(2, 0, 3, 1, 4)
            a = ((q @ k.transpose(-2, -1)) * hd**-0.5).softmax(-1) @ v
            out[:, i : i + ws, j : j + ws] = a.transpose(1, 2).reshape(B, h, w, C)
    return attn.proj(out.reshape(B, N, C))


@pytest.mark.parametrize("hw", [(14, 14), (14, 17), (17, 14), (16, 19), (3, 5)])
@pytest.mark.parametrize("fused", [True, False])
def test_locally_grouped_attention_masks_padding_on_any_side(hw, fused):
    """Including the one-side-padded maps where the peers' ``mask[:, -0:]`` masks nothing."""
    attn = LocallyGroupedAttention(16, 2, window_size=7).eval()
    attn.fused_attn = fused
    x = torch.randn(2, hw[0] * hw[1], 16)
    with torch.no_grad():
        torch.testing.assert_close(attn(x, hw), _brute_force_lsa(attn, x, hw), atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize(
    "attn,hw",
    [
        (Attention(16, 2), (5, 6)),
        (GlobalSubsampledAttention(16, 2, sr_ratio=1), (5, 6)),
        (GlobalSubsampledAttention(16, 2, sr_ratio=4), (9, 13)),
        (LocallyGroupedAttention(16, 2, window_size=4), (9, 13)),
        (LocallyGroupedAttention(16, 2, window_size=4), (8, 8)),
    ],
)
def test_fused_and_reference_attention_agree(attn, hw):
    attn.eval()
    x = torch.randn(2, hw[0] * hw[1], 16, requires_grad=True)
    attn.fused_attn = True
    y1 = attn(x, hw)
    (g1,) = torch.autograd.grad(y1.square().sum(), x)
    attn.fused_attn = False
    y2 = attn(x, hw)
    (g2,) = torch.autograd.grad(y2.square().sum(), x)
    torch.testing.assert_close(y1, y2, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(g1, g2, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("cls", [PCPVT, SVT, CPVT])
def test_set_fused_attn_switches_whole_model(cls):
    model = cls(arch=TINY_CPVT if cls is CPVT else (TINY_SVT if cls is SVT else TINY_PCPVT)).eval()
    x = torch.randn(1, 3, 100, 75)
    with torch.no_grad():
        a = model(x)
        set_fused_attn(model, False)
        b = model(x)
    for u, v in zip(a, b):
        torch.testing.assert_close(u, v, atol=1e-5, rtol=1e-4)


# --------------------------------------------------------------------------- training affordances
@pytest.mark.parametrize("cls", [PCPVT, SVT, CPVT])
def test_every_parameter_gets_a_gradient(cls):
    if cls is CPVT:
        model = CPVT(arch=TINY_CPVT, peg_positions=(0, 1, 2))
    else:
        model = cls(arch=TINY_SVT if cls is SVT else TINY_PCPVT, out_norms=True)
    outs = model.train()(torch.randn(2, 3, 61, 47))
    sum((o * torch.randn_like(o)).sum() for o in outs).backward()  # a plain mean of a LayerNorm output has no grad
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing


@pytest.mark.parametrize("cls", [PCPVT, SVT, CPVT])
def test_grad_checkpointing_gives_same_outputs_and_grads(cls):
    arch = TINY_CPVT if cls is CPVT else (TINY_SVT if cls is SVT else TINY_PCPVT)
    model = cls(arch=arch).train()
    x = torch.randn(2, 3, 64, 80)
    results = []
    for with_cp in (False, True):
        model.zero_grad()
        model.set_grad_checkpointing(with_cp)
        out = model(x)
        sum(o.square().mean() for o in out).backward()
        results.append(([o.detach() for o in out], {n: p.grad.clone() for n, p in model.named_parameters()}))
    (o1, g1), (o2, g2) = results
    for a, b in zip(o1, o2):
        torch.testing.assert_close(a, b)
    for n in g1:
        torch.testing.assert_close(g1[n], g2[n], atol=1e-6, rtol=1e-5, msg=n)


@pytest.mark.parametrize("cls", [PCPVT, CPVT])
def test_with_cp_constructor_flag_recomputes_every_block_in_backward(cls):
    """``with_cp=True`` (the config field) checkpoints every block: each attention runs again in backward."""
    model = cls(arch=TINY_CPVT if cls is CPVT else TINY_PCPVT, with_cp=True).train()
    blocks = list(model.blocks) if cls is CPVT else [b for s in model.stages for b in s.blocks]
    calls = []
    for blk in blocks:
        blk.attn.register_forward_hook(lambda *_: calls.append(1))
    out = model(torch.randn(1, 3, 64, 64))
    assert len(calls) == len(blocks)
    sum(o.float().mean() for o in out).backward()
    assert len(calls) == 2 * len(blocks)


@pytest.mark.parametrize("cls", [PCPVT, SVT])
def test_frozen_stages_stay_frozen_after_train(cls):
    model = cls(arch=TINY_SVT if cls is SVT else TINY_PCPVT, frozen_stages=2, drop_path_rate=0.5)
    model.train()
    for s, stage in enumerate(model.stages):
        frozen = s < 2
        assert all(p.requires_grad != frozen for p in stage.parameters())
        assert all(m.training != frozen for m in stage.modules())


def test_cpvt_frozen_stages():
    model = CPVT(arch=TINY_CPVT, frozen_stages=2, peg_positions=(0, 3)).train()
    assert not model.cls_token.requires_grad and not model.patch_embed.proj.weight.requires_grad
    assert not model.pegs["0"].proj.weight.requires_grad and model.pegs["3"].proj.weight.requires_grad
    assert not model.blocks[1].training and model.blocks[2].training


def test_drop_path_is_linear_in_depth():
    model = PCPVT(arch=TINY_PCPVT, drop_path_rate=0.3)
    rates = [getattr(b.drop_path, "drop_prob", 0.0) for s in model.stages for b in s.blocks]
    torch.testing.assert_close(torch.tensor(rates), torch.linspace(0, 0.3, len(rates)))


def test_layer_depth_orders_blocks():
    model = PCPVT(arch=TINY_PCPVT)
    # in execution order (the PEG runs right after block 0 and shares its id)
    depths = [
        model.get_layer_depth(n, "backbone.")[0]
        for n, _ in model.named_parameters(prefix="backbone")
        if ".peg." not in n
    ]
    ids = {n: model.get_layer_depth(n, "backbone.") for n, _ in model.named_parameters(prefix="backbone")}
    num = sum(TINY_PCPVT["depths"]) + 2
    assert all(m == num for _, m in ids.values())
    assert ids["backbone.stages.0.patch_embed.proj.weight"][0] == 1
    assert ids["backbone.stages.1.blocks.0.attn.q.weight"][0] == 1 + TINY_PCPVT["depths"][0]
    assert ids["backbone.stages.3.norm.weight"][0] == num - 1
    assert depths == sorted(depths)
    assert ids["backbone.stages.2.peg.proj.weight"] == ids["backbone.stages.2.blocks.0.norm1.weight"]
    cpvt = CPVT(arch=TINY_CPVT)
    assert cpvt.get_layer_depth("cls_token")[0] == 0 and cpvt.get_layer_depth("blocks.3.mlp.fc1.weight")[0] == 4


def test_paramwise_cfg_excludes_peg_and_norms_from_weight_decay():
    """The key the configs use (``peg``) matches our parameter names; mmseg's ``pos_block`` never did."""
    from mmengine.optim import build_optim_wrapper

    for cls, arch in ((SVT, TINY_SVT), (CPVT, TINY_CPVT)):
        model = torch.nn.Module()
        model.backbone = cls(arch=arch)
        wrapper = build_optim_wrapper(
            model,
            dict(
                optimizer=dict(type="AdamW", lr=1e-3, weight_decay=0.05),
                paramwise_cfg=dict(norm_decay_mult=0.0, bias_decay_mult=0.0, custom_keys={"peg": dict(decay_mult=0.0)}),
            ),
        )
        decay = {}
        names = {id(p): n for n, p in model.named_parameters()}
        for group in wrapper.optimizer.param_groups:
            for p in group["params"]:
                decay[names[id(p)]] = group["weight_decay"]
        peg = [n for n in decay if "peg" in n]
        assert peg and all(decay[n] == 0 for n in peg)
        assert all(decay[n] == 0 for n in decay if "norm" in n)
        assert any(decay[n] == 0.05 for n in decay if n.endswith("fc1.weight"))
        assert {n for n in decay if decay[n] == 0} >= {"backbone." + n for n in model.backbone.no_weight_decay()} - {
            "backbone.cls_token"
        }


# --------------------------------------------------------------------------- registry
@pytest.mark.parametrize("scope", ["mmpretrain", "mmdet", "mmseg", "mmengine"])
def test_builds_from_every_toolkit_registry(scope):
    import importlib

    registry = importlib.import_module(f"{scope}.registry").MODELS
    for name, arch in (("PCPVT", TINY_PCPVT), ("SVT", TINY_SVT), ("CPVT", TINY_CPVT)):
        model = registry.build(dict(type=f"cpvt_mm.{name}", arch=arch))
        assert type(model) is getattr(cpvt_mm.models, name)


def test_host_toolkits_keep_their_own_twins():
    from mmpretrain.registry import MODELS as PRETRAIN
    from mmseg.registry import MODELS as SEG

    assert PRETRAIN.get("PCPVT").__module__.startswith("mmpretrain")
    assert SEG.get("SVT").__module__.startswith("mmseg")


def test_published_parameter_counts():
    """Backbone + 1000-way head, against the papers' tables (M)."""
    expected = {(PCPVT, "small"): 24.1, (PCPVT, "base"): 43.8, (SVT, "small"): 24.1, (SVT, "base"): 56.1}
    for (cls, arch), params in expected.items():
        model = cls(arch=arch)
        n = sum(p.numel() for p in model.parameters()) + model.embed_dims[-1] * 1001
        assert abs(n / 1e6 - params) < 0.15, (cls.__name__, arch, n)
    cpvt = CPVT(arch="tiny")
    assert abs((sum(p.numel() for p in cpvt.parameters()) + 192 * 1001) / 1e6 - 5.7) < 0.1
    assert cpvt.pegs["0"].proj.weight.numel() == 1728  # the paper's PEG cost for CPVT-Ti


def test_no_graph_breaks_under_torch_compile():
    model = SVT(arch=TINY_SVT).eval()
    explanation = torch._dynamo.explain(model)(torch.randn(1, 3, 61, 90))
    assert explanation.graph_break_count == 0, explanation.break_reasons
    torch._dynamo.reset()


def test_abs_pos_embed_baseline_interpolates_and_is_off_by_default():
    assert CPVT(arch=TINY_CPVT).pos_embed is None
    model = CPVT(arch=TINY_CPVT, patch_size=4, peg_positions=(), abs_pos_embed=(7, 7)).eval()
    x = torch.randn(1, 3, 28, 28)
    with torch.no_grad():
        base = model(x)[0]
        model.pos_embed.zero_()
        assert not torch.allclose(base, model(x)[0])  # the table is used at the training grid
        assert model(torch.randn(1, 3, 44, 36))[0].shape == (1, 32)  # and resized for other grids


@pytest.mark.parametrize("cls", [PCPVT, SVT, CPVT])
def test_builds_on_meta_device(cls):
    """Deferred (meta) initialisation, e.g. for FSDP or free shape checks of full-size configs."""
    with torch.device("meta"):
        model = cls(arch="small")
        outs = model(torch.empty(1, 3, 61, 77))
    assert all(o.is_meta for o in outs)


def test_svt_layout_is_chosen_by_the_class_not_by_arch_keys():
    """A PCPVT never turns into an SVT because its arch dict carries ``window_sizes``: it says which to build."""
    with pytest.raises(ValueError, match=r"type='cpvt_mm\.SVT'"):
        PCPVT(arch=TINY_SVT)
    kinds = {type(m).__name__ for m in SVT(arch=TINY_SVT).modules()}
    assert {"LocallyGroupedAttention", "GlobalSubsampledAttention"} <= kinds
    assert "LocallyGroupedAttention" not in {type(m).__name__ for m in PCPVT(arch=TINY_PCPVT).modules()}


def tiny_model(kind: str) -> torch.nn.Module:
    """A tiny backbone of each family: plain CPVT (patch 4), PCPVT or SVT."""
    return {"cpvt": lambda: CPVT(arch=TINY_CPVT, patch_size=4), "pcpvt": lambda: PCPVT(TINY_PCPVT),
            "svt": lambda: SVT(TINY_SVT)}[kind]()  # fmt: skip


@pytest.mark.parametrize("cls", ["cpvt", "pcpvt", "svt"])
def test_a_batch_of_one_keeps_its_tokens_contiguous_through_the_convs(cls):
    """The token -> map view must carry channels-last strides oneDNN recognises even for a batch of one (an
    elementwise op may give the size-1 batch dim any stride); otherwise the PEG and patch-embedding convs
    return NCHW maps and every later LayerNorm and linear layer of the stage copies its input. The image itself
    is made channels-last by the CPU transform (``fuse_cpu``: the tools apply it on CPU)."""
    from cpvt_mm.acceleration import fuse_cpu

    model = fuse_cpu(tiny_model(cls).train())
    layouts = []
    for module in model.modules():
        if isinstance(module, torch.nn.LayerNorm):
            module.register_forward_pre_hook(lambda m, args: layouts.append(args[0].is_contiguous()))
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d) and m.in_channels > 3]
    assert convs
    outputs = []
    for conv in convs:
        conv.register_forward_hook(
            lambda m, args, out: outputs.append(out.is_contiguous(memory_format=torch.channels_last))
        )
    model(torch.randn(1, 3, 64, 96))
    assert layouts and all(layouts), layouts
    assert outputs and all(outputs), outputs


def _autograd_ops(t: torch.Tensor) -> set[str]:
    seen, names, todo = set(), set(), [t.grad_fn]
    while todo:
        fn = todo.pop()
        if fn is None or fn in seen:
            continue
        seen.add(fn)
        names.add(type(fn).__name__)
        todo.extend(nxt for nxt, _ in fn.next_functions)
    return names


@pytest.mark.parametrize(
    "attn, hw",
    [
        (Attention(32, 2), (5, 6)),
        (GlobalSubsampledAttention(32, 2, sr_ratio=2), (5, 6)),
        (LocallyGroupedAttention(32, 2, window_size=4), (5, 6)),
    ],
    ids=["plain", "gsa", "lsa"],
)
def test_attention_backward_splits_qkv_without_zero_filled_gradients(attn, hw):
    """q, k and v are views of one linear output. Taken with ``qkv[i]`` each index's backward zero-fills a
    gradient of the whole (3, ...) tensor and the three are added (18% of a small model's training step);
    ``unbind`` stacks the three gradients once. The gradient itself is checked against the reference path."""
    torch.manual_seed(0)
    x = torch.randn(2, hw[0] * hw[1], 32, requires_grad=True)
    out = attn(x, hw)
    ops = _autograd_ops(out)
    assert not {"SelectBackward0", "IndexBackward0"} & ops, sorted(ops)
    (grad,) = torch.autograd.grad(out.square().sum(), x)
    set_fused_attn(attn, False)
    (want,) = torch.autograd.grad(attn(x, hw).square().sum(), x)
    set_fused_attn(attn, True)
    torch.testing.assert_close(grad, want, atol=1e-5, rtol=1e-4)


# ======================================================== PEG options the experiments train (from test_experiments.py)
# --------------------------------------------------------------------------- PEG on the embedding ("position -1")
def test_peg_on_embedding_runs_before_block_zero():
    model = CPVT(arch=TINY_CPVT, patch_size=4, peg_positions=("embed", 2)).eval()
    assert {k.split(".")[1] for k in model.state_dict() if k.startswith("pegs.")} == {"embed", "2"}
    order = []
    for name in ("pegs.embed", "blocks.0", "blocks.2", "pegs.2"):
        model.get_submodule(name).register_forward_pre_hook(lambda m, a, name=name: order.append(name))
    model(torch.randn(1, 3, 32, 32))
    assert order == ["pegs.embed", "blocks.0", "blocks.2", "pegs.2"]
    # the embedding's PEG belongs to the embedding for layer-wise decay and freezing
    assert model.get_layer_depth("pegs.embed.proj.weight")[0] == 0
    frozen = CPVT(arch=TINY_CPVT, peg_positions=("embed",), frozen_stages=0).train()
    assert not any(p.requires_grad for p in frozen.pegs["embed"].parameters())


def test_peg_on_embedding_changes_the_output_and_keeps_padding_invariance():
    torch.manual_seed(0)
    x = torch.randn(1, 3, 32, 48)
    model = CPVT(arch=TINY_CPVT, patch_size=4, peg_positions=("embed",), with_cls_token=False).eval()
    plain = CPVT(arch=TINY_CPVT, patch_size=4, peg_positions=(), with_cls_token=False).eval()
    plain.load_state_dict(model.state_dict(), strict=False)
    with torch.no_grad():
        assert not torch.allclose(model(x)[0], plain(x)[0], atol=1e-4)
        batch = torch.zeros(2, 3, 48, 48)
        batch[0, :, :32, :48] = x[0]
        padded = model(batch, valid_sizes=torch.tensor([[32, 48], [48, 48]]))[0]
        torch.testing.assert_close(padded[0], model(x)[0][0], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("bad", [("embd",), ("embed", "embed"), (0, 9)])
def test_peg_positions_refuse_unknown_entries(bad):
    with pytest.raises(ValueError, match="peg_positions"):
        CPVT(arch=TINY_CPVT, peg_positions=bad)


# --------------------------------------------------------------------------- PEG padding modes (claim 4's control)
def test_circular_peg_sees_no_border_and_zero_peg_does():
    """Shifting the token map shifts a circular PEG's output exactly (no absolute position anywhere);
    a zero-padded PEG's output changes beyond the shift: the border is what tells position."""
    torch.manual_seed(0)
    tokens = torch.randn(2, 6 * 5, 8)
    shifted = tokens.reshape(2, 6, 5, 8).roll((2, 1), dims=(1, 2)).reshape(2, 30, 8)
    for mode, equivariant in (("circular", True), ("zeros", False)):
        peg = PEG(8, padding_mode=mode)
        out = peg(tokens, (6, 5)).reshape(2, 6, 5, 8).roll((2, 1), dims=(1, 2)).reshape(2, 30, 8)
        assert torch.allclose(peg(shifted, (6, 5)), out, atol=1e-6) is equivariant, mode
    assert PEG(8, padding_mode="circular").state_dict().keys() == PEG(8).state_dict().keys()
    with pytest.raises(ValueError, match="padding_mode must be one of"):
        PEG(8, padding_mode="wrap")


def test_circular_peg_refuses_a_padded_batch_and_runs_an_unpadded_one():
    model = CPVT(arch=TINY_CPVT, patch_size=4, peg_padding_mode="circular", with_cls_token=False).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        full = model(x, valid_sizes=torch.tensor([[32, 32], [32, 32]]))[0]  # nothing padded: the plain path
        torch.testing.assert_close(full, model(x)[0])
        with pytest.raises(ValueError, match="padding_mode='circular' cannot run a padded batch"):
            model(x, valid_sizes=torch.tensor([[32, 32], [24, 32]]))


@pytest.mark.parametrize("mode", ["zeros", "circular"])
def test_dilated_peg_on_an_enlarged_map_is_the_trained_peg_enlarged(mode):
    """A map enlarged 2x (each token four times) through a PEG dilated by 2 gives exactly the enlarged output
    of the undilated PEG: the dilation lets a PEG see an enlarged image at the scale it was trained on."""
    torch.manual_seed(0)
    tokens = torch.randn(2, 5 * 4, 8)
    peg = PEG(8, padding_mode=mode)
    enlarge = lambda t, h, w: t.reshape(2, h, w, 8).repeat_interleave(2, 1).repeat_interleave(2, 2).reshape(2, -1, 8)  # noqa: E731
    expected = enlarge(peg(tokens, (5, 4)), 5, 4)
    assert not torch.allclose(peg(enlarge(tokens, 5, 4), (10, 8)), expected, atol=1e-3)  # undilated: it differs
    peg.set_dilation(2)
    torch.testing.assert_close(peg(enlarge(tokens, 5, 4), (10, 8)), expected)
    for bad in (0, 1.5, True):
        with pytest.raises(ValueError, match="dilation must be a positive integer"):
            peg.set_dilation(bad)


def test_dilated_peg_keeps_padding_invariance():
    torch.manual_seed(0)
    model = CPVT(arch=TINY_CPVT, patch_size=4, peg_dilation=2, with_cls_token=False).eval()
    x = torch.randn(1, 3, 40, 56)
    batch = torch.zeros(2, 3, 64, 64)
    batch[0, :, :40, :56] = x[0]
    with torch.no_grad():
        padded = model(batch, valid_sizes=torch.tensor([[40, 56], [64, 64]]))[0]
        torch.testing.assert_close(padded[0], model(x)[0][0], atol=1e-5, rtol=1e-5)
    assert model.state_dict().keys() == CPVT(arch=TINY_CPVT, patch_size=4, with_cls_token=False).state_dict().keys()


# --------------------------------------------------------------------------- one backbone base
@pytest.mark.parametrize("cls", [CPVT, PCPVT, SVT])
def test_every_backbone_takes_the_peg_options_and_dilates_a_trained_model(cls):
    """peg_padding_mode / peg_dilation exist on every backbone (they were CPVT's only), and set_peg_dilation on a
    built model gives what building it dilated gives."""
    from cpvt_mm.models.base import Backbone

    def build(**kw):
        torch.manual_seed(0)
        return cls(arch=TINY_CPVT, **kw).eval() if cls is CPVT else _pyramid(cls, **kw)

    x = torch.randn(1, 3, 64, 96)
    plain, dilated = build(), build(peg_dilation=2)
    assert isinstance(plain, Backbone)
    with torch.no_grad():
        before = plain(x)
        plain.set_peg_dilation(2)
        after, reference = plain(x), dilated(x)
    for a, r, b in zip(after, reference, before, strict=True):
        torch.testing.assert_close(a, r)
        assert not torch.allclose(a, b)
    circular = build(peg_padding_mode="circular")
    pegs = [m for m in circular.modules() if isinstance(m, PEG)]
    assert pegs and all(p.padding_mode == "circular" for p in pegs)
    with pytest.raises(ValueError, match="cannot run a padded batch"):
        circular(x, valid_sizes=torch.tensor([[48, 80]]))


@pytest.mark.parametrize("cls", [CPVT, PCPVT, SVT])
def test_backbone_base_rules_match_each_layout(cls):
    """The shared rules: every PEG and 1-D parameter (plus CPVT's class token) skips weight decay; frozen parts
    stay frozen and in eval mode through train(); every parameter has a layer id below num_layers."""
    model = cls(arch=TINY_CPVT, frozen_stages=1) if cls is CPVT else _pyramid(cls, frozen_stages=1)
    model.train()
    no_decay = model.no_weight_decay()
    for name, p in model.named_parameters():
        is_peg = ".peg." in f".{name}" or name.startswith("pegs.")
        assert (name in no_decay) == (p.ndim == 1 or is_peg or name == "cls_token"), name
        layer, num = model.get_layer_depth(name)
        assert 0 <= layer < num == model.num_layers
    first = model.blocks[0] if cls is CPVT else model.stages[0]
    assert not first.training and not any(p.requires_grad for p in first.parameters())
    second = model.blocks[1] if cls is CPVT else model.stages[1]
    assert second.training and all(p.requires_grad for p in second.parameters())
