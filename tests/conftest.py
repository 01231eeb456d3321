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
