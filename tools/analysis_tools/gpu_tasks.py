"""The GPU check's end-to-end runs: every task trained through the repo's own tools on generated data.

Used by ``tools/analysis_tools/gpu_check.py``. Each run is one shipped config (or mmseg's own Twins config, for
the side-by-side), shortened to a few dozen iterations at its real input size and batch, on a generated dataset
in the real layout, started the way a user starts it (``tools/train.py``, ``tools/dist_train.sh CONFIG 1``,
``--amp``) in its own process with a time limit. What comes back per run: seconds per iteration (median after
warm-up), peak memory, first and last loss, and the evaluation the run ends with.

``dry=True`` runs on CPU at tiny sizes, two iterations and one block per stage (``make test`` runs it): it proves
the plumbing, not speed. Dry run: one run per distinct path (:func:`runs`), i.e. each task kind, the
``dist_train.sh`` launcher, ``--amp`` and mmseg's Twins side by side; a run that would only repeat another's path
(same task kind, launcher and flags) is left to the GPU, and to the tests that train its config.
"""

from __future__ import annotations

import glob
import json
import os
import os.path as osp
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, ROOT)

from mmengine.config import Config  # noqa: E402

from cpvt_mm.datasets import make_toy_ade20k, make_toy_coco  # noqa: E402
from cpvt_mm.datasets.toy_folders import CLASSES as FOLDER_CLASSES  # noqa: E402
from cpvt_mm.datasets.toy_folders import make_toy_folders  # noqa: E402


@dataclass(frozen=True)
class TaskRun:
    """One end-to-end run: a config trained through a tool on generated data."""

    name: str
    task: str  # classification | segmentation | detection
    config: str  # a path under configs/, or a host package reference (mmseg::...)
    launcher: str = "train"  # train: tools/train.py; dist: tools/dist_train.sh CONFIG 1
    args: tuple[str, ...] = ()
    iters: int = 30  # training iterations on the GPU
    dry: bool = True  # in the dry plan; False where another run already takes the same path (see :func:`runs`)


RUNS: tuple[TaskRun, ...] = (
    # dry: the CPVT-Ti run below takes the same path, and also the multi-scale wrapper and the plain-CPVT backbone
    TaskRun(
        "PCPVT-S ImageNet recipe", "classification", "configs/classification/pcpvt-small_8xb128_in1k.py", dry=False
    ),
    TaskRun(
        "CPVT-Ti multi-scale 160-288", "classification", "configs/classification/cpvt-tiny_8xb256-ms160-288_in1k.py"
    ),
    TaskRun(
        "Semantic FPN PCPVT-S (cpvt_mm)",
        "segmentation",
        "configs/segmentation/pcpvt-s_fpn_fpnhead_8xb4-80k_ade20k-512x512.py",
        iters=40,
    ),
    TaskRun(
        "Semantic FPN PCPVT-S (mmseg's Twins)",
        "segmentation",
        "mmseg::twins/twins_pcpvt-s_fpn_fpnhead_8xb4-80k_ade20k-512x512.py",
        iters=40,
    ),
    TaskRun(  # dry: the Semantic FPN run takes the same path (SVT trains in RetinaNet); the slowest on CPU
        "UperNet SVT-S",
        "segmentation",
        "configs/segmentation/svt-s_uperhead_8xb2-160k_ade20k-512x512.py",
        iters=40,
        dry=False,
    ),
    TaskRun(
        "Mask R-CNN PCPVT-S ms-3x (dist_train.sh, 1 process)",
        "detection",
        "configs/detection/mask-rcnn_pcpvt-s_fpn_ms-3x_coco.py",
        launcher="dist",
    ),
    TaskRun("RetinaNet SVT-S --amp", "detection", "configs/detection/retinanet_svt-s_fpn_1x_coco.py", args=("--amp",)),
)


