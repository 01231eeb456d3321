"""What every cpvt_mm backbone offers a training recipe, written once: freezing, train mode, weight-decay
exclusions, layer depth for layer-wise lr decay, gradient checkpointing and the PEGs' test-time dilation. A
backbone says only what its layout decides: :meth:`_frozen_modules` and :meth:`_layer_id`.
"""

from __future__ import annotations

from collections.abc import Iterable

from mmengine.model import BaseModule
from torch import nn

from .peg import PEG

__all__ = ["Backbone"]


class Backbone(BaseModule):
    """Base class of :class:`~cpvt_mm.models.CPVT`, :class:`~cpvt_mm.models.PCPVT` and
    :class:`~cpvt_mm.models.SVT`."""

    frozen_stages: int = -1
    with_cp: bool = False
    num_layers: int  # layer ids run 0 .. num_layers - 1; the last one holds the output norms

    def _frozen_modules(self) -> Iterable[nn.Module | nn.Parameter]:
        """What ``frozen_stages`` freezes (modules are also kept in eval mode)."""
        raise NotImplementedError

    def _layer_id(self, name: str) -> int | None:
        """The layer of parameter ``name`` for layer-wise lr decay; None: the last layer."""
        raise NotImplementedError

    @staticmethod
    def check_frozen_stages(frozen_stages: int, num: int, name: str) -> None:
        if not -1 <= frozen_stages <= num:
            raise ValueError(f"{name}: frozen_stages must be in [-1, {num}], got {frozen_stages}")

    def _freeze_stages(self) -> None:
        for item in self._frozen_modules() if self.frozen_stages >= 0 else ():
            if isinstance(item, nn.Module):
                item.eval()  # dropout and drop-path off in frozen parts
                item.requires_grad_(False)
            elif item is not None:
                item.requires_grad = False

    def train(self, mode: bool = True) -> Backbone:
        super().train(mode)
        self._freeze_stages()  # re-applied: a frozen part stays in eval mode (mmpretrain's ViT forgets this)
        return self

    def no_weight_decay(self) -> set[str]:
        """Parameters the authors train without weight decay: the PEGs, every 1-D parameter (norms, biases) and the
        backbone's own top-level ones (class token, position table)."""
        named = self.named_parameters()
        return {n for n, p in named if p.ndim == 1 or "." not in n or {"peg", "pegs"} & set(n.split("."))}

    def get_layer_depth(self, param_name: str, prefix: str = "") -> tuple[int, int]:
        """``(layer_id, num_layers)`` for mmpretrain's ``LearningRateDecayOptimWrapperConstructor``."""
        if not param_name.startswith(prefix):
            return self.num_layers - 1, self.num_layers
        layer = self._layer_id(param_name[len(prefix) :])
        return (self.num_layers - 1 if layer is None else layer), self.num_layers

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Checkpoint every block's activations (recomputed in backward)."""
        self.with_cp = bool(enable)
        for m in self.modules():
            if m is not self and hasattr(m, "with_cp"):
                m.with_cp = self.with_cp

    def set_peg_dilation(self, dilation: int) -> None:
        """Space every PEG's taps ``dilation`` tokens apart (:meth:`PEG.set_dilation`; weights unchanged)."""
        for m in self.modules():
            if isinstance(m, PEG):
                m.set_dilation(dilation)
