"""Fix ``mmcv_ops``: ``mmcv.ops`` without mmcv's compiled extension, backed by torchvision and plain PyTorch.

Symptom without it: mmcv 2.1.0 (the newest mmcv that mmdet 3.3 and mmseg 1.2 accept) ships no compiled ops for
any current torch or CUDA. Built without them (``MMCV_WITH_OPS=0``, seconds instead of 8-16 minutes of C++ and
CUDA), every ``mmcv.ops`` module dies at import with ``No module named 'mmcv._ext'``, and with it ``import
mmdet.models`` and ``import mmseg.models``: both import ``mmcv.ops`` names at import time.

Fix: when ``mmcv._ext`` cannot be imported, register a stand-in module under that name before ``mmcv.ops`` is
imported. mmcv's own Python layer (``nms``, ``batched_nms`` with its class offsets and ``split_thr`` path,
``RoIAlign``, ``sigmoid_focal_loss`` ...) then runs unchanged; only the kernels it calls come from here:

- ``nms``: torchvision's kernel (CPU and CUDA), in mmcv's score order, so ties keep mmcv's indices;
- ``roi_align_forward`` / ``roi_align_backward``: torchvision's kernels for ``pool_mode='avg'`` (``aligned`` and
  ``sampling_ratio`` as mmcv), plain PyTorch for ``'max'`` (mmcv's sampling points, argmax and gradient);
- ``sigmoid_focal_loss_forward`` / ``_backward``: mmcv's element-wise formulas in plain PyTorch.

Every other kernel of the extension raises :class:`MissingCompiledOpError` when called (never at import), with
one line naming the op and how to get mmcv's compiled ops. The fix is inert when the compiled extension
imports; ``CPVT_MM_MMCV_OPS=torchvision`` forces it (the parity tests compare both in one process through
:func:`torchvision_ops`).
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.machinery
import importlib.util
import os
import sys
import types
from collections.abc import Callable, Iterator
from typing import Any

import torch

FORCE_ENV = "CPVT_MM_MMCV_OPS"
MODULE_NAME = "mmcv._ext"
SUPPLIED = ("nms", "roi_align_forward", "roi_align_backward", "sigmoid_focal_loss_forward",
            "sigmoid_focal_loss_backward")  # fmt: skip
HOW_TO_GET_OPS = (
    "reinstall mmcv with its compiled ops: `MMCV_OPS=compile make setup` (or point PIP_FIND_LINKS at a "
    "compiled mmcv 2.1.0 wheel)"
)

_state: dict[str, str] = {"mode": "not checked", "reason": ""}


class MissingCompiledOpError(RuntimeError):
    """An mmcv op that exists only in mmcv's compiled extension was called on an install without it."""


def _missing(name: str) -> Callable[..., Any]:
    def op(*args: Any, **kwargs: Any) -> Any:
        raise MissingCompiledOpError(
            f"mmcv op '{name}' needs mmcv's compiled ops (mmcv._ext), which this install does not have "
            f"(cpvt_mm supplies only nms, batched_nms, roi_align and sigmoid_focal_loss); {HOW_TO_GET_OPS}"
        )

    op.__name__ = name
    return op


# ---------------------------------------------------------------------------------------------------------
# nms


def nms(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float, offset: int = 0) -> torch.Tensor:
    """mmcv's ``nms`` kernel: indices of the kept boxes, highest score first.

    The boxes are ranked with mmcv's own ``scores.sort(descending=True)`` and handed to torchvision already in
    that order with strictly decreasing stand-in scores, so torchvision's (possibly different) sort cannot
    reorder ties. ``offset=1`` (mmcv's legacy ``x2 - x1 + 1`` widths) is the same IoU on boxes whose far corner
    is moved by one.
    """
    import torchvision

    if boxes.numel() == 0:
        return boxes.new_empty(0, dtype=torch.long)
    order = scores.sort(0, descending=True)[1]
    ranked = boxes[order]
    if offset:
        ranked = ranked + ranked.new_tensor([0.0, 0.0, float(offset), float(offset)])
    ramp = torch.arange(order.numel(), 0, -1, device=boxes.device, dtype=torch.float32)
    keep = torchvision.ops.nms(ranked.float(), ramp, float(iou_threshold))
    return order[keep.sort()[0]]  # positions in rank order -> original indices


