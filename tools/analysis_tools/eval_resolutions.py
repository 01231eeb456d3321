"""Accuracy of classification checkpoints at several test sizes, without fine-tuning.

    python tools/analysis_tools/eval_resolutions.py CONFIG CHECKPOINT --sizes 224 288 384 448 512
    python tools/analysis_tools/eval_resolutions.py CFG_A CKPT_A CFG_B CKPT_B --sizes 224 384 --label a b
    python tools/analysis_tools/eval_resolutions.py --merge dir1/resolutions.json dir2/resolutions.json

This is the paper's "test at a larger size" experiment (CPVT Table 2): a model trained at one size is tested
at others with the same weights. Each CONFIG CHECKPOINT pair is evaluated at every size with the config's
own test dataloader and test evaluator; ``--merge`` combines the JSON files of earlier runs (other models,
other machines) into one report. Every run writes ``resolutions.md`` (the table, one row per size, one
column per model), ``resolutions.json`` (the table plus every metric the evaluator reported, enough to
merge later) and ``resolutions.png`` (the headline metric against the size) into ``--out-dir``.

How the test pipeline is re-sized. The config's test pipeline is left as it is except for its geometric
steps, ``Resize``, ``ResizeEdge`` and ``CenterCrop`` (whatever their registry scope). The *native size* is
the output side of the last of them (the crop size, or the resize scale when nothing crops afterwards);
to test at ``size`` every geometric step's size is multiplied by ``size / native`` and rounded. An
ImageNet pipeline ``ResizeEdge(256) -> CenterCrop(224)`` thus becomes ``ResizeEdge(size*256/224) ->
CenterCrop(size)`` (DeiT's and the paper's protocol) and a small-image pipeline ``Resize((28, 28))``
becomes ``Resize((size, size))``. A pipeline without any of these steps is refused rather than guessed
at: add a no-op ``Resize`` at the training size to its test pipeline. Models without a position table
(CPVT) take any size; models with one must interpolate it themselves (cpvt_mm's ``abs_pos_embed`` does).

Checkpoints are loaded by MMEngine's Runner (and so through cpvt_mm's weights-only-safe loader); the loop
per size is what ``Runner.test()`` does (``before_run`` hooks, load once, the config's ``test_cfg`` loop,
``after_run``), with a fresh test dataloader for each size.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import os.path as osp
import re
import sys
from collections.abc import Sequence
from typing import Any

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))  # run from a checkout

import cpvt_mm  # noqa: F401  (compat layer and registries before any toolkit import)
from cpvt_mm.checkpoint import CheckpointError
from cpvt_mm.engine import prepare_distributed

GEOMETRIC_STEPS = ("Resize", "ResizeEdge", "CenterCrop")
REPORT_NAME = "resolutions"


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
    """Evaluate one checkpoint at every size; returns the model's record for the report (see :func:`write_report`)."""
    from mmengine.config import Config
    from mmengine.registry import RUNNERS
    from mmengine.runner import Runner

    if not osp.isfile(checkpoint):
        raise FileNotFoundError(f"eval_resolutions: checkpoint {checkpoint} not found")
    cfg = Config.fromfile(config)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    if cfg.get("test_dataloader") is None or cfg.get("test_evaluator") is None:
        raise ValueError(f"eval_resolutions: {config} needs test_dataloader and test_evaluator")
    pipeline = _dataset_with_pipeline(cfg.test_dataloader.dataset)["pipeline"]
    native = native_size(pipeline)
    cfg.work_dir = work_dir
    cfg.load_from = checkpoint
    cfg.resume = False
    cfg = prepare_distributed(cfg, "none")
    runner = RUNNERS.build(cfg) if "runner_type" in cfg else Runner.from_cfg(cfg)

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


def _table_rows(models: Sequence[dict], metric: str) -> list[dict[str, Any]]:
    """One row per size (the union over models, ascending); a model not tested at a size gets ``None``."""
    sizes = sorted({int(s) for m in models for s in m["results"]})
    return [dict(size=s, values={m["label"]: m["results"].get(str(s), {}).get(metric) for m in models}) for s in sizes]


