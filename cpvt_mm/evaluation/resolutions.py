"""Testing a classification checkpoint at sizes it was not trained at (the paper's "test at a larger size").

The config's test pipeline is left as it is except for its geometric steps, ``Resize``, ``ResizeEdge`` and
``CenterCrop`` (whatever their registry scope). The *native size* is the output side of the last of them (the
crop size, or the resize scale when nothing crops afterwards); to test at ``size`` every geometric step's size
is multiplied by ``size / native`` and rounded. An ImageNet pipeline ``ResizeEdge(256) -> CenterCrop(224)``
thus becomes ``ResizeEdge(size*256/224) -> CenterCrop(size)`` (DeiT's and the paper's protocol) and a
small-image pipeline ``Resize((28, 28))`` becomes ``Resize((size, size))``. A pipeline without any of these
steps is refused rather than guessed at: add a no-op ``Resize`` at the training size to its test pipeline.

Checkpoints are loaded by MMEngine's Runner (and so through cpvt_mm's weights-only-safe loader); the loop per
size is what ``Runner.test()`` does (``before_run`` hooks, load once, the config's ``test_cfg`` loop,
``after_run``), with a fresh test dataloader for each size. ``tools/analysis_tools/eval_resolutions.py`` is
the command line; :mod:`cpvt_mm.evaluation.report` writes and merges the reports.
"""

from __future__ import annotations

import argparse
import copy
import os.path as osp
import re
from collections.abc import Mapping, Sequence
from typing import Any

from ..engine import build_runner, prepare_checkpoint_runner_config

__all__ = ["GEOMETRIC_STEPS", "evaluate_models", "evaluate_sizes", "native_size", "positive_int", "rescale_pipeline"]

GEOMETRIC_STEPS = ("Resize", "ResizeEdge", "CenterCrop")


def _step_name(step: dict) -> str:
    """``'mmpretrain.ResizeEdge'`` or the class itself (pure-Python configs) -> ``'ResizeEdge'``."""
    t = step.get("type", "")
    return getattr(t, "__name__", str(t)).rsplit(".", 1)[-1]


def _size_key(step: dict) -> str:
    """The argument that carries a geometric step's output size."""
    key = "crop_size" if _step_name(step) == "CenterCrop" else "scale"
    if step.get(key) is None:
        raise ValueError(
            f"eval_resolutions: test pipeline step {step} has no `{key}`; only absolute sizes can be rescaled "
            "(a `scale_factor` resize cannot)"
        )
    return key


def native_size(pipeline: Sequence[dict]) -> int:
    """Side of the square images the unchanged test pipeline produces: the last geometric step's size."""
    steps = [s for s in pipeline if _step_name(s) in GEOMETRIC_STEPS]
    if not steps:
        raise ValueError(
            "eval_resolutions: the test pipeline has no Resize / ResizeEdge / CenterCrop step to re-size, "
            f"got {[_step_name(s) for s in pipeline]}. Add one at the training size (e.g. "
            "dict(type='Resize', scale=(28, 28)) before PackInputs; it is a no-op there)."
        )
    value = steps[-1][_size_key(steps[-1])]
    sides = {int(value)} if isinstance(value, int | float) else {int(v) for v in value}
    if len(sides) != 1:
        raise ValueError(f"eval_resolutions: the test pipeline ends at {value}, not a square size")
    return sides.pop()


def rescale_pipeline(pipeline: Sequence[dict], size: int) -> list[dict]:
    """A copy of ``pipeline`` whose geometric steps are scaled by ``size / native_size(pipeline)``."""
    ratio = size / native_size(pipeline)
    out = []
    for step in pipeline:
        step = copy.deepcopy(dict(step))
        if _step_name(step) in GEOMETRIC_STEPS:
            key = _size_key(step)
            value = step[key]
            if isinstance(value, int | float):
                step[key] = round(value * ratio)
            else:
                step[key] = type(value)(round(v * ratio) for v in value)
        out.append(step)
    return out


