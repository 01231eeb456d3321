import os
import sys

import pytest
import torch

sys.path.insert(0, os.path.dirname(__file__))  # tests/toy.py

import cpvt_mm  # noqa: F401  (compat layer first, before timm / mmpretrain import torchvision)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    yield


def run_python(code: str, timeout: int = 300):
    """Run ``code`` in a fresh interpreter of this environment (no cpvt_mm imported unless the code does)."""
    import subprocess

    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout)
