"""Tiny models and generated data shared by the tests (kept small so the suite runs in minutes on CPU)."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from mmengine.model import BaseModel
from torch.utils.data import Dataset

import cpvt_mm

TINY_PCPVT = dict(embed_dims=[16, 32, 48, 64], depths=[1, 2, 2, 1], num_heads=[1, 2, 2, 4],
                  mlp_ratios=[2, 2, 2, 2], sr_ratios=[4, 2, 2, 1])  # fmt: skip
TINY_SVT = dict(TINY_PCPVT, window_sizes=[4, 4, 4, 4])
TINY_CPVT = dict(embed_dims=32, depth=4, num_heads=2, mlp_ratio=2.0)


class ToyImages(Dataset):
    """A few generated 32x32 images whose class is which quadrant is bright (learnable in a few steps)."""

    def __init__(self, n: int = 16, size: int = 32, seed: int = 0) -> None:
        g = torch.Generator().manual_seed(seed)
        self.labels = torch.randint(0, 4, (n,), generator=g)
        self.images = torch.rand(n, 3, size, size, generator=g) * 0.2
        h = size // 2
        for i, c in enumerate(self.labels.tolist()):
            r, q = divmod(c, 2)
            self.images[i, :, r * h : (r + 1) * h, q * h : (q + 1) * h] += 0.8

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict:
        return dict(inputs=self.images[i], labels=self.labels[i])


class ToyClassifier(BaseModel):
    """cpvt_mm PCPVT (tiny widths) + linear head, in MMEngine's BaseModel protocol."""

    def __init__(self, num_classes: int = 4) -> None:
        super().__init__()
        self.backbone = cpvt_mm.MODELS.build(dict(type="cpvt_mm.PCPVT", arch=TINY_PCPVT, out_indices=(3,)))
        self.head = torch.nn.Linear(TINY_PCPVT["embed_dims"][-1], num_classes)

    def forward(self, inputs, labels=None, mode: str = "tensor"):
        if isinstance(inputs, list):
            inputs = torch.stack(inputs)
        logits = self.head(self.backbone(inputs)[-1].mean(dim=(2, 3)))
        if mode == "loss":
            labels = torch.stack(labels) if isinstance(labels, list) else labels
            return dict(loss=F.cross_entropy(logits, labels))
        return logits


def make_imagenet_layout(
    root, num_classes: int = 4, per_class: int = 12, val_per_class: int = 4, size: int = 40
) -> str:
    """Write a tiny dataset in the standard ImageNet folder layout (``train/<class>/*.JPEG``, ``val/...``).

    The class is a texture (horizontal stripes, vertical stripes, checkerboard, plain) in a random colour:
    it survives the recipe's crops, flips, RandAugment and Mixup, so a small model learns it in a few
    dozen steps.
    """
    import os

    import cv2
    import numpy as np

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:size, :size]
    period = 8
    patterns = [
        (yy // (period // 2)) % 2,
        (xx // (period // 2)) % 2,
        ((yy // (period // 2)) + (xx // (period // 2))) % 2,
        np.zeros((size, size), dtype=np.int64),
    ]
    for split, n in (("train", per_class), ("val", val_per_class)):
        for c in range(num_classes):
            d = os.path.join(root, split, f"n{c:08d}")
            os.makedirs(d, exist_ok=True)
            for i in range(n):
                colour = rng.integers(60, 255, 3)
                img = patterns[c % len(patterns)][..., None] * colour[None, None] * 0.8 + rng.integers(
                    0, 40, (size, size, 3)
                )
                cv2.imwrite(os.path.join(d, f"{split}_{c}_{i}.JPEG"), img.clip(0, 255).astype(np.uint8))
    return str(root)


def write_idx(path: Path, array: np.ndarray) -> None:
    """The IDX format of (Fashion-)MNIST: magic (0, 0, 0x08 = uint8, ndim), big-endian dims, raw bytes."""
    header = struct.pack(">I", 0x0800 | array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def make_fashion_mnist(root: Path, n_train: int = 200, n_test: int = 60) -> None:
    """Fashion-MNIST-shaped data whose 4 classes are which 14x14 quadrant is bright (separable at a glance)."""
    rng = np.random.default_rng(0)
    root.mkdir(parents=True, exist_ok=True)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        labels = rng.integers(0, 4, n)
        images = rng.integers(0, 60, (n, 28, 28))
        for img, c in zip(images, labels):
            r, q = divmod(int(c), 2)
            img[r * 14 : (r + 1) * 14, q * 14 : (q + 1) * 14] += 180
        write_idx(root / f"{prefix}-images-idx3-ubyte", images)
        write_idx(root / f"{prefix}-labels-idx1-ubyte", labels)
