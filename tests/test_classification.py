"""Classification with MMPretrain: configs, tools/train.py / test.py, resume, distributed, checkpoints."""

from __future__ import annotations

import glob
import os
import re
import shutil
from pathlib import Path

import pytest
import torch
from conftest import shared_dir
from helpers import ROOT, build_model, logged_losses, run_tool, run_tool_in_process
from mmengine.config import Config
from mmengine.registry import DefaultScope
from toy import TINY_CPVT, TINY_PCPVT, TINY_SVT, make_imagenet_layout

CLS_CONFIGS = sorted(glob.glob(str(ROOT / "configs/classification/*.py")))
KEY_CONFIGS = [
    "cpvt-tiny_8xb256_in1k.py",
    "cpvt-small-gap_8xb256_in1k.py",
    "pcpvt-small_8xb128_in1k.py",
    "svt-small_8xb128_in1k.py",
]
TINY_CPVT_5 = dict(TINY_CPVT, depth=5)  # room for the paper's PEGs after blocks 0..4


def test_key_configs_exist():
    names = {os.path.basename(p) for p in CLS_CONFIGS}
    assert set(KEY_CONFIGS) <= names
    for fam in ("pcpvt", "svt"):
        for arch in ("small", "base", "large"):
            assert f"{fam}-{arch}_8xb128_in1k.py" in names


@pytest.mark.parametrize("path", CLS_CONFIGS, ids=os.path.basename)
def test_every_config_loads_and_builds(path):
    cfg = Config.fromfile(path)
    assert cfg.default_scope == "mmpretrain"
    # the authors' recipe, in every config
    opt = cfg.optim_wrapper
    assert opt.optimizer.type == "AdamW" and opt.optimizer.weight_decay == 0.05
    batch = 8 * cfg.train_dataloader.batch_size
    assert opt.optimizer.lr == pytest.approx(5e-4 * batch / 512)
    assert opt.paramwise_cfg.custom_keys["peg"] == dict(decay_mult=0.0) and opt.clip_grad.max_norm == 5.0
    assert cfg.model.head.loss.type == "LabelSmoothLoss"
    model = build_model(cfg)
    assert type(model.backbone).__module__.startswith("cpvt_mm.models")
    assert model.head.fc.in_features == (
        model.backbone.embed_dims[-1] if isinstance(model.backbone.embed_dims, list) else model.backbone.embed_dims
    )


# --------------------------------------------------------------------------- tiny training runs
def tiny_config(name: str, data_root: str, work_dir: Path, max_epochs: int, deterministic: bool = False) -> Path:
    """The named config with tiny widths, small images from ``data_root`` and a short constant-lr schedule."""
    cfg = Config.fromfile(str(ROOT / "configs/classification" / name))
    backbone = cfg.model.backbone
    if backbone.type == "cpvt_mm.CPVT":
        backbone.arch = TINY_CPVT_5
        backbone.patch_size = 8
        cfg.model.head.in_channels = TINY_CPVT["embed_dims"]
    else:
        backbone.arch = TINY_SVT if backbone.type == "cpvt_mm.SVT" else TINY_PCPVT
        cfg.model.head.in_channels = TINY_PCPVT["embed_dims"][-1]
    cfg.model.head.num_classes = 4
    cfg.data_preprocessor.num_classes = 4
    # The recipe's regularisers (Mixup/CutMix, drop path) are built for 300 epochs; in a hundred steps they
    # hide the signal "loss goes down" is meant to show, and so do RandAugment and erasing on 32px images.
    # The rest of the pipeline (loading, random resized crops, flips, packing) stays.
    cfg.model.train_cfg = None
    backbone.drop_path_rate = 0.0
    cfg.train_dataloader.dataset.pipeline = [
        s for s in cfg.train_dataloader.dataset.pipeline if s.type not in ("RandomErasing", "RandAugment")
    ]
    if deterministic:  # same batches on every rank / run: no random augmentation
        cfg.train_dataloader.dataset.pipeline = cfg.test_dataloader.dataset.pipeline
        cfg.train_dataloader.sampler = dict(type="DefaultSampler", shuffle=True)
    # The exact-equality runs use 64px: at 32px the last stage is a single token, where attention ignores q,
    # so q's gradient is pure rounding noise that Adam scales up to a visible, run-dependent update.
    size = 64 if deterministic else 32
    for pipe in (cfg.train_dataloader.dataset.pipeline, cfg.test_dataloader.dataset.pipeline):
        for step in pipe:
            if step.type == "RandomResizedCrop":
                step.scale = size
            elif step.type == "ResizeEdge":
                step.scale = size * 9 // 8
            elif step.type == "CenterCrop":
                step.crop_size = size
    for loader in ("train_dataloader", "val_dataloader", "test_dataloader"):
        dl = cfg[loader]
        dl.batch_size = 8
        dl.num_workers = 0
        dl.persistent_workers = False
        # mmengine serialises a dataset for sharing with loader workers (there are none here), and runs a full
        # garbage collection for it: ~0.3 s a dataset in a process holding the toolkits
        dl.dataset.serialize_data = False
        dl.dataset.data_root = data_root
        dl.dataset.metainfo = dict(classes=[f"n{c:08d}" for c in range(4)])
    cfg.val_evaluator = cfg.test_evaluator = dict(type="Accuracy", topk=(1,))  # top-5 needs > 4 classes
    cfg.optim_wrapper.optimizer.lr = 2e-3
    cfg.param_scheduler = [dict(type="ConstantLR", factor=1.0, by_epoch=True, begin=0, end=max_epochs)]
    cfg.train_cfg = dict(by_epoch=True, max_epochs=max_epochs, val_interval=max_epochs)
    cfg.default_hooks.logger = dict(type="LoggerHook", interval=1)
    cfg.default_hooks.checkpoint = dict(type="CheckpointHook", interval=1, max_keep_ckpts=-1)
    cfg.randomness = dict(seed=0)
    cfg.work_dir = str(work_dir)
    path = work_dir.parent / f"{work_dir.name}_{name}"
    cfg.dump(str(path))
    return path


