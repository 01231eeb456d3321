"""Argument types shared by the command lines under ``tools/``."""

from __future__ import annotations

import argparse
import os
import os.path as osp

__all__ = ["add_fashion_mnist_root", "image_size"]


def image_size(text: str, minimum: int = 1) -> tuple[int, int]:
    """``argparse`` type for an input size: ``224`` (square) or ``HxW`` (``800x1216``), each side >= ``minimum``."""
    h, _, w = text.lower().partition("x")
    try:
        size = (int(h), int(w or h))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a size like 224 or 800x1216, got {text!r}") from None
    if min(size) < minimum:
        raise argparse.ArgumentTypeError(f"sizes must be >= {minimum} px, got {text!r}")
    return size


def add_fashion_mnist_root(parser: argparse.ArgumentParser, checkout: str) -> None:
    """``--data-root`` of the Fashion-MNIST tools: env ``FASHION_MNIST_ROOT``, else ``data/fashion_mnist``."""
    parser.add_argument(
        "--data-root",
        default=os.environ.get("FASHION_MNIST_ROOT", osp.join(checkout, "data", "fashion_mnist")),
        help="folder with the four uncompressed IDX files (env FASHION_MNIST_ROOT)",
    )