# ---------------------------------------------------------------------------------------------------------
# roi_align


def roi_align_forward(
    input: torch.Tensor,
    rois: torch.Tensor,
    output: torch.Tensor,
    argmax_y: torch.Tensor,
    argmax_x: torch.Tensor,
    aligned_height: int,
    aligned_width: int,
    spatial_scale: float,
    sampling_ratio: int,
    pool_mode: int,
    aligned: bool,
) -> None:
    """mmcv's ``roi_align_forward``: fills ``output`` (and, for max pooling, ``argmax_y/x``) in place."""
    rois = rois.to(input.dtype)
    if pool_mode == 1:  # avg
        output.copy_(_torchvision_roi_align(input, rois, aligned_height, aligned_width, spatial_scale,
                                            sampling_ratio, aligned))  # fmt: skip
        return
    out, ay, ax = _roi_align_plain(
        input, rois, aligned_height, aligned_width, spatial_scale, sampling_ratio, aligned, "max"
    )
    output.copy_(out)
    argmax_y.copy_(ay)
    argmax_x.copy_(ax)


def roi_align_backward(
    grad_output: torch.Tensor,
    rois: torch.Tensor,
    argmax_y: torch.Tensor,
    argmax_x: torch.Tensor,
    grad_input: torch.Tensor,
    aligned_height: int,
    aligned_width: int,
    spatial_scale: float,
    sampling_ratio: int,
    pool_mode: int,
    aligned: bool,
) -> None:
    """mmcv's ``roi_align_backward``: accumulates the input gradient into ``grad_input`` in place."""
    rois = rois.to(grad_output.dtype)
    if pool_mode == 1:
        # Average pooling is linear in the input, so its gradient is the vector-Jacobian product of the forward
        # at any input (zeros here): torchvision's own backward kernel, or autograd through the plain version.
        probe = grad_output.new_zeros(grad_input.shape, requires_grad=True)
        with torch.enable_grad():
            out = _torchvision_roi_align(probe, rois, aligned_height, aligned_width, spatial_scale, sampling_ratio,
                                         aligned)  # fmt: skip
            (grad,) = torch.autograd.grad(out, probe, grad_output)
        grad_input.add_(grad)
        return
    valid = argmax_y != -1.0  # mmcv's marker for "no sample in this bin"
    _scatter_bilinear(grad_input, rois[:, 0].long(), argmax_y, argmax_x, grad_output, valid)


def _torchvision_roi_align(
    input: torch.Tensor, rois: torch.Tensor, ph: int, pw: int, spatial_scale: float, sampling_ratio: int, aligned: bool
) -> torch.Tensor:
    """Average-pooled RoIAlign: torchvision's kernel (the same sampling as mmcv's), or, where torchvision's
    compiled ops do not load (a CPU-only torch), the plain-PyTorch one here."""
    import torchvision
    from torchvision.extension import _has_ops

    if not _has_ops():  # torchvision's own fallback samples differently; ours follows mmcv
        return _roi_align_plain(input, rois, ph, pw, spatial_scale, sampling_ratio, aligned, "avg")[0]
    return torchvision.ops.roi_align(input, rois, (ph, pw), float(spatial_scale), sampling_ratio, bool(aligned))


