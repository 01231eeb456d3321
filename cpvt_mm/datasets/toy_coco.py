"""A small procedurally drawn dataset in the exact COCO layout, for smoke tests and tutorials.

Command line: ``python tools/dataset_converters/make_toy_coco.py data/toy_coco --num-train 64 --num-val 16``.

OUT_DIR gets ``train2017/``, ``val2017/`` and ``annotations/instances_{train,val}2017.json`` (images, annotations
with ``bbox`` / ``area`` / ``segmentation`` / ``iscrowd``, categories), so mmdet's own ``CocoDataset`` and
``CocoMetric`` read it as they read COCO: point a config's ``data_root`` at it and set the three class names.

Each image shows 1-3 filled shapes (circle, square, triangle: one class each) on a noisy plain background, with
no overlaps. Every object is painted through its own annotation: the polygon is rasterised with pycocotools
(the same code the COCO evaluator uses) and exactly those pixels are coloured, so the masks are exact and the
boxes are the tight boxes of the masks. Classes also differ in hue, so a small detector learns them in well
under a hundred CPU iterations. Image sides are never multiples of 32, to exercise padding in the models.
"""

from __future__ import annotations

import json
import math
import os
import os.path as osp
from typing import Any

import cv2
import numpy as np
from pycocotools import mask as mask_utils

from ..fileio import atomic_write_text

__all__ = ["CATEGORIES", "CLASSES", "make_split", "make_toy_coco"]

CATEGORIES = [
    dict(id=1, name="circle", supercategory="shape"),
    dict(id=2, name="square", supercategory="shape"),
    dict(id=3, name="triangle", supercategory="shape"),
]
CLASSES = tuple(c["name"] for c in CATEGORIES)
# BGR base colour per category id (red, green, blue); each object gets a jittered shade of it.
_BASE_COLORS = {1: (40, 40, 220), 2: (40, 200, 40), 3: (220, 60, 40)}


def _side(rng: np.random.Generator, low: int, high: int) -> int:
    """A random image side in [low, high] that is not a multiple of 32."""
    side = int(rng.integers(low, high + 1))
    return side + 1 if side % 32 == 0 else side


def _polygon(rng: np.random.Generator, category_id: int, cx: float, cy: float, r: float) -> list[float]:
    """Flat ``[x0, y0, x1, y1, ...]`` outline of a shape centred at (cx, cy) with circumradius r."""
    if category_id == 1:  # circle: a 32-gon is round at these sizes
        angles = np.linspace(0.0, 2.0 * math.pi, 32, endpoint=False)
    elif category_id == 2:  # square, randomly rotated
        angles = rng.uniform(0.0, math.pi / 2) + np.arange(4) * math.pi / 2
    else:  # equilateral triangle, randomly rotated
        angles = rng.uniform(0.0, 2.0 * math.pi / 3) + np.arange(3) * 2.0 * math.pi / 3
    xs, ys = cx + r * np.cos(angles), cy + r * np.sin(angles)
    return np.stack([xs, ys], axis=1).round(2).reshape(-1).tolist()


def _draw_image(
    rng: np.random.Generator, width: int, height: int, max_objects: int, rle: bool
) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """One BGR image and its annotations (without ids)."""
    gray = rng.integers(70, 180)
    img = np.clip(gray + rng.normal(0.0, 12.0, (height, width, 3)), 0, 255)
    anns: list[dict[str, Any]] = []
    boxes: list[tuple[float, float, float, float]] = []
    for _ in range(int(rng.integers(1, max_objects + 1))):
        for _attempt in range(20):  # rejection sampling: shapes never overlap, so no mask is occluded
            r = float(rng.uniform(0.12, 0.3) * min(width, height))
            cx, cy = float(rng.uniform(r + 1, width - r - 1)), float(rng.uniform(r + 1, height - r - 1))
            box = (cx - r - 2, cy - r - 2, cx + r + 2, cy + r + 2)
            if all(box[2] <= b[0] or b[2] <= box[0] or box[3] <= b[1] or b[3] <= box[1] for b in boxes):
                break
        else:
            continue
        boxes.append(box)
        category_id = int(rng.integers(1, len(CATEGORIES) + 1))
        poly = _polygon(rng, category_id, cx, cy, r)
        encoded = mask_utils.merge(mask_utils.frPyObjects([poly], height, width))
        mask = mask_utils.decode(encoded).astype(bool)  # (H, W): exactly the pixels COCO eval counts
        color = np.clip(np.array(_BASE_COLORS[category_id]) + rng.integers(-30, 31, 3), 0, 255)
        img[mask] = color + rng.normal(0.0, 6.0, (int(mask.sum()), 3))
        if rle:
            segmentation: Any = dict(size=encoded["size"], counts=encoded["counts"].decode("ascii"))
        else:
            segmentation = [poly]
        anns.append(
            dict(
                category_id=category_id,
                segmentation=segmentation,
                area=float(mask_utils.area(encoded)),
                bbox=[float(v) for v in mask_utils.toBbox(encoded)],  # tight [x, y, w, h] of the mask
                iscrowd=0,
            )
        )
    return np.clip(img, 0, 255).astype(np.uint8), anns


def make_split(
    out_dir: str, split: str, num_images: int, seed: int, first_image_id: int = 1, rle: bool = False
) -> dict[str, Any]:
    """Draw ``num_images`` images into ``out_dir/{split}2017/`` and return their COCO annotation dict."""
    rng = np.random.default_rng(seed)
    img_dir = osp.join(out_dir, f"{split}2017")
    os.makedirs(img_dir, exist_ok=True)
    images, annotations = [], []
    for image_id in range(first_image_id, first_image_id + num_images):
        width, height = _side(rng, 120, 220), _side(rng, 100, 180)
        img, anns = _draw_image(rng, width, height, max_objects=3, rle=rle)
        file_name = f"{image_id:012d}.jpg"
        if not cv2.imwrite(osp.join(img_dir, file_name), img, [cv2.IMWRITE_JPEG_QUALITY, 95]):
            raise OSError(f"could not write {osp.join(img_dir, file_name)}")
        images.append(dict(id=image_id, file_name=file_name, width=width, height=height))
        # at most 3 objects per image: ids image_id * 10 + k are unique across both splits
        annotations += [dict(id=image_id * 10 + k, image_id=image_id, **ann) for k, ann in enumerate(anns)]
    return dict(
        info=dict(description=f"cpvt_mm toy shapes ({split}), seed {seed}", version="1.0"),
        licenses=[],
        images=images,
        annotations=annotations,
        categories=CATEGORIES,
    )


def make_toy_coco(out_dir: str, num_train: int = 64, num_val: int = 16, seed: int = 0, rle: bool = False) -> str:
    """Write the toy dataset under ``out_dir`` in the COCO 2017 layout; returns ``out_dir``.

    Train and val images come from different random streams (``seed`` and ``seed + 1``) and have disjoint ids.
    """
    if num_train < 1 or num_val < 1:
        raise ValueError(f"need at least one image per split, got num_train={num_train}, num_val={num_val}")
    splits = (("train", num_train, seed, 1), ("val", num_val, seed + 1, num_train + 1))
    for split, num, split_seed, first_id in splits:
        coco = make_split(out_dir, split, num, split_seed, first_image_id=first_id, rle=rle)
        # readers never see a half-written annotation file
        atomic_write_text(osp.join(out_dir, "annotations", f"instances_{split}2017.json"), json.dumps(coco))
    return out_dir
