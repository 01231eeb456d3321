"""The paper's claims re-measured on Fashion-MNIST (``make experiments``): seeds, learning curves, both
resolution protocols, PEG placement, a position probe and attention maps.

Every run is one config of ``configs/classification/experiments/`` and one seed, and goes through the
library's own functions, the ones the command lines under ``tools/`` call:

1. :func:`cpvt_mm.apis.train` (resuming: an interrupted run continues from its last epoch), with a validation
   pass after each epoch at the training size: the learning curve;
2. :func:`cpvt_mm.evaluation.evaluate_sizes` at the protocol's test sizes, with the final weights;
3. :func:`.position_probe.probe_checkpoint`: the linear position read-out after block 0;
4. for models with a PEG, :func:`~cpvt_mm.evaluation.evaluate_sizes` once more at the largest size with the
   PEGs dilated by the enlargement (the config field ``model.backbone.peg_dilation``; a run finished before
   this step existed gets it on the next rerun).

A run is finished when its ``result.json`` exists (written last, atomically): a rerun skips it, so an
interrupted suite resumes where it stopped. Runs are spread over ``jobs`` worker processes with one thread
each (two on a 2-core CPU); each run's output goes to its ``run.log``. When all runs are finished the report
is built: mean +- std over seeds per variant and size, paired differences between variants (same seed), the
curves, probe scores and an attention-map panel (PEG / table / none on the same test images), in
``<work_dir>/report.md`` and PNGs.
"""

from __future__ import annotations

import glob
import json
import multiprocessing
import os
import os.path as osp
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from statistics import mean, stdev
from typing import Any

from cpvt_mm.datasets.fashion_mnist import check_fashion_mnist
from cpvt_mm.fileio import atomic_write_bytes, atomic_write_text

from .steps import logged_step

__all__ = ["PROTOCOLS", "QUICK_OPTIONS", "VARIANTS", "Run", "build_report", "plan_runs", "run_experiments"]