def _roi_geometry(
    rois: torch.Tensor, pooled: tuple[int, int], spatial_scale: float, sampling_ratio: int, aligned: bool
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Sampling points of every bin, as mmcv's kernel places them.

    Returns ``ys`` (K, ph, G_h), ``xs`` (K, pw, G_w) and the per-RoI grid sizes (K,) for y and x; G is the
    largest grid, points past a RoI's own grid are marked by the grid sizes.
    """
    offset = 0.5 if aligned else 0.0
    start_w = rois[:, 1] * spatial_scale - offset
    start_h = rois[:, 2] * spatial_scale - offset
    roi_w = rois[:, 3] * spatial_scale - offset - start_w
    roi_h = rois[:, 4] * spatial_scale - offset - start_h
    if not aligned:  # mmcv's backward-compatible minimum size
        roi_w, roi_h = roi_w.clamp(min=1.0), roi_h.clamp(min=1.0)
    elif bool((roi_w < 0).any() or (roi_h < 0).any()):
        raise ValueError("roi_align: RoIs must have non-negative width and height (x2 >= x1, y2 >= y1)")
    ph, pw = pooled
    bin_h, bin_w = roi_h / ph, roi_w / pw
    if sampling_ratio > 0:
        grid_h = torch.full_like(roi_h, sampling_ratio, dtype=torch.long)
        grid_w = torch.full_like(roi_w, sampling_ratio, dtype=torch.long)
    else:
        grid_h, grid_w = torch.ceil(roi_h / ph).long(), torch.ceil(roi_w / pw).long()
    gh, gw = max(int(grid_h.max()), 1), max(int(grid_w.max()), 1)

    def points(start: torch.Tensor, bin_size: torch.Tensor, grid: torch.Tensor, n: int, g: int) -> torch.Tensor:
        p = torch.arange(n, device=rois.device, dtype=rois.dtype).view(1, n, 1)
        i = torch.arange(g, device=rois.device, dtype=rois.dtype).view(1, 1, g)
        size = bin_size.view(-1, 1, 1)
        # mmcv: start + p * bin + (i + .5) * bin / grid, in that order of operations
        return start.view(-1, 1, 1) + p * size + (i + 0.5) * size / grid.clamp(min=1).view(-1, 1, 1).to(rois.dtype)

    return points(start_h, bin_h, grid_h, ph, gh), points(start_w, bin_w, grid_w, pw, gw), grid_h, grid_w


def _bilinear_corners(
    y: torch.Tensor, x: torch.Tensor, height: int, width: int
) -> tuple[list[torch.Tensor], list[torch.Tensor], torch.Tensor]:
    """mmcv's bilinear_interpolate: the four corner indices (flattened h*w), their weights, and which points
    lie inside the map (outside: weights 0)."""
    inside = (y >= -1.0) & (y <= height) & (x >= -1.0) & (x <= width)
    y = y.clamp(min=0)
    x = x.clamp(min=0)
    y_low, x_low = y.long(), x.long()  # truncation == floor for y, x >= 0
    y_edge, x_edge = y_low >= height - 1, x_low >= width - 1
    y_low = torch.where(y_edge, height - 1, y_low)
    x_low = torch.where(x_edge, width - 1, x_low)
    y_high = torch.where(y_edge, y_low, y_low + 1)
    x_high = torch.where(x_edge, x_low, x_low + 1)
    y = torch.where(y_edge, y_low.to(y.dtype), y)
    x = torch.where(x_edge, x_low.to(x.dtype), x)
    ly, lx = y - y_low, x - x_low
    hy, hx = 1.0 - ly, 1.0 - lx
    zero = torch.zeros((), dtype=y.dtype, device=y.device)
    weights = [torch.where(inside, w, zero) for w in (hy * hx, hy * lx, ly * hx, ly * lx)]
    index = [y_low * width + x_low, y_low * width + x_high, y_high * width + x_low, y_high * width + x_high]
    index = [torch.where(inside, i, 0) for i in index]
    return index, weights, inside


def _roi_align_plain(
    input: torch.Tensor,
    rois: torch.Tensor,
    ph: int,
    pw: int,
    spatial_scale: float,
    sampling_ratio: int,
    aligned: bool,
    pool_mode: str,
    max_elements: int = 1 << 24,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """RoIAlign in plain PyTorch, sampling as mmcv's kernel does (differentiable through autograd).

    ``'avg'``: the mean of each bin's bilinear samples. ``'max'``: the largest sample (at least mmcv's floor of
    -10000) and its (y, x), or -1 where a bin has none, which mmcv's backward reads. RoIs go in chunks to bound
    the memory of the (RoIs, C, bins, samples) values.
    """
    k, c, height, width = rois.shape[0], *input.shape[1:]
    out = input.new_full((k, c, ph, pw), -10000.0 if pool_mode == "max" else 0.0)
    arg_y = input.new_full((k, c, ph, pw), -1.0)
    arg_x = input.new_full((k, c, ph, pw), -1.0)
    if k == 0:
        return out, arg_y, arg_x
    ys, xs, grid_h, grid_w = _roi_geometry(rois, (ph, pw), spatial_scale, sampling_ratio, aligned)
    gh, gw = ys.shape[2], xs.shape[2]
    step = max(1, max_elements // (c * ph * gh * pw * gw))
    flat = input.flatten(2)  # (B, C, H*W)
    dev = input.device
    for s in range(0, k, step):
        sl = slice(s, s + step)
        n = ys[sl].shape[0]
        # every sample point of every bin: (n, ph, gh, pw, gw)
        y = ys[sl].view(n, ph, gh, 1, 1).expand(n, ph, gh, pw, gw)
        x = xs[sl].view(n, 1, 1, pw, gw).expand(n, ph, gh, pw, gw)
        index, weights, _ = _bilinear_corners(y, x, height, width)
        feats = flat[rois[sl, 0].long()]  # (n, C, H*W)
        val = None
        for i, w in zip(index, weights, strict=True):
            v = w.unsqueeze(1) * feats.gather(2, i.reshape(n, 1, -1).expand(n, c, -1)).view(n, c, ph, gh, pw, gw)
            val = v if val is None else val + v
        # (n, C, ph, gh, pw, gw) -> (n, C, ph, pw, gh * gw): the samples of a bin last, in mmcv's loop order
        val = val.permute(0, 1, 2, 4, 3, 5).reshape(n, c, ph, pw, gh * gw)
        iy = torch.arange(gh, device=dev).view(gh, 1)
        ix = torch.arange(gw, device=dev).view(1, gw)
        real = (iy < grid_h[sl].view(n, 1, 1)) & (ix < grid_w[sl].view(n, 1, 1))  # (n, gh, gw): the RoI's own grid
        real = real.view(n, 1, 1, 1, gh * gw)
        if pool_mode == "avg":
            count = (grid_h[sl] * grid_w[sl]).clamp(min=1).to(val.dtype).view(n, 1, 1, 1)
            out[sl] = val.masked_fill(~real, 0.0).sum(-1) / count
            continue
        best, where = val.masked_fill(~real, float("-inf")).max(dim=-1)
        hit = best > -10000.0  # mmcv keeps a sample only when it beats its -10000 start value
        py = torch.arange(ph, device=dev).view(1, 1, ph, 1).expand(n, c, ph, pw)
        px = torch.arange(pw, device=dev).view(1, 1, 1, pw).expand(n, c, ph, pw)
        rk = torch.arange(n, device=dev).view(n, 1, 1, 1).expand(n, c, ph, pw)
        out[sl] = torch.where(hit, best, out[sl])
        arg_y[sl] = torch.where(hit, ys[sl][rk, py, where // gw], arg_y[sl])
        arg_x[sl] = torch.where(hit, xs[sl][rk, px, where % gw], arg_x[sl])
    return out, arg_y, arg_x


def _scatter_bilinear(
    grad_input: torch.Tensor,
    batch_index: torch.Tensor,
    y: torch.Tensor,
    x: torch.Tensor,
    grad: torch.Tensor,
    valid: torch.Tensor,
) -> None:
    """Adds ``grad`` (K, C, ph, pw) to ``grad_input`` (B, C, H, W) at the bilinear corners of (y, x)."""
    _b, c, height, width = grad_input.shape
    index, weights, inside = _bilinear_corners(y, x, height, width)
    keep = valid & inside
    base = (batch_index.view(-1, 1, 1, 1) * c + torch.arange(c, device=y.device).view(1, c, 1, 1)) * height * width
    flat = grad_input.view(-1)
    for i, w in zip(index, weights, strict=True):
        flat.index_add_(0, (base + i)[keep], (grad * w)[keep].to(flat.dtype))


# ---------------------------------------------------------------------------------------------------------
# sigmoid focal loss


def _focal_terms(
    input: torch.Tensor, target: torch.Tensor, weight: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """p = sigmoid(x), the one-hot of ``target`` (index C = background: no positive), and the per-row weight."""
    num_classes = input.shape[1]
    p = torch.sigmoid(input)
    classes = torch.arange(num_classes, device=input.device)
    pos = (target.view(-1, 1) == classes).to(input.dtype)
    if weight.numel():
        # mmcv's kernel reads weight[target]; background rows (target == C) read past the end there, here 1
        padded = torch.cat([weight.to(input.dtype), weight.new_ones(1, dtype=input.dtype)])
        row_weight = padded[target.clamp(0, num_classes)].view(-1, 1)
    else:
        row_weight = input.new_ones(())
    tiny = torch.finfo(torch.float32).tiny  # mmcv clamps log arguments at FLT_MIN
    return p, pos, row_weight, torch.as_tensor(tiny, dtype=input.dtype, device=input.device)


def sigmoid_focal_loss_forward(
    input: torch.Tensor, target: torch.Tensor, weight: torch.Tensor, output: torch.Tensor, gamma: float, alpha: float
) -> None:
    """mmcv's element-wise sigmoid focal loss, written into ``output`` (N, C)."""
    p, pos, row_weight, tiny = _focal_terms(input, target, weight)
    term_p = (1.0 - p).pow(gamma) * torch.log(torch.maximum(p, tiny))
    term_n = p.pow(gamma) * torch.log(torch.maximum(1.0 - p, tiny))
    loss = -pos * alpha * term_p - (1.0 - pos) * (1.0 - alpha) * term_n
    output.copy_(loss * row_weight)


