"""Fashion-MNIST as the demo reads it: the four uncompressed IDX files in one folder."""

from __future__ import annotations

import os.path as osp

__all__ = ["IDX_FILES", "check_fashion_mnist"]

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
