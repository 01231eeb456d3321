"""Dataset checks run by ``tools/train.py`` and ``tools/test.py`` before the runner is built.

mmdet and mmseg read a user's own data without looking at it closely, so some mistakes pass silently and
others fail with messages that name neither the file nor the problem. Checked here, each ending in one
:class:`DatasetError` that names the file and what is wrong, or a :class:`DatasetWarning`:

COCO annotation files (mmdet datasets derived from ``CocoDataset`` and ``CocoMetric``'s ``ann_file``):

* missing, empty, not JSON, not a COCO detection file (``images`` / ``annotations`` / ``categories``),
  no images, no annotations: mmdet says ``JSONDecodeError``, ``KeyError: 'categories'`` or ``need at least
  one array to concatenate``;
* boxes with a negative width or height (usually ``[x1, y1, x2, y2]`` written where COCO wants
  ``[x, y, width, height]``): mmdet drops them all, training runs with ``loss_bbox: 0`` and evaluation
  reports mAP 0 even for perfect predictions;
* annotations on images the file does not list, image files that do not exist;
* ``metainfo.classes`` naming a category the file does not have (its objects would be dropped);
* heads whose ``num_classes`` differs from the number of classes;
* more objects on one image than the detector keeps (``max_per_img``, 100 by default): recall is capped
  silently on dense scenes (a warning).

Segmentation datasets (mmseg datasets derived from ``BaseSegDataset``):

* no images found (e.g. ``ADE20KDataset`` reads only ``.jpg`` and skips ``.png`` files silently), images of
  another suffix next to the ones read (a warning), missing label maps;
* label values outside ``0 .. num_classes-1`` (after ``reduce_zero_label``) other than ``ignore_index``:
  training stops with a CUDA/CPU assertion, but mmseg's ``IoUMetric`` drops such pixels without a word, so
  evaluation sets are scanned (every label map is read once);
* heads whose ``num_classes`` differs from the number of classes.

Classification folders (mmpretrain's ``CustomDataset`` without ``ann_file``, ``ImageNet``, and cpvt_mm's
``ClassFolderDataset``: ``<split folder>/<class>/*.png``):

* a missing split folder, no class folders, class folders without images (all named at once);
* class folders that differ between splits, or from ``metainfo.classes``: ``CustomDataset`` numbers each
  split by its own sorted folders, so one extra folder in ``val/`` shifts every label after it (17.7% instead
  of 95% accuracy, silently);
* images the loader cannot read: empty, not an image, a truncated JPEG / PNG (OpenCV decodes those without an
  error, the missing rows grey), undecodable; every such file is listed at once, not one per crash when the
  sampler reaches it (splits of up to :data:`CHECK_IMAGES_UP_TO` images are read in full);
* heads (and the data preprocessor's batch augments) whose ``num_classes`` differs from the number of classes;
* a pipeline whose first step does not fit the dataset (file paths need ``LoadImageFromFile`` first; the
  in-memory MNIST / CIFAR datasets yield decoded images, so a ``LoadImageFromFile`` there finds no file, and a
  folder dataset under the demo's pipeline dies in a worker with ``KeyError: 'img'``);
* images loaded with another number of channels than the model reads (``color_type`` against the backbone's
  ``in_channels`` and the data preprocessor's ``mean``).
"""

from __future__ import annotations

import json
import os
import os.path as osp
import warnings
from collections import Counter
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
from mmengine.config import Config

__all__ = ["DatasetError", "DatasetWarning", "check_model_channels", "image_file_problem", "validate_datasets"]

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
# Splits with more images than this are not read image by image before training (ImageNet's 1.28M would
# take longer than an epoch); their folders and classes are still checked.
CHECK_IMAGES_UP_TO = 20_000


class DatasetError(ValueError):
    """A dataset or annotation file cannot be used as configured; the message names the file and the problem."""


class DatasetWarning(UserWarning):
    """A dataset setting that works but silently loses data (dropped objects, skipped images)."""


def _warn(message: str) -> None:
    warnings.warn(message, DatasetWarning, stacklevel=3)


