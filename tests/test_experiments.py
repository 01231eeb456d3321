"""The paper-claims experiment suite (``make experiments``, ``projects/cpvt_experiments``) and its parts: the
attention recorder and maps (``vis_attention.py``), the attention statistics, the position probe, and the suite
end to end (reduced). The PEG options the suite trains (position, padding mode, dilation) are tested in
``test_models.py``."""

from __future__ import annotations

import json
import re

import cv2
import numpy as np
import pytest
import torch
from helpers import ROOT, run_tool, run_tool_in_process
from toy import TINY_CPVT, TINY_PCPVT, TINY_SVT, make_fashion_mnist

from cpvt_experiments.attention_stats import attention_overlap, mean_attention_distance, uniform_attention_distance
from cpvt_experiments.experiments import VARIANTS, load_result, plan_runs
from cpvt_experiments.position_probe import fit_probe
from cpvt_mm.analysis.attention_maps import attention_figure, record_attention
from cpvt_mm.models import CPVT, PCPVT, SVT

EXP_DIR = ROOT / "configs/classification/experiments"


# --------------------------------------------------------------------------- attention recording and maps
MODELS = {
    "cpvt": lambda: CPVT(arch=TINY_CPVT, patch_size=4, with_cls_token=True),
    "pcpvt": lambda: PCPVT(TINY_PCPVT),
    "svt": lambda: SVT(TINY_SVT),
}


