"""Run a model on one image and write a picture of its prediction, for any of the three toolkits.

python tools/misc/infer.py CONFIG CHECKPOINT IMAGE --out OUT.png [--score-thr 0.3] [--device cpu]
    [--cfg-options model.test_cfg.max_per_img=300 ...]

The config's ``default_scope`` says which toolkit it belongs to, and the tool uses that toolkit's own inference
API and visualiser, so what it draws is what the toolkit would draw:

* ``mmdet``: ``init_detector`` / ``inference_detector``; boxes, labels and scores (and masks for instance
  segmentation) above ``--score-thr``, in the original image's coordinates.
* ``mmseg``: ``init_model`` / ``inference_model``; the class map blended over the image.
* ``mmpretrain``: ``ImageClassificationInferencer``; the predicted class name and score written on the image.

Images of any size go in as they are: the test pipeline of the config resizes them as in evaluation, and the
cpvt_mm backbones need no particular multiple. Segmentation logits are resized to the image's size in
stripes, so a 4000x6000 photo with 150 classes does not need the 14.4 GB of full-resolution logits
(:func:`cpvt_mm.apis.use_bounded_seg_postprocess`). ``--cfg-options`` overrides config entries exactly as in
``tools/train.py`` / ``tools/test.py`` (a misspelt top-level key is refused). A checkpoint that leaves any
parameter of the model unset (another task's, or another number of classes) is refused, as the model would
draw predictions of a random head. The PNG is written atomically (a temporary file renamed into
place), so a crash never leaves a truncated picture behind.
"""

from __future__ import annotations

import argparse
import os.path as osp
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))  # run from a checkout

import numpy as np

import cpvt_mm  # noqa: F401  (compat layer and registries before any toolkit import)
from cpvt_mm.apis import (
    ConfigOptionError,
    UninitializedWeightsError,
    check_checkpoint_covers_model,
    load_config,
    use_bounded_seg_postprocess,
)
from cpvt_mm.checkpoint import CheckpointError
from cpvt_mm.fileio import atomic_write_bytes

if TYPE_CHECKING:
    from mmengine.config import Config


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    from mmengine.config import DictAction

    p = argparse.ArgumentParser(description="Draw a model's prediction on one image (mmdet, mmseg or mmpretrain)")
    p.add_argument("config", help="config file of any of the three toolkits")
    p.add_argument("checkpoint", help="trained weights (an mmengine checkpoint)")
    p.add_argument("image", help="input image")
    p.add_argument("--out", required=True, help="where to write the PNG")
    p.add_argument("--score-thr", type=float, default=0.3, help="detection: hide boxes below this score")
    p.add_argument("--device", help="torch device (default: cuda:0 when available, else cpu)")
    p.add_argument("--cfg-options", nargs="+", action=DictAction, help="override config entries, key=value")
    return p.parse_args(argv)


def draw_detection(config: Config, checkpoint: str, image: str, device: str, score_thr: float) -> np.ndarray:
    """Boxes / masks of an mmdet model on ``image``; returns the drawn RGB image."""
    import mmcv
    from mmdet.apis import inference_detector, init_detector
    from mmdet.registry import VISUALIZERS

    model = init_detector(config, checkpoint, device=device)
    check_checkpoint_covers_model(model, checkpoint)
    result = inference_detector(model, image)
    visualizer = VISUALIZERS.build(dict(type="DetLocalVisualizer", name="cpvt_mm-infer-det"))
    visualizer.dataset_meta = model.dataset_meta
    rgb = mmcv.imread(image, channel_order="rgb")
    visualizer.add_datasample("prediction", rgb, result, draw_gt=False, pred_score_thr=score_thr)
    return visualizer.get_image()