def _join(root: str | None, path: str | None) -> str:
    path = path or ""
    return path if (not root or osp.isabs(path) or "://" in path) else osp.join(root, path)


def _leaf_datasets(dataset: Any, key: str) -> Iterator[tuple[str, Mapping]]:
    """The datasets inside wrappers (``RepeatDataset``, ``ConcatDataset`` ...) with their config keys."""
    if not isinstance(dataset, Mapping):
        return
    if "dataset" in dataset:
        yield from _leaf_datasets(dataset["dataset"], f"{key}.dataset")
    elif "datasets" in dataset:
        for i, d in enumerate(dataset["datasets"]):
            yield from _leaf_datasets(d, f"{key}.datasets.{i}")
    else:
        yield key, dataset


def _datasets_of(
    cfg: Config, splits: tuple[str, ...], registry: Any, base: type | tuple[type, ...]
) -> Iterator[tuple[str, str, Mapping, type]]:
    """``(split, config key, dataset config, class)`` of every leaf dataset of ``splits`` built from ``base``."""
    for split in splits:
        loader = cfg.get(f"{split}_dataloader")
        if not loader:
            continue
        for key, ds in _leaf_datasets(loader.get("dataset"), f"{split}_dataloader.dataset"):
            cls = _dataset_class(registry, ds)
            if cls is not None and issubclass(cls, base):
                yield split, key, ds, cls


def _dataset_class(registry: Any, cfg: Mapping) -> type | None:
    t = cfg.get("type")
    if isinstance(t, type):
        return t
    try:
        return registry.get(t)
    except KeyError:  # a scope cpvt_mm does not know; the toolkit's own error comes when it is built
        return None


def _num_classes_entries(node: Any, path: str) -> Iterator[tuple[str, int]]:
    """Every ``num_classes`` in the model config except the RPN's (always 1: object / not object)."""
    if isinstance(node, Mapping):
        for k, v in node.items():
            if k == "num_classes" and isinstance(v, int):
                yield f"{path}.{k}", v
            elif k != "rpn_head":
                yield from _num_classes_entries(v, f"{path}.{k}")
    elif isinstance(node, (list, tuple)):
        for i, v in enumerate(node):
            yield from _num_classes_entries(v, f"{path}.{i}")


def _check_num_classes(cfg: Config, classes: tuple[str, ...], where: str) -> None:
    for key, n in _num_classes_entries(cfg.get("model"), "model"):
        if n != len(classes):
            names = tuple(classes) if len(classes) <= 20 else f"({', '.join(map(repr, classes[:20]))}, ...)"
            raise DatasetError(
                f"{key}={n}, but the dataset ({where}) has {len(classes)} classes {names}: set "
                f"num_classes={len(classes)} in every head (see docs/custom_data.md)"
            )


