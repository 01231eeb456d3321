"""Fashion-MNIST as the demo reads it: the four uncompressed IDX files in one folder."""

from __future__ import annotations

import os.path as osp

import numpy as np
import torch

__all__ = ["IDX_FILES", "check_fashion_mnist", "idx_image_count", "read_idx_images"]

IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


def check_fashion_mnist(root: str) -> None:
    """Fail before any training with the layout and the ways to get it.

    mmpretrain's FashionMNIST (``download=False``) only says it "cannot find" the data and suggests
    downloading, which cannot work offline and says nothing about the expected files.
    """
    missing = [f for f in IDX_FILES if not osp.isfile(osp.join(root, f))]
    if not missing:
        return
    gz_only = [f for f in missing if osp.isfile(osp.join(root, f + ".gz"))]
    hint = (
        f" ({', '.join(f + '.gz' for f in gz_only)} found: compressed files need unpacking, which "
        f"`FASHION_MNIST_ROOT={root} bash scripts/get_fashion_mnist.sh` does)"
        if gz_only
        else ""
    )
    raise FileNotFoundError(
        f"Fashion-MNIST not found in {root!r}: missing {', '.join(missing)}{hint}.\n"
        f"Expected layout: the four uncompressed IDX files directly in that folder:\n"
        + "".join(f"    {root}/{f}\n" for f in IDX_FILES)
        + "Get them with `make demo` or `bash scripts/get_fashion_mnist.sh` (installs Debian's "
        "dataset-fashion-mnist package and unpacks it into data/fashion_mnist), or point --data-root / "
        "FASHION_MNIST_ROOT at a folder holding them."
    )


def _header(root: str, split: str) -> tuple[str, int, int, int]:
    name = {"train": IDX_FILES[0], "test": IDX_FILES[2]}[split]
    with open(osp.join(root, name), "rb") as f:
        header = np.frombuffer(f.read(16), dtype=">i4")
    if len(header) < 4 or header[0] != 2051:  # IDX magic number of a uint8 3-D array
        raise ValueError(f"{name} in {root} is not an IDX image file (expected magic 2051)")
    return name, int(header[1]), int(header[2]), int(header[3])


def idx_image_count(root: str, split: str) -> int:
    """How many images the ``split`` ('train' or 'test') IDX file holds."""
    check_fashion_mnist(root)
    return _header(root, split)[1]


def read_idx_images(root: str, split: str, count: int, size: int | None = None) -> torch.Tensor:
    """The first ``count`` images of ``split`` ('train' or 'test') as a ``(count, 1, size, size)`` uint8 tensor.

    Resized bilinearly (OpenCV, as mmpretrain's ``Resize`` does) when ``size`` differs from 28. For analyses
    that need raw images outside a dataloader (position probe, attention maps).
    """
    import cv2

    check_fashion_mnist(root)
    name, n, h, w = _header(root, split)
    if not 0 < count <= n:
        raise ValueError(f"{name} holds {n} images; asked for {count}")
    with open(osp.join(root, name), "rb") as f:
        f.seek(16)
        images = np.frombuffer(f.read(count * h * w), dtype=np.uint8).reshape(count, h, w)
    if size is not None and size != h:
        images = np.stack([cv2.resize(im, (size, size), interpolation=cv2.INTER_LINEAR) for im in images])
    return torch.from_numpy(images.copy())[:, None]