@pytest.mark.parametrize("name", sorted(MODELS))
@pytest.mark.parametrize("hw", [(64, 64), (72, 88)])
def test_recording_keeps_outputs_and_maps_are_distributions(name, hw):
    torch.manual_seed(0)
    model = MODELS[name]().eval()
    x = torch.randn(2, 3, *hw)
    with torch.no_grad():
        ref = model(x)
        with record_attention(model) as calls:
            out = model(x)
    for a, b in zip(ref, out):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)
    n_blocks = sum(1 for n, _ in model.named_modules() if n.endswith(".attn"))
    assert len(calls) == n_blocks and {c.kind for c in calls} <= {"global", "gsa", "lsa"}
    for call in calls:
        H, W = call.hw
        for row, col in ((0, 0), (H - 1, W - 1), (H // 2, W // 3)):
            amap = call.query_map(1, row, col)
            assert amap.shape[1:] == (H, W) and bool((amap >= 0).all())
            total = amap.sum((1, 2))
            if call.kind == "global" and call.prefix:  # the class token takes the rest of the mass
                assert bool((total <= 1 + 1e-5).all()) and bool((total > 0).all())
            elif call.kind == "gsa" and (H % call.reduction or W % call.reduction):
                assert bool((total <= 1 + 1e-5).all())  # keys summarising the zero padding lie off the grid
            else:
                torch.testing.assert_close(total, torch.ones_like(total), atol=1e-5, rtol=0)
            if call.kind == "lsa":  # nothing outside the query's own window
                ws = call.window
                outside = amap.clone()
                outside[:, row // ws * ws : (row // ws + 1) * ws, col // ws * ws : (col // ws + 1) * ws] = 0
                assert float(outside.abs().max()) == 0.0
    attentions = [m for m in model.modules() if hasattr(m, "fused_attn")]
    assert all(m.fused_attn and not m._forward_pre_hooks and not m.attn_drop._forward_hooks for m in attentions)


def test_query_outside_the_grid_is_refused():
    model = CPVT(arch=TINY_CPVT, patch_size=4, with_cls_token=False).eval()
    with torch.no_grad(), record_attention(model) as calls:
        model(torch.randn(1, 3, 32, 32))
    with pytest.raises(ValueError, match="outside the 8x8 token grid"):
        calls[0].query_map(0, 8, 0)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_patch_attention_is_every_query_map_at_once(name):
    """All queries' maps as one matrix: each row is that query's map (renormalised over the grid)."""
    torch.manual_seed(0)
    model = MODELS[name]().eval()
    with torch.no_grad(), record_attention(model) as calls:
        model(torch.randn(2, 3, 72, 88))  # not a multiple of the windows or reductions: padding on the way
    for call in calls:
        H, W = call.hw
        full = call.patch_attention()
        assert full.shape == (2, full.shape[1], H * W, H * W)
        torch.testing.assert_close(full.sum(-1), torch.ones(full.shape[:-1]), atol=1e-5, rtol=0)
        for row, col in ((0, 0), (H - 1, W - 1), (H // 2, W // 3)):
            amap = call.query_map(1, row, col).flatten(1)  # (heads, N)
            torch.testing.assert_close(full[1, :, row * W + col], amap / amap.sum(-1, keepdim=True))


def test_attention_distance_and_overlap_on_known_maps():
    hw = (2, 2)
    own = torch.eye(4)  # every query attends only to itself
    uniform = torch.full((4, 4), 0.25)
    assert float(mean_attention_distance(own, hw)) == 0.0
    # from any token of a 2x2 grid: itself 0, two neighbours 1, the diagonal sqrt(2)
    expected = (0 + 1 + 1 + 2**0.5) / 4
    assert float(mean_attention_distance(uniform, hw)) == pytest.approx(expected)
    assert uniform_attention_distance(hw) == pytest.approx(expected)
    right = torch.tensor([[0, 1, 0, 0], [1, 0, 0, 0], [0, 0, 0, 1], [0, 0, 1, 0]], dtype=torch.float)
    assert float(mean_attention_distance(right, hw)) == 1.0  # the horizontal neighbour
    assert float(attention_overlap(own, own)) == 1.0 and float(attention_overlap(own, right)) == 0.0
    assert float(attention_overlap(own, uniform)) == pytest.approx(0.25)
    batched = torch.stack((own, right))  # leading dims are kept
    assert mean_attention_distance(batched, hw).tolist() == [0.0, 1.0]
    with pytest.raises(ValueError, match=r"not \(\.\.\., 9, 9\) for the grid \(3, 3\)"):
        mean_attention_distance(own, (3, 3))
    with pytest.raises(ValueError, match="attention shapes differ"):
        attention_overlap(own, torch.eye(9))


def test_attention_figure_draws_pyramid_models_side_by_side(tmp_path):
    images = [np.random.default_rng(i).integers(0, 255, (64, 64, 3), dtype=np.uint8) for i in range(2)]
    models = [("pcpvt", PCPVT(TINY_PCPVT).eval()), ("svt", SVT(TINY_SVT).eval())]
    out = attention_figure(models, images, str(tmp_path / "maps.png"), layers=(0, 1, -1))
    drawn = cv2.imread(out)
    assert drawn is not None and drawn.shape[0] > 300 and drawn.shape[1] > 500
    with pytest.raises(ValueError, match="layer 40 out of range"):
        attention_figure(models, images, str(tmp_path / "x.png"), layers=(40,))
    with pytest.raises(ValueError, match="head 7 out of range"):
        attention_figure(models, images, str(tmp_path / "x.png"), head=7)


def test_vis_attention_tool_on_a_checkpoint(tmp_path):
    from mmengine.config import Config

    from cpvt_mm.registry import MODELS as CPVT_MODELS  # noqa: F401  (registers cpvt_mm.CPVT)

    config = str(EXP_DIR / "fmnist-native28-peg.py")
    cfg = Config.fromfile(config)
    from mmpretrain.registry import MODELS as PRETRAIN_MODELS

    model = PRETRAIN_MODELS.build(cfg.model)
    torch.save({"state_dict": model.state_dict()}, tmp_path / "w.pth")
    image = tmp_path / "shirt.png"
    cv2.imwrite(str(image), np.random.default_rng(0).integers(0, 255, (28, 28), dtype=np.uint8))
    out = tmp_path / "maps.png"
    run_tool("tools/analysis_tools/vis_attention.py", config, str(tmp_path / "w.pth"), str(image), "--out", str(out),
             "--layers", "0", "1", "-1", "--queries", "0.5,0.5", "1,1")  # fmt: skip
    assert cv2.imread(str(out)) is not None
    # the refusals in process (the command line itself ran just above)
    _, err = run_tool_in_process("tools/analysis_tools/vis_attention.py", config, str(tmp_path / "w.pth"),
                                 str(image), "--out", str(out), "--layers", "4", expect=1)  # fmt: skip
    assert "layer 4 out of range" in err and "4 attention layers" in err
    _, err = run_tool_in_process("tools/analysis_tools/vis_attention.py", config, str(tmp_path / "w.pth"),
                                 str(image), "--out", str(out), "--queries", "0.5", expect=2)  # fmt: skip
    assert "ROW,COL" in err


# --------------------------------------------------------------------------- position probe
def test_probe_reads_position_when_features_carry_it_and_not_otherwise():
    g = torch.Generator().manual_seed(0)
    H = W = 7
    pos = torch.cat((torch.eye(H).repeat_interleave(W, 0), torch.eye(W).repeat(H, 1)), dim=1)  # (N, H+W)
    coded = lambda b: torch.cat((pos.expand(b, -1, -1), torch.randn(b, H * W, 10, generator=g)), -1)  # noqa: E731
    scores = fit_probe(coded(20), coded(10), (H, W))
    assert scores["exact"] == 100.0 and scores["chance_exact"] == pytest.approx(100 / 49, abs=0.01)
    noise = fit_probe(torch.randn(40, H * W, 24, generator=g), torch.randn(20, H * W, 24, generator=g), (H, W))
    assert noise["exact"] < 3 * noise["chance_exact"] and noise["row"] < 30


# --------------------------------------------------------------------------- the suite
def test_every_variant_has_a_config_differing_only_in_position_encoding_or_pooling():
    from mmengine.config import Config

    own = ("peg_positions", "abs_pos_embed", "with_cls_token", "patch_size", "peg_padding_mode")  # may differ
    data = ("model", "train_pipeline", "test_pipeline", "train_dataloader", "val_dataloader", "test_dataloader")
    base = None
    for protocol, variant, _ in VARIANTS:
        cfg = Config.fromfile(str(EXP_DIR / f"fmnist-{protocol}-{variant}.py"))
        backbone = {k: v for k, v in cfg.model.backbone.items() if k not in own}
        rest = {k: v for k, v in cfg.to_dict().items() if k not in data}
        base = base or (backbone, rest)
        assert (backbone, rest) == base, f"{protocol}-{variant} differs in more than the position encoding"
    assert [r.name for r in plan_runs([0, 1], ["native28-peg", "down16-none"])] == [
        "native28-peg/seed0", "down16-none/seed0", "native28-peg/seed1", "down16-none/seed1"]  # fmt: skip
    with pytest.raises(ValueError, match=r"unknown variant.*native28-pegs"):
        plan_runs([0], ["native28-pegs"])


@pytest.mark.slow
def test_experiments_suite_end_to_end_and_resume(tmp_path):
    data = tmp_path / "fmnist"
    make_fashion_mnist(data, n_train=300, n_test=120)
    work = tmp_path / "exp"
    variants = ["native28-none", "native28-table", "native28-peg", "down16-peg"]
    args = ("tools/analysis_tools/experiments.py", "--quick", "--data-root", str(data), "--work-dir", str(work),
            "--seeds", "0", "--jobs", "2", "--variants", *variants)  # fmt: skip
    first = run_tool(*args, timeout=900)
    assert "4 runs (0 already finished)" in first.stdout
    report = (work / "report.md").read_text()
    for label in ("none", "learned table", "PEG after block 0", "(b) trained at 16 px"):
        assert label in report
    summary = json.loads((work / "summary.json").read_text())
    assert set(summary["protocols"]["native28"]) == {"none", "table", "peg"}
    result = load_result(str(work / "native28-peg/seed0/result.json"))
    assert set(result["accuracy"]) == {20, 28, 36, 44, 56} and len(result["curve"]) == 2
    assert result["curve"][-1] == pytest.approx(result["accuracy"][28], abs=1e-6)  # same weights, same images
    assert 0 <= result["probe"]["exact"] <= 100 and result["probe"]["grid"] == [7, 7]
    assert result["dilated"]["dilation"] == 2 and result["dilated"]["size"] == 56
    assert 0 <= result["dilated"]["accuracy"] <= 100 and "dilated" not in load_result(
        str(work / "native28-none/seed0/result.json")
    )
    assert set(summary["dilated"]) == {"native28-peg", "down16-peg"} and "PEGs dilated by the enlargement" in report
    attention = summary["attention"]
    assert attention["images"] == 120 and len(attention["distance"]["native28-peg"]) == 4  # one per block
    assert {"native28: peg vs table", "native28: peg vs none", "native28: table vs none"} <= set(attention["overlap"])
    for per_block in attention["overlap"].values():
        assert all(0 < o <= 1 for block in per_block for o in block)
    assert "Mean attention distance" in report and "PEG after block 0 − learned table" in report
    for png in ("accuracy_vs_size.png", "curves.png", "attention.png"):
        assert cv2.imread(str(work / png)) is not None, png
    # a run finished before the dilated test existed gets it on the rerun, and nothing else is redone
    path = work / "down16-peg/seed0/result.json"
    old = json.loads(path.read_text())
    path.write_text(json.dumps({k: v for k, v in old.items() if k != "dilated"}))
    # The rerun runs in this process (run_tool_in_process: the command line started above; no second import of
    # the toolkits). Every run is finished, so nothing is trained again: down16-peg's dilated test runs in a
    # worker process, and the report is rebuilt.
    again, _ = run_tool_in_process(*args)
    assert "4 runs (4 already finished)" in again
    assert json.loads(path.read_text())["dilated"] == old["dilated"]  # same weights, same images
    assert re.search(r"native28-peg/seed0: top-1 [\d.]+ at the training size \(0 s", again)