def sigmoid_focal_loss_backward(
    input: torch.Tensor,
    target: torch.Tensor,
    weight: torch.Tensor,
    grad_input: torch.Tensor,
    gamma: float,
    alpha: float,
) -> None:
    """mmcv's closed-form gradient of the element-wise loss with respect to the logits, into ``grad_input``."""
    p, pos, row_weight, tiny = _focal_terms(input, target, weight)
    term_p = (1.0 - p).pow(gamma) * (1.0 - p - gamma * p * torch.log(torch.maximum(p, tiny)))
    term_n = p.pow(gamma) * (gamma * (1.0 - p) * torch.log(torch.maximum(1.0 - p, tiny)) - p)
    grad = -pos * alpha * term_p - (1.0 - pos) * (1.0 - alpha) * term_n
    grad_input.copy_(grad * row_weight)


# ---------------------------------------------------------------------------------------------------------
# the stand-in module


def get_compiler_version() -> str:
    return "none (cpvt_mm's torchvision-backed mmcv.ops; mmcv has no compiled ops)"


def get_compiling_cuda_version() -> str:
    return "not compiled"


class _TorchvisionExt(types.ModuleType):
    """Stands in for ``mmcv._ext``: the supplied kernels, and for any other name an op that raises when called
    (so mmcv's import-time ``hasattr`` checks pass and nothing fails before it is used)."""

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        op = _missing(name)
        setattr(self, name, op)
        return op


