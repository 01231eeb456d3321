"""Your own images, classified (issue 24): a folder dataset whose splits share one class list, the example
configs, the checks that turn the recipe's traps into one-line errors, ``cpvt_mm::`` bases of every task, and
the walkthrough of docs/custom_data.md run as written."""

from __future__ import annotations

import itertools
import logging
import re
import shutil
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from helpers import ROOT, build_model, run_tool, run_tool_in_process
from mmengine.config import Config
from mmengine.registry import DefaultScope

from cpvt_mm.apis import (
    ConfigError,
    DatasetError,
    check_param_schedulers,
    image_file_problem,
    infer_and_draw,
    load_config,
    prepare_test_config,
    validate_datasets,
    visualize,
)
from cpvt_mm.apis.visualize import InferenceInputError, InferenceInputWarning
from cpvt_mm.datasets import make_toy_folders


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


# --------------------------------------------------------------------------- the folder dataset and its checks
SMALL = ROOT / "configs/classification/examples/cpvt-mini_1xb32_my-small-images.py"
PHOTOS = ROOT / "configs/classification/examples/cpvt-tiny_1xb64_my-images.py"
IN1K = ROOT / "configs/classification/cpvt-tiny_8xb256_in1k.py"
DEMO = ROOT / "configs/classification/demo/cpvt-mini-peg_1xb128_fashion-mnist.py"


@pytest.fixture
def folders(tmp_path) -> Path:
    return Path(make_toy_folders(str(tmp_path / "my_images"), num_train=3, num_val=2, size=16))


def small_cfg(root: Path, **options) -> Config:
    """The small-images example pointed at ``root``, with ``--cfg-options``-style overrides."""
    cfg = Config.fromfile(str(SMALL))
    for split in ("train", "val", "test"):
        cfg[f"{split}_dataloader"].dataset.data_root = str(root) + "/"
    cfg.merge_from_dict(options)
    return cfg


def one_line_error(cfg: Config, splits=("train", "val")) -> str:
    with pytest.raises(DatasetError) as e:
        validate_datasets(cfg, splits)
    assert "\n" not in str(e.value)
    return str(e.value)


def labels_by_folder(dataset) -> dict[str, int]:
    infos = (dataset.get_data_info(i) for i in range(len(dataset)))
    return {Path(d["img_path"]).parent.name: int(d["gt_label"]) for d in infos}


def test_every_split_is_numbered_by_the_one_class_list(folders):
    """mmpretrain's CustomDataset numbered val by val's own folders: one missing folder shifted every label."""
    shutil.rmtree(folders / "val/cross")  # val lacks the 2nd class: square and triangle kept their labels
    cfg = small_cfg(folders)
    with DefaultScope.overwrite_default_scope("mmpretrain"):
        from mmpretrain.registry import DATASETS

        val = DATASETS.build(dict(cfg.val_dataloader.dataset, pipeline=[]))
        plain = DATASETS.build(dict(cfg.val_dataloader.dataset, type="CustomDataset", metainfo=None, pipeline=[]))
    assert labels_by_folder(val) == {"circle": 0, "square": 2, "triangle": 3}
    assert labels_by_folder(plain)["triangle"] == 2  # mmpretrain's numbering: triangle read as square
    (folders / "val/extra").mkdir()
    with (
        pytest.raises(ValueError, match=r"class folders \['extra'\] that are not in classes"),
        DefaultScope.overwrite_default_scope("mmpretrain"),
    ):
        DATASETS.build(dict(cfg.val_dataloader.dataset, pipeline=[]))


def test_folder_mistakes_end_in_one_line_naming_folder_or_setting(folders):
    validate_datasets(small_cfg(folders), ("train", "val"))  # the example as shipped fits the layout
    shutil.move(folders / "val", folders / "valid")
    assert f"val folder not found: {folders}/val/ (val_dataloader.dataset" in one_line_error(small_cfg(folders))
    shutil.move(folders / "valid", folders / "val")
    (folders / "train/zebra").mkdir()
    (folders / "train/yak").mkdir()
    assert "2 of 6 class folders in" in (err := one_line_error(small_cfg(folders))) and "['yak', 'zebra']" in err
    (folders / "train/zebra/a.png").write_bytes((folders / "train/circle/0000.png").read_bytes())
    (folders / "train/yak/a.png").write_bytes((folders / "train/circle/0000.png").read_bytes())
    err = one_line_error(small_cfg(folders))
    assert "differ from classes" in err and "has ['yak', 'zebra'] in addition" in err
    shutil.rmtree(folders / "train/zebra")
    shutil.rmtree(folders / "train/yak")
    shutil.rmtree(folders / "val/square")
    err = one_line_error(small_cfg(folders))
    assert f"{folders}/val/ (val)" in err and "lacks ['square']" in err


