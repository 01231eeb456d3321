"""Attention statistics of the suite (claim 4): how far a query looks, and how much two models' maps share.

The maps come from the library's recorder (:func:`cpvt_mm.analysis.attention_maps.record_attention`, which
also draws ``tools/analysis_tools/vis_attention.py``); the numbers made of them here are the experiment's.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from cpvt_mm.analysis.attention_maps import record_attention

__all__ = ["attention_matrices", "attention_overlap", "mean_attention_distance", "uniform_attention_distance"]


def attention_matrices(model: nn.Module, inputs: Tensor) -> list[tuple[Tensor, tuple[int, int]]]:
    """For each attention call of ``model``'s backbone on ``inputs`` (in execution order), the head-averaged
    patch attention ``(B, N, N)`` (:meth:`~cpvt_mm.analysis.attention_maps.AttentionCall.patch_attention`) and
    its token grid."""
    backbone = getattr(model, "backbone", model)
    with torch.no_grad(), record_attention(backbone) as calls:
        backbone(inputs)
    return [(c.patch_attention().mean(1), c.hw) for c in calls]


def _grid_distances(hw: tuple[int, int], device: torch.device) -> Tensor:
    rows, cols = torch.meshgrid(torch.arange(hw[0]), torch.arange(hw[1]), indexing="ij")
    pos = torch.stack((rows.flatten(), cols.flatten()), 1).float().to(device)  # (N, 2) token (row, col)
    return torch.cdist(pos, pos)  # (N, N) Euclidean distance in tokens


def mean_attention_distance(attn: Tensor, hw: tuple[int, int]) -> Tensor:
    """How far, in tokens, a query looks: ``sum_k a[q, k] * |pos(q) - pos(k)|`` averaged over the queries.

    ``attn`` is ``(..., N, N)`` over the grid ``hw`` (rows: queries, each a distribution over the keys); the
    result is ``(...)``. Attention guided by content alone spreads over wherever similar content is; a model
    that knows where its tokens are can attend locally, and this number is how local it is (uniform
    attention gives :func:`uniform_attention_distance`).
    """
    N = hw[0] * hw[1]
    if attn.shape[-2:] != (N, N):
        raise ValueError(f"attention of shape {tuple(attn.shape)} is not (..., {N}, {N}) for the grid {hw}")
    return (attn * _grid_distances(hw, attn.device)).sum(-1).mean(-1)


def uniform_attention_distance(hw: tuple[int, int]) -> float:
    """:func:`mean_attention_distance` of attention spread evenly over the grid (the mean pairwise distance)."""
    return float(_grid_distances(hw, torch.device("cpu")).mean())


def attention_overlap(a: Tensor, b: Tensor) -> Tensor:
    """The attention mass two models share: ``sum_k min(a[q, k], b[q, k])`` averaged over the queries.

    ``a`` and ``b`` are ``(..., N, N)`` attention of the same queries over the same keys (e.g. two models on
    the same images); the result ``(...)`` is 1 for identical maps and 0 when no key gets attention from both
    (one minus the total variation distance, averaged over queries).
    """
    if a.shape != b.shape:
        raise ValueError(f"attention shapes differ: {tuple(a.shape)} vs {tuple(b.shape)}")
    return torch.minimum(a, b).sum(-1).mean(-1)
