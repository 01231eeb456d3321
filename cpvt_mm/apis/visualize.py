"""Draw a model's prediction on one image with its toolkit's own inference API and visualiser.

The config's ``default_scope`` says which toolkit it belongs to, so what is drawn is what the toolkit would draw:

* ``mmdet``: ``init_detector`` / ``inference_detector``; boxes, labels and scores (and masks for instance
  segmentation) above ``score_thr``, in the original image's coordinates.
* ``mmseg``: ``init_model`` / ``inference_model``; the class map blended over the image, with memory-bounded
  post-processing (:func:`cpvt_mm.apis.use_bounded_seg_postprocess`).
* ``mmpretrain``: the config's own test pipeline (its ``color_type``: one-channel models get one-channel
  images); the top-5 classes and scores printed, and drawn in a panel beside the image (enlarged when small).

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
from .inference import accelerate_on_cpu, check_checkpoint_covers_model, use_bounded_seg_postprocess

if TYPE_CHECKING:
    from mmengine.config import Config

__all__ = [
    "RENDERERS",
    "InferenceInputError",
    "InferenceInputWarning",
    "classify",
    "draw_classification",
    "draw_detection",
    "draw_segmentation",
    "draw_top_classes",
    "infer_and_draw",
    "write_png_atomic",
]


def _maybe_compile(model: Any, compile: bool) -> None:
    if compile:
        from ..deployment.compile import compile_backbone

        compile_backbone(model)
    else:
        accelerate_on_cpu(model)


class InferenceInputError(ValueError):
    """An input of :func:`infer_and_draw` cannot be used (unreadable image, config of another toolkit)."""


class InferenceInputWarning(UserWarning):
    """An input that runs but whose prediction says little (a fully transparent image, a few pixels)."""


# an image with a shorter side below this many pixels is enlarged so much that the prediction says little
TINY_IMAGE_SIDE = 8


def check_image(image: str) -> None:
    """Refuse an image the model cannot read; warn about one whose prediction would mean little.

    Raises:
        InferenceInputError: empty, not an image, truncated (OpenCV would decode a truncated JPEG with grey
            rows and no error), undecodable.
    Warns:
        InferenceInputWarning: fully transparent (the loader drops the alpha channel, so the model sees
            whatever colour hides under alpha 0), or smaller than ``TINY_IMAGE_SIDE`` pixels.
    """
    import warnings

    import cv2

    from .datasets import image_file_problem

    problem = image_file_problem(image)
    if problem:
        raise InferenceInputError(f"cannot read {image}: {problem}")
    img = cv2.imread(image, cv2.IMREAD_UNCHANGED)
    if img is None:
        raise InferenceInputError(f"cannot read {image} as an image")
    if img.ndim == 3 and img.shape[2] == 4 and not img[..., 3].any():
        warnings.warn(
            f"{image} is fully transparent (alpha 0 everywhere): the model sees the hidden colour values, "
            "not a picture; its prediction means nothing",
            InferenceInputWarning,
            stacklevel=3,
        )
    if min(img.shape[:2]) < TINY_IMAGE_SIDE:
        warnings.warn(
            f"{image} is only {img.shape[1]}x{img.shape[0]} pixels: the model sees it enlarged to its input size, "
            "so the prediction says little",
            InferenceInputWarning,
            stacklevel=3,
        )


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


def _test_pipeline(cfg: Config) -> list:
    loader = cfg.get("test_dataloader") or cfg.get("val_dataloader") or {}
    ds = loader.get("dataset") or {}
    while "pipeline" not in ds and isinstance(ds.get("dataset"), Mapping):
        ds = ds["dataset"]
    pipeline = ds.get("pipeline") or cfg.get("test_pipeline")
    if not pipeline:
        raise InferenceInputError("the config has no test_dataloader.dataset.pipeline to prepare the image with")
    return list(pipeline)


def classify(
    config: Config, checkpoint: str, image: str, device: str, topk: int = 5, compile: bool = False
) -> list[tuple[str, float]]:
    """The ``topk`` classes of an mmpretrain model on ``image``, best first: ``[(name, score), ...]``.

    The image goes through the config's own test pipeline, so it is loaded as in evaluation: with the
    config's ``color_type`` (a one-channel model gets a one-channel image; mmpretrain's
    ``ImageClassificationInferencer`` always loads three). A pipeline without a loading step (datasets that
    hold decoded images, such as the Fashion-MNIST demo's) gets the image decoded with the backbone's
    ``in_channels``. Class names come from the checkpoint (``dataset_meta``), else from the config.
    """
    import cv2
    import torch
    from mmengine.dataset import Compose, pseudo_collate
    from mmpretrain.apis import get_model

    from .datasets import check_model_channels

    pipeline = _test_pipeline(config)
    check_model_channels(config, pipeline, "test_dataloader.dataset.pipeline")
    model = get_model(config, pretrained=checkpoint, device=device)
    check_checkpoint_covers_model(model, checkpoint)
    _maybe_compile(model, compile)
    if pipeline and _step_type(pipeline[0]) == "LoadImageFromFile":
        inputs = dict(img_path=image)
    else:
        channels = int((config.model.get("backbone") or {}).get("in_channels", 3))
        img = cv2.imread(image, cv2.IMREAD_GRAYSCALE if channels == 1 else cv2.IMREAD_COLOR)
        inputs = dict(img=img, img_shape=img.shape[:2], ori_shape=img.shape[:2])
    data = pseudo_collate([Compose(pipeline)(inputs)])
    model.eval()
    with torch.no_grad():
        (sample,) = model.test_step(data)
    scores = sample.pred_score.float().cpu()
    # mmpretrain's get_model keeps the checkpoint's (else the dataset class's) meta in ``_dataset_meta``
    meta = getattr(model, "_dataset_meta", None) or getattr(model, "dataset_meta", None) or {}
    classes = meta.get("classes") or _config_classes(config)
    names = list(classes) if classes and len(classes) == len(scores) else [f"class {i}" for i in range(len(scores))]
    top = scores.topk(min(topk, len(scores)))
    return [(names[i], float(v)) for v, i in zip(top.values.tolist(), top.indices.tolist())]


def _step_type(step: Any) -> str:
    t = step.get("type", "") if isinstance(step, Mapping) else ""
    return getattr(t, "__name__", str(t)).rsplit(".", 1)[-1]


def _config_classes(config: Config) -> tuple | None:
    ds = (config.get("test_dataloader") or {}).get("dataset") or {}
    return (ds.get("metainfo") or {}).get("classes")


def draw_top_classes(bgr: np.ndarray, top: list[tuple[str, float]], min_side: int = 160) -> np.ndarray:
    """``bgr`` enlarged (nearest neighbour, a whole factor) until its shorter side is at least ``min_side``,
    with a panel on its right listing the classes and scores; returns an RGB image.

    Text drawn over a 32-pixel image is illegible (mmpretrain's visualiser does that); a panel of its own
    keeps the text readable at any image size, and the enlarged image shows its pixels as they are.
    """
    import cv2

    if bgr.ndim == 2:
        bgr = cv2.cvtColor(bgr, cv2.COLOR_GRAY2BGR)
    factor = max(1, -(-min_side // max(1, min(bgr.shape[:2]))))
    big = cv2.resize(bgr, None, fx=factor, fy=factor, interpolation=cv2.INTER_NEAREST) if factor > 1 else bgr
    scale = max(0.5, big.shape[0] / 600)
    line = int(26 * scale)
    lines = [f"{i + 1}. {name}  {score:.3f}" for i, (name, score) in enumerate(top)]
    width = max(cv2.getTextSize(t, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)[0][0] for t in lines) + int(20 * scale)
    panel = np.full((max(big.shape[0], line * (len(lines) + 1)), width, 3), 255, np.uint8)
    for i, text in enumerate(lines):
        cv2.putText(panel, text, (int(10 * scale), line * (i + 1)), cv2.FONT_HERSHEY_SIMPLEX, scale,
                    (0, 0, 0), max(1, round(scale)), cv2.LINE_AA)  # fmt: skip
    canvas = np.full((panel.shape[0], big.shape[1] + width, 3), 255, np.uint8)
    canvas[: big.shape[0], : big.shape[1]] = big[..., :3]
    canvas[:, big.shape[1] :] = panel
    return canvas[..., ::-1].copy()  # BGR -> RGB


def draw_classification(
    config: Config, checkpoint: str, image: str, device: str, score_thr: float, compile: bool = False
) -> np.ndarray:
    """``image`` (enlarged when small) beside the top-5 classes and scores of an mmpretrain model; the scores
    are also printed. Returns the RGB image."""
    import cv2

    top = classify(config, checkpoint, image, device, topk=5, compile=compile)
    print(f"top-{len(top)} classes of {image}:")
    for i, (name, score) in enumerate(top):
        print(f"  {i + 1}. {name:<24} {score:.4f}")
    return draw_top_classes(cv2.imread(image, cv2.IMREAD_UNCHANGED), top)


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


def _check_device(device: str | None) -> None:
    """``--device cuda`` on a machine without a GPU died in torch's lazy CUDA init with a traceback."""
    import torch

    if device and device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise InferenceInputError(
                f"--device {device}: torch sees no CUDA GPU on this machine (torch.cuda.is_available() is False); "
                "use --device cpu, or leave --device out"
            )
        index = int(device.split(":", 1)[1]) if ":" in device else 0
        if index >= torch.cuda.device_count():
            raise InferenceInputError(f"--device {device}: this machine has {torch.cuda.device_count()} GPU(s)")


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
        IsADirectoryError: ``out`` is a folder.
        InferenceInputError: an image the loader cannot read (truncated included), a config of another
            toolkit, a CUDA device on a machine without one.
        ConfigOptionError, CheckpointError, UninitializedWeightsError: from loading the config and weights.
    """
    import torch
    from mmengine.registry import DefaultScope

    for what, path in (("config", config), ("checkpoint", checkpoint), ("image", image)):
        if not osp.isfile(path):
            raise FileNotFoundError(f"{what} not found: {path}")
    if osp.isdir(out):
        raise IsADirectoryError(f"--out {out} is a folder; give a file name, e.g. {osp.join(out, 'pred.png')}")
    check_image(image)  # checked up front: the toolkits fail on such files with unrelated messages, or not at all
    _check_device(device)
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