def test_plain_custom_dataset_splits_with_differing_folders_are_refused(folders):
    (folders / "val/extra").mkdir()
    (folders / "val/extra/a.png").write_bytes((folders / "val/circle/0000.png").read_bytes())
    cfg = small_cfg(folders)
    for split in ("train", "val"):
        cfg[f"{split}_dataloader"].dataset.update(type="CustomDataset", metainfo=None)
    cfg.model.head.num_classes = cfg.model.data_preprocessor.num_classes = 5
    err = one_line_error(cfg, ("val",))
    assert "differ from the class folders of" in err and "has ['extra'] in addition" in err


def test_unreadable_images_are_all_listed_at_once(folders):
    good = (folders / "train/circle/0000.png").read_bytes()
    (folders / "train/circle/cut.png").write_bytes(good[: len(good) // 2])
    jpeg = cv2.imencode(".jpg", np.full((16, 16), 99, np.uint8))[1].tobytes()
    (folders / "train/cross/cut.jpg").write_bytes(jpeg[:-40])
    (folders / "train/square/notes.png").write_text("not an image")
    (folders / "train/triangle/empty.png").write_bytes(b"")
    err = one_line_error(small_cfg(folders))
    assert err.startswith(f"4 of 16 images in {folders}/train/ (train_dataloader.dataset) cannot be read")
    for what in ("cut.png (truncated PNG", "cut.jpg (truncated JPEG", "notes.png (not an image", "empty.png (empty"):
        assert what in err
    assert image_file_problem(str(folders / "train/circle/0000.png")) is None


@pytest.mark.parametrize("num_classes", [3, 12])
def test_a_head_with_too_few_or_too_many_classes_is_refused(folders, num_classes):
    err = one_line_error(small_cfg(folders, **{"model.head.num_classes": num_classes}))
    assert f"model.head.num_classes={num_classes}, but the dataset" in err and "has 4 classes" in err


def test_images_with_other_channels_than_the_model_are_refused(folders):
    err = one_line_error(small_cfg(folders, **{"model.backbone.in_channels": 3}))
    assert "loads 1-channel images (color_type='grayscale')" in err and "model.backbone.in_channels=3" in err
    cfg = small_cfg(folders)
    for pipeline in (cfg.train_dataloader.dataset.pipeline, cfg.val_dataloader.dataset.pipeline):
        pipeline[0] = dict(type="LoadImageFromFile")  # colour PNGs into a one-channel model
    err = one_line_error(cfg)
    assert "loads 3-channel images (color_type='color' (the default))" in err and "color_type='grayscale'" in err


def test_a_pipeline_that_does_not_fit_the_dataset_is_refused(folders):
    """The demo's pipeline on a folder dataset died in a dataloader worker with ``KeyError: 'img'``."""
    cfg = small_cfg(folders)
    cfg.train_dataloader.dataset.pipeline = Config.fromfile(str(DEMO)).train_dataloader.dataset.pipeline
    err = one_line_error(cfg, ("train",))
    assert "train_dataloader.dataset.pipeline starts with RandomResizedCrop" in err and "LoadImageFromFile" in err
    demo = Config.fromfile(str(DEMO))
    validate_datasets(demo, ("train", "test"))  # in-memory Fashion-MNIST without a loading step: fine
    demo.test_dataloader.dataset.pipeline.insert(0, dict(type="LoadImageFromFile"))
    assert "yields decoded images, not files" in one_line_error(demo, ("test",))


def test_a_scheduler_beyond_max_epochs_is_named_with_the_fix():
    """mmengine said ``end should be larger than begin, but got begin=100, end=60``, naming no setting."""
    cfg = Config.fromfile(str(IN1K))
    cfg.train_cfg.max_epochs = 3  # the recipe's cosine begins after a 5-epoch warm-up
    with pytest.raises(ConfigError) as e:
        check_param_schedulers(cfg)
    err = str(e.value)
    assert "param_scheduler.1 (CosineAnnealingLR) begins at epoch 5" in err and "train_cfg.max_epochs=3" in err
    assert "param_scheduler.1.begin" in err and "WarmupCosineLR" in err and "\n" not in err
    for max_epochs in (1, 3, 300):  # the examples' schedule fits any length
        for path in (SMALL, PHOTOS):
            cfg = Config.fromfile(str(path))
            cfg.train_cfg.max_epochs = max_epochs
            check_param_schedulers(cfg)


@pytest.mark.parametrize("epochs, epoch_length", [(1, 1), (1, 7), (3, 5), (30, 7)])
def test_warmup_cosine_spans_any_run(epochs, epoch_length):
    from mmengine.optim import OptimWrapper

    from cpvt_mm.engine import WarmupCosineLR

    optimizer = OptimWrapper(torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0))
    sched = WarmupCosineLR.build_iter_from_epoch(
        optimizer, warmup_fraction=0.1, eta_min=0.01, end=epochs, epoch_length=epoch_length
    )
    lrs = []
    for _ in range(epochs * epoch_length):
        lrs.append(optimizer.param_groups[0]["lr"])
        sched.step()
    peak = int(np.argmax(lrs))
    assert lrs[0] == pytest.approx(1e-3) and max(lrs) <= 1.0 + 1e-9 and min(lrs) >= 1e-3 - 1e-9
    assert all(a <= b for a, b in itertools.pairwise(lrs[: peak + 1]))  # warm-up rises
    assert all(a >= b for a, b in itertools.pairwise(lrs[peak:]))  # then decays
    assert set(sched.state_dict()) <= {"begin", "end", "by_epoch", "last_step", "base_values", "_global_step",
                                       "_last_value", "verbose", "param_name", "warmup_fraction", "start_factor",
                                       "eta_min", "_get_value_called_within_step"}  # fmt: skip


# --------------------------------------------------------------------------- tool inputs
def test_a_config_with_a_syntax_error_is_named_with_its_line(tmp_path):
    cfg = tmp_path / "broken.py"
    cfg.write_text('_base_ = ["cpvt_mm::classification/cpvt-tiny_8xb256_in1k.py"]\nmodel = dict(head=dict(\n')
    with pytest.raises(ConfigError, match=rf"syntax error in config {cfg}, line 2: '\(' was never closed"):
        load_config(str(cfg))
    err = run_tool(str(ROOT / "tools/train.py"), str(cfg), expect=1).stderr
    assert err.strip().splitlines()[-1].startswith(f"error: syntax error in config {cfg}, line 2")
    assert "Traceback" not in err


def test_test_out_naming_a_folder_is_refused(tmp_path):
    (tmp_path / "w.pth").write_bytes(b"x")
    with pytest.raises(IsADirectoryError, match=rf"--out {tmp_path} is a folder; give a file name"):
        prepare_test_config(str(IN1K), str(tmp_path / "w.pth"), out=str(tmp_path))


def test_infer_refuses_and_warns_about_inputs_before_building_anything(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setitem(visualize.RENDERERS, "mmpretrain", lambda *a, **k: calls.append(a) or np.zeros((4, 4, 3)))
    (tmp_path / "w.pth").write_bytes(b"x")
    image = tmp_path / "x.png"
    cv2.imwrite(str(image), np.full((40, 50, 3), 100, np.uint8))
    args = [str(SMALL), str(tmp_path / "w.pth")]
    with pytest.raises(IsADirectoryError, match=r"--out .* is a folder"):
        infer_and_draw(*args, str(image), str(tmp_path))
    if not torch.cuda.is_available():
        with pytest.raises(InferenceInputError, match=r"--device cuda: torch sees no CUDA GPU.*--device cpu"):
            infer_and_draw(*args, str(image), str(tmp_path / "o.png"), device="cuda")
    jpeg = cv2.imencode(".jpg", np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8))[1]
    (tmp_path / "cut.jpg").write_bytes(jpeg.tobytes()[: len(jpeg) // 2])
    with pytest.raises(InferenceInputError, match=r"cut.jpg: truncated JPEG"):
        infer_and_draw(*args, str(tmp_path / "cut.jpg"), str(tmp_path / "o.png"))
    assert not calls
    cv2.imwrite(str(tmp_path / "clear.png"), np.zeros((40, 50, 4), np.uint8))
    with pytest.warns(InferenceInputWarning, match="fully transparent"):
        infer_and_draw(*args, str(tmp_path / "clear.png"), str(tmp_path / "o.png"))
    cv2.imwrite(str(tmp_path / "dot.png"), np.full((1, 1, 3), 100, np.uint8))
    with pytest.warns(InferenceInputWarning, match=r"only 1x1 pixels"):
        infer_and_draw(*args, str(tmp_path / "dot.png"), str(tmp_path / "o.png"))


@pytest.mark.parametrize("config", [SMALL, DEMO])
def test_infer_classifies_with_the_configs_channels_and_prints_the_top_classes(tmp_path, config, capsys):
    """mmpretrain's inferencer always loaded three channels: a one-channel model could not run at all."""
    cfg = Config.fromfile(str(config))
    cfg.model.backbone.arch = dict(embed_dims=16, depth=1, num_heads=1, mlp_ratio=2.0)
    cfg.model.head.in_channels = 16
    cfg_path = tmp_path / "cfg.py"
    cfg.dump(str(cfg_path))
    n = cfg.model.head.num_classes
    classes = tuple(f"name{i}" for i in range(n))
    torch.save({"state_dict": build_model(cfg).state_dict(), "meta": {"dataset_meta": dict(classes=classes)}},
               tmp_path / "w.pth")  # fmt: skip
    image = tmp_path / "x.png"
    cv2.imwrite(str(image), np.random.default_rng(0).integers(0, 255, (28, 28, 3), dtype=np.uint8))
    _, drawn = infer_and_draw(str(cfg_path), str(tmp_path / "w.pth"), str(image), str(tmp_path / "o.png"), device="cpu")
    out = capsys.readouterr().out
    top = [line.split()[1] for line in out.splitlines() if line.strip()[:2] in {f"{i}." for i in range(1, 6)}]
    assert f"top-{min(5, n)} classes of {image}" in out and len(top) == min(5, n) and set(top) <= set(classes)
    assert drawn.shape[0] >= 160 and drawn.shape[1] > 160  # enlarged (28 px) with the list beside it


def test_out_of_range_segmentation_labels_in_training_are_named(tmp_path):
    """Training died in ``IndexError: Target 199 is out of bounds``; now the label maps are named, as test.py does."""
    from test_custom_data import make_own_seg, seg_cfg

    from cpvt_mm.apis.train import _explain_out_of_range_labels

    root = make_own_seg(tmp_path / "seg", n_train=2, n_val=2)
    cv2.imwrite(str(root / "labels/train/1.png"), np.full((72, 96), 199, np.uint8))
    with pytest.raises(DatasetError, match=r"1 of 2 label maps.*labels/train.*1.png has \[199\]"):
        _explain_out_of_range_labels(seg_cfg(root), IndexError("Target 199 is out of bounds."))
    _explain_out_of_range_labels(seg_cfg(root), IndexError("list index out of range"))  # not a label error


# --------------------------------------------------------------------------- the walkthrough of docs/custom_data.md
@pytest.mark.slow
def test_the_classification_walkthrough_learns_sweeps_and_draws(tmp_path, monkeypatch):
    """Every command of docs/custom_data.md's classification walkthrough, run as written from a fresh folder.

    tools/test.py and tools/misc/infer.py run their ``__main__`` in this process (run_tool_in_process, in that
    folder), where the toolkits are imported already (a fresh interpreter costs ~6 s; both command lines start
    in other tests). The other three start as command lines. eval_resolutions.py, which runs the same config
    right after tools/test.py, must not share its process: MMEngine names a run's logger and visualizer after
    the config and the second the run starts, and reuses them within a process.
    """
    from test_custom_data import doc_commands, run

    commands = doc_commands("classification")
    assert [c[1] for c in commands] == [
        "tools/dataset_converters/make_toy_folders.py",
        "tools/train.py",
        "tools/test.py",
        "tools/analysis_tools/eval_resolutions.py",
        "tools/misc/infer.py",
    ]
    monkeypatch.chdir(tmp_path)
    outputs = []
    for cmd in commands:
        tool, *args = (str(ROOT / a) if a.startswith(("tools/", "configs/")) else a for a in cmd[1:])
        if tool.endswith(("tools/test.py", "tools/misc/infer.py")):
            outputs.append("".join(run_tool_in_process(tool, *args)))
        else:
            outputs.append(run([sys.executable, tool, *args], tmp_path))
    accuracy = float(re.search(r"Epoch\(test\).*accuracy/top1: ([\d.]+)", outputs[2]).group(1))
    assert accuracy > 60, outputs[2][-2000:]  # chance is 25% (four classes)
    sweep = dict(re.findall(r"^\| (\d+) \| ([\d.]+) \|$", outputs[3], re.M))
    assert list(sweep) == ["24", "32", "48"] and float(sweep["32"]) == accuracy
    top = re.findall(r"^\s+\d\. (\w+)\s+([\d.]+)$", outputs[4], re.M)
    assert len(top) == 4 and {name for name, _ in top} == {"circle", "cross", "square", "triangle"}
    assert abs(sum(float(s) for _, s in top) - 1) < 0.01
    drawn = cv2.imread(str(tmp_path / "pred.png"))
    assert drawn is not None and drawn.shape[0] >= 160  # the 32 px image enlarged, the list legible beside it
