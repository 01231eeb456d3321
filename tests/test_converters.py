"""Checkpoint conversion: each supported layout, converted, makes cpvt_mm compute what its source computed.

Random weights only (no downloads). The peers' norm weights and biases are perturbed away from their
(1, 0) initialisation so that a swapped or dropped bias / norm cannot hide behind default values.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import cpvt_mm  # before timm / mmpretrain: its compatibility layer must run first

# isort: split
import pytest
import timm
import torch
from mmengine.registry import DefaultScope
from mmpretrain.models.backbones.twins import PCPVT as MMPretrainPCPVT
from mmpretrain.models.backbones.twins import SVT as MMPretrainSVT
from mmpretrain.models.heads import LinearClsHead
from mmseg.models.backbones.twins import PCPVT as MMSegPCPVT
from mmseg.models.backbones.twins import SVT as MMSegSVT
from torch import Tensor, nn

from cpvt_mm.checkpoint.convert import check_state_dict, convert_twins_checkpoint

ROOT = Path(__file__).resolve().parents[1]
CLI = ROOT / "tools" / "model_converters" / "convert_checkpoint.py"
TOL = 1e-4
TIMM_NAMES = {"pcpvt": "twins_pcpvt_small", "svt": "twins_svt_small"}
# mmseg has no arch zoo; these are its configs' small settings.
MMSEG_SMALL = {
    "pcpvt": dict(embed_dims=[64, 128, 320, 512], num_heads=[1, 2, 5, 8], mlp_ratios=[8, 8, 4, 4], depths=[3, 4, 6, 3]),
    "svt": dict(
        embed_dims=[64, 128, 256, 512],
        num_heads=[2, 4, 8, 16],
        mlp_ratios=[4, 4, 4, 4],
        depths=[2, 2, 10, 4],
        windiow_sizes=[7, 7, 7, 7],
    ),
}


# --------------------------------------------------------------------------- helpers
def perturbed(model: nn.Module, seed: int = 0) -> nn.Module:
    """Eval-mode ``model`` with every 1-D parameter (biases, norm affines) moved off its initial value."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            if p.ndim == 1:
                p.add_(0.1 * torch.randn(p.shape, generator=gen))
    return model.eval()


def ours(family: str, state_dict: dict[str, Tensor], **kwargs) -> nn.Module:
    """cpvt_mm small backbone, loaded strictly from a converted state dict."""
    model = cpvt_mm.MODELS.build(dict(type=f"cpvt_mm.{family.upper()}", arch="small", **kwargs)).eval()
    backbone = {k[len("backbone.") :]: v for k, v in state_dict.items() if k.startswith("backbone.")}
    model.load_state_dict(backbone, strict=True)
    return model


def max_diff(a: Sequence[Tensor], b: Sequence[Tensor]) -> float:
    assert len(a) == len(b) and all(x.shape == y.shape for x, y in zip(a, b))
    return max((x - y).abs().max().item() for x, y in zip(a, b))


def assert_same_features(ref: Callable[[Tensor], Sequence[Tensor]], model: nn.Module, sizes, label: str) -> None:
    torch.manual_seed(1)
    for size in sizes:
        x = torch.randn(1, 3, *size)
        with torch.no_grad():
            diff = max_diff(ref(x), model(x))
        print(f"{label} {size[0]}x{size[1]}: features max abs diff {diff:.2e}")
        assert diff <= TOL, f"{label} at {size}: {diff}"


@pytest.fixture(scope="module")
def timm_models() -> dict[str, nn.Module]:
    torch.manual_seed(0)
    return {family: perturbed(timm.create_model(name, pretrained=False)) for family, name in TIMM_NAMES.items()}


