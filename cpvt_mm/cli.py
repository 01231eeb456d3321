"""Argument types shared by the command lines under ``tools/``."""

from __future__ import annotations

import argparse

__all__ = ["image_size"]


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