@pytest.fixture(scope="session")
def imagenet_root(tmp_path_factory) -> str:
    """4 classes x 32 train / 4 val images in the ImageNet layout, made once for all xdist workers."""
    with shared_dir(tmp_path_factory, "classification_imagenet") as (folder, fresh):
        if fresh:
            make_imagenet_layout(folder, per_class=32)
    return str(folder)


@pytest.mark.slow
@pytest.mark.parametrize("name", KEY_CONFIGS)
def test_key_config_trains_and_tests(name, imagenet_root, tmp_path):
    """Each key config, shrunk, through tools/train.py and tools/test.py: the loss falls and the test reports
    top-1. Both tools run their ``__main__`` in this process (run_tool_in_process: the toolkits are imported
    once, not ~6 s per tool start); their command lines start in the resume and two-process tests below, and
    tools/test.py's here too, with ``--compile``."""
    work = tmp_path / "work"
    cfg_path = tiny_config(name, imagenet_root, work, max_epochs=7)
    out, err = run_tool_in_process("tools/train.py", str(cfg_path))
    # the run's log says what importing cpvt_mm changed in the host stack
    assert re.search(r"cpvt_mm.compat fixes .*applied: [^;]*checkpoints", out + err)
    losses = logged_losses(work)
    first, last = sum(losses[:4]) / 4, sum(losses[-4:]) / 4
    assert last < first - 0.3, losses
    ckpt = work / "epoch_7.pth"
    out, err = run_tool_in_process("tools/test.py", str(cfg_path), str(ckpt), "--work-dir", str(tmp_path / "test"))
    top1 = re.findall(r"accuracy/top1: ([\d.]+)", out + err)
    assert top1, out[-2000:]
    if name == "cpvt-tiny_8xb256_in1k.py":  # --compile (inductor, dynamic sizes) gives the same metric
        args = (str(cfg_path), str(ckpt), "--work-dir", str(tmp_path / "test_c"), "--compile")
        compiled = run_tool(str(ROOT / "tools/test.py"), *args)  # a fresh interpreter: dynamo's state stays there
        assert re.findall(r"accuracy/top1: ([\d.]+)", compiled.stdout + compiled.stderr) == top1


def _weights(path: Path) -> dict:
    from cpvt_mm.compat import load_checkpoint_file

    return load_checkpoint_file(str(path), map_location="cpu")["state_dict"]