def make_ext() -> types.ModuleType:
    """A fresh stand-in for ``mmcv._ext``."""
    ext = _TorchvisionExt(MODULE_NAME, "cpvt_mm's stand-in for mmcv's compiled ops (see cpvt_mm.compat.mmcv_ops)")
    ext.__spec__ = importlib.machinery.ModuleSpec(MODULE_NAME, None)
    ext.__file__ = __file__
    for name in (*SUPPLIED, "get_compiler_version", "get_compiling_cuda_version"):
        setattr(ext, name, globals()[name])
    return ext


_EXT: types.ModuleType | None = None


def _compiled_ext_error() -> str | None:
    """Why mmcv's compiled extension cannot be used (None when it imports)."""
    try:
        importlib.import_module(MODULE_NAME)
    except ImportError as e:  # absent (built without ops) or built for another torch (undefined symbol)
        return f"{type(e).__name__}: {e}".splitlines()[0]
    return None


def _loaded_ops_modules() -> list[types.ModuleType]:
    return [m for n, m in list(sys.modules.items()) if n.startswith("mmcv.ops.") and hasattr(m, "ext_module")]


def apply() -> bool:
    """Register the stand-in when mmcv has no usable compiled ops (or ``CPVT_MM_MMCV_OPS=torchvision``)."""
    global _EXT
    if _EXT is not None:
        return True
    if importlib.util.find_spec("mmcv") is None:
        _state.update(mode="no mmcv installed", reason="")
        return False
    forced = os.environ.get(FORCE_ENV, "").strip().lower()
    if forced not in ("", "auto", "torchvision", "compiled"):
        raise ValueError(f"{FORCE_ENV}={forced!r}: expected 'auto', 'torchvision' or 'compiled'")
    if forced == "torchvision":
        reason = f"forced by {FORCE_ENV}=torchvision"
        if "mmcv.ops" in sys.modules and not isinstance(sys.modules.get(MODULE_NAME), _TorchvisionExt):
            raise RuntimeError(
                f"{FORCE_ENV}=torchvision must be set before mmcv.ops is imported (import cpvt_mm first), "
                "or use cpvt_mm.compat.mmcv_ops.torchvision_ops() in-process"
            )
    else:
        reason = _compiled_ext_error()
        if reason is None:
            _state.update(mode="compiled", reason=f"mmcv's compiled extension ({sys.modules[MODULE_NAME].__file__})")
            return False
        if forced == "compiled":
            raise ImportError(f"{FORCE_ENV}=compiled but mmcv's compiled ops do not load ({reason}); {HOW_TO_GET_OPS}")
    _EXT = make_ext()
    sys.modules[MODULE_NAME] = _EXT
    _state.update(mode="torchvision", reason=reason)
    return True