# --------------------------------------------------------------------------- COCO
def check_coco_file(ann_file: str, classes: tuple[str, ...] | None, img_dir: str | None, where: str) -> dict:
    """Validate one COCO detection annotation file; returns ``dict(max_objects=...)`` for further checks.

    Args:
        ann_file: Path of the JSON file.
        classes: The class names the dataset is configured with (``None``: every category).
        img_dir: Folder the ``file_name`` entries are relative to (``None``: image files are not checked).
        where: The config key that names the file, for the messages.
    """
    if not osp.isfile(ann_file):
        raise DatasetError(f"COCO annotation file not found: {ann_file} ({where})")
    if osp.getsize(ann_file) == 0:
        raise DatasetError(f"COCO annotation file {ann_file} is empty ({where})")
    try:
        with open(ann_file, encoding="utf-8") as f:
            data = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DatasetError(f"COCO annotation file {ann_file} is not valid JSON: {e} ({where})") from None
    layout = "a COCO detection file is a JSON object with lists 'images', 'annotations' and 'categories'"
    if not isinstance(data, dict):
        raise DatasetError(f"COCO annotation file {ann_file} holds a {type(data).__name__}: {layout}")
    for key in ("images", "annotations", "categories"):
        if not isinstance(data.get(key), list):
            raise DatasetError(f"COCO annotation file {ann_file} has no {key!r} list: {layout}")
    images, anns, cats = data["images"], data["annotations"], data["categories"]
    if not images:
        raise DatasetError(f"COCO annotation file {ann_file} lists no images")
    if not cats:
        raise DatasetError(f"COCO annotation file {ann_file} lists no categories")
    try:
        names = {c["id"]: c["name"] for c in cats}
        files = {im["id"]: im["file_name"] for im in images}
    except (KeyError, TypeError) as e:
        raise DatasetError(
            f"COCO annotation file {ann_file}: every category needs 'id' and 'name', every image 'id', "
            f"'file_name', 'width' and 'height' (missing {e})"
        ) from None
    if classes is not None:
        unknown = [c for c in classes if c not in names.values()]
        if unknown:
            raise DatasetError(
                f"classes {unknown} ({where.rsplit('.', 1)[0]}.metainfo.classes) are not categories of "
                f"{ann_file}, whose categories are {sorted(names.values())}"
            )
    wanted = set(names.values()) if classes is None else set(classes)
    negative, empty, other, orphans = [], 0, Counter(), 0
    per_image: Counter = Counter()
    for ann in anns:
        try:
            _, _, w, h = (float(v) for v in ann["bbox"])
            image_id, cat = ann["image_id"], ann["category_id"]
        except (KeyError, TypeError, ValueError):
            raise DatasetError(
                f"COCO annotation file {ann_file}: annotation {ann.get('id', '?')} needs 'image_id', "
                f"'category_id' and 'bbox' = [x, y, width, height], got {ann}"
            ) from None
        if image_id not in files:
            orphans += 1
            continue
        if names.get(cat) not in wanted:
            other[names.get(cat, f"id {cat}")] += 1
            continue
        if w < 0 or h < 0:
            negative.append((ann, files[image_id]))
        elif w < 1 or h < 1:
            empty += 1
        elif not ann.get("iscrowd", 0):
            per_image[image_id] += 1
    if negative:
        ann, file_name = negative[0]
        raise DatasetError(
            f"COCO annotation file {ann_file}: {len(negative)} of {len(anns)} boxes have a negative width or "
            f"height, e.g. annotation {ann.get('id', '?')} on {file_name}: bbox {ann['bbox']}. COCO boxes are "
            "[x, y, width, height] (top-left corner and size), not [x1, y1, x2, y2]; mmdet would drop them all "
            "(training without box loss, mAP 0 in evaluation)"
        )
    if orphans:
        raise DatasetError(f"COCO annotation file {ann_file}: {orphans} annotations refer to image ids not listed")
    if not per_image:
        raise DatasetError(
            f"COCO annotation file {ann_file} has no usable box of the classes {sorted(wanted)} "
            f"({len(anns)} annotations in all)"
        )
    if empty:
        _warn(f"{ann_file}: {empty} boxes are narrower or lower than 1 pixel; mmdet ignores them")
    if other:
        _warn(f"{ann_file}: {sum(other.values())} annotations of categories {sorted(other)} (not in classes) ignored")
    if img_dir is not None and "://" not in img_dir:
        missing = [f for f in files.values() if not osp.isfile(osp.join(img_dir, f))]
        if missing:
            raise DatasetError(
                f"{len(missing)} of {len(files)} images listed in {ann_file} are not in {img_dir}, "
                f"e.g. {osp.join(img_dir, missing[0])} ({where.rsplit('.', 1)[0]}.data_prefix.img)"
            )
    return dict(max_objects=max(per_image.values()))


def _max_per_img(model: Mapping) -> tuple[str, int] | None:
    test_cfg = model.get("test_cfg") or {}
    if "max_per_img" in test_cfg:
        return "model.test_cfg.max_per_img", test_cfg["max_per_img"]
    rcnn = test_cfg.get("rcnn") or {}
    if "max_per_img" in rcnn:
        return "model.test_cfg.rcnn.max_per_img", rcnn["max_per_img"]
    return None