@pytest.fixture(scope="session")
def straight_run(imagenet_root, tmp_path_factory) -> Path:
    """The work dir of one deterministic PCPVT run of 2 epochs, one process, a checkpoint per epoch: the
    reference of the resume test (epoch_2; it resumes from epoch_1) and of the two-process test (epoch_1; the
    lr is constant, so the first epoch of this run is a one-epoch run). Made once for all xdist workers."""
    with shared_dir(tmp_path_factory, "classification_straight") as (folder, fresh):
        straight = folder / "straight"
        if fresh:
            cfg = tiny_config("pcpvt-small_8xb128_in1k.py", imagenet_root, straight, max_epochs=2, deterministic=True)
            run_tool(str(ROOT / "tools/train.py"), str(cfg))
    return straight


@pytest.mark.slow
def test_resume_continues_exactly_where_it_stopped(imagenet_root, straight_run, tmp_path):
    """A run stopped after epoch 1 (the straight run's epoch_1 checkpoint, in a work dir of its own as a
    stopped run leaves it) resumes with ``--resume`` to the same epoch-2 weights as the run that never stopped."""
    resumed = tmp_path / "resumed"
    cfg_r = tiny_config("pcpvt-small_8xb128_in1k.py", imagenet_root, resumed, max_epochs=2, deterministic=True)
    resumed.mkdir()
    shutil.copy(straight_run / "epoch_1.pth", resumed / "epoch_1.pth")
    (resumed / "last_checkpoint").write_text(str(resumed / "epoch_1.pth"))
    res = run_tool(str(ROOT / "tools/train.py"), str(cfg_r), "--resume")
    assert "resumed epoch: 1" in (res.stdout + res.stderr).lower()
    a, b = _weights(straight_run / "epoch_2.pth"), _weights(resumed / "epoch_2.pth")
    for k in a:
        torch.testing.assert_close(b[k], a[k], rtol=0, atol=1e-6, msg=lambda m, k=k: f"{k}: {m}")


@pytest.mark.slow
def test_two_process_gloo_matches_one_process(imagenet_root, straight_run, tmp_path):
    """Same global batch (8 = 1 x 8 = 2 x 4): DDP's averaged gradients give the same weights."""
    one = straight_run
    two = tmp_path / "two"
    cfg2 = tiny_config("pcpvt-small_8xb128_in1k.py", imagenet_root, two, max_epochs=1, deterministic=True)
    run_tool(str(cfg2), "--cfg-options", "train_dataloader.batch_size=4", procs=2)
    a, b = _weights(one / "epoch_1.pth"), _weights(two / "epoch_1.pth")
    for k in a:
        torch.testing.assert_close(b[k], a[k], rtol=1e-4, atol=1e-5, msg=lambda m, k=k: f"{k}: {m}")


# --------------------------------------------------------------------------- checkpoints & multi-scale
@pytest.mark.parametrize("family", ["pcpvt", "svt"])
def test_converted_timm_checkpoint_loads_strictly_into_config_classifier(family, tmp_path):
    import timm

    from cpvt_mm.checkpoint.convert import convert_twins_checkpoint

    src = timm.create_model(f"twins_{family}_small", pretrained=False).eval()
    cfg = Config.fromfile(str(ROOT / f"configs/classification/{family}-small_8xb128_in1k.py"))
    model = build_model(cfg).eval()
    converted = convert_twins_checkpoint({"model": src.state_dict()})
    missing, unexpected = model.load_state_dict(converted["state_dict"], strict=True)
    assert not missing and not unexpected
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        ours = model(x, mode="tensor")
        torch.testing.assert_close(ours, src(x), atol=1e-4, rtol=1e-4)


def test_multiscale_preprocessor_changes_size_per_batch_and_is_rank_consistent():
    cfg = Config.fromfile(str(ROOT / "configs/classification/cpvt-tiny_8xb256-ms160-288_in1k.py"))
    cfg.model.backbone.arch = TINY_CPVT
    cfg.model.head.in_channels = TINY_CPVT["embed_dims"]
    sizes = []
    for _ in range(2):  # two "ranks" built from the same config draw the same sequence
        model = build_model(cfg)
        data = dict(inputs=[torch.randint(0, 255, (3, 224, 224), dtype=torch.uint8) for _ in range(2)])
        from mmpretrain.structures import DataSample

        data["data_samples"] = [DataSample().set_gt_label(i) for i in range(2)]
        seq = [tuple(model.data_preprocessor(dict(data), training=True)["inputs"].shape[-2:]) for _ in range(8)]
        sizes.append(seq)
        assert model.data_preprocessor(dict(data), training=False)["inputs"].shape[-2:] == (224, 224)
    assert sizes[0] == sizes[1]
    assert len(set(sizes[0])) > 1 and set(sizes[0]) <= {(s, s) for s in (160, 192, 224, 256, 288)}
    model.train()
    batch = model.data_preprocessor(dict(data), training=True)
    loss = model(batch["inputs"], batch["data_samples"], mode="loss")["loss"]
    assert torch.isfinite(loss)


