"""A learning-rate schedule whose warm-up and decay are fractions of the run, so any ``max_epochs`` is valid.

The ImageNet recipe writes its warm-up in epochs (``LinearLR(end=5)`` then ``CosineAnnealingLR(begin=5)``).
Shortened to 3 epochs for a small dataset, the cosine begins after the run ends and mmengine stops with ``end
should be larger than begin, but got begin=100, end=60``. :class:`WarmupCosineLR` is one scheduler for the
whole run: a linear warm-up over ``warmup_fraction`` of it, then a cosine decay to ``eta_min``. Without
``begin`` / ``end`` the runner sets ``end`` to ``max_epochs`` (or ``max_iters``), so shortening the run shrinks
both phases together and can never invert them.

(mmengine's ``OneCycleLR`` has the same shape but keeps a bound method in its state, which a weights-only
checkpoint load rightly refuses; this one's state is numbers only.)
"""

from __future__ import annotations

import math
from typing import Any

from mmengine.optim.scheduler.lr_scheduler import LRSchedulerMixin
from mmengine.optim.scheduler.param_scheduler import INF, _ParamScheduler

from ..registry import PARAM_SCHEDULERS

__all__ = ["WarmupCosineLR"]


@PARAM_SCHEDULERS.register_module()
class WarmupCosineLR(LRSchedulerMixin, _ParamScheduler):
    """Linear warm-up from ``start_factor`` x lr over the first ``warmup_fraction`` of ``[begin, end)``, then
    cosine decay from lr to ``eta_min`` over the rest; closed form, not chainable (use it alone).

    Args:
        optimizer: the wrapped optimizer (given by the runner).
        warmup_fraction: share of the scheduler's steps spent warming up, in ``[0, 1)``.
        start_factor: the lr at the first step, as a factor of the optimizer's lr.
        eta_min: the lr at the end of the run.
        begin, end, by_epoch: as every mmengine scheduler; leave ``end`` out to span the whole run.
    """

    def __init__(self, optimizer: Any, warmup_fraction: float = 0.05, start_factor: float = 1e-3,
                 eta_min: float = 0.0, begin: int = 0, end: int = INF, last_step: int = -1, by_epoch: bool = True,
                 verbose: bool = False) -> None:  # fmt: skip
        if not 0.0 <= warmup_fraction < 1.0:
            raise ValueError(f"warmup_fraction must be in [0, 1), got {warmup_fraction}")
        if end == INF:
            raise ValueError("WarmupCosineLR needs an end; the runner sets it to the run's length when it builds it")
        self.warmup_fraction, self.start_factor, self.eta_min = warmup_fraction, start_factor, eta_min
        # LRSchedulerMixin passes param_name="lr"
        super().__init__(optimizer, begin=begin, end=end, last_step=last_step, by_epoch=by_epoch,
                         verbose=verbose)  # fmt: skip

    @classmethod
    def build_iter_from_epoch(cls, *args: Any, begin: float = 0, end: float = INF, by_epoch: bool = True,
                              epoch_length: int | None = None, **kwargs: Any) -> WarmupCosineLR:  # fmt: skip
        """``convert_to_iter_based=True``: epochs -> iterations, so the lr changes every step."""
        if not by_epoch or not epoch_length:
            raise ValueError("convert_to_iter_based needs by_epoch=True and the epoch length")
        end = int(end * epoch_length) if end != INF else INF
        return cls(*args, begin=int(begin * epoch_length), end=end, by_epoch=False, **kwargs)

    def _get_value(self) -> list[float]:
        total = self.end - self.begin
        warmup = self.warmup_fraction * total
        step = min(self.last_step, total)
        values = []
        for base in self.base_values:
            if step < warmup:  # linear from start_factor * base to base
                values.append(base * (self.start_factor + (1 - self.start_factor) * step / warmup))
            else:  # cosine from base to eta_min over the remaining steps
                progress = (step - warmup) / max(1.0, total - warmup)
                values.append(self.eta_min + (base - self.eta_min) * 0.5 * (1 + math.cos(math.pi * progress)))
        return values