def describe() -> str:
    """One line: which kernels back ``mmcv.ops`` in this process, and why."""
    if _state["mode"] == "torchvision":
        return (
            f"mmcv.ops: cpvt_mm's torchvision/PyTorch kernels for {', '.join(SUPPLIED)}; other ops raise when "
            f"called ({_state['reason']})"
        )
    if _state["mode"] == "compiled":
        return f"mmcv.ops: {_state['reason']}"
    return f"mmcv.ops: {_state['mode']}"


def mode() -> str:
    """``'compiled'``, ``'torchvision'``, or why neither was checked."""
    return _state["mode"]


@contextlib.contextmanager
def torchvision_ops() -> Iterator[types.ModuleType]:
    """Route every imported ``mmcv.ops`` module to the stand-in kernels for the duration (tests, comparisons).

    Swaps each module's ``ext_module``, so mmcv's Python layer runs unchanged on top of either set of kernels.
    """
    import mmcv.ops  # noqa: F401  (all of its submodules, each holding ext_module)

    ext = make_ext()
    modules = _loaded_ops_modules()
    saved = [m.ext_module for m in modules]
    for m in modules:
        m.ext_module = ext
    try:
        yield ext
    finally:
        for m, old in zip(modules, saved, strict=True):
            m.ext_module = old
