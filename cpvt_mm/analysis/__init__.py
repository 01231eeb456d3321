"""Analysis helpers: model complexity (params, FLOPs with attention) and model FLOPs utilisation."""

from .complexity import Complexity, count_complexity, mfu, sdpa_flops

__all__ = ["Complexity", "count_complexity", "mfu", "sdpa_flops"]