def _validate_detection(cfg: Config, splits: tuple[str, ...]) -> None:
    from mmdet.datasets import CocoDataset
    from mmdet.registry import DATASETS

    checked: dict[str, dict] = {}
    for split, key, ds, cls in _datasets_of(cfg, splits, DATASETS, CocoDataset):
        classes = tuple((ds.get("metainfo") or {}).get("classes") or cls.METAINFO["classes"])
        _check_num_classes(cfg, classes, f"{key}.metainfo.classes")
        root = ds.get("data_root")
        ann_file = _join(root, ds.get("ann_file"))
        img_dir = _join(root, (ds.get("data_prefix") or {}).get("img", ""))
        checked[ann_file] = check_coco_file(ann_file, classes, img_dir, f"{key}.ann_file")
        if split != "train":
            evaluator = cfg.get(f"{split}_evaluator") or {}
            for metric in evaluator if isinstance(evaluator, list) else [evaluator]:
                other = metric.get("ann_file") if isinstance(metric, Mapping) else None
                if other and other not in checked:
                    checked[other] = check_coco_file(other, classes, None, f"{split}_evaluator.ann_file")
    limit = _max_per_img(cfg.get("model") or {})
    densest = max((c["max_objects"] for c in checked.values()), default=0)
    if limit and densest > limit[1]:
        _warn(
            f"an image of this dataset has {densest} objects but the detector keeps at most {limit[1]} per image "
            f"({limit[0]}): recall on such images is capped. Raise it, e.g. --cfg-options {limit[0]}={2 * densest}"
        )


# --------------------------------------------------------------------------- segmentation
def _label_problems(path: str, valid: np.ndarray) -> list[int]:
    import cv2

    label = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    if label is None:
        raise DatasetError(f"cannot read label map {path}")
    if label.ndim == 3:
        raise DatasetError(f"label map {path} has {label.shape[2]} channels; a label map is a one-channel PNG")
    values = np.flatnonzero(np.bincount(label.ravel().astype(np.int64)))
    return [int(v) for v in values if v >= len(valid) or not valid[v]]


def _validate_segmentation(cfg: Config, splits: tuple[str, ...], scan_labels: tuple[str, ...]) -> None:
    from mmseg.datasets import BaseSegDataset
    from mmseg.registry import DATASETS

    for split, key, ds, cls in _datasets_of(cfg, splits, DATASETS, BaseSegDataset):
        root = ds.get("data_root")
        prefix = ds.get("data_prefix") or {}
        img_dir, seg_dir = _join(root, prefix.get("img_path", "")), _join(root, prefix.get("seg_map_path", ""))
        if "://" in img_dir:
            continue
        if not osp.isdir(img_dir):
            raise DatasetError(f"image folder not found: {img_dir} ({key}.data_root + data_prefix.img_path)")
        try:
            dataset = DATASETS.build(dict(ds, lazy_init=False, serialize_data=False, pipeline=[]))
        except ValueError as e:
            raise DatasetError(
                f"{key} ({cls.__name__}): {e}. For classes of your own use type='BaseSegDataset' with "
                "metainfo=dict(classes=..., palette=...) (docs/custom_data.md)"
            ) from None
        suffix = dataset.img_suffix
        found = Counter(
            osp.splitext(f)[1].lower()
            for _, _, fs in os.walk(img_dir)
            for f in fs
            if osp.splitext(f)[1].lower() in IMAGE_SUFFIXES
        )
        skipped = {s: n for s, n in found.items() if s != suffix.lower()}
        if len(dataset) == 0:
            raise DatasetError(
                f"{key} ({cls.__name__}) found no images ending in img_suffix={suffix!r} in {img_dir} (it "
                f"holds {dict(found) or 'no images'}); set img_suffix / seg_map_suffix to your files' "
                "(docs/custom_data.md)"
            )
        if skipped:
            _warn(
                f"{key}: {sum(skipped.values())} images {dict(skipped)} in {img_dir} are skipped: "
                f"{cls.__name__} reads only img_suffix={suffix!r}"
            )
        classes = tuple(dataset.metainfo["classes"])
        _check_num_classes(cfg, classes, f"{key}.metainfo.classes")
        missing = [d["seg_map_path"] for d in dataset.data_list if not osp.isfile(d["seg_map_path"])]
        if missing:
            raise DatasetError(
                f"{len(missing)} of {len(dataset)} label maps under {seg_dir} are missing, e.g. {missing[0]} "
                f"(seg_map_suffix={dataset.seg_map_suffix!r})"
            )
        if split in scan_labels and not dataset.label_map:
            _scan_labels(dataset, classes, key, seg_dir)


