"""cpvt_mm: conditional positional encodings for vision transformers on OpenMMLab 2.x.

Importing the package applies the compatibility layer (:mod:`cpvt_mm.compat`) and registers the models
(``cpvt_mm.CPVT``, ``cpvt_mm.PCPVT``, ``cpvt_mm.SVT``) in cpvt_mm's own registry scope.
"""

from . import (
    compat,  # noqa: F401  (first: must run before mmpretrain / timm import torchvision)
    models,  # noqa: F401  (registers the models)
)
from .registry import MODELS
from .version import __version__

__all__ = ["MODELS", "__version__"]
