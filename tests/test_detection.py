"""Detection with MMDetection: configs, the toy COCO set, train / test / resume through tools/, inference."""

from __future__ import annotations

import functools
import glob
import itertools
import json
import os.path as osp
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from helpers import ROOT, build_model, logged, run_tool
from mmengine.config import Config
from mmengine.registry import DefaultScope
from toy import TINY_PCPVT
from toy_configs import CLASSES, dump, tiny_config, toy_batch

from cpvt_mm.apis import InferenceInputError, infer_and_draw
from cpvt_mm.datasets import make_toy_coco

DET_CONFIGS = sorted(glob.glob(str(ROOT / "configs/detection/*.py")))
KEY_CONFIGS = [
    "retinanet_pcpvt-s_fpn_1x_coco.py",
    "mask-rcnn_pcpvt-s_fpn_1x_coco.py",
    "mask-rcnn_pcpvt-s_fpn_ms-3x_coco.py",
    "mask-rcnn_cpvt-s_sfp_1x_coco.py",
]


@pytest.fixture(scope="module", autouse=True)
def _cached_metafiles():
    """mmengine parses all ~400 of mmdet's metafile YAMLs again for every ``mmdet::`` base it resolves (about
    1.5 s per config); they do not change during the run, so parse each once."""
    import mmengine.config.utils as cfg_utils

    parse = functools.cache(cfg_utils.load)  # only ever called with a path here; results are only read
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(cfg_utils, "load", parse)
        yield


# --------------------------------------------------------------------------- configs
def test_key_configs_exist():
    names = {osp.basename(p) for p in DET_CONFIGS}
    assert set(KEY_CONFIGS) <= names
    for det in ("retinanet", "mask-rcnn"):
        for fam in ("pcpvt", "svt"):
            for size in "sbl":
                for schedule in ("1x", "ms-3x"):
                    assert f"{det}_{fam}-{size}_fpn_{schedule}_coco.py" in names


@pytest.fixture
def skip_init(monkeypatch):
    """Parameter values do not matter for building; initialising 25 full-size detectors would take minutes."""
    for name in ("trunc_normal_", "normal_", "uniform_", "kaiming_uniform_", "xavier_uniform_"):
        monkeypatch.setattr(torch.nn.init, name, lambda tensor, *args, **kwargs: tensor)


@pytest.mark.parametrize("path", DET_CONFIGS, ids=osp.basename)
def test_every_config_loads_and_builds(path, skip_init):
    name = osp.basename(path)
    cfg = Config.fromfile(path)
    assert cfg.default_scope == "mmdet" and "cpvt_mm" in cfg.custom_imports.imports
    assert not cfg.get("find_unused_parameters")
    # the authors' recipes
    opt, schedule = cfg.optim_wrapper.optimizer, cfg.param_scheduler
    assert opt.type == "AdamW" and schedule[0].type == "LinearLR" and schedule[0].end == 500
    if "ms-3x" in name:
        assert (opt.lr, opt.weight_decay, cfg.train_cfg.max_epochs) == (1e-4, 0.05, 36)
        assert schedule[1].milestones == [27, 33]
        (resize,) = [t for t in cfg.train_dataloader.dataset.pipeline if t.type == "RandomChoiceResize"]
        assert sorted(min(s) for s in resize.scales) == list(range(480, 801, 32))
        assert {max(s) for s in resize.scales} == {1333}
    else:
        assert (opt.lr, opt.weight_decay) == ((1e-4 if name.startswith("retinanet") else 2e-4), 1e-4)
        assert cfg.train_cfg.max_epochs == 12 and schedule[1].milestones == [8, 11]
        assert [t.scale for t in cfg.train_dataloader.dataset.pipeline if t.type == "Resize"] == [(1333, 800)]
    assert [t.scale for t in cfg.test_dataloader.dataset.pipeline if t.type == "Resize"] == [(1333, 800)]
    keys = cfg.optim_wrapper.paramwise_cfg.custom_keys
    assert keys.peg.decay_mult == 0.0 and keys.norm.decay_mult == 0.0
    init = cfg.model.backbone.init_cfg
    assert init.type == "Pretrained" and init.prefix == "backbone." and init.checkpoint.startswith("work_dirs/")
    if name.startswith("retinanet"):
        assert cfg.model.neck.start_level == 1 and cfg.model.neck.add_extra_convs == "on_input"

    model = build_model(cfg)  # builds without the checkpoint: weights load only in init_weights()
    backbone = model.backbone
    assert type(backbone).__module__.startswith("cpvt_mm.models")
    dims = backbone.embed_dims if isinstance(backbone.embed_dims, list) else [backbone.embed_dims]
    neck_in = model.neck.in_channels if isinstance(model.neck.in_channels, list) else [model.neck.in_channels]
    assert neck_in == dims