def _scan_labels(dataset: Any, classes: tuple[str, ...], key: str, seg_dir: str) -> None:
    n, ignore = len(classes), dataset.ignore_index
    reduce = bool(dataset.reduce_zero_label)
    valid = np.zeros(max(n + 1, ignore + 1, 256), bool)
    if reduce:  # 0 -> ignored, k -> class k-1; mmseg also maps 255 to the ignore index
        valid[: n + 1] = True
        valid[255] = True
        rule = f"1..{n} for the classes, 0 = ignored (reduce_zero_label=True)"
    else:
        valid[:n] = True
        rule = f"0..{n - 1} for the classes"
    valid[ignore] = True
    bad = {}
    for info in dataset.data_list:
        values = _label_problems(info["seg_map_path"], valid)
        if values:
            bad[info["seg_map_path"]] = values
    if bad:
        path, values = next(iter(bad.items()))
        raise DatasetError(
            f"{len(bad)} of {len(dataset)} label maps under {seg_dir} ({key}) hold values outside the {n} classes, "
            f"e.g. {path} has {values[:10]} (valid: {rule}, {ignore} = ignore_index). mmseg's IoUMetric would "
            "drop those pixels silently; fix the labels, num_classes / classes, or reduce_zero_label"
        )


# --------------------------------------------------------------------------- images
_SIGNATURES = (
    (b"\xff\xd8\xff", "JPEG"),
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"BM", "BMP"),
    (b"GIF8", "GIF"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
    (b"RIFF", "WebP"),
    (b"P2", "PGM"),
    (b"P5", "PGM"),
    (b"P3", "PPM"),
    (b"P6", "PPM"),
)


def image_file_problem(path: str, decode: bool = True) -> str | None:
    """What keeps the loader from reading the image file ``path`` (a few words), or None when it reads.

    Truncation is found from the file's end: a JPEG ends with its end-of-image marker (``FF D9``), a PNG with
    its ``IEND`` chunk. OpenCV, mmcv's default backend, decodes a truncated JPEG without an error and fills
    the missing rows with grey, so decoding alone would let such an image train silently. ``decode`` also
    decodes the file with OpenCV, as the loader will.
    """
    size = osp.getsize(path)
    if size == 0:
        return "empty file"
    with open(path, "rb") as f:
        head = f.read(16)
        f.seek(max(0, size - 1024))
        tail = f.read()
    kind = next((name for magic, name in _SIGNATURES if head.startswith(magic)), None)
    if kind is None:
        return "not an image (no image file signature)"
    if kind == "JPEG" and b"\xff\xd9" not in tail:
        return "truncated JPEG (no end-of-image marker)"
    if kind == "PNG" and b"IEND" not in tail:
        return "truncated PNG (no IEND chunk)"
    if decode:
        import cv2

        if cv2.imdecode(np.fromfile(path, np.uint8), cv2.IMREAD_UNCHANGED) is None:
            return f"{kind} that OpenCV cannot decode"
    return None


def _list_problems(problems: list[tuple[str, str]], limit: int = 10) -> str:
    shown = ", ".join(f"{p} ({why})" for p, why in problems[:limit])
    return shown + (f" and {len(problems) - limit} more" if len(problems) > limit else "")


# --------------------------------------------------------------------------- classification folders
def _step_name(step: Any) -> str:
    t = step.get("type", "") if isinstance(step, Mapping) else ""
    return getattr(t, "__name__", str(t)).rsplit(".", 1)[-1]