def _markdown(models: Sequence[dict], metric: str, rows: Sequence[dict]) -> str:
    natives = {m["label"]: m["native_size"] for m in models}
    if len(set(natives.values())) == 1:
        native_note = f"native test size {next(iter(natives.values()))}"
    else:
        native_note = "native test sizes " + ", ".join(f"{k} {v}" for k, v in natives.items())
    labels = [m["label"] for m in models]
    lines = [
        f"`{metric}` at each test size, same weights, no fine-tuning ({native_note}).",
        "",
        "| size | " + " | ".join(labels) + " |",
        "|---:|" + "---:|" * len(labels),
    ]
    for row in rows:
        cells = ["—" if row["values"][lb] is None else f"{row['values'][lb]:.2f}" for lb in labels]
        lines.append(f"| {row['size']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _plot(models: Sequence[dict], metric: str, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")  # files only; never needs a display
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for m in models:
        sizes = sorted(int(s) for s in m["results"])
        values = [m["results"][str(s)].get(metric, float("nan")) for s in sizes]  # nan: a gap in the line
        ax.plot(sizes, values, marker="o", label=m["label"])
    for native in sorted({m["native_size"] for m in models}):
        ax.axvline(native, color="grey", linestyle=":", linewidth=1)
    all_sizes = sorted({int(s) for m in models for s in m["results"]})
    ax.set_xticks(all_sizes)
    ax.set_xlabel("test size (pixels); dotted: native size")
    ax.set_ylabel(metric)
    ax.set_title(f"{metric} vs test size, no fine-tuning")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_report(models: Sequence[dict], out_dir: str, metric: str | None = None) -> dict[str, str]:
    """Write ``resolutions.{json,md,png}`` for ``models`` into ``out_dir``; returns the three paths.

    Each model record is what :func:`evaluate_sizes` returns: ``label``, ``config``, ``checkpoint``,
    ``native_size`` and ``results`` (``{"<size>": {metric: value}}``). ``metric`` defaults to the first
    one the first model's evaluator reported (``accuracy/top1`` for mmpretrain's Accuracy).
    """
    if not models:
        raise ValueError("eval_resolutions: nothing to report")
    labels = [m["label"] for m in models]
    if len(set(labels)) != len(labels):
        raise ValueError(f"eval_resolutions: model labels must be unique, got {labels} (set them with --label)")
    reported = list(dict.fromkeys(k for m in models for r in m["results"].values() for k in r))
    metric = metric or reported[0]
    if metric not in reported:
        raise ValueError(f"eval_resolutions: no model reported {metric!r}; the evaluators reported {reported}")
    rows = _table_rows(models, metric)
    os.makedirs(out_dir, exist_ok=True)
    paths = {ext: osp.join(out_dir, f"{REPORT_NAME}.{ext}") for ext in ("json", "md", "png")}
    with open(paths["json"], "w") as f:
        json.dump(dict(metric=metric, rows=rows, models=list(models)), f, indent=2)
    with open(paths["md"], "w") as f:
        f.write(_markdown(models, metric, rows))
    _plot(models, metric, paths["png"])
    return paths


def load_reports(paths: Sequence[str]) -> tuple[list[dict], str]:
    """The model records of earlier reports, in order, and the first report's headline metric."""
    models: list[dict] = []
    metric = None
    for path in paths:
        with open(path) as f:
            report = json.load(f)
        if "models" not in report or "metric" not in report:
            raise ValueError(f"eval_resolutions: {path} is not a {REPORT_NAME}.json written by this tool")
        models += report["models"]
        metric = metric or report["metric"]
    return models, metric


def positive_int(text: str) -> int:
    """argparse type: a test size must be a whole number of pixels >= 1 (0 ended in a bare AssertionError)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of pixels") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"a test size must be at least 1 pixel, got {value}")
    return value


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    from mmengine.config import DictAction

    p = argparse.ArgumentParser(
        description="Evaluate checkpoints at several test sizes without fine-tuning, or merge earlier results",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("pairs", nargs="*", metavar="CONFIG CHECKPOINT", help="one or more config / checkpoint pairs")
    p.add_argument("--sizes", type=positive_int, nargs="+", help="test sizes (square side in pixels)")
    p.add_argument("--label", nargs="+", help="one name per pair for the table (default: the config's file name)")
    p.add_argument("--merge", nargs="+", metavar="JSON", help=f"combine these {REPORT_NAME}.json files instead")
    p.add_argument("--metric", help="headline metric of the table and plot (default: the evaluator's first)")
    p.add_argument("--out-dir", default="work_dirs/eval_resolutions", help="where the report is written")
    p.add_argument("--work-dir", help="runner logs go to WORK_DIR/LABEL (default: OUT_DIR/logs/LABEL)")
    p.add_argument("--cfg-options", nargs="+", action=DictAction, help="override entries of every config, key=value")
    args = p.parse_args(argv)
    if args.merge:
        if args.pairs or args.sizes or args.label or args.cfg_options:
            p.error("--merge takes only JSON files (and --metric / --out-dir)")
    else:
        if not args.pairs or len(args.pairs) % 2:
            p.error("give CONFIG CHECKPOINT pairs (or --merge JSON ...)")
        if not args.sizes:
            p.error("--sizes is required")
        if args.label and len(args.label) != len(args.pairs) // 2:
            p.error(f"--label needs one name per pair ({len(args.pairs) // 2}), got {len(args.label)}")
    return args


def main(argv: list[str] | None = None) -> dict[str, str]:
    args = parse_args(argv)
    if args.merge:
        models, metric = load_reports(args.merge)
    else:
        pairs = list(zip(args.pairs[::2], args.pairs[1::2]))
        labels = args.label or [osp.splitext(osp.basename(config))[0] for config, _ in pairs]
        models = []
        for (config, checkpoint), label in zip(pairs, labels):
            log_name = re.sub(r"[^\w.-]+", "_", label).strip("_")  # labels are prose; folder names are not
            work_dir = osp.join(args.work_dir or osp.join(args.out_dir, "logs"), log_name)
            models.append(evaluate_sizes(config, checkpoint, args.sizes, work_dir, label, args.cfg_options))
        metric = None
    paths = write_report(models, args.out_dir, args.metric or metric)
    with open(paths["md"]) as f:
        print(f.read(), end="")
    print("[eval_resolutions] wrote " + ", ".join(paths.values()))
    return paths


if __name__ == "__main__":
    try:
        main()
    except (CheckpointError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)
