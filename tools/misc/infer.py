"""Run a model on one image and write a picture of its prediction, for any of the three toolkits.

python tools/misc/infer.py CONFIG CHECKPOINT IMAGE --out OUT.png [--score-thr 0.3] [--device cpu]
    [--cfg-options model.test_cfg.max_per_img=300 ...]

The config's ``default_scope`` says which toolkit it belongs to (mmdet: boxes / masks above ``--score-thr``;
mmseg: the class map over the image; mmpretrain: class name and score), and that toolkit's own inference API
and visualiser draw. Images of any size go in as they are; segmentation of a large photo stays within bounded
memory. ``--cfg-options`` overrides config entries exactly as in ``tools/train.py`` / ``tools/test.py`` (a
misspelt top-level key is refused). A checkpoint that leaves any parameter of the model unset is refused. The
PNG is written atomically, so a crash never leaves a truncated picture behind. What runs:
:mod:`cpvt_mm.apis.visualize`; this file only parses the command line.
"""

from __future__ import annotations

import argparse
import os.path as osp
import sys
import warnings

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))  # run from a checkout

import cpvt_mm  # noqa: F401  (compat layer and registries before any toolkit import)
from cpvt_mm.apis import TOOL_ERRORS, UninitializedWeightsError
from cpvt_mm.apis.visualize import InferenceInputError, InferenceInputWarning, infer_and_draw


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    from mmengine.config import DictAction

    p = argparse.ArgumentParser(description="Draw a model's prediction on one image (mmdet, mmseg or mmpretrain)")
    p.add_argument("config", help="config file of any of the three toolkits")
    p.add_argument("checkpoint", help="trained weights (an mmengine checkpoint)")
    p.add_argument("image", help="input image")
    p.add_argument("--out", required=True, help="where to write the PNG")
    p.add_argument("--score-thr", type=float, default=0.3, help="detection: hide boxes below this score")
    p.add_argument("--device", help="torch device (default: cuda:0 when available, else cpu)")
    p.add_argument("--compile", action="store_true", help="torch.compile the backbone (pays off for many images)")
    p.add_argument("--cfg-options", nargs="+", action=DictAction, help="override config entries, key=value")
    return p.parse_args(argv)


def _one_line_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Input warnings as ``warning: ...`` lines, like the errors; others as Python prints them."""
    if issubclass(category, InferenceInputWarning):
        print(f"warning: {message}", file=sys.stderr)
    else:
        sys.stderr.write(warnings.formatwarning(message, category, filename, lineno, line))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    warnings.showwarning = _one_line_warning
    try:
        scope, drawn = infer_and_draw(
            args.config, args.checkpoint, args.image, args.out, args.score_thr, args.device, args.cfg_options,
            args.compile,
        )  # fmt: skip
    except (*TOOL_ERRORS, InferenceInputError, UninitializedWeightsError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"wrote {args.out} ({scope} prediction, {drawn.shape[1]}x{drawn.shape[0]})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