def runs(dry: bool) -> tuple[TaskRun, ...]:
    """The runs to make: all of :data:`RUNS` on the GPU. Dry run: one run per distinct path through this module and
    the tools (task kind, launcher, flags, host config), since on CPU every run costs seconds of imports and setup
    alone and speed is not measured. The configs left out are trained through the tools by the tests
    (test_classification's key configs, test_segmentation's toy training)."""
    return tuple(r for r in RUNS if r.dry) if dry else RUNS


@dataclass
class TaskResult:
    name: str
    task: str
    ok: bool
    seconds: float
    detail: str = ""
    s_per_iter: float | None = None
    peak_mem_mb: float | None = None
    losses: tuple[float, float] | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return asdict(self)


def make_data(root: str, dry: bool) -> dict[str, str]:
    """The three generated datasets (class folders, ADE20K layout, COCO layout) under ``root``."""
    data = {
        "classification": osp.join(root, "folders"),
        "segmentation": osp.join(root, "ade"),
        "detection": osp.join(root, "coco"),
    }
    if not osp.isdir(data["classification"]):
        # 4 classes x 160 training images: 10 iterations an epoch at batch 64
        make_toy_folders(data["classification"], num_train=4 if dry else 160, num_val=2 if dry else 25,
                         size=48 if dry else 256)  # fmt: skip
    if not osp.isdir(data["segmentation"]):
        make_toy_ade20k(data["segmentation"], num_train=4 if dry else 64, num_val=2 if dry else 16,
                        size=(48, 64) if dry else (384, 512))  # fmt: skip
    if not osp.isdir(data["detection"]):
        make_toy_coco(data["detection"], num_train=4 if dry else 64, num_val=2 if dry else 16, seed=0)
    return data


def _load(config: str, work_dir: str) -> Config:
    """A config of this repo, or one of a host package's (``mmseg::...``) through a one-line child config."""
    if "::" not in config:
        return Config.fromfile(osp.join(ROOT, config))
    os.makedirs(work_dir, exist_ok=True)
    child = osp.join(work_dir, "host_config.py")
    with open(child, "w", encoding="utf-8") as f:
        f.write(f"_base_ = [{config!r}]\ncustom_imports = dict(imports=['cpvt_mm'], allow_failed_imports=False)\n")
    return Config.fromfile(child)


def _loaders(cfg: Config, data_root: str, dry: bool) -> None:
    for name in ("train_dataloader", "val_dataloader", "test_dataloader"):
        if cfg.get(name) is None:
            continue
        cfg[name].update(num_workers=0 if dry else 8, persistent_workers=False)
        cfg[name].dataset.data_root = data_root


def _pipeline_steps(cfg: Config) -> Iterator[dict]:
    """Dry run: every step of the train, val and test pipelines, to shrink. Once the config is loaded the val
    loader holds its own copy of the test pipeline, and the evaluation a run ends with is the val loop's: left
    at full size it resized the tiny images to 512 x 683 (1333 x 800 for detection) and took most of the time."""
    for name in ("train_dataloader", "val_dataloader", "test_dataloader"):
        if cfg.get(name) is not None:
            yield from cfg[name].dataset.pipeline


def _classification(cfg: Config, run: TaskRun, data_root: str, dry: bool, epochs: int) -> None:
    n = len(FOLDER_CLASSES)
    cfg.model.head.num_classes = n
    pre = cfg.model.get("data_preprocessor")
    if pre is not None and pre.get("preprocessor") is not None:  # the multi-scale wrapper
        pre.preprocessor.num_classes = n
        if dry:
            pre.sizes = [32, 48]
    if cfg.get("data_preprocessor") is not None:
        cfg.data_preprocessor.num_classes = n
    _loaders(cfg, data_root, dry)
    for name in ("train_dataloader", "val_dataloader", "test_dataloader"):
        cfg[name].dataset.metainfo = dict(classes=list(FOLDER_CLASSES))
        cfg[name].batch_size = 8 if dry else 64  # dry: 16 training images, 2 iterations an epoch
    if dry:
        for step in _pipeline_steps(cfg):
            if step.type == "RandomResizedCrop":
                step.scale = 32
            elif step.type == "ResizeEdge":
                step.scale = 36
            elif step.type == "CenterCrop":
                step.crop_size = 32
    cfg.val_evaluator = cfg.test_evaluator = dict(type="Accuracy", topk=(1,))  # top-5 of 4 classes is 100%
    # the recipe's warm-up then cosine, fitted into the short run (its own 5 warm-up epochs would outlast it)
    cfg.param_scheduler = [
        dict(type="LinearLR", start_factor=1e-3, by_epoch=True, begin=0, end=1, convert_to_iter_based=True),
        dict(type="CosineAnnealingLR", eta_min=1e-5, by_epoch=True, begin=1, end=epochs, convert_to_iter_based=True),
    ]
    cfg.train_cfg = dict(by_epoch=True, max_epochs=epochs, val_interval=epochs)
    cfg.default_hooks.checkpoint = dict(type="CheckpointHook", interval=epochs, max_keep_ckpts=1)


