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

How the test pipeline is re-sized, and how checkpoints are loaded: see :mod:`cpvt_mm.evaluation.resolutions`
(this file only parses the command line). Models without a position table (CPVT) take any size; models with
one must interpolate it themselves (cpvt_mm's ``abs_pos_embed`` does).
"""

from __future__ import annotations

import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))  # run from a checkout

import cpvt_mm  # noqa: F401  (compat layer and registries before any toolkit import)
from cpvt_mm.apis import TOOL_ERRORS
from cpvt_mm.evaluation import REPORT_NAME, evaluate_models, load_reports, positive_int, write_report


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
        log_root = args.work_dir or osp.join(args.out_dir, "logs")
        models, metric = evaluate_models(pairs, args.sizes, log_root, args.label, args.cfg_options), None
    paths = write_report(models, args.out_dir, args.metric or metric)
    with open(paths["md"]) as f:
        print(f.read(), end="")
    print("[eval_resolutions] wrote " + ", ".join(paths.values()))
    return paths


if __name__ == "__main__":
    try:
        main()
    except TOOL_ERRORS as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)
