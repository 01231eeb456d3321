"""What to deploy: a named architecture or a config's model, with optional weights, as a plain tensor module.

Exporters and compilers want ``forward(images) -> tensors``. A cpvt_mm backbone already is one (a tuple of
NCHW stage maps). A toolkit model (mmpretrain's ``ImageClassifier``, an mmdet detector, an mmseg segmenter)
is an MMEngine ``BaseModel`` whose ``forward`` takes data samples and a ``mode``; :class:`TensorModel` pins
``mode='tensor'`` (the raw head outputs: logits for a classifier), which is the part of the model that is a
pure function of the image batch. Normalisation lives in the data preprocessor and is not part of it: feed
normalised images, as the preprocessor would.
"""

from __future__ import annotations

import os.path as osp
from typing import Any

from torch import Tensor, nn

from ..registry import MODELS as CPVT_MODELS

__all__ = ["ARCHS", "TensorModel", "build_deployable"]

# Names accepted in place of a config: family-size, as in the model zoo.
ARCHS: dict[str, tuple[str, str]] = {
    **{f"pcpvt-{s}": ("PCPVT", s) for s in ("small", "base", "large")},
    **{f"svt-{s}": ("SVT", s) for s in ("small", "base", "large")},
    **{f"cpvt-{s}": ("CPVT", s) for s in ("tiny", "small", "base")},
}


class TensorModel(nn.Module):
    """``forward(images)`` of a toolkit ``BaseModel`` in ``mode='tensor'`` (no data samples, no post-processing)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: Tensor) -> Tensor | tuple[Tensor, ...]:
        out = self.model(x, mode="tensor")
        return tuple(out) if isinstance(out, list) else out


def _build_from_config(path: str) -> nn.Module:
    from mmengine.config import Config
    from mmengine.registry import MODELS, init_default_scope

    cfg = Config.fromfile(path)
    init_default_scope(cfg.get("default_scope", "mmpretrain"))
    model_cfg = cfg.model
    backbone = model_cfg.get("backbone")
    if isinstance(backbone, dict):
        backbone.pop("init_cfg", None)  # weights come from the checkpoint argument, not a pretrained file
    return MODELS.build(model_cfg)


def build_deployable(target: str, checkpoint: str | None = None, *, backbone_only: bool = False) -> nn.Module:
    """Build the module to export or compile, in eval mode.

    Args:
        target: An architecture name from :data:`ARCHS` (``'pcpvt-small'``: the backbone, all four stage maps
            for the pyramids, the class token for CPVT) or a config file of any of the three toolkits (the whole
            model in ``mode='tensor'``; a classifier gives logits).
        checkpoint: Weights to load (an mmengine checkpoint or a bare state dict, loaded with cpvt_mm's safe
            loader); every parameter must be covered. Without it the weights are random, which is enough to
            check an export.
        backbone_only: With a config, deploy only ``model.backbone``.
    """
    if target in ARCHS:
        family, arch = ARCHS[target]
        # scoped name: a default scope another toolkit set (mmdet, mmseg) must not redirect the lookup
        model: nn.Module = CPVT_MODELS.build(dict(type=f"cpvt_mm.{family}", arch=arch))
    elif osp.isfile(target):
        model = _build_from_config(target)
        if backbone_only:
            model = model.backbone
        elif hasattr(model, "data_preprocessor"):
            model = TensorModel(model)
    else:
        raise FileNotFoundError(f"expected a config file or one of {sorted(ARCHS)}, got {target!r}")
    if checkpoint is not None:
        _load_weights(model, checkpoint)
    return model.eval()


def _load_weights(model: nn.Module, checkpoint: str) -> None:
    from ..checkpoint import load_checkpoint_file

    state: Any = load_checkpoint_file(checkpoint, map_location="cpu")
    state = state.get("state_dict", state) if isinstance(state, dict) else state
    if not isinstance(state, dict):
        raise ValueError(f"{checkpoint}: expected a state dict or an mmengine checkpoint with 'state_dict'")
    target = model.model if isinstance(model, TensorModel) else model
    state = {k.removeprefix("module."): v for k, v in state.items()}
    own = target.state_dict()
    if not set(own) & set(state) and any(k.startswith("backbone.") for k in state):
        state = {k.removeprefix("backbone."): v for k, v in state.items() if k.startswith("backbone.")}
    missing = [k for k, _ in target.named_parameters() if k not in state]
    if missing:
        raise ValueError(
            f"{checkpoint} does not cover the model: {len(missing)} parameters missing (e.g. {missing[0]}); "
            "pass the checkpoint of this config, or of this architecture's backbone"
        )
    target.load_state_dict({k: v for k, v in state.items() if k in own}, strict=False)
