"""``torch.compile`` for cpvt_mm models: one graph for (almost) every input size, and a way to count graphs.

With ``dynamic=True`` the models trace size-generic code (:func:`cpvt_mm.models.utils.is_symbolic`): padding by
a possibly-zero amount, the LSA mask always built, and contiguous copies where a ``reshape`` would otherwise be
a view for some sizes and a copy for others. What is left to guard on are PyTorch's own 0/1 specialisations
(batch 1, a stage grid of one token or one window per side) and its "duck shaping" (a square first input
makes height and width one symbol, and the first non-square input recompiles). :func:`compile_model` turns
on size-oblivious reasoning for backed sizes, which treats a size of 1 like any other, and turns duck shaping
off, so one graph serves batch 1 to N and every side from a few windows up
(``tests/test_deployment.py``: one graph for five sizes from 97x131 to 333x517 and batches 1-3).

The padding-aware path (``valid_sizes``) is eager-only: under compilation the attached sizes are not read.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.fx.experimental._config as fx_config
from torch import nn

__all__ = ["CompileStats", "CompiledModel", "compile_backbone", "compile_model", "count_compiles"]


class CompiledModel(nn.Module):
    """``torch.compile(model)`` whose calls trace with size-oblivious reasoning and without duck shaping.

    The flags must be set while dynamo traces, which happens on the first call of each new graph, not inside
    ``torch.compile`` itself; hence a wrapper rather than a one-off config change. ``state_dict`` keys are
    those of ``model`` under ``model.``.
    """

    def __init__(self, model: nn.Module, **compile_kwargs: Any) -> None:
        super().__init__()
        self.model = model
        self._compiled = torch.compile(model, **compile_kwargs)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        with fx_config.patch(backed_size_oblivious=True, use_duck_shape=False):
            return self._compiled(*args, **kwargs)


def compile_model(
    model: nn.Module, *, dynamic: bool = True, backend: str = "inductor", mode: str | None = None
) -> CompiledModel:
    """Compile ``model`` for inference or training at varying input sizes (see the module docstring)."""
    return CompiledModel(model, dynamic=dynamic, backend=backend, mode=mode)


def compile_backbone(model: nn.Module, *, dynamic: bool = True, backend: str = "inductor") -> nn.Module:
    """Compile the backbone of a detector / segmentor / classifier in place; returns ``model``.

    Only the backbone's ``forward`` is replaced, so the module tree and the ``state_dict`` keys stay as they
    are (a checkpoint loads after this call just as before) and the toolkit's heads and post-processing stay
    eager. The backbone is where the time goes at dense-prediction sizes. A padding-aware data preprocessor
    no longer helps a compiled backbone (the attached image sizes are not read under compilation), so that
    combination logs a warning: padded batches then behave as in the stock toolkits.
    """
    from mmengine.logging import print_log

    target = getattr(model, "module", model)  # unwrap DDP-style wrappers
    backbone = getattr(target, "backbone", None)
    if backbone is None:
        raise ValueError(f"{type(target).__name__} has no `backbone` to compile")
    prep = type(getattr(target, "data_preprocessor", None)).__name__
    if prep.startswith("PaddingAware"):
        print_log(
            f"--compile: {prep} attaches image sizes that a compiled backbone does not read; padded batches "
            "are processed like the stock toolkits' (padding as image content). Test with batch size 1 or "
            "without --compile where that matters.",
            logger="current",
            level=logging.WARNING,
        )
    compiled = torch.compile(backbone.forward, dynamic=dynamic, backend=backend)

    def forward(*args: Any, **kwargs: Any) -> Any:
        with fx_config.patch(backed_size_oblivious=True, use_duck_shape=False):
            return compiled(*args, **kwargs)

    backbone.forward = forward
    return model


@dataclass
class CompileStats:
    """What dynamo did inside :func:`count_compiles`: graphs compiled, recompiles logged, graph breaks."""

    graphs: int = 0
    graph_breaks: int = 0
    recompile_reasons: list[str] = field(default_factory=list)

    @property
    def recompiles(self) -> int:
        return len(self.recompile_reasons)


class _RecompileHandler(logging.Handler):
    def __init__(self, sink: list[str]) -> None:
        super().__init__(logging.DEBUG)
        self.sink = sink

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if "Recompiling function" in message:
            self.sink.append(message)


@contextmanager
def count_compiles() -> Iterator[CompileStats]:
    """Count graphs, graph breaks and recompiles (from torch's ``recompiles`` log) while the block runs."""
    from torch._dynamo.utils import counters

    stats = CompileStats()
    graphs0 = counters["stats"]["unique_graphs"]
    breaks0 = sum(counters["graph_break"].values())
    handler = _RecompileHandler(stats.recompile_reasons)
    logger = logging.getLogger("torch._dynamo")
    torch._logging.set_logs(recompiles=True)
    logger.addHandler(handler)
    try:
        yield stats
    finally:
        logger.removeHandler(handler)
        torch._logging.set_logs()
        stats.graphs = counters["stats"]["unique_graphs"] - graphs0
        stats.graph_breaks = sum(counters["graph_break"].values()) - breaks0
