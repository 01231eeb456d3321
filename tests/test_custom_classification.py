"""Your own images, classified (issue 24): a folder dataset whose splits share one class list, the example
configs, the checks that turn the recipe's traps into one-line errors, ``cpvt_mm::`` bases of every task, and
the walkthrough of docs/custom_data.md run as written."""

from __future__ import annotations

import logging

import pytest
import torch
from helpers import build_model
from mmengine.config import Config


# --------------------------------------------------------------------------- cpvt_mm:: bases, checkpoint log
@pytest.mark.parametrize(
    "base, model_type",
    [
        ("classification/cpvt-tiny_8xb256_in1k.py", "ImageClassifier"),
        ("classification/demo/cpvt-mini-peg_1xb128_fashion-mnist.py", "ImageClassifier"),
        ("detection/retinanet_pcpvt-s_fpn_1x_coco.py", "RetinaNet"),
        ("segmentation/pcpvt-s_fpn_fpnhead_8xb4-80k_ade20k-512x512.py", "EncoderDecoder"),
    ],
)
def test_a_one_line_config_derived_through_cpvt_mm_bases_builds(tmp_path, base, model_type):
    """Every ``type`` of a ``cpvt_mm::`` base got ``_scope_='cpvt_mm'``: ``ImageClassifier is not in the
    cpvt_mm::model registry``. The base is now read as the toolkit config it is."""
    derived = tmp_path / "derived.py"
    derived.write_text(f'_base_ = ["cpvt_mm::{base}"]\n')
    cfg = Config.fromfile(str(derived))
    assert cfg.model.get("_scope_") in (None, cfg.default_scope)
    assert all(step.get("_scope_") in (None, cfg.default_scope) for step in cfg.train_dataloader.dataset.pipeline
               if isinstance(step, dict))  # fmt: skip
    cfg.model.backbone.init_cfg = None
    cfg.model.pop("pretrained", None)
    assert type(build_model(cfg)).__name__ == model_type


def test_the_checkpoint_log_names_the_local_backend(tmp_path, caplog):
    """mmengine logs ``Loads checkpoint by {loader.__name__[10:]} backend``: cpvt_mm's ``_load_local`` was 'l'."""
    from mmengine.runner.checkpoint import CheckpointLoader

    from cpvt_mm.checkpoint import save_checkpoint

    save_checkpoint({"state_dict": {"w": torch.zeros(2)}, "meta": {}}, str(tmp_path / "w.pth"))
    logger = logging.getLogger("test-checkpoint-backend")
    with caplog.at_level(logging.INFO, logger=logger.name):
        CheckpointLoader.load_checkpoint(str(tmp_path / "w.pth"), logger=logger)
    assert f"Loads checkpoint by local backend from path: {tmp_path / 'w.pth'}" in caplog.text
    for prefix, loader in CheckpointLoader._schemes.items():
        assert loader.__name__.startswith("load_from_") and len(loader.__name__) > 10, (prefix, loader)
