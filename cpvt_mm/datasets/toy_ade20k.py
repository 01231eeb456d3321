"""A small synthetic dataset in the ADE20K layout, for smoke-testing segmentation configs end to end.

Command line: ``python tools/dataset_converters/make_toy_ade20k.py data/toy_ade --size 64 112``, then
``--cfg-options train_dataloader.dataset.data_root=data/toy_ade ...``.

The layout and label convention are those of ``ADEChallengeData2016``, so mmseg's own ``ADE20KDataset``
(``.jpg`` images, ``.png`` label maps, ``reduce_zero_label=True``) reads it unchanged, exactly as it reads
the real dataset::

    OUT_DIR/images/{training,validation}/toy_{split}_{i:05d}.jpg
    OUT_DIR/annotations/{training,validation}/toy_{split}_{i:05d}.png

Label values follow ADE20K: 0 is "other" (ignored after ``reduce_zero_label``), 1..150 are the classes. Each
image is a background of ADE20K's ``wall`` (1) with rectangles and ellipses of a few other ADE20K classes
drawn over it, plus a few small blobs labelled 0 in random colours. Every class has its own colour *and*
texture (plain, fine noise, stripes, checkerboard), with per-image brightness jitter and pixel noise, so the
task survives the recipe's photometric distortion and random resize / crop, yet a tiny segmenter learns it
in a few hundred CPU iterations. Everything is drawn from ``--seed``: the same arguments give the same bytes.
"""

from __future__ import annotations

import os
import os.path as osp
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

__all__ = ["BACKGROUND", "FOREGROUND", "SPLITS", "ToyClass", "draw_sample", "make_toy_ade20k"]

SPLITS = ("training", "validation")


@dataclass(frozen=True)
class ToyClass:
    """One drawable class: its ADE20K label value (1-based), BGR base colour and texture."""

    label: int
    name: str
    bgr: tuple[int, int, int]
    texture: str  # 'plain' | 'noise' | 'hstripes' | 'vstripes' | 'checker'


# Label values are ADE20K's (1-based, as stored in its PNGs): wall 1, sky 3, tree 5, road 7, person 13.
BACKGROUND = ToyClass(1, "wall", (170, 180, 190), "vstripes")
FOREGROUND = (
    ToyClass(3, "sky", (230, 160, 70), "plain"),
    ToyClass(5, "tree", (40, 150, 40), "noise"),
    ToyClass(7, "road", (90, 90, 90), "hstripes"),
    ToyClass(13, "person", (60, 60, 210), "checker"),
)


def texture(kind: str, shape: tuple[int, int], rng: np.random.Generator, period: int = 6) -> np.ndarray:
    """A (H, W) float pattern in [-1, 1] that identifies a class even after colour jitter."""
    h, w = shape
    yy, xx = np.mgrid[:h, :w]
    half = period // 2
    if kind == "plain":
        return np.zeros(shape)
    if kind == "noise":
        return rng.uniform(-1.0, 1.0, shape)
    if kind == "hstripes":
        return np.where((yy // half) % 2 == 0, 1.0, -1.0)
    if kind == "vstripes":
        return np.where((xx // half) % 2 == 0, 1.0, -1.0)
    if kind == "checker":
        return np.where(((yy // half) + (xx // half)) % 2 == 0, 1.0, -1.0)
    raise ValueError(f"unknown texture {kind!r}")


def draw_sample(height: int, width: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """One (BGR uint8 image, uint8 ADE20K label map) pair of the given size.

    Shapes are painted on a region mask first; colours and textures are then rendered per class over the
    whole mask, so texture phase is continuous inside a region and boundaries are exact in the label map.
    """
    label = np.full((height, width), BACKGROUND.label, dtype=np.uint8)
    num_shapes = int(rng.integers(3, 7))
    for _ in range(num_shapes):
        cls = FOREGROUND[int(rng.integers(len(FOREGROUND)))]
        # between 1/4 and 2/3 of each side: regions survive a 0.5x random resize, and the background covers
        # about half of the image rather than dominating it
        rh = int(rng.integers(max(height // 4, 4), max(2 * height // 3, 5) + 1))
        rw = int(rng.integers(max(width // 4, 4), max(2 * width // 3, 5) + 1))
        cy, cx = int(rng.integers(0, height)), int(rng.integers(0, width))
        if rng.random() < 0.5:
            cv2.rectangle(label, (cx - rw // 2, cy - rh // 2), (cx + rw // 2, cy + rh // 2), cls.label, -1)
        else:
            cv2.ellipse(label, (cx, cy), (rw // 2, rh // 2), float(rng.uniform(0, 180)), 0, 360, cls.label, -1)
    # "other" (label 0): small blobs in random colours that the model should never be trained on
    for _ in range(int(rng.integers(0, 3))):
        r = int(rng.integers(2, max(min(height, width) // 10, 3) + 1))
        cv2.circle(label, (int(rng.integers(0, width)), int(rng.integers(0, height))), r, 0, -1)

    image = np.zeros((height, width, 3), dtype=np.float64)
    gain = rng.uniform(0.85, 1.15)  # per-image brightness jitter
    for cls in (BACKGROUND, *FOREGROUND):
        mask = label == cls.label
        if mask.any():
            pattern = texture(cls.texture, (height, width), rng)[mask]
            image[mask] = np.asarray(cls.bgr) * gain + 35.0 * pattern[:, None]
    other = label == 0
    if other.any():
        image[other] = rng.uniform(0, 255, 3)
    image += rng.normal(0.0, 6.0, image.shape)
    return image.clip(0, 255).astype(np.uint8), label


def make_toy_ade20k(
    out_dir: str,
    num_train: int = 48,
    num_val: int = 8,
    size: Sequence[int] = (64, 112),
    seed: int = 0,
) -> str:
    """Write the dataset under ``out_dir`` and return ``out_dir``.

    Args:
        out_dir: Root to write (the counterpart of ``data/ade/ADEChallengeData2016``).
        num_train, num_val: Images per split.
        size: ``(side,)`` for square images, or ``(min_side, max_side)``: every image then draws its height
            and width independently from that range, so sizes vary and are mostly not multiples of 32 --
            what whole-image inference must handle.
        seed: Seed of every random choice; the output is a pure function of the arguments.
    """
    if len(size) not in (1, 2) or min(size) < 8 or size[0] > size[-1]:
        raise ValueError(f"size must be SIDE or MIN MAX with 8 <= MIN <= MAX, got {list(size)}")
    if num_train < 1 or num_val < 1:
        raise ValueError("each split needs at least one image")
    lo, hi = size[0], size[-1]
    rng = np.random.default_rng(seed)
    for split, count in zip(SPLITS, (num_train, num_val)):
        img_dir = osp.join(out_dir, "images", split)
        ann_dir = osp.join(out_dir, "annotations", split)
        os.makedirs(img_dir, exist_ok=True)
        os.makedirs(ann_dir, exist_ok=True)
        for i in range(count):
            h, w = (int(v) for v in rng.integers(lo, hi + 1, 2))
            image, label = draw_sample(h, w, rng)
            stem = f"toy_{split}_{i:05d}"
            if not cv2.imwrite(osp.join(img_dir, stem + ".jpg"), image, [cv2.IMWRITE_JPEG_QUALITY, 95]):
                raise OSError(f"could not write {osp.join(img_dir, stem + '.jpg')}")
            if not cv2.imwrite(osp.join(ann_dir, stem + ".png"), label):
                raise OSError(f"could not write {osp.join(ann_dir, stem + '.png')}")
    return out_dir
