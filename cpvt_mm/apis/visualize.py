"""Draw a model's prediction on one image with its toolkit's own inference API and visualiser.

The config's ``default_scope`` says which toolkit it belongs to, so what is drawn is what the toolkit would draw:

* ``mmdet``: ``init_detector`` / ``inference_detector``; boxes, labels and scores (and masks for instance
  segmentation) above ``score_thr``, in the original image's coordinates.
* ``mmseg``: ``init_model`` / ``inference_model``; the class map blended over the image, with memory-bounded
  post-processing (:func:`cpvt_mm.apis.use_bounded_seg_postprocess`).
* ``mmpretrain``: ``ImageClassificationInferencer``; the predicted class name and score written on the image.

A checkpoint that leaves any parameter of the model unset (another task's, or another number of classes) is
refused, as the model would draw predictions of a random head. ``tools/misc/infer.py`` is the command line.
"""

from __future__ import annotations

import os.path as osp
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from ..fileio import atomic_write_bytes
from .config import load_config
from .inference import check_checkpoint_covers_model, use_bounded_seg_postprocess

if TYPE_CHECKING:
    from mmengine.config import Config

__all__ = [
    "RENDERERS",
    "InferenceInputError",
    "draw_classification",
    "draw_detection",
    "draw_segmentation",
    "infer_and_draw",
    "write_png_atomic",
]


def _maybe_compile(model: Any, compile: bool) -> None:
    if compile:
        from ..deployment.compile import compile_backbone

        compile_backbone(model)


class InferenceInputError(ValueError):
    """An input of :func:`infer_and_draw` cannot be used (unreadable image, config of another toolkit)."""


def draw_detection(
    config: Config, checkpoint: str, image: str, device: str, score_thr: float, compile: bool = False
) -> np.ndarray:
    """Boxes / masks of an mmdet model on ``image``; returns the drawn RGB image."""
    import mmcv
    from mmdet.apis import inference_detector, init_detector
    from mmdet.registry import VISUALIZERS

    model = init_detector(config, checkpoint, device=device)
    check_checkpoint_covers_model(model, checkpoint)
    _maybe_compile(model, compile)
    result = inference_detector(model, image)
    visualizer = VISUALIZERS.build(dict(type="DetLocalVisualizer", name="cpvt_mm-infer-det"))
    visualizer.dataset_meta = model.dataset_meta
    rgb = mmcv.imread(image, channel_order="rgb")
    visualizer.add_datasample("prediction", rgb, result, draw_gt=False, pred_score_thr=score_thr)
    return visualizer.get_image()


def draw_segmentation(
    config: Config, checkpoint: str, image: str, device: str, score_thr: float, compile: bool = False
) -> np.ndarray:
    """The class map of an mmseg model blended over ``image``; returns the drawn RGB image."""
    import mmcv
    from mmengine.structures import PixelData
    from mmseg.apis import inference_model, init_model
    from mmseg.registry import VISUALIZERS

    model = init_model(config, checkpoint, device=device)
    check_checkpoint_covers_model(model, checkpoint)
    _maybe_compile(model, compile)
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


def draw_classification(
    config: Config, checkpoint: str, image: str, device: str, score_thr: float, compile: bool = False
) -> np.ndarray:
    """``image`` with the predicted class name and score of an mmpretrain model; returns the RGB image."""
    import mmcv
    from mmpretrain.apis import ImageClassificationInferencer
    from mmpretrain.registry import VISUALIZERS

    inferencer = ImageClassificationInferencer(model=config, pretrained=checkpoint, device=device)
    check_checkpoint_covers_model(inferencer.model, checkpoint)
    _maybe_compile(inferencer.model, compile)
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


def infer_and_draw(
    config: str,
    checkpoint: str,
    image: str,
    out: str,
    score_thr: float = 0.3,
    device: str | None = None,
    cfg_options: Mapping[str, Any] | None = None,
    compile: bool = False,
) -> tuple[str, np.ndarray]:
    """Run the config's model on ``image`` and write the drawn prediction to ``out`` (a PNG, atomically).

    Every input is checked before the model is built. Returns the toolkit's scope and the drawn RGB image.

    Raises:
        FileNotFoundError: a missing config, checkpoint or image.
        InferenceInputError: an image OpenCV cannot read, or a config of another toolkit.
        ConfigOptionError, CheckpointError, UninitializedWeightsError: from loading the config and weights.
    """
    import cv2
    import torch
    from mmengine.registry import DefaultScope

    for what, path in (("config", config), ("checkpoint", checkpoint), ("image", image)):
        if not osp.isfile(path):
            raise FileNotFoundError(f"{what} not found: {path}")
    if cv2.imread(image) is None:  # checked up front: the toolkits fail on it with unrelated messages
        raise InferenceInputError(f"cannot read {image} as an image")
    cfg = load_config(config, cfg_options)
    scope = cfg.get("default_scope")
    if scope not in RENDERERS:
        raise InferenceInputError(f"{config} has default_scope={scope!r}; supported: {', '.join(RENDERERS)}")
    device = device or ("cuda:0" if torch.cuda.is_available() else "cpu")
    # every registry lookup (transforms, visualisers) must resolve in the config's toolkit, whatever scope an
    # earlier caller in this process left as the default
    with DefaultScope.overwrite_default_scope(scope):
        drawn = RENDERERS[scope](cfg, checkpoint, image, device, score_thr, compile)
    write_png_atomic(drawn, out)
    return scope, drawn