def draw_segmentation(config: Config, checkpoint: str, image: str, device: str, score_thr: float) -> np.ndarray:
    """The class map of an mmseg model blended over ``image``; returns the drawn RGB image."""
    import mmcv
    from mmengine.structures import PixelData
    from mmseg.apis import inference_model, init_model
    from mmseg.registry import VISUALIZERS

    model = init_model(config, checkpoint, device=device)
    check_checkpoint_covers_model(model, checkpoint)
    use_bounded_seg_postprocess(model)  # full-resolution logits of a large photo would not fit in memory
    result = inference_model(model, image)
    # as a numpy array: mmseg's visualiser indexes with ``tensor == label``, and a 1-pixel bool tensor is taken
    # for the integer index 1 by numpy (IndexError on a 1x1 image)
    result.pred_sem_seg = PixelData(data=result.pred_sem_seg.data.cpu().numpy())
    visualizer = VISUALIZERS.build(dict(type="SegLocalVisualizer", name="cpvt_mm-infer-seg", alpha=0.5))
    visualizer.dataset_meta = dict(classes=model.dataset_meta["classes"], palette=model.dataset_meta["palette"])
    rgb = mmcv.imread(image, channel_order="rgb")
    visualizer.add_datasample("prediction", rgb, result, draw_gt=False, with_labels=True)
    return visualizer.get_image()


def draw_classification(config: Config, checkpoint: str, image: str, device: str, score_thr: float) -> np.ndarray:
    """``image`` with the predicted class name and score of an mmpretrain model; returns the RGB image."""
    import mmcv
    from mmpretrain.apis import ImageClassificationInferencer
    from mmpretrain.registry import VISUALIZERS

    inferencer = ImageClassificationInferencer(model=config, pretrained=checkpoint, device=device)
    check_checkpoint_covers_model(inferencer.model, checkpoint)
    (result,) = inferencer(image, return_datasamples=True)
    visualizer = VISUALIZERS.build(dict(type="UniversalVisualizer", name="cpvt_mm-infer-cls"))
    rgb = mmcv.imread(image, channel_order="rgb")
    visualizer.visualize_cls(rgb, result, classes=inferencer.classes, draw_gt=False, draw_score=True)
    return visualizer.get_image()


# default_scope -> how that toolkit infers and draws (one signature for all; only detection uses score_thr)
RENDERERS: dict[str, Callable[..., np.ndarray]] = {
    "mmdet": draw_detection,
    "mmseg": draw_segmentation,
    "mmpretrain": draw_classification,
}


def write_png_atomic(rgb: np.ndarray, out: str) -> None:
    """Encode first, then write a temporary file next to ``out`` and rename it into place."""
    import cv2

    ok, buf = cv2.imencode(".png", np.ascontiguousarray(rgb[..., ::-1]))  # RGB -> BGR for OpenCV
    if not ok:
        raise OSError(f"could not encode a {rgb.shape} image as PNG")
    atomic_write_bytes(out, buf.tobytes())


def main(argv: list[str] | None = None) -> int:
    import cv2
    import torch
    from mmengine.registry import DefaultScope

    args = parse_args(argv)
    for what, path in (("config", args.config), ("checkpoint", args.checkpoint), ("image", args.image)):
        if not osp.isfile(path):
            print(f"error: {what} not found: {path}", file=sys.stderr)
            return 1
    if cv2.imread(args.image) is None:  # checked up front: the toolkits fail on it with unrelated messages
        print(f"error: cannot read {args.image} as an image", file=sys.stderr)
        return 1
    try:
        cfg = load_config(args.config, args.cfg_options)
    except ConfigOptionError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    scope = cfg.get("default_scope")
    if scope not in RENDERERS:
        print(f"error: {args.config} has default_scope={scope!r}; supported: {', '.join(RENDERERS)}", file=sys.stderr)
        return 1
    device = args.device or ("cuda:0" if torch.cuda.is_available() else "cpu")
    # every registry lookup (transforms, visualisers) must resolve in the config's toolkit, whatever scope an
    # earlier caller in this process left as the default
    try:
        with DefaultScope.overwrite_default_scope(scope):
            drawn = RENDERERS[scope](cfg, args.checkpoint, args.image, device, args.score_thr)
    except (CheckpointError, UninitializedWeightsError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    write_png_atomic(drawn, args.out)
    print(f"wrote {args.out} ({scope} prediction, {drawn.shape[1]}x{drawn.shape[0]})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