def _segmentation(cfg: Config, run: TaskRun, data_root: str, dry: bool, iters: int) -> None:
    _loaders(cfg, data_root, dry)
    if dry:
        crop = (64, 64)
        cfg.model.data_preprocessor.size = crop
        for step in _pipeline_steps(cfg):
            if step.type in ("RandomResize", "Resize"):
                step.scale = (256, 64)
            elif step.type == "RandomCrop":
                step.crop_size = crop
        cfg.train_dataloader.batch_size = 2
    if cfg.get("val_dataloader") is not None:
        cfg.val_dataloader.dataset.data_root = data_root
    warmup = max(1, iters // 8)
    schedulers = cfg.param_scheduler if isinstance(cfg.param_scheduler, list) else [cfg.param_scheduler]
    if len(schedulers) == 2:
        schedulers[0].update(begin=0, end=warmup)
        schedulers[1].update(begin=warmup, end=iters)
    else:
        schedulers[-1].update(begin=0, end=iters)
    cfg.param_scheduler = schedulers
    cfg.train_cfg = dict(type="IterBasedTrainLoop", max_iters=iters, val_interval=iters)
    cfg.default_hooks.checkpoint = dict(type="CheckpointHook", by_epoch=False, interval=iters, max_keep_ckpts=1)


def _detection(cfg: Config, run: TaskRun, data_root: str, dry: bool, epochs: int) -> None:
    from cpvt_mm.datasets.toy_coco import CLASSES

    model = cfg.model
    heads = [model.bbox_head] if model.type == "RetinaNet" else [model.roi_head.bbox_head, model.roi_head.mask_head]
    for head in heads:
        head.num_classes = len(CLASSES)
    _loaders(cfg, data_root, dry)
    for name in ("train_dataloader", "val_dataloader", "test_dataloader"):
        cfg[name].dataset.metainfo = dict(classes=CLASSES)
        cfg[name].batch_size = 2
    for name in ("val_evaluator", "test_evaluator"):
        cfg[name].ann_file = osp.join(data_root, "annotations/instances_val2017.json")
    if dry:
        for step in _pipeline_steps(cfg):
            if step.type == "Resize":
                step.scale = (160, 128)
            elif step.type == "RandomChoiceResize":
                step.scales = [(160, 96), (160, 128)]
        if model.type == "MaskRCNN":  # fewer RoIs: without compiled mmcv, RoIAlign is plain PyTorch (slow on CPU)
            model.train_cfg.rpn_proposal.max_per_img = 100
            model.train_cfg.rcnn.sampler.num = 32
            model.test_cfg.rpn.max_per_img = 50
            model.test_cfg.rcnn.max_per_img = 20  # the mask head runs on every detection (seconds for 100)
    cfg.param_scheduler = [dict(type="LinearLR", start_factor=0.001, by_epoch=False, begin=0, end=10)]
    cfg.train_cfg = dict(type="EpochBasedTrainLoop", max_epochs=epochs, val_interval=epochs)
    cfg.default_hooks.checkpoint = dict(type="CheckpointHook", interval=epochs, max_keep_ckpts=1)


def _shallow_backbone(cfg: Config) -> None:
    """Dry run: the backbone at its real widths (necks and heads read them) with one block per stage (two for SVT,
    so both of its attentions run; two for the plain CPVT). The plumbing is under test, not the model."""
    import inspect

    from cpvt_mm.models.utils import resolve_arch
    from cpvt_mm.registry import MODELS

    backbone = cfg.model.backbone
    if "depths" in backbone:  # mmseg's own Twins takes the per-stage settings as arguments
        backbone.depths = [1] * len(backbone.depths)
        return
    cls = MODELS.get(backbone.type.split(".")[-1])
    arch = resolve_arch(
        backbone.get("arch", inspect.signature(cls).parameters["arch"].default),
        cls.arch_zoo,
        cls.required_keys,
        cls.__name__,
    )
    if "depth" in arch:
        arch["depth"] = 2
    else:
        arch["depths"] = [2 if cls.local_windows else 1] * len(arch["depths"])
    backbone.arch = arch


def task_config(run: TaskRun, data: dict[str, str], work_dir: str, dry: bool) -> str:
    """The run's config, shortened and pointed at the generated data; written next to ``work_dir``."""
    cfg = _load(run.config, work_dir)
    if dry:
        _shallow_backbone(cfg)
    iters = 2 if dry else run.iters
    if run.task == "classification":
        _classification(cfg, run, data["classification"], dry, epochs=2 if dry else 3)
    elif run.task == "segmentation":
        _segmentation(cfg, run, data["segmentation"], dry, iters)
    else:  # 64 images at batch 2: 32 iterations an epoch
        _detection(cfg, run, data["detection"], dry, epochs=1)
    if dry:  # no checkpoint: 13 to 460 MB written per run (fsynced); the saving has tests of its own
        cfg.default_hooks.checkpoint.update(interval=-1, save_last=False)
    cfg.default_hooks.logger = dict(type="LoggerHook", interval=1, log_metric_by_epoch=run.task == "classification")
    cfg.log_processor = dict(type="LogProcessor", window_size=1, by_epoch=run.task != "segmentation")
    cfg.randomness = dict(seed=0)
    cfg.work_dir = work_dir
    os.makedirs(work_dir, exist_ok=True)
    path = work_dir.rstrip("/") + "_config.py"
    cfg.dump(path)
    return path


def _scalars(work_dir: str) -> list[dict]:
    found = sorted(glob.glob(osp.join(work_dir, "*", "vis_data", "scalars.json")))
    if not found:
        return []
    with open(found[-1], encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def summarize(result: TaskResult, work_dir: str, log: str) -> TaskResult:
    """Speed, memory, losses and final metrics from the run's ``scalars.json``; warnings worth a look."""
    rows = _scalars(work_dir)
    train = [r for r in rows if "loss" in r and "time" in r]
    if train:
        times = [r["time"] for r in train[min(5, len(train) - 1) :]]  # skip the warm-up iterations
        result.s_per_iter = statistics.median(times)
        mems = [r["memory"] for r in train if "memory" in r]
        result.peak_mem_mb = max(mems) if mems else None
        result.losses = (train[0]["loss"], train[-1]["loss"])
    for r in rows:
        if "loss" not in r:
            result.metrics.update({k: v for k, v in r.items() if (isinstance(v, float) and "/" in k) or k == "mIoU"})
    # the messages themselves (the config dump the log starts with names find_unused_parameters too)
    for needle in (
        "Grad strides do not match bucket view strides",  # DDP: a gradient laid out unlike its bucket
        "did not find any unused parameters",  # DDP: find_unused_parameters=True for nothing
        "Expected to have finished reduction",  # DDP: a parameter got no gradient
        "infinite or NaN",  # mmengine: the loss diverged
    ):
        if needle in log:
            result.warnings.append(needle)
    return result


def run_task(run: TaskRun, data: dict[str, str], out_dir: str, dry: bool, timeout: float) -> TaskResult:
    """Train ``run`` in its own process within ``timeout`` seconds; never raises."""
    slug = "".join(c if c.isalnum() else "_" for c in run.name.lower()).strip("_")
    work_dir = osp.join(out_dir, "tasks", slug)
    t0 = time.time()
    try:
        cfg_path = task_config(run, data, work_dir, dry)
    except Exception as e:  # a config that does not build is a result, not a crash of the check
        return TaskResult(run.name, run.task, False, time.time() - t0, f"config: {type(e).__name__}: {e}")
    args = [*run.args, "--from-scratch"]  # no ImageNet weights on the host: the backbones start random
    if run.launcher == "dist":
        cmd = ["bash", osp.join(ROOT, "tools/dist_train.sh"), cfg_path, "1", *args]
    else:
        cmd = [sys.executable, osp.join(ROOT, "tools/train.py"), cfg_path, *args]
    env = dict(os.environ, PYTHON=sys.executable, PYTHONUNBUFFERED="1", PORT=str(29500 + os.getpid() % 1000))
    if dry:
        env["OMP_NUM_THREADS"] = "1"
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, cwd=ROOT)
        log, code = res.stdout + res.stderr, res.returncode
    except subprocess.TimeoutExpired as e:
        log = (e.stdout or b"").decode(errors="replace") + (e.stderr or b"").decode(errors="replace")
        code = None
    with open(work_dir + ".log", "w", encoding="utf-8") as f:
        f.write(log)
    ok = code == 0
    detail = "ok" if ok else "timed out" if code is None else f"exit {code}: {_first_error(log)}"
    return summarize(TaskResult(run.name, run.task, ok, time.time() - t0, detail), work_dir, log)


def _first_error(log: str) -> str:
    """The tool's one-line ``error:``, else the last exception line, else the last line of the log."""
    lines = [ln.strip() for ln in log.splitlines() if ln.strip()]
    for pick in (lambda ln: ln.startswith("error:"), lambda ln: "Error:" in ln.split(" ")[0] or (ln[:1].isupper()
                 and "Error: " in ln)):  # fmt: skip
        found = [ln for ln in lines if pick(ln)]
        if found:
            return found[-1][:300]
    return lines[-1][:300] if lines else "no output"


def to_markdown(results: list[TaskResult]) -> str:
    """One table of all runs, and the segmentation side-by-side as ratios to mmseg's own Twins config."""
    lines = [
        "| task | run | ok | s/iter | peak MB | loss first -> last | final metrics | time (s) |",
        "|---|---|---|---:|---:|---|---|---:|",
    ]
    for r in results:
        loss = f"{r.losses[0]:.3f} -> {r.losses[1]:.3f}" if r.losses else "-"
        shown = {k: v for k, v in r.metrics.items() if k in ("accuracy/top1", "mIoU", "coco/bbox_mAP", "coco/segm_mAP")}
        metrics = ", ".join(f"{k} {v:.3g}" for k, v in shown.items()) or "-"
        ok = "yes" if r.ok else f"**NO** ({r.detail})"
        spi = f"{r.s_per_iter:.3f}" if r.s_per_iter else "-"
        mem = f"{r.peak_mem_mb:.0f}" if r.peak_mem_mb else "-"
        lines.append(f"| {r.task} | {r.name} | {ok} | {spi} | {mem} | {loss} | {metrics} | {r.seconds:.0f} |")
    ref = next((r for r in results if "mmseg's Twins" in r.name and r.s_per_iter), None)
    if ref is not None:
        lines += ["", "Segmentation side by side (ratio to mmseg's own Twins Semantic FPN, same data and batch):", ""]
        lines += ["| run | time / mmseg | peak memory / mmseg |", "|---|---:|---:|"]
        for r in results:
            if r.task == "segmentation" and r.s_per_iter and r is not ref:
                mem = f"{r.peak_mem_mb / ref.peak_mem_mb:.2f}" if r.peak_mem_mb and ref.peak_mem_mb else "-"
                lines.append(f"| {r.name} | {r.s_per_iter / ref.s_per_iter:.2f} | {mem} |")
    return "\n".join(lines)