def _channels_loaded(pipeline: Any) -> tuple[int | None, str]:
    """(channels, how) of the images a pipeline's ``LoadImageFromFile`` produces; None for ``unchanged``."""
    for step in pipeline or []:
        if _step_name(step) == "LoadImageFromFile":
            color_type = step.get("color_type", "color")
            n = {"grayscale": 1, "color": 3, "color_ignore_orientation": 3}.get(color_type)
            return n, f"color_type={color_type!r}" + (" (the default)" if "color_type" not in step else "")
    return None, ""


def check_model_channels(cfg: Config, pipeline: Any, where: str) -> None:
    """Refuse a pipeline that loads images with another number of channels than the model reads (the
    backbone's ``in_channels``, 3 by default), and a data preprocessor ``mean`` of another length."""
    model = cfg.get("model") or {}
    wanted = int((model.get("backbone") or {}).get("in_channels", 3))
    loaded, how = _channels_loaded(pipeline)
    if loaded is not None and loaded != wanted:
        grayscale = "color_type='grayscale' in LoadImageFromFile of the train and test pipelines"
        colour = "color_type='color' (the default)"
        raise DatasetError(
            f"{where}: LoadImageFromFile loads {loaded}-channel images ({how}) but model.backbone.in_channels="
            f"{wanted}: either load {wanted}-channel images ({grayscale if wanted == 1 else colour}) or set "
            f"model.backbone.in_channels={loaded} (with {loaded} value(s) of data_preprocessor mean / std)"
        )
    pre = model.get("data_preprocessor") or cfg.get("data_preprocessor") or {}
    mean = pre.get("mean")
    if mean is not None and len(mean) != wanted:
        raise DatasetError(
            f"model.backbone.in_channels={wanted} but the data preprocessor's mean has {len(mean)} value(s) "
            f"{list(mean)}: give mean and std {wanted} value(s) each"
        )


def _check_first_step(pipeline: Any, where: str, cls: type, reads_files: bool) -> None:
    first = _step_name(pipeline[0]) if pipeline else None
    if reads_files and first != "LoadImageFromFile":
        raise DatasetError(
            f"{where} starts with {first or 'nothing'}, but {cls.__name__} yields image file paths, not images: "
            "its first step must be dict(type='LoadImageFromFile') (with color_type='grayscale' for a "
            "one-channel model)"
        )
    if not reads_files and first == "LoadImageFromFile":
        raise DatasetError(
            f"{where} starts with LoadImageFromFile, but {cls.__name__} yields decoded images, not files: "
            "remove that step"
        )


def _class_folders(folder: str, extensions: tuple[str, ...]) -> dict[str, list[str]]:
    """``{class folder: [image paths below it]}`` (recursively, as mmpretrain's ``get_samples`` reads)."""
    out = {}
    for name in sorted(e.name for e in os.scandir(folder) if e.is_dir()):
        out[name] = sorted(
            osp.join(d, f)
            for d, _, files in os.walk(osp.join(folder, name))
            for f in files
            if f.lower().endswith(extensions)
        )
    return out


def _folder_of(ds: Mapping) -> str:
    prefix = ds.get("data_prefix") or ""
    if isinstance(prefix, Mapping):
        prefix = prefix.get("img_path", "")
    return _join(ds.get("data_root"), prefix)


