"""Reports of a resolution sweep: ``resolutions.md`` (one row per size, one column per model), ``.json`` (the
table plus every metric the evaluators reported, enough to merge later) and ``.png`` (the headline metric
against the size). :func:`load_reports` reads earlier JSON reports back, so runs of other models or on other
machines merge into one table (``eval_resolutions.py --merge``).
"""

from __future__ import annotations

import json
import os
import os.path as osp
from collections.abc import Sequence
from typing import Any

__all__ = ["REPORT_NAME", "load_reports", "write_report"]

REPORT_NAME = "resolutions"


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

    Each model record is what :func:`cpvt_mm.evaluation.evaluate_sizes` returns: ``label``, ``config``, ``checkpoint``,
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
