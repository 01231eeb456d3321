"""The ``mmcv_ops`` fix: mmcv.ops on an mmcv without compiled ops, checked against mmcv's compiled kernels.

The test environment has the compiled extension (CI installs the prebuilt wheel), so every op is compared with
the real kernel through mmcv's own Python layer (:func:`torchvision_ops` swaps the kernels under it). The
install without ops is reproduced in a fresh interpreter that cannot import ``mmcv._ext``.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap

import pytest
import torch
from mmcv.ops import RoIAlign, batched_nms, nms, roi_align, sigmoid_focal_loss

from cpvt_mm.compat import mmcv_ops
from cpvt_mm.compat.mmcv_ops import MissingCompiledOpError, torchvision_ops

HAS_COMPILED = mmcv_ops.mode() == "compiled"
needs_compiled = pytest.mark.skipif(not HAS_COMPILED, reason="parity needs mmcv's compiled ops in this venv")
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])

# A fresh interpreter in which mmcv has no compiled extension, as with mmcv-lite or MMCV_WITH_OPS=0.
HIDE_EXT = textwrap.dedent(
    """
    import importlib.abc, sys
    class _NoCompiledOps(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name == "mmcv._ext":
                raise ModuleNotFoundError("No module named 'mmcv._ext'", name=name)
    sys.meta_path.insert(0, _NoCompiledOps())
    """
)


def run_without_compiled_ops(code: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", HIDE_EXT + textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=300,
        env=dict(os.environ, OMP_NUM_THREADS="1", **env),
    )


def random_boxes(n: int, scale: float = 100.0, device: str = "cpu") -> torch.Tensor:
    xy = torch.rand(n, 2, device=device) * scale
    wh = torch.rand(n, 2, device=device) * scale * 0.4
    return torch.cat([xy, xy + wh], dim=1)


# --------------------------------------------------------------------------- the install without ops
def test_mmdet_and_mmseg_import_and_run_without_compiled_ops():
    res = run_without_compiled_ops(
        """
        import cpvt_mm, mmdet.models, mmseg.models, mmpretrain.models, torch
        from cpvt_mm.compat import mmcv_ops, status
        from mmcv.ops import RoIAlign, batched_nms
        assert status()["mmcv_ops"] == "applied" and mmcv_ops.mode() == "torchvision", mmcv_ops.describe()
        boxes = torch.tensor([[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60.]])
        dets, keep = batched_nms(boxes, torch.tensor([0.9, 0.8, 0.7]), torch.tensor([0, 0, 1]), dict(iou_threshold=0.5))
        assert keep.tolist() == [0, 2], keep
        feats = torch.randn(1, 4, 16, 16, requires_grad=True)
        RoIAlign((7, 7), 1.0)(feats, torch.tensor([[0, 2, 2, 12, 12.]])).sum().backward()
        assert feats.grad.abs().sum() > 0
        from mmcv.ops import DeformConv2d
        DeformConv2d(4, 4, 3)(feats.detach(), torch.zeros(1, 18, 14, 14))
        """
    )
    assert res.returncode != 0, "the unsupported op should have raised"
    last = res.stderr.strip().splitlines()[-1]
    assert "MissingCompiledOpError: mmcv op 'deform_conv_forward' needs mmcv's compiled ops" in last, res.stderr
    assert "MMCV_OPS=compile" in last


def test_compat_report_names_the_active_kernels():
    res = run_without_compiled_ops("import runpy; runpy.run_module('cpvt_mm.compat', run_name='__main__')")
    assert res.returncode == 0, res.stderr
    assert re.search(r"^mmcv_ops\s+applied", res.stdout, re.M), res.stdout
    assert "cpvt_mm's torchvision/PyTorch kernels for nms" in res.stdout and "No module named 'mmcv._ext'" in res.stdout


def test_disabled_fix_brings_the_import_error_back():
    res = run_without_compiled_ops("import cpvt_mm, mmdet.models", CPVT_MM_COMPAT_DISABLE="mmcv_ops")
    assert res.returncode != 0 and "No module named 'mmcv._ext'" in res.stderr


def test_forcing_compiled_ops_without_them_is_one_clear_error():
    res = run_without_compiled_ops("import cpvt_mm", CPVT_MM_MMCV_OPS="compiled")
    assert res.returncode != 0
    assert "CPVT_MM_MMCV_OPS=compiled but mmcv's compiled ops do not load" in res.stderr.strip().splitlines()[-1]


@needs_compiled
def test_inert_when_compiled_ops_exist():
    assert "compiled extension" in mmcv_ops.describe()
    assert not isinstance(sys.modules["mmcv.ops.nms"].ext_module, mmcv_ops._TorchvisionExt)


# --------------------------------------------------------------------------- parity with the compiled kernels
@needs_compiled
@pytest.mark.parametrize("n", [0, 1, 7, 300, 4000])
@pytest.mark.parametrize("offset", [0, 1])
def test_nms_keeps_the_same_indices(n, offset):
    boxes = random_boxes(n)
    scores = (torch.rand(n) * 10).round() / 10  # many exact ties
    scores[: n // 4] = 0.5
    ref_dets, ref = nms(boxes, scores, 0.5, offset=offset)
    with torchvision_ops():
        dets, keep = nms(boxes, scores, 0.5, offset=offset)
    assert torch.equal(keep, ref) and torch.equal(dets, ref_dets)


@needs_compiled
@pytest.mark.parametrize(
    "cfg",
    [
        dict(iou_threshold=0.6),
        dict(iou_threshold=0.6, split_thr=50),  # the per-class loop mmcv takes for many boxes
        dict(iou_threshold=0.6, class_agnostic=True),
        dict(type="nms", iou_threshold=0.3),
    ],
)
def test_batched_nms_keeps_the_same_indices(cfg):
    boxes = random_boxes(1000, scale=300)
    scores = torch.rand(1000)
    scores[:999:3] = scores[1::3]  # ties across classes
    labels = torch.randint(0, 8, (1000,))
    ref_dets, ref = batched_nms(boxes, scores, labels, dict(cfg))
    with torchvision_ops():
        dets, keep = batched_nms(boxes, scores, labels, dict(cfg))
    assert torch.equal(keep, ref) and torch.equal(dets, ref_dets)


@needs_compiled
@pytest.mark.parametrize("pool_mode", ["avg", "max", "avg-without-torchvision-ops"])
@pytest.mark.parametrize("aligned", [True, False])
@pytest.mark.parametrize("sampling_ratio", [0, 2])
def test_roi_align_forward_and_backward_match(pool_mode, aligned, sampling_ratio, monkeypatch):
    if pool_mode == "avg-without-torchvision-ops":  # torchvision without its compiled ops (a CPU-only torch)
        import torchvision.extension

        monkeypatch.setattr(torchvision.extension, "_has_ops", lambda: False)
        pool_mode = "avg"
    feats = torch.randn(2, 5, 23, 19, dtype=torch.float64, requires_grad=True)
    boxes = random_boxes(40, scale=90).double() - 8  # some reach past the map's edges
    rois = torch.cat([torch.randint(0, 2, (40, 1)).double(), boxes], dim=1)
    rois[0, 1:] = torch.tensor([10.0, 10.0, 10.0, 10.0])  # an empty box
    args = ((7, 6), 0.25, sampling_ratio, pool_mode, aligned)
    ref = roi_align(feats, rois, *args)
    grad = torch.randn_like(ref)
    (ref_grad,) = torch.autograd.grad(ref, feats, grad)
    with torchvision_ops():
        out = roi_align(feats, rois, *args)
        (out_grad,) = torch.autograd.grad(out, feats, grad)
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-5)
    torch.testing.assert_close(out_grad, ref_grad, rtol=0, atol=1e-5)


@needs_compiled
def test_roi_align_module_in_float32_with_fpn_sized_inputs():
    layer = RoIAlign((7, 7), spatial_scale=1 / 8, sampling_ratio=0, aligned=True)
    feats = torch.randn(2, 16, 40, 52, requires_grad=True)
    rois = torch.cat([torch.randint(0, 2, (200, 1)).float(), random_boxes(200, scale=400)], dim=1)
    ref = layer(feats, rois)
    (ref_grad,) = torch.autograd.grad(ref.square().sum(), feats)
    with torchvision_ops():
        out = layer(feats, rois)
        (out_grad,) = torch.autograd.grad(out.square().sum(), feats)
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-5)
    torch.testing.assert_close(out_grad, ref_grad, rtol=1e-5, atol=1e-5)


# --------------------------------------------------------------------------- kernels of their own (any install)
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("weighted", [False, True])
def test_sigmoid_focal_loss_matches_mmdet_plain_pytorch(device, weighted):
    """mmcv has no CPU focal-loss kernel; the reference is mmdet's own PyTorch version of the same loss."""
    from mmdet.models.losses.focal_loss import py_sigmoid_focal_loss

    logits = torch.randn(64, 6, device=device, dtype=torch.float64, requires_grad=True)
    labels = torch.randint(0, 7, (64,), device=device)  # 6 = background
    one_hot = torch.nn.functional.one_hot(labels, 7)[:, :6].to(logits.dtype)
    weight = torch.rand(64, device=device, dtype=logits.dtype) if weighted else None
    ref = py_sigmoid_focal_loss(logits, one_hot, weight=weight, gamma=2.0, alpha=0.25, reduction="sum")
    (ref_grad,) = torch.autograd.grad(ref, logits)
    with torchvision_ops():
        per_elem = sigmoid_focal_loss(logits, labels, 2.0, 0.25, None, "none")
        out = (per_elem * (weight.view(-1, 1) if weighted else 1)).sum()
        (out_grad,) = torch.autograd.grad(out, logits)
    torch.testing.assert_close(out, ref, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(out_grad, ref_grad, rtol=1e-9, atol=1e-10)


@pytest.mark.parametrize("device", DEVICES)
def test_supplied_kernels_run_on_every_device_and_match_cpu(device):
    """The same stand-in kernels on each device give the CPU's answer (on CUDA: torchvision's CUDA kernels)."""
    boxes, scores = random_boxes(500), torch.rand(500)
    labels = torch.randint(0, 4, (500,))
    feats = torch.randn(1, 3, 20, 20, requires_grad=True)
    rois = torch.cat([torch.zeros(30, 1), random_boxes(30, scale=18)], dim=1)
    with torchvision_ops():
        keep = batched_nms(boxes, scores, labels, dict(iou_threshold=0.5))[1]
        out = roi_align(feats, rois, (4, 4), 1.0, 2, "max", True)
        dev_feats = feats.detach().to(device).requires_grad_()
        dev_keep = batched_nms(boxes.to(device), scores.to(device), labels.to(device), dict(iou_threshold=0.5))[1]
        dev_out = roi_align(dev_feats, rois.to(device), (4, 4), 1.0, 2, "max", True)
        (grad,) = torch.autograd.grad(out.sum(), feats)
        (dev_grad,) = torch.autograd.grad(dev_out.sum(), dev_feats)
    assert torch.equal(dev_keep.cpu(), keep)
    torch.testing.assert_close(dev_out.cpu(), out)
    torch.testing.assert_close(dev_grad.cpu(), grad)


def test_an_op_not_supplied_raises_one_line_naming_it():
    with torchvision_ops() as ext, pytest.raises(MissingCompiledOpError) as info:
        ext.softnms(torch.zeros(1, 4), torch.zeros(1), torch.zeros(1, 5))
    msg = str(info.value)
    assert "\n" not in msg and "'softnms'" in msg and "MMCV_OPS=compile make setup" in msg


def test_roi_align_refuses_negative_boxes_when_aligned():
    with torchvision_ops(), pytest.raises(ValueError, match="non-negative width and height"):
        roi_align(torch.randn(1, 1, 8, 8), torch.tensor([[0, 5, 5, 2, 2.0]]), (2, 2), 1.0, 0, "max", True)
