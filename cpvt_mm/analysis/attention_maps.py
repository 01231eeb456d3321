"""Attention maps of any cpvt_mm backbone: where a chosen query token looks, per block and head.

The fused SDPA kernels never materialise the attention probabilities, so :func:`record_attention` switches
every cpvt_mm attention to its reference path for the duration (which computes ``softmax(q k^T / sqrt(d))``
explicitly, same mask) and reads the probabilities with forward hooks where they enter the module's
``attn_drop``, together with the token grid it ran on; the attention modules themselves know nothing of it.
:meth:`AttentionCall.query_map` then turns one query's row of probabilities into a map over
the query grid for all three attentions:

* global attention (plain CPVT): the keys are the patch tokens themselves (class token dropped);
* GSA (Twins): the keys are the ``sr x sr``-reduced map; each key's weight is spread evenly over the
  ``sr x sr`` tokens it summarises, so a map still sums to (about) one over the grid;
* LSA (Twins-SVT): the keys are the query's own ``ws x ws`` window; everything outside it is zero.

:func:`attention_figure` draws several models side by side on the same images (the experiment's PEG vs
table vs none panel); ``tools/analysis_tools/vis_attention.py`` is the command line for one checkpoint. The
experiments' attention statistics (distance, overlap) live with the experiments, in
``projects/cpvt_experiments``.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from ..models.attention import GlobalSubsampledAttention, LocallyGroupedAttention, _AttentionBase

__all__ = [
    "AttentionCall",
    "attention_figure",
    "config_test_side",
    "draw_checkpoint_attention",
    "load_model",
    "query_grid_position",
    "record_attention",
]


@dataclass
class AttentionCall:
    """One attention forward: its probabilities and the geometry needed to put them back on the grid."""

    module: str  # qualified name, e.g. 'backbone.blocks.0.attn'
    kind: str  # 'global', 'gsa' or 'lsa'
    probs: Tensor  # global (B, heads, P+N, P+N); gsa (B, heads, N, M); lsa (B*nW, heads, ws*ws, ws*ws)
    hw: tuple[int, int]  # the query token grid
    prefix: int  # class-token-like tokens before the patch tokens (global attention only)
    reduction: int = 1  # GSA's sr_ratio
    window: int = 0  # LSA's window size

    def query_map(self, image: int, row: int, col: int) -> Tensor:
        """``(heads, H, W)``: the attention of the query token at ``(row, col)`` of ``image`` over the grid."""
        H, W = self.hw
        if not (0 <= row < H and 0 <= col < W):
            raise ValueError(f"{self.module}: query ({row}, {col}) is outside the {H}x{W} token grid")
        if self.kind == "global":
            p = self.probs[image, :, self.prefix + row * W + col, self.prefix :]
            return p.reshape(-1, H, W)  # (heads, N) -> (heads, H, W)
        if self.kind == "gsa":
            r = self.reduction
            p = self.probs[image, :, row * W + col]
            p = p.reshape(-1, math.ceil(H / r), math.ceil(W / r))  # (heads, M) -> (heads, h, w)
            p = p.repeat_interleave(r, dim=1).repeat_interleave(r, dim=2) / (r * r)
            return p[:, :H, :W]
        ws = self.window
        nh, nw = math.ceil(H / ws), math.ceil(W / ws)
        wr, wc = row // ws, col // ws
        p = self.probs[image * nh * nw + wr * nw + wc, :, (row % ws) * ws + col % ws]
        full = p.new_zeros(p.shape[0], nh * ws, nw * ws)
        full[:, wr * ws : (wr + 1) * ws, wc * ws : (wc + 1) * ws] = p.reshape(-1, ws, ws)  # (heads, L) -> window
        return full[:, :H, :W]

    def patch_attention(self) -> Tensor:
        """``(B, heads, N, N)`` with ``N = H * W``: every patch query's attention over the patch tokens.

        The same geometry as :meth:`query_map`, for all queries at once. Each row is renormalised to sum to
        one over the grid: a class token's share (global attention) and the keys that summarise padding
        (GSA) are dropped, so that the maps of models with and without a class token, or with different
        attentions, are distributions over the same tokens and can be compared.
        """
        H, W = self.hw
        if self.kind == "global":
            p = self.probs[:, :, self.prefix :, self.prefix :]
        elif self.kind == "gsa":
            r = self.reduction
            B, heads, N, _ = self.probs.shape
            p = self.probs.reshape(B, heads, N, math.ceil(H / r), math.ceil(W / r))  # keys (M) -> (h, w)
            p = p.repeat_interleave(r, dim=3).repeat_interleave(r, dim=4)[..., :H, :W] / (r * r)
            p = p.reshape(B, heads, N, H * W)
        else:
            ws = self.window
            nh, nw = math.ceil(H / ws), math.ceil(W / ws)
            heads = self.probs.shape[1]
            # (B*nh*nw, heads, L, L) -> (B, nh, nw, heads, qr, qc, kr, kc): the windows' own blocks
            win = self.probs.reshape(-1, nh, nw, heads, ws, ws, ws, ws)
            full = win.new_zeros(win.shape[0], heads, nh, ws, nw, ws, nh, ws, nw, ws)
            for i in range(nh):
                for j in range(nw):
                    full[:, :, i, :, j, :, i, :, j, :] = win[:, i, j]
            full = full.reshape(-1, heads, nh * ws, nw * ws, nh * ws, nw * ws)[:, :, :H, :W, :H, :W]
            p = full.reshape(-1, heads, H * W, H * W)  # padded queries and keys cropped off
        return p / p.sum(-1, keepdim=True).clamp_min(1e-12)


def _kind(module: _AttentionBase) -> tuple[str, int, int]:
    if isinstance(module, LocallyGroupedAttention):
        return "lsa", 1, module.window_size
    if isinstance(module, GlobalSubsampledAttention):
        return "gsa", module.sr_ratio, 0
    return "global", 1, 0


@contextlib.contextmanager
def record_attention(model: nn.Module) -> Iterator[list[AttentionCall]]:
    """Within the block, every cpvt_mm attention in ``model`` records its probabilities.

    Yields a list that fills with one :class:`AttentionCall` per attention call, in execution order. The
    outputs are those of the reference path (equal to SDPA's within float tolerance). Recording stops, and
    the hooks are removed, on exit, also when the forward raised.
    """
    calls: list[AttentionCall] = []
    handles, fused = [], {}
    for name, module in model.named_modules():
        if not isinstance(module, _AttentionBase):
            continue
        kind, reduction, window = _kind(module)
        pending: list[tuple] = []  # the current call's (name, kind, hw, prefix, r, ws)

        def pre_hook(mod, args, kwargs, name=name, kind=kind, r=reduction, ws=window, pending=pending):
            x = args[0]
            grid = args[1] if len(args) > 1 else kwargs.get("grid")
            hw = getattr(grid, "hw", grid)  # a Grid, or a plain (H, W)
            if hw is None:  # plain attention called without a grid: a square map of the patch tokens
                side = math.isqrt(x.shape[1])
                hw = (side, side)
            hw = (int(hw[0]), int(hw[1]))
            prefix = x.shape[1] - hw[0] * hw[1] if kind == "global" else 0
            pending[:] = [(name, kind, hw, prefix, r, ws)]

        def probs_hook(drop: nn.Module, args: tuple, output: Any, pending=pending) -> None:
            # the reference path's probabilities enter attn_drop (dropout's input: before any dropping)
            calls.append(AttentionCall(pending[0][0], pending[0][1], args[0].detach(), *pending[0][2:]))

        handles.append(module.register_forward_pre_hook(pre_hook, with_kwargs=True))
        handles.append(module.attn_drop.register_forward_hook(probs_hook))
        fused[module] = module.fused_attn
        module.fused_attn = False  # SDPA never materialises the probabilities
    if not fused:
        raise ValueError(f"{type(model).__name__} has no cpvt_mm attention module to record")
    try:
        yield calls
    finally:
        for h in handles:
            h.remove()
        for module, was_fused in fused.items():
            module.fused_attn = was_fused


def query_grid_position(frac: Sequence[float], hw: tuple[int, int]) -> tuple[int, int]:
    """A query given as fractions of the image (row, col in [0, 1]) -> a token (row, col) on grid ``hw``."""
    fr, fc = (float(v) for v in frac)
    if not (0 <= fr <= 1 and 0 <= fc <= 1):
        raise ValueError(f"query position must be fractions of the image in [0, 1], got ({fr}, {fc})")
    return min(int(fr * hw[0]), hw[0] - 1), min(int(fc * hw[1]), hw[1] - 1)


def load_model(config: str | Any, checkpoint: str, cfg_options: Mapping[str, Any] | None = None) -> nn.Module:
    """The config's model (any of the three toolkits) with every parameter from ``checkpoint``, in eval mode.

    ``config`` is a path (loaded with ``cfg_options``) or an already loaded ``Config``. The checkpoint goes
    through cpvt_mm's weights-only loader, and a checkpoint that leaves any parameter at its random initial
    value is refused (:class:`~cpvt_mm.apis.inference.UninitializedWeightsError`).
    """
    from mmengine.registry import DefaultScope

    from ..apis.config import load_config
    from ..apis.inference import _state_dict_of, check_checkpoint_covers_model
    from ..checkpoint import load_checkpoint_file

    cfg = load_config(config, cfg_options) if isinstance(config, str) else config
    scope = cfg.get("default_scope", "mmpretrain")
    with DefaultScope.overwrite_default_scope(scope):
        model = _build(scope, cfg.model)
    state = load_checkpoint_file(checkpoint)
    check_checkpoint_covers_model(model, state)
    model.load_state_dict(_state_dict_of(state), strict=False)  # buffers may be absent (coverage is checked)
    return model.eval()


def _without_init(model_cfg: Mapping) -> dict:
    cfg = dict(model_cfg)
    if "backbone" in cfg:
        cfg["backbone"] = {**cfg["backbone"], "init_cfg": None}  # no pretrained download before our weights
    return cfg


def _build(scope: str, model_cfg: Mapping) -> nn.Module:
    import importlib

    registry = importlib.import_module(f"{scope}.registry").MODELS
    return registry.build(_without_init(model_cfg))


def _prepare(model: nn.Module, image: np.ndarray, size: tuple[int, int] | None) -> Tensor:
    """An HxWxC (or HxW) uint8 image -> the model's normalised (1, C, H, W) input at ``size``."""
    import cv2

    if size is not None:
        image = cv2.resize(image, (size[1], size[0]), interpolation=cv2.INTER_LINEAR)
    t = torch.from_numpy(np.ascontiguousarray(image))
    t = t[None] if t.ndim == 2 else t.permute(2, 0, 1)  # (H, W[, C]) -> (C, H, W)
    prep = getattr(model, "data_preprocessor", None)
    if prep is None:  # a bare backbone: standardise the image itself
        t = t.float()[None]
        return (t - t.mean()) / t.std().clamp_min(1e-6)
    return prep(dict(inputs=[t]), False)["inputs"]


def _backbone_attention(model: nn.Module, x: Tensor) -> list[AttentionCall]:
    backbone = getattr(model, "backbone", model)
    with torch.no_grad(), record_attention(backbone) as calls:
        backbone(x)
    return calls


def attention_figure(
    models: Sequence[tuple[str, nn.Module]],
    images: Sequence[np.ndarray],
    out: str,
    queries: Sequence[Sequence[float]] = ((0.5, 0.5), (0.1, 0.1)),
    layers: Sequence[int] = (0, -1),
    head: int | None = None,
    size: tuple[int, int] | None = None,
    title: str | None = None,
) -> str:
    """Draw, for every (model, layer) row and every (image, query) column, the query's attention map.

    ``images`` are HxW (grayscale) or HxWx3 uint8 arrays in BGR order, as mmcv loads them and as the models'
    data preprocessors expect; they are drawn in RGB.

    ``layers`` index the model's attention calls in execution order (0 = the first block's attention, -1 the
    last); ``head`` picks one head, ``None`` averages them. The query token is marked with a cross. Writes a
    PNG atomically and returns ``out``.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..fileio import atomic_write_bytes

    if not models or not images:
        raise ValueError("attention_figure needs at least one model and one image")
    rows = [(label, model, layer) for label, model in models for layer in layers]
    cols = [(i, q) for i in range(len(images)) for q in queries]
    fig, axes = plt.subplots(
        len(rows), len(cols), figsize=(1.9 * len(cols), 1.9 * len(rows)), squeeze=False, layout="constrained"
    )
    cache: dict[tuple[int, int], list[AttentionCall]] = {}
    for r, (label, model, layer) in enumerate(rows):
        for c, (i, q) in enumerate(cols):
            key = (id(model), i)
            if key not in cache:
                cache[key] = _backbone_attention(model, _prepare(model, images[i], size))
            calls = cache[key]
            if not -len(calls) <= layer < len(calls):
                raise ValueError(f"layer {layer} out of range: {label} has {len(calls)} attention layers")
            call = calls[layer]
            qr, qc = query_grid_position(q, call.hw)
            amap = call.query_map(0, qr, qc)
            if head is not None and not 0 <= head < amap.shape[0]:
                raise ValueError(f"head {head} out of range: {call.module} has {amap.shape[0]} heads")
            amap = amap.mean(0) if head is None else amap[head]
            img = images[i] if size is None else _resize(images[i], size)
            img = img[..., ::-1] if img.ndim == 3 else img  # the models read BGR (as mmcv loads); show RGB
            ax = axes[r][c]
            ax.imshow(img, cmap="gray" if img.ndim == 2 else None, extent=(0, call.hw[1], call.hw[0], 0))
            ax.imshow(amap.float().numpy(), cmap="inferno", alpha=0.6, extent=(0, call.hw[1], call.hw[0], 0))
            ax.plot(qc + 0.5, qr + 0.5, "c+", markersize=9, markeredgewidth=2)
            ax.set_xticks([])
            ax.set_yticks([])
            if c == 0:
                where = call.module.removeprefix("backbone.").removesuffix(".attn")
                ax.set_ylabel(f"{label}\n{where} ({call.kind})", fontsize=7)
            if r == 0:
                ax.set_title(f"image {i}, query ({qr},{qc})", fontsize=7)
    if title:
        fig.suptitle(title, fontsize=9)
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    atomic_write_bytes(out, buf.getvalue())
    return out


def _resize(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    import cv2

    return cv2.resize(image, (size[1], size[0]), interpolation=cv2.INTER_LINEAR)


def draw_checkpoint_attention(
    config: str,
    checkpoint: str,
    images: Sequence[str],
    out: str,
    layers: Sequence[int] = (0, -1),
    queries: Sequence[Sequence[float]] = ((0.5, 0.5), (0.0, 0.0)),
    head: int | None = None,
    size: tuple[int, int] | None = None,
    cfg_options: Mapping[str, Any] | None = None,
) -> str:
    """``tools/analysis_tools/vis_attention.py``: one checkpoint's attention maps on image files."""
    import cv2

    for what, path in [("config", config), ("checkpoint", checkpoint)] + [("image", i) for i in images]:
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{what} not found: {path}")
    from ..apis.config import load_config

    cfg = load_config(config, cfg_options)
    model = load_model(cfg, checkpoint)
    backbone = getattr(model, "backbone", model)
    gray = getattr(backbone, "in_channels", 3) == 1
    arrays = []
    for path in images:
        image = cv2.imread(path, cv2.IMREAD_GRAYSCALE if gray else cv2.IMREAD_COLOR)
        if image is None:
            raise ValueError(f"cannot read {path} as an image")
        arrays.append(image)
    if size is None and (side := config_test_side(cfg)) is not None:
        size = (side, side)
    label = os.path.splitext(os.path.basename(config))[0]
    return attention_figure([(label, model)], arrays, out, queries, layers, head, size)


def config_test_side(cfg: Any) -> int | None:
    """Side of the square images a loaded config's test pipeline produces, or None when it does not say."""
    from ..evaluation.resolutions import native_size

    try:
        return native_size([dict(s) if isinstance(s, Mapping) else s for s in cfg.test_dataloader.dataset.pipeline])
    except (AttributeError, KeyError, ValueError):
        return None
