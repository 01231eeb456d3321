"""Tiny versions of the shipped detection and segmentation configs, shared by the test modules.

Same structure, types and recipe as the configs; only widths, image sizes, schedules and data roots shrink.
"""

from __future__ import annotations

import copy
import os.path as osp
from pathlib import Path

from helpers import ROOT
from mmengine.config import Config, ConfigDict
from mmengine.registry import DefaultScope
from toy import TINY_CPVT, TINY_PCPVT, TINY_SVT

# --------------------------------------------------------------------------- detection
CLASSES = ("circle", "square", "triangle")
TINY_WIDTH = 32  # FPN / head channels of the tiny detectors


def tiny_config(name: str, data_root: str, work_dir: Path | None = None, max_epochs: int = 4) -> Config:
    """The named config with tiny widths, no pretrained weights, images within 150x120 from ``data_root``, a short
    warm-up and constant lr, per-iteration logging (window 1: the raw losses) and no validation while training.
    """
    cfg = Config.fromfile(str(ROOT / "configs/detection" / name))
    model = cfg.model
    backbone = model.backbone
    backbone.init_cfg = None
    backbone.drop_path_rate = 0.0
    if backbone.type == "cpvt_mm.CPVT":
        backbone.arch = TINY_CPVT
        model.neck.in_channels = TINY_CPVT["embed_dims"]
    else:
        backbone.arch = TINY_SVT if backbone.type == "cpvt_mm.SVT" else TINY_PCPVT
        model.neck.in_channels = TINY_PCPVT["embed_dims"]
    model.neck.out_channels = TINY_WIDTH
    if model.type == "RetinaNet":
        model.bbox_head.update(in_channels=TINY_WIDTH, feat_channels=TINY_WIDTH, stacked_convs=2, num_classes=3)
    else:
        model.rpn_head.update(in_channels=TINY_WIDTH, feat_channels=TINY_WIDTH)
        roi = model.roi_head
        roi.bbox_roi_extractor.out_channels = roi.mask_roi_extractor.out_channels = TINY_WIDTH
        roi.bbox_head.update(in_channels=TINY_WIDTH, fc_out_channels=64, num_classes=3)
        roi.mask_head.update(in_channels=TINY_WIDTH, conv_out_channels=TINY_WIDTH, num_convs=2, num_classes=3)
        model.train_cfg.rpn_proposal.update(nms_pre=200, max_per_img=100)
        model.train_cfg.rcnn.sampler.num = 64
        model.test_cfg.rpn.update(nms_pre=200, max_per_img=100)
    for step in cfg.train_dataloader.dataset.pipeline + cfg.test_dataloader.dataset.pipeline:
        if step.type == "Resize":
            step.scale = (150, 120)
        elif step.type == "RandomChoiceResize":
            step.scales = [(150, 104), (150, 120)]
    for loader in ("train_dataloader", "val_dataloader", "test_dataloader"):
        cfg[loader].update(batch_size=2, num_workers=0, persistent_workers=False)
        cfg[loader].dataset.update(data_root=data_root, metainfo=dict(classes=CLASSES))
    for evaluator in ("val_evaluator", "test_evaluator"):
        cfg[evaluator].ann_file = osp.join(data_root, "annotations/instances_val2017.json")
    cfg.optim_wrapper.optimizer.lr = 1e-3
    cfg.param_scheduler = [dict(type="LinearLR", start_factor=0.1, by_epoch=False, begin=0, end=4)]
    cfg.train_cfg = dict(type="EpochBasedTrainLoop", max_epochs=max_epochs, val_interval=1)
    cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None  # tools/test.py evaluates
    cfg.default_hooks.logger.interval = 1
    cfg.log_processor = dict(type="LogProcessor", window_size=1, by_epoch=True)
    cfg.randomness = dict(seed=0)
    if work_dir is not None:
        cfg.work_dir = str(work_dir)
    return cfg


def dump(cfg: Config, path: Path) -> Path:
    cfg.dump(str(path))
    return path


def toy_batch(cfg: Config, indices: tuple[int, ...] = (0, 1)) -> dict:
    """Samples of the config's train set, through its own pipeline, collated as the dataloader does."""
    from mmdet.registry import DATASETS
    from mmengine.dataset import pseudo_collate

    with DefaultScope.overwrite_default_scope("mmdet"):
        dataset = DATASETS.build(cfg.train_dataloader.dataset)
        return pseudo_collate([dataset[i] for i in indices])


# --------------------------------------------------------------------------- segmentation
SEG_DIR = ROOT / "configs/segmentation"
FPN = "{}-{}_fpn_fpnhead_8xb4-80k_ade20k-512x512.py"
UPER = "{}-{}_uperhead_8xb2-160k_ade20k-512x512.py"
TINY_CROP = (64, 64)


def load(name: str) -> Config:
    return Config.fromfile(str(SEG_DIR / name))


def backbone_dims(backbone: ConfigDict) -> list[int]:
    """The stage widths the backbone of ``backbone`` (a config) returns, from its class's arch zoo."""
    import cpvt_mm.models as models

    cls = getattr(models, backbone.type.split(".")[-1])
    arch = backbone.arch if isinstance(backbone.arch, dict) else cls.arch_zoo[backbone.arch]
    dims = arch["embed_dims"]
    return [dims] * len(backbone.out_indices) if isinstance(dims, int) else [dims[i] for i in backbone.out_indices]


def tiny(cfg: Config) -> Config:
    """``cfg`` with tiny widths everywhere (backbone, neck, heads) and 64px training batches; same structure,
    types and recipe."""
    cfg = copy.deepcopy(cfg)
    model = cfg.model
    model.data_preprocessor.size = TINY_CROP
    backbone = model.backbone
    backbone.init_cfg = None
    backbone.drop_path_rate = 0.0
    if backbone.type == "cpvt_mm.CPVT":
        backbone.update(arch=TINY_CPVT, patch_size=8, out_indices=(0, 1, 2, 3))
    else:
        backbone.arch = TINY_SVT if backbone.type == "cpvt_mm.SVT" else TINY_PCPVT
    dims = backbone_dims(backbone)
    head_in = dims
    if model.get("neck"):
        model.neck.in_channels = dims
        model.neck.out_channels = 16
        head_in = [16] * 4
    model.decode_head.update(in_channels=head_in, channels=16)
    if model.get("auxiliary_head"):
        model.auxiliary_head.update(in_channels=head_in[model.auxiliary_head.in_index], channels=8)
    return cfg
