"""A small generated image-classification set in the folder layout people have: ``train/<class>/*.png``.

Command line: ``python tools/dataset_converters/make_toy_folders.py data/my_images``.

Each image is one white shape (circle, cross, square, triangle: one class each) of random size, position and
rotation on a dark noisy background, grayscale, ``size`` x ``size`` pixels (32 by default). The class is the
shape, so it survives crops, flips and resizing, and a small CPVT learns it in seconds of CPU training; the
position varies, so the model cannot solve it from a fixed pixel.
"""

from __future__ import annotations

import math
import os
import os.path as osp

import cv2
import numpy as np

__all__ = ["CLASSES", "make_toy_folders"]

CLASSES = ("circle", "cross", "square", "triangle")


def _draw(rng: np.random.Generator, cls: str, size: int) -> np.ndarray:
    img = rng.integers(0, 50, (size, size)).astype(np.uint8)
    r = rng.uniform(0.22, 0.34) * size
    cx, cy = rng.uniform(r + 1, size - r - 1, 2)
    colour = int(rng.integers(180, 256))
    angle = rng.uniform(0, 2 * math.pi)
    if cls == "circle":
        cv2.circle(img, (round(cx), round(cy)), round(r), colour, -1, cv2.LINE_AA)
    elif cls == "cross":
        for a in (angle, angle + math.pi / 2):
            dx, dy = r * math.cos(a), r * math.sin(a)
            cv2.line(img, (round(cx - dx), round(cy - dy)), (round(cx + dx), round(cy + dy)), colour,
                     max(2, size // 10), cv2.LINE_AA)  # fmt: skip
    else:
        n = 4 if cls == "square" else 3
        angles = angle + np.arange(n) * 2 * math.pi / n
        pts = np.stack([cx + r * np.cos(angles), cy + r * np.sin(angles)], 1).round().astype(np.int32)
        cv2.fillPoly(img, [pts], colour, cv2.LINE_AA)
    return img


def make_toy_folders(out_dir: str, num_train: int = 50, num_val: int = 20, size: int = 32, seed: int = 0) -> str:
    """Write ``num_train`` / ``num_val`` images per class into ``out_dir/{train,val}/<class>/``; returns out_dir.

    The same arguments give the same files.
    """
    if min(num_train, num_val) < 1 or size < 8:
        raise ValueError(f"need at least one image per class and split, and size >= 8 (got {num_train}, "
                         f"{num_val}, {size})")  # fmt: skip
    rng = np.random.default_rng(seed)
    for split, n in (("train", num_train), ("val", num_val)):
        for cls in CLASSES:
            folder = osp.join(out_dir, split, cls)
            os.makedirs(folder, exist_ok=True)
            for i in range(n):
                cv2.imwrite(osp.join(folder, f"{i:04d}.png"), _draw(rng, cls, size))
    return out_dir