def _dataset_with_pipeline(dataset_cfg: dict) -> dict:
    """The dataset config that owns the pipeline (wrappers such as RepeatDataset nest it under ``dataset``)."""
    while "pipeline" not in dataset_cfg and isinstance(dataset_cfg.get("dataset"), dict):
        dataset_cfg = dataset_cfg["dataset"]
    if "pipeline" not in dataset_cfg:
        raise ValueError("eval_resolutions: the config's test_dataloader.dataset has no pipeline")
    return dataset_cfg


def evaluate_sizes(
    config: str,
    checkpoint: str,
    sizes: Sequence[int],
    work_dir: str,
    label: str,
    cfg_options: dict | None = None,
) -> dict[str, Any]:
    """Evaluate one checkpoint at every size; returns the model's record for the report (see
    :func:`cpvt_mm.evaluation.write_report`)."""
    from ..apis.config import load_config
    from ..apis.datasets import validate_datasets
    from ..apis.inference import accelerate_on_cpu

    if not osp.isfile(checkpoint):
        raise FileNotFoundError(f"eval_resolutions: checkpoint {checkpoint} not found")
    cfg = load_config(config, cfg_options)  # syntax errors and misspelt options named in one line
    validate_datasets(cfg, ("test",))  # the same checks as tools/test.py: folders, images, classes, channels
    if cfg.get("test_dataloader") is None or cfg.get("test_evaluator") is None:
        raise ValueError(f"eval_resolutions: {config} needs test_dataloader and test_evaluator")
    pipeline = _dataset_with_pipeline(cfg.test_dataloader.dataset)["pipeline"]
    native = native_size(pipeline)
    cfg = prepare_checkpoint_runner_config(cfg, checkpoint, work_dir)
    runner = build_runner(cfg)
    accelerate_on_cpu(runner.model)  # as tools/test.py does: the oneDNN fusion on CPU, nothing elsewhere

    loop_cfg = dict(cfg.get("test_cfg") or {})
    loop_cfg.setdefault("type", "TestLoop")
    results: dict[str, dict[str, float]] = {}
    runner.call_hook("before_run")
    runner.load_or_resume()
    for size in sizes:
        dataloader = copy.deepcopy(cfg.test_dataloader)
        owner = _dataset_with_pipeline(dataloader.dataset)
        owner["pipeline"] = rescale_pipeline(owner["pipeline"], size)
        loop = runner.build_test_loop(
            dict(loop_cfg, dataloader=dataloader, evaluator=copy.deepcopy(cfg.test_evaluator))
        )
        # numpy / torch scalars (and per-class arrays, if an evaluator reports them) as plain JSON values
        metrics = {k: v.tolist() if hasattr(v, "tolist") else v for k, v in loop.run().items()}
        results[str(size)] = metrics
        shown = ", ".join(f"{k} {v:.2f}" for k, v in metrics.items() if isinstance(v, int | float))
        print(f"[eval_resolutions] {label} @ {size}: {shown}")
    runner.call_hook("after_run")
    return dict(label=label, config=config, checkpoint=checkpoint, native_size=native, results=results)


def evaluate_models(
    pairs: Sequence[tuple[str, str]],
    sizes: Sequence[int],
    log_root: str,
    labels: Sequence[str] | None = None,
    cfg_options: Mapping[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """:func:`evaluate_sizes` for each (config, checkpoint) pair; runner logs go to ``log_root/<label>``.

    ``labels`` name the models in the report (default: the config's file name).
    """
    labels = labels or [osp.splitext(osp.basename(config))[0] for config, _ in pairs]
    models = []
    for (config, checkpoint), label in zip(pairs, labels):
        log_name = re.sub(r"[^\w.-]+", "_", label).strip("_")  # labels are prose; folder names are not
        work_dir = osp.join(log_root, log_name)
        models.append(evaluate_sizes(config, checkpoint, sizes, work_dir, label, cfg_options))
    return models


def positive_int(text: str) -> int:
    """argparse type: a test size must be a whole number of pixels >= 1 (0 ended in a bare AssertionError)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of pixels") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"a test size must be at least 1 pixel, got {value}")
    return value
