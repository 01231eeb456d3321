"""A new user's first hour: own data and classes, no pretrained weights, big images, and the mistakes that used to
pass silently (issue 11). The walkthrough of docs/custom_data.md runs end to end on the toy data."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers import ROOT
from mmengine.config import Config
from mmengine.registry import DefaultScope
from toy import TINY_CPVT, TINY_PCPVT, TINY_SVT

from cpvt_mm.apis import (
    TOOL_ERRORS,
    ConfigOptionError,
    DatasetError,
    PretrainedWeightsMissingError,
    UninitializedWeightsError,
    bounded_seg_postprocess,
    check_checkpoint_covers_model,
    check_pretrained_weights,
    disable_pretrained_weights,
    infer_and_draw,
    merge_cfg_options,
    prepare_test_config,
    prepare_train_config,
    use_bounded_seg_postprocess,
    validate_datasets,
    visualize,
)
from cpvt_mm.apis.datasets import DatasetWarning, check_coco_file
from cpvt_mm.datasets import make_toy_coco
from cpvt_mm.models import CPVT, PCPVT, SVT

DET_EXAMPLE = ROOT / "configs/detection/examples/retinanet_pcpvt-s_fpn_my-coco.py"
SEG_EXAMPLE = ROOT / "configs/segmentation/examples/pcpvt-s_fpn_fpnhead_my-seg.py"
RETINANET = ROOT / "configs/detection/retinanet_pcpvt-s_fpn_1x_coco.py"


@pytest.fixture(scope="module")
def toy_coco(tmp_path_factory) -> Path:
    return Path(make_toy_coco(str(tmp_path_factory.mktemp("my_coco")), num_train=8, num_val=4, seed=0))


def coco_cfg(root: Path, **model) -> Config:
    """The detection example config pointed at ``root`` (no other change)."""
    cfg = Config.fromfile(str(DET_EXAMPLE))
    for split in ("train", "val", "test"):
        cfg[f"{split}_dataloader"].dataset.data_root = str(root)
    for split in ("val", "test"):
        cfg[f"{split}_evaluator"].ann_file = str(root / "annotations/instances_val2017.json")
    cfg.model.update(model)
    return cfg


def write_json(path: Path, obj) -> Path:
    path.write_text(json.dumps(obj) if not isinstance(obj, str) else obj)
    return path


# --------------------------------------------------------------------------- 2 / 4: --cfg-options
def test_a_misspelt_top_level_cfg_option_is_refused_with_a_suggestion():
    cfg = Config.fromfile(str(RETINANET))
    with pytest.raises(ConfigOptionError, match=r"'optim_wraper'.*did you mean 'optim_wrapper'"):
        merge_cfg_options(cfg, {"optim_wraper.optimizer.lr": 0.5})
    # keys the config has, and keys the Runner reads without the config having them, are accepted
    merge_cfg_options(cfg, {"optim_wrapper.optimizer.lr": 0.5, "randomness.seed": 1})
    assert cfg.optim_wrapper.optimizer.lr == 0.5 and cfg.randomness.seed == 1


def test_train_and_test_refuse_a_misspelt_cfg_option(tmp_path):
    with pytest.raises(ConfigOptionError, match="did you mean 'optim_wrapper'"):
        prepare_train_config(str(RETINANET), work_dir=str(tmp_path), cfg_options={"optim_wraper.lr": 1})
    (tmp_path / "w.pth").write_bytes(b"x")
    with pytest.raises(ConfigOptionError, match="did you mean 'test_dataloader'"):
        prepare_test_config(str(RETINANET), str(tmp_path / "w.pth"), cfg_options={"test_dataloder.batch_size": 1})


def test_infer_takes_cfg_options_like_train_and_test(tmp_path, monkeypatch):
    image = tmp_path / "x.png"
    cv2.imwrite(str(image), np.full((40, 50, 3), 100, np.uint8))
    (tmp_path / "w.pth").write_bytes(b"x")
    seen = {}

    def fake_draw(cfg, checkpoint, image, device, score_thr, compile=False):
        seen["cfg"], seen["compile"] = cfg, compile
        return np.zeros((4, 4, 3), np.uint8)

    monkeypatch.setitem(visualize.RENDERERS, "mmdet", fake_draw)
    args = [str(RETINANET), str(tmp_path / "w.pth"), str(image), str(tmp_path / "o.png")]
    infer_and_draw(*args, cfg_options={"model.test_cfg.max_per_img": 500, "model.test_cfg.score_thr": 0.5})
    assert seen["cfg"].model.test_cfg.max_per_img == 500 and seen["cfg"].model.test_cfg.score_thr == 0.5
    assert seen["compile"] is False  # infer.py --compile is passed through to the renderer
    infer_and_draw(*args, compile=True)
    assert seen["compile"] is True
    with pytest.raises(ConfigOptionError, match="did you mean 'model'"):
        infer_and_draw(*args, cfg_options={"modle.test_cfg.max_per_img": 500})


# --------------------------------------------------------------------------- 1: pretrained weights
def test_missing_pretrained_weights_fail_before_anything_is_built(tmp_path, monkeypatch):
    cfg = Config.fromfile(str(RETINANET))
    with pytest.raises(PretrainedWeightsMissingError) as e:
        check_pretrained_weights(cfg)
    for needle in ("work_dirs/pretrained/pcpvt-small_in1k.pth", "convert_checkpoint.py", "--from-scratch",
                   "model.backbone.init_cfg"):  # fmt: skip
        assert needle in str(e.value)
    from mmengine.registry import Registry

    def nothing_may_be_built(registry, *args, **kwargs):
        raise AssertionError(f"{registry.name} built before the weights were checked")

    with monkeypatch.context() as mp, pytest.raises(PretrainedWeightsMissingError) as e:
        mp.setattr(Registry, "build", nothing_may_be_built)  # no dataset, model or optimizer (they once were)
        prepare_train_config(str(RETINANET), work_dir=str(tmp_path / "w"))
    err = str(e.value)
    assert "\n" not in err and "pretrained weights not found" in err and "--from-scratch" in err
    # --from-scratch gets past the weights; what stops it now is the missing COCO data, named as such
    with pytest.raises(TOOL_ERRORS) as e:
        prepare_train_config(str(RETINANET), work_dir=str(tmp_path / "w"), from_scratch=True)
    err = str(e.value)
    assert "pretrained" not in err and "data/coco/annotations/instances_train2017.json" in err


def test_from_scratch_clears_every_pretrained_init_cfg():
    cfg = Config(
        dict(
            model=dict(
                pretrained="x.pth",
                backbone=dict(init_cfg=dict(type="Pretrained", checkpoint="a.pth")),
                neck=dict(init_cfg=[dict(type="Xavier"), dict(type="Pretrained", checkpoint="b.pth")]),
            )
        )
    )
    cleared = disable_pretrained_weights(cfg)
    assert cleared == ["model.backbone.init_cfg", "model.neck.init_cfg", "model.pretrained"]
    assert cfg.model.backbone.init_cfg is None and cfg.model.neck.init_cfg == [dict(type="Xavier")]
    check_pretrained_weights(cfg)  # nothing left to miss


# --------------------------------------------------------------------------- 4: COCO files
def test_broken_coco_files_get_one_message_naming_file_and_problem(toy_coco, tmp_path):
    good = json.loads((toy_coco / "annotations/instances_train2017.json").read_text())
    classes = ("circle", "square", "triangle")
    flipped = json.loads(json.dumps(good))
    x, y, w, h = flipped["annotations"][0]["bbox"]
    flipped["annotations"][0]["bbox"] = [x + w, y + h, -w, -h]
    cases = {
        "empty.json": ("", "is empty"),
        "broken.json": ('{"images": [', "not valid JSON"),
        "no_cats.json": ({"images": good["images"], "annotations": good["annotations"]}, "no 'categories' list"),
        "no_images.json": (dict(good, images=[], annotations=[]), "lists no images"),
        "no_anns.json": (dict(good, annotations=[]), "no usable box"),
        "flipped.json": (flipped, "negative width or height"),
        "list.json": ([], "holds a list"),
    }
    for name, (content, message) in cases.items():
        path = write_json(tmp_path / name, content)
        with pytest.raises(DatasetError, match=message) as e:
            check_coco_file(str(path), classes, None, "train_dataloader.dataset.ann_file")
        assert str(path) in str(e.value)
    with pytest.raises(DatasetError, match=r"\[x, y, width, height\]"):
        check_coco_file(str(tmp_path / "flipped.json"), classes, None, "k")
    with pytest.raises(DatasetError, match=r"\['nucleus'\].*not categories"):
        check_coco_file(str(toy_coco / "annotations/instances_train2017.json"), ("nucleus",), None, "k.ann_file")
    with pytest.raises(DatasetError, match="not in"):
        check_coco_file(str(toy_coco / "annotations/instances_train2017.json"), classes, str(tmp_path), "k.ann_file")


def test_training_refuses_negative_boxes_before_building_the_runner(toy_coco, tmp_path):
    bad = tmp_path / "bad"
    (bad / "annotations").mkdir(parents=True)
    for split in ("train", "val"):
        data = json.loads((toy_coco / f"annotations/instances_{split}2017.json").read_text())
        for ann in data["annotations"]:  # [x1, y1, x2, y2] pasted where COCO wants [x, y, w, h], mirrored
            x, y, w, h = ann["bbox"]
            ann["bbox"] = [x + w, y + h, x - (x + w), y - (y + h)]
        write_json(bad / f"annotations/instances_{split}2017.json", data)
        (bad / f"{split}2017").symlink_to(toy_coco / f"{split}2017")
    cfg = coco_cfg(bad)
    cfg.model.backbone.init_cfg = None
    cfg.dump(str(tmp_path / "cfg.py"))
    with pytest.raises(DatasetError, match="negative width or height"):
        prepare_train_config(str(tmp_path / "cfg.py"), work_dir=str(tmp_path / "w"))
    (tmp_path / "w.pth").write_bytes(b"x")
    with pytest.raises(DatasetError, match=r"instances_val2017\.json"):
        prepare_test_config(str(tmp_path / "cfg.py"), str(tmp_path / "w.pth"))


def test_num_classes_and_max_per_img_are_checked_against_the_data(toy_coco):
    cfg = coco_cfg(toy_coco)
    validate_datasets(cfg)  # the example as shipped fits the toy data
    cfg.model.bbox_head.num_classes = 80
    with pytest.raises(DatasetError, match=r"model.bbox_head.num_classes=80.*3 classes"):
        validate_datasets(cfg)
    cfg = coco_cfg(toy_coco)
    cfg.model.test_cfg.max_per_img = 1  # the toy images hold up to 3 objects
    with pytest.warns(DatasetWarning, match="keeps at most 1 per image"):
        validate_datasets(cfg)


# --------------------------------------------------------------------------- 4: segmentation data
def make_own_seg(root: Path, n_train: int = 12, n_val: int = 4, size: tuple[int, int] = (72, 96)) -> Path:
    """Own classes 0 background, 1 disc, 2 square as .png images and .png label maps (the example's layout)."""
    rng = np.random.default_rng(0)
    for split, n in (("train", n_train), ("val", n_val)):
        (root / "images" / split).mkdir(parents=True, exist_ok=True)
        (root / "labels" / split).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            h, w = size
            img = rng.integers(90, 130, (h, w, 3)).astype(np.uint8)
            label = np.zeros((h, w), np.uint8)
            cx, cy, r = int(rng.integers(15, w - 15)), int(rng.integers(15, h - 15)), int(rng.integers(6, 12))
            cv2.circle(label, (cx, cy), r, 1, -1)
            x0, y0 = int(rng.integers(0, w - 20)), int(rng.integers(0, h - 20))
            label[y0 : y0 + 16, x0 : x0 + 16] = 2
            img[label == 1] = (40, 40, 220)
            img[label == 2] = (40, 200, 40)
            cv2.imwrite(str(root / "images" / split / f"{i}.png"), img)
            cv2.imwrite(str(root / "labels" / split / f"{i}.png"), label)
    return root


def seg_cfg(root: Path) -> Config:
    cfg = Config.fromfile(str(SEG_EXAMPLE))
    for split in ("train", "val", "test"):
        cfg[f"{split}_dataloader"].dataset.data_root = str(root)
    return cfg


def test_segmentation_labels_outside_the_classes_are_refused(tmp_path):
    root = make_own_seg(tmp_path / "seg", n_train=2, n_val=2)
    validate_datasets(seg_cfg(root))
    cv2.imwrite(str(root / "labels/val/1.png"), np.full((72, 96), 7, np.uint8))  # a 4th..8th class
    validate_datasets(seg_cfg(root), splits=("train",))  # training data is not scanned (training fails loudly)
    with pytest.raises(DatasetError, match=r"1 of 2 label maps.*has \[7\].*valid: 0..2"):
        validate_datasets(seg_cfg(root))


def test_segmentation_dataset_that_skips_png_images_is_refused(tmp_path):
    root = make_own_seg(tmp_path / "seg", n_train=2, n_val=2)
    cfg = seg_cfg(root)
    cfg.train_dataloader.dataset.img_suffix = ".jpg"  # ADE20KDataset's default, on .png images
    with pytest.raises(DatasetError, match=r"no images ending in img_suffix='.jpg'.*'.png': 2"):
        validate_datasets(cfg, splits=("train",))
    cv2.imwrite(str(root / "images/train/extra.jpg"), np.zeros((8, 8, 3), np.uint8))
    cv2.imwrite(str(root / "labels/train/extra.png"), np.zeros((8, 8), np.uint8))
    with pytest.warns(DatasetWarning, match=r"2 images \{'.png': 2\}.*skipped"):
        validate_datasets(cfg, splits=("train",))
    cfg = seg_cfg(root)
    cfg.train_dataloader.dataset.type = "ADE20KDataset"
    with pytest.raises(DatasetError, match="BaseSegDataset"):
        validate_datasets(cfg, splits=("train",))


# --------------------------------------------------------------------------- 4: checkpoints of another task
def test_a_checkpoint_that_leaves_the_head_random_is_refused(tmp_path):
    from mmseg.apis import init_model

    cfg_path = tmp_path / "seg.py"
    cfg_path.write_text(SEG_INFER_CONFIG.format(arch=TINY_PCPVT, dims=TINY_PCPVT["embed_dims"]))
    with DefaultScope.overwrite_default_scope("mmseg"):
        model = init_model(str(cfg_path), device="cpu")
    backbone_only = {k: v for k, v in model.state_dict().items() if k.startswith("backbone.")}  # a classifier's
    torch.save({"state_dict": backbone_only, "meta": {}}, tmp_path / "cls.pth")
    image = tmp_path / "x.png"
    cv2.imwrite(str(image), np.full((40, 50, 3), 100, np.uint8))
    with pytest.raises(UninitializedWeightsError) as e:
        infer_and_draw(str(cfg_path), str(tmp_path / "cls.pth"), str(image), str(tmp_path / "o.png"))
    err = str(e.value)
    assert "does not fit the model" in err and "decode_head" in err and "neck" in err
    assert not (tmp_path / "o.png").exists()
    wrong_classes = dict(model.state_dict())
    wrong_classes["decode_head.conv_seg.weight"] = torch.zeros(80, 16, 1, 1)
    with pytest.raises(UninitializedWeightsError, match=r"decode_head.conv_seg.weight \(80, 16, 1, 1\)"):
        check_checkpoint_covers_model(model, {"state_dict": wrong_classes})
    check_checkpoint_covers_model(model, {"state_dict": model.state_dict()})


SEG_INFER_CONFIG = """
_base_ = ["mmseg::_base_/models/fpn_r50.py", "mmseg::_base_/default_runtime.py"]
custom_imports = dict(imports=["cpvt_mm"], allow_failed_imports=False)
model = dict(
    data_preprocessor=dict(type="cpvt_mm.PaddingAwareSegDataPreProcessor", test_cfg=dict(size_divisor=32)),
    pretrained=None,
    backbone=dict(_delete_=True, type="cpvt_mm.PCPVT", arch={arch}, out_norms=True),
    neck=dict(in_channels={dims}, out_channels=16),
    decode_head=dict(in_channels=[16, 16, 16, 16], channels=16, num_classes=3, norm_cfg=dict(type="BN")),
)
test_pipeline = [dict(type="LoadImageFromFile"), dict(type="Resize", scale=(2048, 512), keep_ratio=True),
                 dict(type="PackSegInputs")]
"""


# --------------------------------------------------------------------------- 5: big images
@pytest.mark.parametrize("align_corners", [False, True])
def test_bounded_seg_postprocess_equals_full_resolution_argmax(align_corners):
    for h, w, H, W in ((16, 24, 101, 157), (7, 5, 3, 2), (1, 1, 5, 7), (32, 48, 64, 96)):
        logits = torch.randn(5, h, w)
        full = F.interpolate(logits[None], (H, W), mode="bilinear", align_corners=align_corners).argmax(1)
        stripes = bounded_seg_postprocess(logits, (H, W), align_corners, budget_bytes=5 * W * 4 * 3)
        assert stripes.shape == (1, H, W) and torch.equal(stripes, full)


def test_bounded_postprocess_gives_mmseg_predictions_without_full_resolution_logits(tmp_path):
    from mmseg.apis import inference_model, init_model

    cfg_path = tmp_path / "seg.py"
    cfg_path.write_text(SEG_INFER_CONFIG.format(arch=TINY_PCPVT, dims=TINY_PCPVT["embed_dims"]))
    image = tmp_path / "x.png"
    cv2.imwrite(str(image), np.random.default_rng(0).integers(0, 255, (300, 470, 3), dtype=np.uint8))
    with DefaultScope.overwrite_default_scope("mmseg"):
        model = init_model(str(cfg_path), device="cpu")
        reference = inference_model(model, str(image))
        use_bounded_seg_postprocess(model, budget_bytes=100_000)  # 3 x 300 x 470 floats = 1.7 MB: striped
        bounded = inference_model(model, str(image))
    assert torch.equal(bounded.pred_sem_seg.data, reference.pred_sem_seg.data)
    assert bounded.seg_logits.data.shape[-2:] != (300, 470)  # kept at the network's resolution


BIG_INFER = """
import resource, subprocess, sys
res = subprocess.run(sys.argv[1:], capture_output=True, text=True)
assert res.returncode == 0, res.stderr[-3000:]
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss // 1024)
"""


@pytest.mark.slow
def test_segmentation_of_a_2000x3000_photo_with_150_classes_stays_bounded(tmp_path):
    """Full-resolution logits would be 150 x 2000 x 3000 x 4 B = 3.6 GB; measured peak before: 5.5 GB RSS."""
    from mmseg.apis import init_model

    cfg_path = tmp_path / "seg.py"
    cfg_path.write_text(
        SEG_INFER_CONFIG.format(arch=TINY_PCPVT, dims=TINY_PCPVT["embed_dims"]).replace(
            "num_classes=3", "num_classes=150"
        )
    )
    with DefaultScope.overwrite_default_scope("mmseg"):
        model = init_model(str(cfg_path), device="cpu")
    classes = tuple(f"c{i}" for i in range(150))
    palette = np.random.default_rng(0).integers(0, 255, (150, 3)).tolist()
    torch.save({"state_dict": model.state_dict(), "meta": {"dataset_meta": dict(classes=classes, palette=palette)}},
               tmp_path / "seg.pth")  # fmt: skip
    image = tmp_path / "big.jpg"
    cv2.imwrite(str(image), np.random.default_rng(0).integers(0, 255, (2000, 3000, 3), dtype=np.uint8))
    cmd = [sys.executable, str(ROOT / "tools/misc/infer.py"), str(cfg_path), str(tmp_path / "seg.pth"), str(image),
           "--out", str(tmp_path / "o.png"), "--device", "cpu"]  # fmt: skip
    env = dict(os.environ, OMP_NUM_THREADS="1")
    out = subprocess.run([sys.executable, "-c", BIG_INFER, *cmd], capture_output=True, text=True, env=env, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    peak_mb = int(out.stdout.split()[-1])
    assert peak_mb < 3500, peak_mb  # below the full-resolution logits alone (3.6 GB)
    assert cv2.imread(str(tmp_path / "o.png")).shape == (2000, 3000, 3)


# --------------------------------------------------------------------------- 6 / 7: model and tool inputs
@pytest.mark.parametrize("cls, arch", [(PCPVT, TINY_PCPVT), (SVT, TINY_SVT)])
def test_an_empty_batch_gives_empty_maps_like_cpvt(cls, arch):
    outs = cls(arch=arch)(torch.zeros(0, 3, 40, 50))
    assert [tuple(o.shape) for o in outs] == [(0, 16, 10, 13), (0, 32, 5, 7), (0, 48, 3, 4), (0, 64, 2, 2)]
    assert tuple(CPVT(arch=TINY_CPVT, patch_size=8, out_type="featmap")(torch.zeros(0, 3, 40, 50))[0].shape) == (
        0, 32, 5, 7,
    )  # fmt: skip


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_input_of_another_float_dtype_is_refused_by_name_outside_autocast(dtype):
    for model in (PCPVT(arch=TINY_PCPVT), CPVT(arch=TINY_CPVT, patch_size=8)):
        with pytest.raises(ValueError, match=f"input dtype {dtype}.*float32.*autocast"):
            model(torch.zeros(1, 3, 32, 32, dtype=dtype))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert PCPVT(arch=TINY_PCPVT)(torch.zeros(1, 3, 32, 32, dtype=torch.bfloat16))[0].dtype == torch.bfloat16


@pytest.mark.parametrize("cls, arch", [(PCPVT, TINY_PCPVT), (SVT, TINY_SVT), (CPVT, TINY_CPVT)])
def test_in_channels_must_be_positive(cls, arch):
    for bad in (0, -1, 2.5):
        with pytest.raises(ValueError, match=f"in_channels must be a positive int.*{bad}"):
            cls(arch=arch, in_channels=bad)


def test_short_arch_names_and_strict_arch_dicts():
    assert PCPVT(arch="s").depths == PCPVT(arch="small").depths == [3, 4, 6, 3]
    assert SVT(arch="B").embed_dims == SVT.arch_zoo["base"]["embed_dims"]
    assert PCPVT(arch="l").depths == [3, 8, 27, 3]
    assert CPVT(arch="t").embed_dims == 192
    with pytest.raises(ValueError, match="unknown arch 't'"):
        PCPVT(arch="t")
    with pytest.raises(ValueError, match=r"unknown keys \['patch_sizes'\].*arguments of PCPVT itself"):
        PCPVT(arch=dict(TINY_PCPVT, patch_sizes=[4, 2, 2, 2]))
    with pytest.raises(ValueError, match=r"unknown keys \['strides'\]"):
        SVT(arch=dict(TINY_SVT, strides=[4, 2, 2, 2]))
    with pytest.raises(ValueError, match=r"unknown keys \['depths'\]"):
        CPVT(arch=dict(TINY_CPVT, depths=[1]))


def test_segmentation_infer_draws_a_1x1_image(tmp_path):
    from mmseg.apis import init_model

    cfg_path = tmp_path / "seg.py"
    cfg_path.write_text(SEG_INFER_CONFIG.format(arch=TINY_PCPVT, dims=TINY_PCPVT["embed_dims"]))
    with DefaultScope.overwrite_default_scope("mmseg"):
        model = init_model(str(cfg_path), device="cpu")
    meta = dict(classes=("a", "b", "c"), palette=[[255, 0, 0], [0, 255, 0], [0, 0, 255]])
    torch.save({"state_dict": model.state_dict(), "meta": {"dataset_meta": meta}}, tmp_path / "w.pth")
    image = tmp_path / "one.png"
    cv2.imwrite(str(image), np.full((1, 1, 3), 100, np.uint8))
    infer_and_draw(str(cfg_path), str(tmp_path / "w.pth"), str(image), str(tmp_path / "o.png"))
    assert cv2.imread(str(tmp_path / "o.png")).shape == (1, 1, 3)


# --------------------------------------------------------------------------- 3: the walkthrough of docs/custom_data.md
def run(cmd: list[str], cwd: Path, timeout: int = 900) -> str:
    env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")
    res = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert res.returncode == 0, (cmd, res.stdout[-3000:], res.stderr[-5000:])
    return res.stdout + res.stderr


def doc_commands(section: str) -> list[list[str]]:
    """The ``python ...`` lines of the bash blocks of one section of docs/custom_data.md, tokenised."""
    import shlex

    text = (ROOT / "docs/custom_data.md").read_text()
    body = text.split(f"<!-- walkthrough: {section} -->")[1].split("<!-- end walkthrough -->")[0]
    lines, cont = [], ""
    for line in body.splitlines():
        line = line.strip()
        if line.endswith("\\"):
            cont += line[:-1] + " "
            continue
        line, cont = cont + line, ""
        if line.startswith("python "):
            lines.append(shlex.split(line.split(" #")[0]))
    return lines


@pytest.mark.slow
def test_the_detection_walkthrough_trains_tests_and_draws(tmp_path):
    """Every command of docs/custom_data.md's detection walkthrough, run as written from a fresh folder."""
    commands = doc_commands("detection")
    assert [c[1] for c in commands] == [
        "tools/dataset_converters/make_toy_coco.py",
        "tools/train.py",
        "tools/test.py",
        "tools/misc/infer.py",
    ]
    for cmd in commands:
        cmd = [sys.executable, *(str(ROOT / a) if a.startswith(("tools/", "configs/")) else a for a in cmd[1:])]
        out = run(cmd, tmp_path)
        if cmd[1].endswith("test.py"):
            assert "coco/bbox_mAP" in out, out[-2000:]
    assert (tmp_path / "work_dirs/retinanet_pcpvt-s_fpn_my-coco/epoch_1.pth").is_file()
    image, out = commands[-1][4], commands[-1][commands[-1].index("--out") + 1]
    drawn = cv2.imread(str(tmp_path / out))
    assert drawn is not None and drawn.shape == cv2.imread(str(tmp_path / image)).shape


@pytest.mark.slow
def test_the_segmentation_example_trains_and_tests_on_own_classes(tmp_path):
    make_own_seg(tmp_path / "data/my_seg", n_train=4, n_val=2)  # one batch; two label maps to validate and test
    cfg = str(SEG_EXAMPLE)
    # one iteration at the example's real width and crop: what is checked is that its own classes go through
    # training, validation, the checkpoint and tools/test.py (learning is test_segmentation's toy training)
    short = ["train_cfg.max_iters=1", "train_cfg.val_interval=1", "default_hooks.checkpoint.interval=1",
             "train_dataloader.num_workers=0", "train_dataloader.persistent_workers=False"]  # fmt: skip
    out = run([sys.executable, str(ROOT / "tools/train.py"), cfg, "--from-scratch", "--cfg-options", *short], tmp_path)
    assert "Iter(val) [2/2]" in out and "mIoU" in out, out[-2000:]
    ckpt = tmp_path / "work_dirs/pcpvt-s_fpn_fpnhead_my-seg/iter_1.pth"
    out = run([sys.executable, str(ROOT / "tools/test.py"), cfg, str(ckpt)], tmp_path)
    assert "mIoU" in out and "disc" in out and "square" in out, out[-2000:]