# --------------------------------------------------------------------------- tiny detectors (fast)
TINY_CASES = [
    "retinanet_pcpvt-s_fpn_1x_coco.py",
    "retinanet_svt-s_fpn_1x_coco.py",
    "mask-rcnn_pcpvt-s_fpn_1x_coco.py",
    "mask-rcnn_svt-s_fpn_ms-3x_coco.py",
    "mask-rcnn_cpvt-s_sfp_1x_coco.py",
]


@pytest.mark.parametrize("name", TINY_CASES)
def test_every_parameter_gets_a_gradient(name, toy_coco):
    """The dense configs need no ``find_unused_parameters``: one loss step reaches every parameter. The batch
    is not padded to a multiple of 32, so the backbone sees sides like 150x111 and pads internally."""
    cfg = tiny_config(name, toy_coco)
    cfg.model.data_preprocessor.pad_size_divisor = 1
    model = build_model(cfg)
    model.train()
    data = model.data_preprocessor(toy_batch(cfg), True)
    assert any(s % 32 for s in data["inputs"].shape[-2:]), data["inputs"].shape
    losses = model(**data, mode="loss")
    loss, _ = model.parse_losses(losses)
    loss.backward()
    assert torch.isfinite(loss)
    unused = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert unused == []


@pytest.mark.parametrize("name", TINY_CASES)
def test_peg_and_norm_parameters_have_no_weight_decay(name, toy_coco):
    """The optimiser built from the config: the 'peg' and 'norm' keys match cpvt_mm's parameter names (mmseg's
    'pos_block' key never matched its 'position_encodings' modules), everything else decays."""
    from mmengine.optim import build_optim_wrapper

    cfg = tiny_config(name, toy_coco)
    model = build_model(cfg)
    with DefaultScope.overwrite_default_scope("mmdet"):
        optim = build_optim_wrapper(model, cfg.optim_wrapper)
    names = {id(p): n for n, p in model.named_parameters()}
    # (mmengine's OptimWrapper adds a parameter-less group that only records the base lr for logging)
    groups = optim.param_groups
    decay = {names[id(p)]: group["weight_decay"] for group in groups for p in group["params"] if id(p) in names}
    assert set(decay) == set(names.values())
    pegs = [n for n in decay if ".peg." in n or ".pegs." in n]
    norms = [n for n in decay if "norm" in n]
    assert pegs and norms
    no_decay = set(pegs) | set(norms) | {n for n in decay if n.endswith("cls_token")}
    assert all(decay[n] == 0.0 for n in no_decay), {n: decay[n] for n in no_decay if decay[n]}
    wd = cfg.optim_wrapper.optimizer.weight_decay
    assert all(decay[n] == wd for n in set(decay) - no_decay)