# the checkout (projects/cpvt_experiments/cpvt_experiments/ -> the root): configs/
ROOT = osp.dirname(osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
CONFIG_DIR = osp.join("configs", "classification", "experiments")


# ``--quick``: the whole pipeline on a few hundred images and two short epochs (tests, trying things out).
# Without dataset serialisation, which exists to share a dataset with loader workers (the runs have none) and
# costs a full garbage collection per dataset: ~0.3 s each in a process holding the toolkits, a third of a
# quick run (about ten datasets: train, validation, five test sizes, the dilated test); nothing else changes.
QUICK_OPTIONS: dict[str, Any] = {
    "train_dataloader.dataset.indices": 256,
    "train_dataloader.batch_size": 64,
    "val_dataloader.dataset.indices": 100,
    "test_dataloader.dataset.indices": 100,
    "train_cfg.max_epochs": 2,
    "param_scheduler.0.end": 2,
    "param_scheduler.1.begin": 2,
    **{f"{split}_dataloader.dataset.serialize_data": False for split in ("train", "val", "test")},
}


@dataclass(frozen=True)
class Protocol:
    key: str
    title: str
    train_size: int
    sizes: tuple[int, ...]
    # The PEG models are tested once more at the largest size with their PEGs dilated by the enlargement,
    # rounded to an integer (2 for 56/28 and for 28/16 = 1.75): the PEG seeing the scale it was trained on.
    dilation: int = 2


PROTOCOLS = {
    "native28": Protocol("native28", "(a) trained at 28 px, tested on enlarged images", 28, (20, 28, 36, 44, 56)),
    "down16": Protocol(
        "down16", "(b) trained at 16 px (downsampled), tested up to the native 28 px", 16, (12, 16, 20, 24, 28)
    ),
}
NO_PEG = ("none", "table")  # the variants without a PEG (nothing to dilate)
# (protocol, variant key, label); the config is fmnist-<protocol>-<variant>.py
VARIANTS: tuple[tuple[str, str, str], ...] = (
    ("native28", "none", "none"),
    ("native28", "table", "learned table"),
    ("native28", "peg", "PEG after block 0"),
    ("native28", "peg-embed", "PEG before block 0"),
    ("native28", "peg-x3", "PEGs after blocks 0-2"),
    ("native28", "peg-cls", "PEG + class token"),
    ("native28", "peg-circ", "PEG, circular padding"),
    ("down16", "none", "none"),
    ("down16", "table", "learned table"),
    ("down16", "peg", "PEG after block 0"),
)
# The paired comparisons the report makes (claim, protocol, better?, worse?): "is A better than B, seed by seed".
COMPARISONS = (
    ("1", "native28", "peg", "none"),
    ("1", "native28", "table", "none"),
    ("1, 2", "native28", "peg", "table"),
    ("1", "down16", "peg", "none"),
    ("1", "down16", "table", "none"),
    ("1, 2", "down16", "peg", "table"),
    ("3", "native28", "peg", "peg-embed"),
    ("3", "native28", "peg-x3", "peg"),
    ("3", "native28", "peg", "peg-cls"),
    ("4", "native28", "peg", "peg-circ"),
    ("4", "native28", "peg-circ", "none"),
)


@dataclass(frozen=True)
class Run:
    protocol: str
    variant: str
    label: str
    seed: int

    @property
    def config(self) -> str:
        return osp.join(ROOT, CONFIG_DIR, f"fmnist-{self.protocol}-{self.variant}.py")

    @property
    def name(self) -> str:
        return f"{self.protocol}-{self.variant}/seed{self.seed}"


def plan_runs(seeds: Sequence[int], variants: Sequence[str] | None = None) -> list[Run]:
    """All (variant, seed) runs; ``variants`` filters by ``'<protocol>-<variant>'`` names."""
    known = [f"{p}-{v}" for p, v, _ in VARIANTS]
    if variants:
        unknown = sorted(set(variants) - set(known))
        if unknown:
            raise ValueError(f"unknown variant(s) {unknown}; choose from {known}")
    chosen = [t for t in VARIANTS if not variants or f"{t[0]}-{t[1]}" in variants]
    # seed-major order: an interrupted suite has whole seeds of every variant rather than all seeds of a few
    return [Run(p, v, label, s) for s in seeds for p, v, label in chosen]


def _learning_curve(run_dir: str) -> list[float]:
    """Validation top-1 after each epoch, from MMEngine's scalars files (several after a resume)."""
    by_epoch: dict[int, float] = {}
    for path in sorted(glob.glob(osp.join(run_dir, "*", "vis_data", "scalars.json"))):
        with open(path) as f:
            for line in f:
                entry = json.loads(line)
                if "accuracy/top1" in entry:
                    by_epoch[int(entry["step"])] = float(entry["accuracy/top1"])
    return [by_epoch[e] for e in sorted(by_epoch)]


def load_result(path: str) -> dict[str, Any]:
    """A finished run's ``result.json``, with the test sizes as integers again (JSON keys are strings)."""
    with open(path) as f:
        result = json.load(f)
    result["accuracy"] = {int(k): v for k, v in result["accuracy"].items()}
    return result


def _needs_work(result_path: str, run: Run) -> bool:
    """Not finished, or finished before the dilated test existed."""
    if not osp.isfile(result_path):
        return True
    return run.variant not in NO_PEG and "dilated" not in load_result(result_path)


def execute_run(run: Run, work_dir: str, data_root: str, extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Train, test at every size and probe one run; returns (and writes) its ``result.json``.

    ``extra``: config overrides (``key.sub: value``) for every step, e.g. :data:`QUICK_OPTIONS`.
    """
    from cpvt_mm.apis import prepare_train_config, train

    from .position_probe import probe_checkpoint

    run_dir = osp.join(work_dir, run.name)
    result_path = osp.join(run_dir, "result.json")
    data = {f"{k}.dataset.data_root": data_root for k in ("train_dataloader", "val_dataloader", "test_dataloader")}
    extra = dict(extra or {})
    log = osp.join(run_dir, "run.log")
    if osp.isfile(result_path):
        result = load_result(result_path)
        if run.variant not in NO_PEG and "dilated" not in result:  # finished before the dilated test existed
            checkpoint = osp.join(run_dir, result["checkpoint"])
            with logged_step(log):
                result["dilated"] = _dilated_test(run, checkpoint, run_dir, {**data, **extra})
            atomic_write_text(result_path, json.dumps(result, indent=1) + "\n")
        return result
    os.makedirs(run_dir, exist_ok=True)
    start = time.monotonic()
    options = {"randomness.seed": run.seed, **data, **extra}
    with logged_step(log):
        print(f"\n# train {run.config} in {run_dir} (resuming), options {options}", flush=True)
        train(prepare_train_config(run.config, work_dir=run_dir, resume="auto", cfg_options=options), auto_resume=True)
    with open(osp.join(run_dir, "last_checkpoint")) as f:
        checkpoint = f.read().strip()
    sizes = PROTOCOLS[run.protocol].sizes
    with logged_step(log):
        accuracy = _evaluate(run, checkpoint, sizes, run.label, osp.join(run_dir, "resolutions"), {**data, **extra})
        print(f"\n# position probe of {checkpoint}", flush=True)
        probe = probe_checkpoint(run.config, checkpoint, osp.join(run_dir, "probe.json"), data)
    result = dict(
        run=run.name,
        protocol=run.protocol,
        variant=run.variant,
        label=run.label,
        seed=run.seed,
        checkpoint=osp.relpath(checkpoint, run_dir),
        accuracy=accuracy,
        curve=_learning_curve(run_dir),
        probe=probe,
    )
    if run.variant not in NO_PEG:
        with logged_step(log):
            result["dilated"] = _dilated_test(run, checkpoint, run_dir, {**data, **extra})
    result["wall_s"] = round(time.monotonic() - start, 1)
    atomic_write_text(result_path, json.dumps(result, indent=1) + "\n")
    return result


def _evaluate(
    run: Run, checkpoint: str, sizes: Sequence[int], label: str, out_dir: str, options: Mapping[str, Any]
) -> dict[int, float]:
    """:func:`cpvt_mm.evaluation.evaluate_sizes` on one checkpoint, its report in ``out_dir``; top-1 by size."""
    from cpvt_mm.evaluation import evaluate_sizes, write_report

    print(f"\n# test {checkpoint} at {list(sizes)}, options {dict(options)}", flush=True)
    model = evaluate_sizes(run.config, checkpoint, sizes, osp.join(out_dir, "logs"), label, dict(options))
    write_report([model], out_dir)
    return {int(s): float(v["accuracy/top1"]) for s, v in model["results"].items()}


def _dilated_test(run: Run, checkpoint: str, run_dir: str, options: Mapping[str, Any]) -> dict[str, Any]:
    """Top-1 at the protocol's largest size with every PEG dilated (config field ``model.backbone.peg_dilation``)."""
    proto = PROTOCOLS[run.protocol]
    size, d = proto.sizes[-1], proto.dilation
    options = {"model.backbone.peg_dilation": d, **options}
    out_dir = osp.join(run_dir, f"resolutions-dilated{d}")
    accuracy = _evaluate(run, checkpoint, [size], f"{run.label}, dilated {d}", out_dir, options)
    return dict(dilation=d, size=size, accuracy=accuracy[size])


def _one_thread() -> None:
    """A worker's initializer: one thread per run (``jobs`` runs share the cores)."""
    import torch

    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = "1"
    torch.set_num_threads(1)


def _timed_run(run: Run, work_dir: str, data_root: str, extra: Mapping[str, Any]) -> tuple[dict[str, Any], float]:
    t = time.monotonic()
    return execute_run(run, work_dir, data_root, extra), time.monotonic() - t


def run_experiments(
    data_root: str,
    work_dir: str,
    seeds: Sequence[int] = (0, 1, 2),
    jobs: int = 2,
    variants: Sequence[str] | None = None,
    extra: Mapping[str, Any] | None = None,
    figures: bool = True,
) -> str:
    """Run (or resume) the whole suite and write the report; returns the report's path.

    Unfinished runs go to ``jobs`` worker processes (spawned, one thread each); finished ones are read here.
    """
    data_root = osp.abspath(data_root)
    work_dir = osp.abspath(work_dir)
    extra = dict(extra or {})
    check_fashion_mnist(data_root)
    runs = plan_runs(seeds, variants)
    done = sum(osp.isfile(osp.join(work_dir, r.name, "result.json")) for r in runs)
    print(f"[experiments] {len(runs)} runs ({done} already finished), {jobs} at a time, in {work_dir}", flush=True)
    start = time.monotonic()

    def report(run: Run, result: dict[str, Any], seconds: float) -> None:
        acc = result["accuracy"][PROTOCOLS[run.protocol].train_size]
        print(
            f"[experiments] {run.name}: top-1 {acc:.2f} at the training size "
            f"({seconds:.0f} s; {time.monotonic() - start:.0f} s since start)",
            flush=True,
        )

    results: dict[str, dict[str, Any]] = {}
    todo = [r for r in runs if _needs_work(osp.join(work_dir, r.name, "result.json"), r)]
    for run in runs:
        if run not in todo:
            results[run.name], seconds = _timed_run(run, work_dir, data_root, extra)
            report(run, results[run.name], seconds)
    if todo:
        context = multiprocessing.get_context("spawn")  # a fresh interpreter per worker, not a fork of this one
        with ProcessPoolExecutor(max(1, jobs), mp_context=context, initializer=_one_thread) as pool:
            futures = {pool.submit(_timed_run, run, work_dir, data_root, extra): run for run in todo}
            for future in as_completed(futures):
                run = futures[future]
                try:
                    results[run.name], seconds = future.result()
                except Exception as e:
                    log = osp.join(work_dir, run.name, "run.log")
                    raise RuntimeError(f"run {run.name} failed ({type(e).__name__}: {e}); see {log}") from e
                report(run, results[run.name], seconds)
    wall = time.monotonic() - start
    report_path = build_report([results[r.name] for r in runs], work_dir, data_root, panel=figures)
    print(f"[experiments] done in {wall / 60:.1f} min: {report_path}", flush=True)
    return report_path


def _ms(values: Sequence[float]) -> str:
    """``mean ± std`` (std over seeds; '–' with a single seed)."""
    if len(values) == 1:
        return f"{values[0]:.2f}"
    return f"{mean(values):.2f} ± {stdev(values):.2f}"


def _group(results: Sequence[dict]) -> dict[tuple[str, str], list[dict]]:
    """Runs by (protocol, variant), in the order of :data:`VARIANTS`, each group by seed."""
    order = {(p, v): i for i, (p, v, _) in enumerate(VARIANTS)}
    groups: dict[tuple[str, str], list[dict]] = {}
    for r in sorted(results, key=lambda r: (order[(r["protocol"], r["variant"])], r["seed"])):
        groups.setdefault((r["protocol"], r["variant"]), []).append(r)
    return groups


def build_report(results: Sequence[dict], work_dir: str, data_root: str | None = None, panel: bool = True) -> str:
    """``report.md``, ``summary.json``, ``accuracy_vs_size.png`` and ``curves.png`` in ``work_dir``; given
    ``data_root``, also the attention statistics and (with ``panel``) ``attention.png``. Returns the
    markdown's path."""
    groups = _group(results)
    labels = {(p, v): label for p, v, label in VARIANTS}
    seeds = sorted({r["seed"] for r in results})
    lines = [f"Fashion-MNIST; seeds {seeds}; mean ± std over seeds (sample std); last checkpoint of each run.", ""]
    summary: dict[str, Any] = {"seeds": seeds, "protocols": {}, "comparisons": [], "probe": {}}
    for key, proto in PROTOCOLS.items():
        present = [(v, rs) for (p, v), rs in groups.items() if p == key]
        if not present:
            continue
        lines += [f"### {proto.title}", "", "Top-1 (%) at each test size; **bold** size: the training size.", ""]
        head = " | ".join(f"**{s}**" if s == proto.train_size else str(s) for s in proto.sizes)
        lines += [
            f"| variant | {head} | drop {proto.train_size}→{proto.sizes[-1]} |",
            "|---|" + "---:|" * (len(proto.sizes) + 1),
        ]
        table = {}
        for v, rs in present:
            cells = [_ms([r["accuracy"][s] for r in rs]) for s in proto.sizes]
            drop = [r["accuracy"][proto.train_size] - r["accuracy"][proto.sizes[-1]] for r in rs]
            lines.append(f"| {labels[(key, v)]} | " + " | ".join(cells) + f" | {_ms(drop)} |")
            table[v] = {s: [r["accuracy"][s] for r in rs] for s in proto.sizes}
        summary["protocols"][key] = table
        lines.append("")
    lines += ["### Paired differences (same seed; percentage points; positive: A better)", ""]
    lines += [
        "| claim | protocol | A − B | at the training size | at the largest test size | drop A − drop B |",
        "|---|---|---|---:|---:|---:|",
    ]
    for claim, proto, a, b in COMPARISONS:
        if (proto, a) not in groups or (proto, b) not in groups:
            continue
        ra = {r["seed"]: r for r in groups[(proto, a)]}
        rb = {r["seed"]: r for r in groups[(proto, b)]}
        common = sorted(set(ra) & set(rb))
        train, last = PROTOCOLS[proto].train_size, PROTOCOLS[proto].sizes[-1]
        at_train = [ra[k]["accuracy"][train] - rb[k]["accuracy"][train] for k in common]
        at_last = [ra[k]["accuracy"][last] - rb[k]["accuracy"][last] for k in common]
        # how much more A loses from the training size to the largest size than B does (negative: A holds up better)
        drop = [t - la for t, la in zip(at_train, at_last)]
        summary["comparisons"].append(
            dict(claim=claim, protocol=proto, a=a, b=b, seeds=common, at_train=at_train, at_last=at_last, drop=drop)
        )
        cells = (_ms(at_train), _ms(at_last), _ms(drop))
        lines.append(f"| {claim} | {proto} | {labels[(proto, a)]} − {labels[(proto, b)]} | " + " | ".join(cells) + " |")
    lines += _dilated_lines(groups, labels, summary)
    lines += ["", "### Learning curves (validation top-1 after each epoch, first 5000 test images)", ""]
    lines += [
        "| protocol | variant | " + " | ".join(f"ep {i + 1}" for i in range(_max_epochs(results))) + " | last gain |"
    ]
    lines += ["|---|---|" + "---:|" * (_max_epochs(results) + 1)]
    for (p, v), rs in groups.items():
        n = min(len(r["curve"]) for r in rs)
        cells = [_ms([r["curve"][i] for r in rs]) for i in range(n)]
        gain = _ms([r["curve"][n - 1] - r["curve"][n - 2] for r in rs]) if n > 1 else "—"
        lines.append(f"| {p} | {labels[(p, v)]} | " + " | ".join(cells) + f" | {gain} |")
    lines += ["", "### Position probe (linear read-out of each token's (row, col) after block 0; test tokens)", ""]
    lines += ["| protocol | variant | row % | col % | exact % | border exact % | interior exact % | chance exact % |"]
    lines += ["|---|---|---:|---:|---:|---:|---:|---:|"]
    for (p, v), rs in groups.items():
        keys = ("row", "col", "exact", "exact_border", "exact_interior")
        cells = [_ms([r["probe"][k] for r in rs]) for k in keys]
        summary["probe"][f"{p}-{v}"] = {k: [r["probe"][k] for r in rs] for k in keys}
        lines.append(f"| {p} | {labels[(p, v)]} | " + " | ".join(cells) + f" | {rs[0]['probe']['chance_exact']} |")
    if data_root is not None:
        attention_lines, summary["attention"] = _attention_statistics(groups, labels, work_dir, data_root)
        lines += attention_lines
    wall = sum(r["wall_s"] for r in results)
    lines += ["", f"Sum of run times {wall / 60:.1f} min ({len(results)} runs)."]
    figures = [_plot_accuracy(groups, labels, work_dir), _plot_curves(groups, labels, work_dir)]
    if data_root is not None and panel:
        figures.append(_attention_panel(groups, work_dir, data_root))
    lines += ["", "Figures: " + ", ".join(osp.basename(f) for f in figures if f)]
    report = osp.join(work_dir, "report.md")
    atomic_write_text(report, "\n".join(lines) + "\n")
    atomic_write_text(osp.join(work_dir, "summary.json"), json.dumps(summary, indent=1) + "\n")
    return report


def _dilated_lines(groups: dict, labels: dict, summary: dict) -> list[str]:
    """The PEG models at the largest size, as trained and with dilated PEGs, beside the resized table."""
    lines = [
        "",
        "### The PEG at the training scale: largest test size, PEGs dilated by the enlargement (no retraining)",
        "",
        "| protocol | variant | size | as trained | dilated | drop (dilated) | drop − the table's drop, paired |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    summary["dilated"] = {}
    for (p, v), rs in groups.items():
        rs = [r for r in rs if "dilated" in r]
        if v in NO_PEG or not rs:
            continue
        proto = PROTOCOLS[p]
        size, train = proto.sizes[-1], proto.train_size
        dilated = [r["dilated"]["accuracy"] for r in rs]
        drop = [r["accuracy"][train] - r["dilated"]["accuracy"] for r in rs]
        table = {r["seed"]: r for r in groups.get((p, "table"), [])}
        extra = [d - (table[r["seed"]]["accuracy"][train] - table[r["seed"]]["accuracy"][size])
                 for r, d in zip(rs, drop) if r["seed"] in table]  # fmt: skip
        summary["dilated"][f"{p}-{v}"] = dict(dilation=rs[0]["dilated"]["dilation"], size=size, accuracy=dilated)
        cells = [_ms([r["accuracy"][size] for r in rs]), _ms(dilated), _ms(drop), _ms(extra) if extra else "—"]
        lines.append(
            f"| {p} | {labels[(p, v)]} (x{rs[0]['dilated']['dilation']}) | {size} | " + " | ".join(cells) + " |"
        )
    return lines


def _max_epochs(results: Sequence[dict]) -> int:
    return max((len(r["curve"]) for r in results), default=0)


def _savefig(fig: Any, path: str) -> str:
    import io

    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())
    return path


def _errorbar_panels(
    groups: dict, labels: dict, path: str, series: Any, title: str, xlabel: str, ylabel: str, mark_train: bool
) -> str:
    """One panel per protocol, one line per variant: mean over seeds with the seeds' std as error bars.

    ``series(protocol, runs)`` gives the x values and, per x, the list of the seeds' y values.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    present = [k for k in PROTOCOLS if any(p == k for p, _ in groups)]
    fig, axes = plt.subplots(1, len(present), figsize=(6.2 * len(present), 4.2), squeeze=False)
    for ax, key in zip(axes[0], present):
        for (p, v), rs in groups.items():
            if p == key:
                xs, ys = series(PROTOCOLS[key], rs)
                err = [stdev(y) if len(y) > 1 else 0.0 for y in ys]
                ax.errorbar(xs, [mean(y) for y in ys], yerr=err, marker="o", capsize=3, label=labels[(p, v)])
        if mark_train:
            ax.axvline(PROTOCOLS[key].train_size, color="grey", linestyle=":", linewidth=1)
            ax.set_xticks(PROTOCOLS[key].sizes)
        ax.set_title(f"{PROTOCOLS[key].title}{title}", fontsize=9)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    return _savefig(fig, path)


def _plot_accuracy(groups: dict, labels: dict, work_dir: str) -> str:
    def by_size(proto: Protocol, rs: list[dict]) -> tuple[list, list]:
        return list(proto.sizes), [[r["accuracy"][s] for r in rs] for s in proto.sizes]

    path = osp.join(work_dir, "accuracy_vs_size.png")
    xlabel, ylabel = "test size (px); dotted: training size", "top-1 (%), mean ± std over seeds"
    return _errorbar_panels(groups, labels, path, by_size, "", xlabel, ylabel, mark_train=True)


def _plot_curves(groups: dict, labels: dict, work_dir: str) -> str:
    def by_epoch(proto: Protocol, rs: list[dict]) -> tuple[list, list]:
        n = min(len(r["curve"]) for r in rs)
        return list(range(1, n + 1)), [[r["curve"][i] for r in rs] for i in range(n)]

    path = osp.join(work_dir, "curves.png")
    return _errorbar_panels(
        groups, labels, path, by_epoch, ": learning curves", "epoch", "validation top-1 (%)", mark_train=False
    )


def _attention_panel(groups: dict, work_dir: str, data_root: str) -> str | None:
    """PEG / table / none (protocol (a), lowest seed) on the same three test images, blocks 1 and 3."""
    from cpvt_mm.analysis.attention_maps import attention_figure, load_model
    from cpvt_mm.datasets.fashion_mnist import read_idx_images

    models = []
    for v in ("peg", "table", "none"):
        rs = sorted(groups.get(("native28", v), []), key=lambda r: r["seed"])
        if not rs:
            return None
        run_dir = osp.join(work_dir, rs[0]["run"])
        config = osp.join(ROOT, CONFIG_DIR, f"fmnist-native28-{v}.py")
        models.append((rs[0]["label"], load_model(config, osp.join(run_dir, rs[0]["checkpoint"]))))
    images = [im[0].numpy() for im in read_idx_images(data_root, "test", 3)]
    return attention_figure(
        models,
        images,
        osp.join(work_dir, "attention.png"),
        queries=((0.5, 0.5), (0.0, 0.0)),
        layers=(1, -1),  # block 1: the first attention that sees the PEG's output (the PEG follows block 0)
        title="Attention of a centre and a corner query token (mean over heads), blocks 1 and 3",
    )


# The pairs whose attention maps the report compares: (A, B) of the same seed, and each with itself across seeds.
ATTENTION_PAIRS = (("peg", "table"), ("peg", "none"), ("table", "none"))
ATTENTION_IMAGES = 500


def _attention_statistics(groups: dict, labels: dict, work_dir: str, data_root: str) -> tuple[list[str], dict]:
    """Claim 4's attention part, measured: how local each model's attention is and how much PEG, table and
    no-position models share, on the first test images at the training size (head mean, patch tokens).

    Independently trained models need not put the same block to the same use, so the overlap of A and B is
    read against the overlap of A with itself across seeds (its own spread), and a model with no position
    encoding against both.
    """
    import torch

    from cpvt_mm.analysis.attention_maps import load_model
    from cpvt_mm.datasets.fashion_mnist import idx_image_count, read_idx_images

    from .attention_stats import (
        attention_matrices,
        attention_overlap,
        mean_attention_distance,
        uniform_attention_distance,
    )

    count = min(ATTENTION_IMAGES, idx_image_count(data_root, "test"))
    distance: dict[str, dict] = {}
    overlap: dict[str, dict] = {}
    dist_rows, overlap_rows, depth = [], [], 0
    for key, proto in PROTOCOLS.items():
        present = [(v, rs) for (p, v), rs in groups.items() if p == key]
        if not present:
            continue
        images = list(read_idx_images(data_root, "test", count, size=proto.train_size))
        hw = None
        maps: dict[tuple[str, int], list] = {}  # (variant, seed) -> per block (images, N, N)
        for v, rs in present:
            per_block: list[list[float]] = []
            for r in rs:
                config = osp.join(ROOT, CONFIG_DIR, f"fmnist-{key}-{v}.py")
                model = load_model(config, osp.join(work_dir, r["run"], r["checkpoint"]))
                with torch.no_grad():
                    blocks = attention_matrices(model, model.data_preprocessor(dict(inputs=images), False)["inputs"])
                hw = blocks[0][1]
                for b, (m, grid) in enumerate(blocks):
                    if len(per_block) <= b:
                        per_block.append([])
                    per_block[b].append(float(mean_attention_distance(m, grid).mean()))
                if v in {a for pair in ATTENTION_PAIRS for a in pair}:
                    maps[(v, r["seed"])] = [m for m, _ in blocks]
            depth = max(depth, len(per_block))
            distance[f"{key}-{v}"] = per_block
            dist_rows.append(f"| {key} | {labels[(key, v)]} | " + " | ".join(_ms(d) for d in per_block) + " |")
        uniform = f"{uniform_attention_distance(hw):.2f}"
        dist_rows.append(f"| {key} | uniform attention | " + " | ".join([uniform] * depth) + " |")
        seeds = sorted({s for _, s in maps})
        pairs = [(a, b, [(s, s) for s in seeds]) for a, b in ATTENTION_PAIRS]
        pairs += [(a, a, list(zip(seeds, seeds[1:] + seeds[:1]))) for a in ("peg", "table", "none")]
        for a, b, seed_pairs in pairs:
            seed_pairs = [(s, t) for s, t in seed_pairs if (a, s) in maps and (b, t) in maps and (a, s) != (b, t)]
            if not seed_pairs:
                continue
            per_block = [
                [float(attention_overlap(maps[(a, s)][i], maps[(b, t)][i]).mean()) for s, t in seed_pairs]
                for i in range(len(maps[(a, seed_pairs[0][0])]))
            ]
            name = f"{labels[(key, a)]} − {labels[(key, b)]}" if a != b else f"{labels[(key, a)]}, seed to seed"
            overlap[f"{key}: {a} vs {b}"] = per_block
            overlap_rows.append(f"| {key} | {name} | " + " | ".join(_ms(o) for o in per_block) + " |")
    blocks_head = " | ".join(f"block {i}" for i in range(depth))
    lines = [
        "",
        f"### Attention (first {count} test images at the training size; mean over heads; patch tokens)",
        "",
        "Mean attention distance (tokens; how far a query looks, attention-weighted):",
        "",
        f"| protocol | variant | {blocks_head} |",
        "|---|---|" + "---:|" * depth,
        *dist_rows,
        "",
        "Overlap (attention mass two models share, 1 = identical maps; same seed, or the next seed of the same "
        "variant):",
        "",
        f"| protocol | pair | {blocks_head} |",
        "|---|---|" + "---:|" * depth,
        *overlap_rows,
    ]
    return lines, {"images": count, "distance": distance, "overlap": overlap}