@pytest.fixture(scope="module")
def timm_pcpvt_file(timm_models, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("src") / "twins_pcpvt_small.pth"
    torch.save({"model": timm_models["pcpvt"].state_dict()}, path)
    return path


# --------------------------------------------------------------------------- numerical parity
@pytest.mark.parametrize("family", ["pcpvt", "svt"])
def test_timm_parity(family, timm_models):
    """Authors' / timm weights: same per-stage maps and logits at square and non-square sizes."""
    ref = timm_models[family]
    converted = convert_twins_checkpoint({"model": ref.state_dict()})
    sd = converted["state_dict"]
    assert converted["meta"]["source_format"] == "timm" and converted["meta"]["arch"] == f"{family}-small"
    model = ours(family, sd)
    head = nn.Linear(512, 1000)
    head.load_state_dict({"weight": sd["head.fc.weight"], "bias": sd["head.fc.bias"]}, strict=True)
    torch.manual_seed(1)
    # 224x448 keeps every stage map a multiple of the 7x7 window, where timm's un-masked padding cannot differ.
    for size in [(224, 224), (224, 448)]:
        x = torch.randn(1, 3, *size)
        with torch.no_grad():
            # timm: stages 0-2 un-normed, the last normed by the final norm, as cpvt_mm returns them.
            ref_feats = ref.forward_intermediates(x, norm=True, intermediates_only=True)
            ref_logits = ref(x)
            feats = model(x)
            logits = head(feats[-1].mean(dim=(2, 3)))
        feat_diff, logit_diff = max_diff(ref_feats, feats), max_diff([ref_logits], [logits])
        print(f"timm {family} {size[0]}x{size[1]}: features {feat_diff:.2e}, logits {logit_diff:.2e}")
        assert feat_diff <= TOL and logit_diff <= TOL


@pytest.mark.parametrize("family", ["pcpvt", "svt"])
def test_mmpretrain_parity(family):
    """mmpretrain weights (its classification config: qkv_bias, norm after the last stage, LN eps 1e-5).

    mmpretrain's block norms use eps 1e-5 where the authors (and cpvt_mm) use 1e-6; the effect stays far
    below the tolerance. 256x256 pads every LSA window map on both sides, where mmpretrain's mask is right.
    """
    torch.manual_seed(0)
    cls = MMPretrainSVT if family == "svt" else MMPretrainPCPVT
    ref = cls(arch="small", qkv_bias=True, norm_after_stage=[False, False, False, True], out_indices=(0, 1, 2, 3))
    ref.init_weights()
    ref = perturbed(ref)
    with DefaultScope.overwrite_default_scope("mmpretrain"):  # earlier tests may leave another scope current
        head = perturbed(LinearClsHead(num_classes=10, in_channels=512))
    checkpoint = {
        "state_dict": {
            **{f"backbone.{k}": v for k, v in ref.state_dict().items()},
            **{f"head.{k}": v for k, v in head.state_dict().items()},
        },
        "meta": {"epoch": 300},
    }
    converted = convert_twins_checkpoint(checkpoint, arch=family)
    sd = converted["state_dict"]
    assert converted["meta"]["source_format"] == "mmpretrain" and converted["meta"]["num_classes"] == 10
    assert torch.equal(sd["head.fc.weight"], head.fc.weight) and torch.equal(sd["head.fc.bias"], head.fc.bias)
    # mmpretrain normalises the last map only, as cpvt_mm's default out_norms does.
    assert_same_features(ref, ours(family, sd), [(224, 224), (256, 256)], f"mmpretrain {family}")


@pytest.mark.parametrize("family", ["pcpvt", "svt"])
def test_mmseg_parity(family):
    """mmseg weights, including its fused ``nn.MultiheadAttention`` GSA (split back into q and kv).

    Built with norm_after_stage=False (mmseg's PCPVT configs): no stage norm at all, so cpvt_mm is built
    with ``out_norms=False``. mmseg's block norms use eps 1e-5 (authors: 1e-6), far below the tolerance.
    """
    torch.manual_seed(0)
    cls = MMSegSVT if family == "svt" else MMSegPCPVT
    ref = cls(**MMSEG_SMALL[family], qkv_bias=True, sr_ratios=[8, 4, 2, 1], norm_after_stage=False, drop_path_rate=0.0)
    ref.init_weights()
    ref = perturbed(ref)
    converted = convert_twins_checkpoint(ref.state_dict(), arch=family)
    assert converted["meta"]["source_format"] == "mmseg" and converted["meta"]["out_norms"] == [False] * 4
    sd = converted["state_dict"]
    assert "backbone.stages.0.blocks.1.attn.q.weight" in sd and "backbone.stages.0.blocks.1.attn.kv.bias" in sd
    assert_same_features(ref, ours(family, sd, out_norms=False), [(224, 224), (256, 256)], f"mmseg {family}")


def test_mmseg_norm_between_stages_is_refused():
    """mmseg's SVT default normalises each stage's output *before* the next stage: not representable."""
    ref = MMSegSVT(**MMSEG_SMALL["svt"], qkv_bias=True, sr_ratios=[8, 4, 2, 1], norm_after_stage=True)
    with pytest.raises(ValueError, match=r"norm_list\.0\.weight"):
        convert_twins_checkpoint({"state_dict": {f"backbone.{k}": v for k, v in ref.state_dict().items()}})


# --------------------------------------------------------------------------- wrappers, round trips, errors
def test_wrappers_and_prefixes_give_the_same_result(timm_models):
    sd = timm_models["svt"].state_dict()
    expected = convert_twins_checkpoint(sd)["state_dict"]
    module_sd = {f"module.{k}": v for k, v in sd.items()}
    for checkpoint in ({"model": sd, "epoch": 3}, {"state_dict": sd}, module_sd, {"model": module_sd}):
        got = convert_twins_checkpoint(checkpoint)["state_dict"]
        assert list(got) == list(expected)
        assert all(torch.equal(got[k], expected[k]) for k in expected)


def test_converting_twice_is_a_no_op(timm_models):
    once = convert_twins_checkpoint({"model": timm_models["pcpvt"].state_dict()})
    twice = convert_twins_checkpoint(once)
    assert twice["meta"] == once["meta"]
    assert list(twice["state_dict"]) == list(once["state_dict"])
    assert all(twice["state_dict"][k] is v for k, v in once["state_dict"].items())
    # Bare cpvt_mm backbone weights (no prefix, no meta) are recognised too.
    bare = {k[len("backbone.") :]: v for k, v in once["state_dict"].items() if k.startswith("backbone.")}
    assert convert_twins_checkpoint(bare)["meta"]["source_format"] == "cpvt_mm"


def test_segmentor_parts_outside_the_backbone_are_dropped(timm_models):
    sd = {f"backbone.{k}": v for k, v in timm_models["pcpvt"].state_dict().items() if not k.startswith("head.")}
    sd["decode_head.conv_seg.weight"] = torch.zeros(150, 512, 1, 1)
    converted = convert_twins_checkpoint({"state_dict": sd})
    assert converted["meta"]["dropped_keys"] == ["decode_head.conv_seg.weight"]
    assert converted["meta"]["source_format"] == "timm" and converted["meta"]["num_classes"] is None
    assert all(k.startswith("backbone.stages.") for k in converted["state_dict"])


def test_foreign_checkpoints_are_refused(timm_models):
    resnet = timm.create_model("resnet18", pretrained=False).state_dict()
    with pytest.raises(ValueError, match=r"not a Twins.*conv1\.weight"):
        convert_twins_checkpoint({"state_dict": resnet})
    polluted = dict(timm_models["pcpvt"].state_dict(), pos_embed=torch.zeros(1, 196, 64))
    with pytest.raises(ValueError, match=r"no counterpart.*pos_embed"):
        convert_twins_checkpoint(polluted)
    with pytest.raises(ValueError, match="locally-grouped attention"):
        convert_twins_checkpoint(timm_models["svt"].state_dict(), arch="pcpvt")
    with pytest.raises(ValueError, match="non-tensor entries: epoch"):
        convert_twins_checkpoint({"epoch": 3, "weights": [1, 2]})


def test_check_state_dict_lists_shape_mismatches(timm_models):
    sd = convert_twins_checkpoint(timm_models["svt"].state_dict())["state_dict"]
    base = cpvt_mm.MODELS.build(dict(type="cpvt_mm.SVT", arch="base"))
    report = check_state_dict(sd, base)
    assert not report.ok and report.missing and report.mismatched
    assert "stages.0.patch_embed.proj.weight (checkpoint [64, 3, 4, 4] vs model [96, 3, 4, 4])" in report.format()
    assert check_state_dict(sd, ours("svt", sd)).ok


# --------------------------------------------------------------------------- CLI
def test_cli_wrong_arch_fails_and_writes_nothing(timm_pcpvt_file, tmp_path):
    from cpvt_mm.apis.convert import ConversionError, convert_checkpoint_file

    dst = tmp_path / "out" / "pcpvt_base.pth"
    with pytest.raises(ConversionError) as info:
        convert_checkpoint_file(str(timm_pcpvt_file), str(dst), "pcpvt-base")
    err = str(info.value)
    assert "does not fit pcpvt-base" in err and "stages.2.blocks.6" in err and "nothing written" in err
    assert not dst.exists() and not (tmp_path / "out").exists()


@pytest.mark.slow  # runs the script in a fresh interpreter
def test_cli_writes_a_safe_checkpoint_for_init_cfg(timm_pcpvt_file, timm_models, tmp_path):
    dst = tmp_path / "pcpvt_small_cpvt_mm.pth"
    run = subprocess.run(
        [sys.executable, str(CLI), str(timm_pcpvt_file), str(dst)], capture_output=True, text=True, cwd=tmp_path
    )
    assert run.returncode == 0, run.stderr
    assert "timm layout" in run.stdout and "'arch': 'small'" in run.stdout
    assert [p.name for p in tmp_path.iterdir()] == [dst.name]  # no temporary file left behind
    saved = torch.load(dst, weights_only=True)
    assert saved["meta"]["arch"] == "pcpvt-small"
    model = cpvt_mm.MODELS.build(
        dict(
            type="cpvt_mm.PCPVT",
            arch="small",
            init_cfg=dict(type="Pretrained", checkpoint=str(dst), prefix="backbone."),
        )
    )
    model.init_weights()
    source = timm_models["pcpvt"].state_dict()
    assert torch.equal(model.stages[2].blocks[3].attn.kv.weight, source["blocks.2.3.attn.kv.weight"])
    assert torch.equal(model.stages[3].norm.bias, source["norm.bias"])


def test_cli_follows_the_sources_stage_norms(tmp_path):
    """mmseg's PCPVT has no final norm: the CLI validates against (and prints) ``out_norms`` without it."""
    torch.manual_seed(0)
    ref = MMSegPCPVT(**MMSEG_SMALL["pcpvt"], qkv_bias=True, sr_ratios=[8, 4, 2, 1], norm_after_stage=False)
    src, dst = tmp_path / "mmseg_pcpvt_small.pth", tmp_path / "converted.pth"
    torch.save(ref.state_dict(), src)
    from cpvt_mm.apis.convert import convert_checkpoint_file

    result = convert_checkpoint_file(str(src), str(dst))
    assert "'out_norms': [False, False, False, False]" in result.summary()
    saved = torch.load(dst, weights_only=True)
    assert saved["meta"]["source_format"] == "mmseg" and saved["meta"]["arch"] == "pcpvt-small"
    ours("pcpvt", saved["state_dict"], out_norms=False)