def test_multiscale_size_sequence_survives_a_resume():
    """The draw count travels in the model's state dict (what a checkpoint holds): a model restored from it
    after 5 steps draws the same sizes as one that never stopped."""
    from cpvt_mm.models import MultiScaleTrainPreprocessor

    def make():
        return MultiScaleTrainPreprocessor(dict(type="mmengine.BaseDataPreprocessor"), sizes=[8, 12, 16, 20], seed=3)

    def draws(prep, n):
        return [
            tuple(prep(dict(inputs=torch.zeros(1, 3, 10, 10)), training=True)["inputs"].shape[-2:]) for _ in range(n)
        ]

    uninterrupted = make()
    expected = draws(uninterrupted, 12)
    first = make()
    assert draws(first, 5) == expected[:5]
    state = first.state_dict()
    assert state["_extra_state"] == {"draws": 5}
    resumed = make()
    resumed.load_state_dict(state)
    assert draws(resumed, 7) == expected[5:]
    assert draws(make(), 7) != expected[5:]  # what a restart from scratch would have drawn instead


def test_layer_wise_lr_decay_with_mmpretrain_constructor():
    """The snippet in docs/training.md: deeper blocks get larger learning rates, PEGs no weight decay."""
    from mmpretrain.registry import OPTIM_WRAPPER_CONSTRUCTORS

    cfg = Config.fromfile(str(ROOT / "configs/classification/svt-small_8xb128_in1k.py"))
    cfg.model.backbone.arch = TINY_SVT
    cfg.model.head.in_channels = TINY_SVT["embed_dims"][-1]
    model = build_model(cfg)
    optim_cfg = dict(type="OptimWrapper", optimizer=dict(type="AdamW", lr=1e-3, weight_decay=0.05))
    paramwise = dict(layer_decay_rate=0.5, custom_keys={"peg": dict(decay_mult=0.0)})
    with DefaultScope.overwrite_default_scope("mmpretrain"):
        constructor = OPTIM_WRAPPER_CONSTRUCTORS.build(
            dict(
                type="LearningRateDecayOptimWrapperConstructor",
                optim_wrapper_cfg=optim_cfg,
                paramwise_cfg=paramwise,
            )
        )
        wrapper = constructor(model)
    names = {id(p): n for n, p in model.named_parameters()}
    lr = {names[id(g["params"][0])]: g["lr"] for g in wrapper.optimizer.param_groups}
    wd = {names[id(g["params"][0])]: g["weight_decay"] for g in wrapper.optimizer.param_groups}
    assert lr["backbone.stages.0.blocks.0.mlp.fc1.weight"] < lr["backbone.stages.3.blocks.0.mlp.fc1.weight"]
    assert lr["backbone.stages.3.blocks.0.mlp.fc1.weight"] < lr["head.fc.weight"] == pytest.approx(1e-3)
    assert all(v == 0 for k, v in wd.items() if ".peg." in k)


@pytest.mark.slow
def test_amp_bf16_trains_on_cpu(imagenet_root, tmp_path):
    """``--amp`` without a GPU: bf16 autocast through cpvt_mm's AutocastOptimWrapper (mmengine's refuses CPUs)."""
    if torch.cuda.is_available():
        pytest.skip("checks the CPU path")
    # a config file name of its own: MMEngine names a run's logger and visualizer after the config and the
    # second the run starts, and a later run of that name in the same process (the key-config test of the SVT
    # before this one) would reuse them
    work = tmp_path / "amp"
    cfg = tiny_config("svt-small_8xb128_in1k.py", imagenet_root, work, max_epochs=1)
    out, err = run_tool_in_process("tools/train.py", str(cfg), "--amp")  # command line: the tests above
    assert "AutocastOptimWrapper" in out + err
    losses = logged_losses(work)
    assert losses and all(l == l and l < 10 for l in losses)  # finite
