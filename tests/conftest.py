import os
import sys

import pytest
import torch

sys.path.insert(0, os.path.dirname(__file__))  # tests/toy.py, tests/helpers.py

import cpvt_mm  # noqa: F401  (compat layer first, before timm / mmpretrain import torchvision)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    yield


@pytest.fixture(scope="session")
def toy_coco(tmp_path_factory) -> str:
    """16 train / 6 val images of the toy shapes set, in the COCO 2017 layout (shared by every test module)."""
    from cpvt_mm.datasets import make_toy_coco

    return make_toy_coco(str(tmp_path_factory.mktemp("coco")), num_train=16, num_val=6, seed=0)


@pytest.fixture(scope="session")
def mask_rcnn_run(toy_coco, tmp_path_factory):
    """A tiny Mask R-CNN (PCPVT) trained once per session for 8 epochs (64 iterations) on the toy set through
    tools/train.py; returns (config path, checkpoint path)."""
    from helpers import ROOT, run_tool
    from toy_configs import dump, tiny_config

    work = tmp_path_factory.mktemp("mask_rcnn") / "work"
    cfg = tiny_config("mask-rcnn_pcpvt-s_fpn_1x_coco.py", toy_coco, work, max_epochs=8)
    path = dump(cfg, work.parent / "mask-rcnn_tiny.py")
    run_tool(str(ROOT / "tools/train.py"), str(path))
    return path, work / "epoch_8.pth"