def test_simple_feature_pyramid_strides_any_size():
    from cpvt_mm.models.necks import SimpleFeaturePyramid

    neck = SimpleFeaturePyramid(in_channels=32, out_channels=16, num_outs=5)
    for h, w in ((7, 9), (8, 8), (5, 13)):  # a stride-16 map of a (16h x 16w) image
        outs = neck((torch.randn(2, 32, h, w),))
        expected = [(4 * h, 4 * w), (2 * h, 2 * w), (h, w), (-(-h // 2), -(-w // 2)), (-(-h // 4), -(-w // 4))]
        assert [tuple(o.shape[-2:]) for o in outs] == expected
        assert all(o.shape[:2] == (2, 16) for o in outs)
    with pytest.raises(ValueError, match="scale factors"):
        SimpleFeaturePyramid(32, 16, scale_factors=(3.0, 1.0))
    with pytest.raises(ValueError, match="num_outs"):
        SimpleFeaturePyramid(32, 16, num_outs=3)
    with pytest.raises(ValueError, match="halved"):
        SimpleFeaturePyramid(30, 16)


def test_plain_cpvt_pyramid_feeds_mask_rcnn_at_strides_4_to_64(toy_coco):
    cfg = tiny_config("mask-rcnn_cpvt-s_sfp_1x_coco.py", toy_coco)
    model = build_model(cfg)
    feats = model.extract_feat(torch.randn(1, 3, 96, 160))
    assert [tuple(f.shape[-2:]) for f in feats] == [(24, 40), (12, 20), (6, 10), (3, 5), (2, 3)]
    assert model.rpn_head.prior_generator.strides == [(4, 4), (8, 8), (16, 16), (32, 32), (64, 64)]


# --------------------------------------------------------------------------- the toy COCO set
def test_toy_coco_is_in_the_coco_layout_and_read_by_mmdet(toy_coco, tmp_path):
    from mmdet.datasets import CocoDataset
    from pycocotools import mask as mask_utils

    root = Path(toy_coco)
    for split, n in (("train", 16), ("val", 6)):
        ann = json.loads((root / f"annotations/instances_{split}2017.json").read_text())
        assert len(ann["images"]) == n == len(list((root / f"{split}2017").glob("*.jpg")))
        assert [c["name"] for c in ann["categories"]] == list(CLASSES)
        for img in ann["images"]:
            assert img["width"] % 32 and img["height"] % 32  # sizes that need padding
            assert cv2.imread(str(root / f"{split}2017" / img["file_name"])).shape[:2] == (img["height"], img["width"])
        for a in ann["annotations"]:
            assert a["iscrowd"] == 0 and a["area"] > 100 and len(a["segmentation"][0]) >= 6
    pipeline = [
        dict(type="LoadImageFromFile"),
        dict(type="LoadAnnotations", with_bbox=True, with_mask=True),
        dict(type="PackDetInputs"),
    ]
    with DefaultScope.overwrite_default_scope("mmdet"):
        ds = CocoDataset(
            data_root=toy_coco,
            ann_file="annotations/instances_train2017.json",
            data_prefix=dict(img="train2017/"),
            metainfo=dict(classes=CLASSES),
            pipeline=pipeline,
        )
        sample = ds[0]["data_samples"]
    assert len(ds) == 16
    gt = sample.gt_instances
    assert len(gt) >= 1 and gt.labels.max() < 3
    masks = gt.masks.to_ndarray()
    for box, mask in zip(gt.bboxes.tensor, masks):  # boxes are the tight boxes of the masks
        ys, xs = np.nonzero(mask)
        torch.testing.assert_close(box, torch.tensor([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]).float())

    # --rle stores the same masks (same seed) as compressed RLE, which mmdet reads too
    make_toy_coco(str(tmp_path), num_train=16, num_val=2, rle=True)
    poly = json.loads((root / "annotations/instances_train2017.json").read_text())["annotations"]
    rle = json.loads((tmp_path / "annotations/instances_train2017.json").read_text())["annotations"]
    assert len(poly) == len(rle)
    for p, r in zip(poly, rle):
        h, w = r["segmentation"]["size"]
        from_poly = mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects(p["segmentation"], h, w)))
        from_rle = mask_utils.decode({"size": [h, w], "counts": r["segmentation"]["counts"].encode()})
        np.testing.assert_array_equal(from_poly, from_rle)


@pytest.mark.parametrize("name", [n for n in TINY_CASES if n.startswith("mask-rcnn")])
def test_roi_features_are_pooled_from_nchw_memory(name, toy_coco):
    """mmcv's RoIAlign (CPU and CUDA kernels) reads its input as NCHW-contiguous memory without checking the
    strides. A transformer's token -> map reshape gives channels-last strides, which the FPN convs keep for
    batches of two or more; RoIAlign then pools scrambled features, silently, and the RoI heads never learn
    (a tiny Mask R-CNN on the toy set stays at mask loss ln 2). The pooled features must not depend on the
    memory layout of the maps the detector hands to its RoI heads."""
    model = build_model(tiny_config(name, toy_coco))
    feats = model.extract_feat(torch.randn(2, 3, 96, 128))
    rois = torch.tensor([[0, 8.0, 8.0, 60.0, 50.0], [1, 20.0, 10.0, 90.0, 80.0]])
    extractor = model.roi_head.bbox_roi_extractor
    num_levels = extractor.num_inputs
    pooled = extractor(feats[:num_levels], rois)
    reference = extractor(tuple(f.contiguous() for f in feats[:num_levels]), rois)
    torch.testing.assert_close(pooled, reference)


# --------------------------------------------------------------------------- train / test / resume (slow)
def assert_loss_decreases(work_dir: Path) -> None:
    losses = [v for _, v in logged(work_dir)]
    first, last = np.mean(losses[:4]), np.mean(losses[-8:])
    assert last < 0.75 * first, losses


def coco_metrics(output: str) -> dict[str, float]:
    """``coco/bbox_mAP: 0.1230`` entries of a test log."""
    (line,) = [ln for ln in output.splitlines() if "coco/bbox_mAP:" in ln and "Epoch(test)" in ln]
    words = line.split()
    return {w[:-1]: float(v) for w, v in itertools.pairwise(words) if w.startswith("coco/")}


def evaluate_with_both_mmcv_kernels(cfg_path: Path, ckpt: Path, tmp_path: Path) -> dict[str, float]:
    """tools/test.py on mmcv's compiled kernels and on cpvt_mm's torchvision-backed ones (the install without
    compiled ops): the same detections and the same COCO metrics. Returns the metrics. In a venv without compiled
    ops (mmcv-lite, make setup's default) only the torchvision kernels run."""
    import pickle

    from cpvt_mm.compat import mmcv_ops

    runs = {}
    for kernels in ("compiled", "torchvision") if mmcv_ops.mode() == "compiled" else ("torchvision",):
        out = tmp_path / f"{kernels}.pkl"
        res = run_tool(
            str(ROOT / "tools/test.py"), str(cfg_path), str(ckpt), "--work-dir", str(tmp_path / kernels),
            "--out", str(out), env={"CPVT_MM_MMCV_OPS": kernels},
        )  # fmt: skip
        with open(out, "rb") as f:
            runs[kernels] = (coco_metrics(res.stdout + res.stderr), pickle.load(f))
    (metrics, preds), (tv_metrics, tv_preds) = runs.get("compiled", runs["torchvision"]), runs["torchvision"]
    assert tv_metrics == metrics
    assert len(preds) == len(tv_preds) and any(len(p["pred_instances"]["labels"]) for p in preds)
    for p, q in zip(preds, tv_preds, strict=True):
        a, b = p["pred_instances"], q["pred_instances"]
        assert torch.equal(a["labels"], b["labels"])
        torch.testing.assert_close(b["bboxes"], a["bboxes"], rtol=0, atol=1e-3)
        torch.testing.assert_close(b["scores"], a["scores"], rtol=0, atol=1e-5)
        if "masks" in a:
            assert torch.equal(torch.as_tensor(a["masks"]), torch.as_tensor(b["masks"]))
    return metrics


@pytest.mark.slow
def test_mask_rcnn_trains_and_tests_with_coco_bbox_and_segm_metrics(mask_rcnn_run, tmp_path):
    cfg_path, ckpt = mask_rcnn_run
    assert_loss_decreases(ckpt.parent)
    metrics = evaluate_with_both_mmcv_kernels(cfg_path, ckpt, tmp_path)
    assert {"coco/bbox_mAP", "coco/bbox_mAP_50", "coco/segm_mAP", "coco/segm_mAP_50"} <= set(metrics)
    # it really detects: about 0.6 / 0.5 here after 64 iterations; 0.0 when the RoI heads pool scrambled maps
    assert metrics["coco/bbox_mAP_50"] > 0.2 and metrics["coco/segm_mAP_50"] > 0.2, metrics


@pytest.mark.slow
def test_retinanet_trains_and_tests_with_coco_bbox_metrics(toy_coco, tmp_path):
    work = tmp_path / "work"
    path = dump(tiny_config("retinanet_pcpvt-s_fpn_1x_coco.py", toy_coco, work, max_epochs=4), tmp_path / "cfg.py")
    run_tool(str(ROOT / "tools/train.py"), str(path))
    assert_loss_decreases(work)
    metrics = evaluate_with_both_mmcv_kernels(path, work / "epoch_4.pth", tmp_path)
    assert {"coco/bbox_mAP", "coco/bbox_mAP_50"} <= set(metrics) and "coco/segm_mAP" not in metrics
    assert all(-1.0 <= v <= 1.0 for v in metrics.values())


def _checkpoint(path: Path) -> dict:
    from cpvt_mm.compat import load_checkpoint_file

    return load_checkpoint_file(str(path), map_location="cpu")


@pytest.mark.slow
def test_resume_continues_the_iteration_count_with_weights_and_optimizer_restored(toy_coco, tmp_path):
    """RetinaNet without random flips is deterministic (focal loss, no sampling), so 1 epoch + resume + 1 epoch
    must give the weights and AdamW moments of 2 straight epochs: a resume that lost the optimizer state,
    the lr schedule or the data order would not."""

    def config(work: Path) -> Path:
        cfg = tiny_config("retinanet_pcpvt-s_fpn_1x_coco.py", toy_coco, work, max_epochs=2)
        pipeline = cfg.train_dataloader.dataset.pipeline
        cfg.train_dataloader.dataset.pipeline = [t for t in pipeline if t.type != "RandomFlip"]
        return dump(cfg, work.parent / f"{work.name}.py")

    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    run_tool(str(ROOT / "tools/train.py"), str(config(straight)))
    cfg_r = config(resumed)
    run_tool(str(ROOT / "tools/train.py"), str(cfg_r), "--cfg-options", "train_cfg.max_epochs=1")
    assert (resumed / "epoch_1.pth").exists() and not (resumed / "epoch_2.pth").exists()
    res = run_tool(str(ROOT / "tools/train.py"), str(cfg_r), "--resume")
    assert "resumed epoch: 1, iter: 8" in (res.stdout + res.stderr).lower()
    assert [step for step, _ in logged(resumed)] == list(range(9, 17))  # 16 images / batch 2: 8 per epoch

    a, b = _checkpoint(straight / "epoch_2.pth"), _checkpoint(resumed / "epoch_2.pth")
    assert (b["meta"]["epoch"], b["meta"]["iter"]) == (a["meta"]["epoch"], a["meta"]["iter"]) == (2, 16)
    for k, v in a["state_dict"].items():
        torch.testing.assert_close(b["state_dict"][k], v, rtol=0, atol=1e-6, msg=k)
    moments_a, moments_b = a["optimizer"]["state"], b["optimizer"]["state"]
    assert moments_a.keys() == moments_b.keys()
    for i in moments_a:
        for name in ("step", "exp_avg", "exp_avg_sq"):
            torch.testing.assert_close(moments_b[i][name], moments_a[i][name], rtol=0, atol=1e-6)


# --------------------------------------------------------------------------- inference at any size
@pytest.mark.slow
def test_predictions_at_two_test_scales_come_back_in_original_coordinates(mask_rcnn_run, toy_coco):
    """Changing the test pipeline's Resize scale changes what the backbone sees (here not even padded to a
    multiple of 32: the backbone pads internally), never the coordinate frame of the results."""
    from mmdet.apis import inference_detector, init_detector
    from mmdet.structures.bbox import bbox_overlaps

    cfg_path, ckpt = mask_rcnn_run
    ann = json.loads((Path(toy_coco) / "annotations/instances_val2017.json").read_text())
    seen = set()
    for scale in ((150, 120), (200, 160)):
        cfg = Config.fromfile(str(cfg_path))
        cfg.model.data_preprocessor.pad_size_divisor = 1
        for step in cfg.test_dataloader.dataset.pipeline:
            if step.type == "Resize":
                step.scale = scale
        with DefaultScope.overwrite_default_scope("mmdet"):  # init_detector would leave "mmdet" as default
            model = init_detector(cfg, str(ckpt), device="cpu")
            hits = 0
            for img in ann["images"]:
                result = inference_detector(model, str(Path(toy_coco) / "val2017" / img["file_name"]))
                H, W = img["height"], img["width"]
                h, w = result.metainfo["img_shape"]
                assert result.metainfo["ori_shape"] == (H, W) and result.metainfo["batch_input_shape"] == (h, w)
                seen.add((h, w))
                pred = result.pred_instances
                assert len(pred) > 0 and pred.masks.shape[-2:] == (H, W)
                boxes = pred.bboxes
                assert (boxes >= 0).all() and (boxes[:, 0::2] <= W).all() and (boxes[:, 1::2] <= H).all()
                gt = torch.tensor([a["bbox"] for a in ann["annotations"] if a["image_id"] == img["id"]])
                gt[:, 2:] += gt[:, :2]  # (x, y, w, h) -> (x1, y1, x2, y2), original image coordinates
                hits += int(bbox_overlaps(boxes[:1], gt).max() > 0.5)  # the most confident box lies on an object
        assert hits >= len(ann["images"]) // 2, (scale, hits)
    assert any(h % 32 or w % 32 for h, w in seen) and len(seen) > len(ann["images"])


# --------------------------------------------------------------------------- drawing (tools/misc/infer.py)
def save_random_checkpoint(model: torch.nn.Module, path: Path, classes: tuple[str, ...], **meta) -> Path:
    """A randomly initialised model in mmengine's checkpoint format, with the class names the tools read."""
    torch.save({"state_dict": model.state_dict(), "meta": {"dataset_meta": dict(classes=classes, **meta)}}, path)
    return path


def odd_sized_image(path: Path, size: tuple[int, int] = (101, 157)) -> Path:
    """A BGR test image whose sides are not multiples of 32, with a red disc on grey."""
    img = np.full((*size, 3), 120, np.uint8)
    cv2.circle(img, (size[1] // 2, size[0] // 2), min(size) // 4, (40, 40, 220), -1)
    cv2.imwrite(str(path), img)
    return path


def test_infer_reports_missing_or_unreadable_inputs(tmp_path):
    cfg = ROOT / "configs/detection/mask-rcnn_pcpvt-s_fpn_1x_coco.py"
    image = odd_sized_image(tmp_path / "x.png")
    (tmp_path / "broken.jpg").write_bytes(b"not an image")
    (tmp_path / "w.pth").write_bytes(b"")
    cases = [
        ([str(cfg), str(tmp_path / "none.pth"), str(image)], FileNotFoundError, "checkpoint not found"),
        ([str(cfg), str(tmp_path / "w.pth"), str(tmp_path / "none.jpg")], FileNotFoundError, "image not found"),
        ([str(cfg), str(tmp_path / "w.pth"), str(tmp_path / "broken.jpg")], InferenceInputError, "cannot read"),
    ]
    for args, error, message in cases:
        with pytest.raises(error, match=message):
            infer_and_draw(*args, str(tmp_path / "out.png"))
    assert not (tmp_path / "out.png").exists()


@pytest.mark.slow
def test_infer_draws_detections_of_the_trained_model(mask_rcnn_run, toy_coco, tmp_path):
    cfg_path, ckpt = mask_rcnn_run
    (image,) = sorted((Path(toy_coco) / "val2017").glob("*.jpg"))[:1]
    out = tmp_path / "vis" / "det.png"
    infer = str(ROOT / "tools/misc/infer.py")
    res = run_tool(infer, str(cfg_path), str(ckpt), str(image), "--out", str(out), "--device", "cpu")
    assert f"wrote {out} (mmdet prediction" in res.stdout
    drawn, original = cv2.imread(str(out)), cv2.imread(str(image))
    assert drawn.shape == original.shape  # drawn in the original image's frame
    assert np.abs(drawn.astype(int) - original).max() > 100  # boxes / masks were drawn
    assert [p.name for p in out.parent.iterdir()] == ["det.png"]  # no temporary file left behind


def test_infer_draws_a_classification(tmp_path):
    from mmpretrain.apis import get_model

    cfg = Config.fromfile(str(ROOT / "configs/classification/pcpvt-small_8xb128_in1k.py"))
    cfg.model.backbone.arch = TINY_PCPVT
    cfg.model.head.update(in_channels=TINY_PCPVT["embed_dims"][-1], num_classes=3)
    cfg.data_preprocessor.num_classes = 3
    cfg_path = dump(cfg, tmp_path / "cls.py")
    ckpt = save_random_checkpoint(get_model(cfg), tmp_path / "cls.pth", ("disc", "square", "triangle"))
    image, out = odd_sized_image(tmp_path / "img.png"), tmp_path / "cls.png"
    assert infer_and_draw(str(cfg_path), str(ckpt), str(image), str(out), device="cpu")[0] == "mmpretrain"
    drawn, original = cv2.imread(str(out)), cv2.imread(str(image))
    # the image enlarged by a whole factor (its 101 px side is under 160), the class list beside it
    big = cv2.resize(original, None, fx=2, fy=2, interpolation=cv2.INTER_NEAREST)
    assert drawn.shape[0] == big.shape[0] and drawn.shape[1] > big.shape[1]
    assert np.array_equal(drawn[:, : big.shape[1]], big) and (drawn[:, big.shape[1] :] < 128).any()  # text


SEG_CONFIG = """
_base_ = ["mmseg::_base_/models/fpn_r50.py", "mmseg::_base_/default_runtime.py"]
custom_imports = dict(imports=["cpvt_mm"], allow_failed_imports=False)
model = dict(
    pretrained=None,
    backbone=dict(_delete_=True, type="cpvt_mm.PCPVT", arch={arch}, out_norms=True),
    neck=dict(in_channels={dims}, out_channels=16),
    decode_head=dict(in_channels=[16, 16, 16, 16], channels=16, num_classes=3, norm_cfg=dict(type="BN")),
)
test_pipeline = [dict(type="LoadImageFromFile"), dict(type="Resize", scale=(160, 120), keep_ratio=True),
                 dict(type="PackSegInputs")]
"""


def test_infer_draws_a_segmentation(tmp_path):
    from mmseg.apis import init_model

    cfg_path = tmp_path / "seg.py"
    cfg_path.write_text(SEG_CONFIG.format(arch=TINY_PCPVT, dims=TINY_PCPVT["embed_dims"]))
    with DefaultScope.overwrite_default_scope("mmseg"):  # init_model would leave "mmseg" as the default scope
        model = init_model(str(cfg_path), device="cpu")
    palette = [[220, 40, 40], [40, 200, 40], [40, 60, 220]]
    ckpt = save_random_checkpoint(model, tmp_path / "seg.pth", ("bg", "disc", "rim"), palette=palette)
    image, out = odd_sized_image(tmp_path / "img.png"), tmp_path / "seg.png"
    assert infer_and_draw(str(cfg_path), str(ckpt), str(image), str(out), device="cpu")[0] == "mmseg"
    drawn = cv2.imread(str(out))
    assert drawn.shape == cv2.imread(str(image)).shape and (drawn != cv2.imread(str(image))).any()  # overlay


def test_infer_refuses_a_config_of_another_toolkit(tmp_path):
    cfg = tmp_path / "other.py"
    cfg.write_text("default_scope = 'mmocr'\n")
    image = odd_sized_image(tmp_path / "img.png")
    (tmp_path / "w.pth").write_bytes(b"")
    with pytest.raises(InferenceInputError, match="default_scope='mmocr'"):
        infer_and_draw(str(cfg), str(tmp_path / "w.pth"), str(image), str(tmp_path / "o.png"))
