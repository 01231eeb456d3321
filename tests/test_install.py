"""The installed stack: pinned versions, one OpenCV, compiled mmcv ops, every toolkit's models import."""

import importlib.metadata as md

import torch


def test_cpvt_mm_imports_and_registers():
    import cpvt_mm

    assert cpvt_mm.__version__
    for name in ("CPVT", "PCPVT", "SVT"):
        assert cpvt_mm.MODELS.get(name) is not None


def test_pinned_stack_versions():
    assert md.version("mmengine") == "0.10.7"
    try:  # mmcv with compiled ops (a prebuilt wheel, MMCV_OPS=compile), else mmcv-lite (make setup's default)
        mmcv = md.version("mmcv")
    except md.PackageNotFoundError:
        mmcv = md.version("mmcv-lite")
    assert mmcv == "2.1.0"
    assert md.version("mmdet") == "3.3.0"
    assert md.version("mmsegmentation") == "1.2.2"
    assert md.version("mmpretrain") == "1.2.0"


def test_single_opencv_4():
    import cv2

    assert cv2.__version__.startswith("4.")
    dists = {d.metadata["Name"].lower() for d in md.distributions()}
    assert "opencv-python" not in dists, "opencv-python (5.x) must not sit next to opencv-python-headless"


def test_mmcv_compiled_nms_runs_on_cpu():
    from mmcv.ops import nms

    boxes = torch.tensor([[0, 0, 10, 10], [1, 1, 10, 10], [20, 20, 30, 30]], dtype=torch.float32)
    scores = torch.tensor([0.9, 0.8, 0.7])
    dets, keep = nms(boxes, scores, 0.5)
    assert keep.tolist() == [0, 2]
    assert dets.shape == (2, 5)


def test_toolkit_models_import():
    import mmdet.models
    import mmpretrain.models
    import mmseg.models

    assert mmdet.models.RetinaNet and mmseg.models.EncoderDecoder and mmpretrain.models.ImageClassifier