def _validate_classification(cfg: Config, splits: tuple[str, ...]) -> None:
    import inspect

    from mmpretrain.datasets import CIFAR10, MNIST, CustomDataset
    from mmpretrain.registry import DATASETS

    from ..datasets.class_folders import ClassFolderDataset

    _DEFAULT_EXTENSIONS = inspect.signature(CustomDataset.__init__).parameters["extensions"].default
    for split, key, ds, cls in _datasets_of(cfg, splits, DATASETS, (CustomDataset, MNIST, CIFAR10)):
        pipeline = ds.get("pipeline") or []
        reads_files = issubclass(cls, CustomDataset)
        _check_first_step(pipeline, f"{key}.pipeline", cls, reads_files)
        check_model_channels(cfg, pipeline, f"{key}.pipeline")
        # the folder layout is CustomDataset's; ImageNet, CUB ... have their own (list files for val)
        if not (cls is CustomDataset or issubclass(cls, ClassFolderDataset)) or ds.get("ann_file"):
            continue
        folder = _folder_of(ds)
        if "://" in folder:
            continue
        if not osp.isdir(folder):
            raise DatasetError(f"{split} folder not found: {folder} ({key}.data_root + data_prefix)")
        extensions = tuple(e.lower() for e in ds.get("extensions", _DEFAULT_EXTENSIONS))
        found = _class_folders(folder, extensions)
        if not found:
            raise DatasetError(
                f"{folder} ({key}) has no class folders: the layout is {osp.join(folder, '<class>', '*.png')}"
            )
        empty = [name for name, files in found.items() if not files]
        if empty:
            raise DatasetError(
                f"{len(empty)} of {len(found)} class folders in {folder} hold no images ({', '.join(extensions)}): "
                f"{empty}; add images or remove the folders"
            )
        if issubclass(cls, ClassFolderDataset):
            classes = tuple((ds.get("metainfo") or {}).get("classes") or ())
            reference, named = classes, f"classes {classes} ({key}.metainfo.classes)"
        else:
            classes = tuple(found)
            train = cfg.get("train_dataloader") or {}
            train_ds = next((d for k, d in _leaf_datasets(train.get("dataset"), "train") if k), None)
            train_folder = _folder_of(train_ds) if train_ds else None
            if not train_folder or not osp.isdir(train_folder) or osp.samefile(train_folder, folder):
                reference = classes
            else:
                reference = tuple(_class_folders(train_folder, extensions))
            named = f"the class folders of {train_folder}"
        missing, extra = [c for c in reference if c not in found], [c for c in found if c not in reference]
        if missing or extra:
            parts = ([f"lacks {missing}"] if missing else []) + ([f"has {extra} in addition"] if extra else [])
            raise DatasetError(
                f"the class folders of {folder} ({split}) differ from {named}: it {' and '.join(parts)}. Every "
                "split needs one folder per class, named alike (labels are numbered from the class names; with "
                "differing folders the accuracy is silently wrong)"
            )
        _check_num_classes(cfg, classes, key)
        pre = cfg.get("data_preprocessor") or {}
        if pre.get("num_classes") not in (None, len(classes)) and not (cfg.model.get("data_preprocessor")):
            raise DatasetError(
                f"data_preprocessor.num_classes={pre['num_classes']}, but the dataset ({key}) has {len(classes)} "
                f"classes: set it to {len(classes)}"
            )
        images = [p for files in found.values() for p in files]
        if len(images) <= CHECK_IMAGES_UP_TO:
            bad = [(p, why) for p in images if (why := image_file_problem(p))]
            if bad:
                raise DatasetError(
                    f"{len(bad)} of {len(images)} images in {folder} ({key}) cannot be read: {_list_problems(bad)}"
                    "; replace or remove them"
                )


# --------------------------------------------------------------------------- entry point
def validate_datasets(
    cfg: Config, splits: tuple[str, ...] = ("train", "val", "test"), scan_labels: tuple[str, ...] = ("val", "test")
) -> None:
    """Check the datasets of ``splits`` that ``cfg`` would build (see the module docstring for what).

    Runs in the config's toolkit (``default_scope``: mmdet, mmseg or mmpretrain; others are not checked).
    ``scan_labels``: splits whose segmentation label maps are read to check their values (evaluation sets:
    training fails loudly on such labels by itself).

    Raises:
        DatasetError: the first problem found, naming the file and the config key.
    """
    from mmengine.registry import DefaultScope

    scope = cfg.get("default_scope")
    if scope not in ("mmdet", "mmseg", "mmpretrain"):
        return
    if scope == "mmdet":
        import mmdet.datasets  # noqa: F401  (registers the datasets)
    elif scope == "mmseg":
        import mmseg.datasets  # noqa: F401
    else:
        import mmpretrain.datasets  # noqa: F401
    with DefaultScope.overwrite_default_scope(scope):
        if scope == "mmdet":
            _validate_detection(cfg, splits)
        elif scope == "mmseg":
            _validate_segmentation(cfg, splits, scan_labels)
        else:
            _validate_classification(cfg, splits)
