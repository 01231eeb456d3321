"""Mixed precision on any device, CPU included.

MMEngine's ``AmpOptimWrapper`` refuses to run without CUDA/NPU/MLU. bf16 needs no loss scaling, so on a CPU
(or to force bf16 anywhere) a plain optimizer wrapper that trains under ``torch.autocast`` is enough;
``tools/train.py --amp`` picks it when no GPU is present.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from mmengine.optim import OptimWrapper
from torch import nn

from ..registry import OPTIM_WRAPPERS

__all__ = ["AutocastOptimWrapper"]


@OPTIM_WRAPPERS.register_module()
class AutocastOptimWrapper(OptimWrapper):
    """``OptimWrapper`` whose forward passes run under ``torch.autocast`` (bf16 by default, no loss scale).

    Args:
        dtype: ``'bfloat16'`` (default) or ``'float16'``; fp16 without loss scaling underflows, so it is
            only accepted on CUDA, where ``AmpOptimWrapper`` is the better choice anyway.
    """

    def __init__(self, *args, dtype: str = "bfloat16", **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if dtype not in ("bfloat16", "float16"):
            raise ValueError(f"AutocastOptimWrapper: dtype must be 'bfloat16' or 'float16', got {dtype!r}")
        self.cast_dtype = getattr(torch, dtype)

    @contextmanager
    def optim_context(self, model: nn.Module) -> Iterator[None]:
        device_type = next(model.parameters()).device.type
        if self.cast_dtype is torch.float16 and device_type != "cuda":
            raise ValueError("AutocastOptimWrapper: float16 without loss scaling is only allowed on CUDA; use bfloat16")
        with super().optim_context(model), torch.autocast(device_type=device_type, dtype=self.cast_dtype):
            yield
