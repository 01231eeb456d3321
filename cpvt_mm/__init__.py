"""cpvt_mm: conditional positional encodings for vision transformers on OpenMMLab 2.x.

Importing the package applies the compatibility layer (:mod:`cpvt_mm.compat`) and registers the models
(``cpvt_mm.CPVT``, ``cpvt_mm.PCPVT``, ``cpvt_mm.SVT``) in cpvt_mm's own registry scope.
"""

from . import (
    compat,  # noqa: F401  (first: must run before mmpretrain / timm import torchvision)
    models,  # registers the models
)
from .registry import MODELS
from .version import __version__


def _alias_old_module_paths() -> None:
    """``cpvt_mm.models.converters`` (before the checkpoint package) names :mod:`cpvt_mm.checkpoint.convert`.

    Registered here rather than as a module under ``models/``, which would make ``models`` depend on
    ``checkpoint`` while ``checkpoint`` builds models: the packages' dependencies stay one-way.
    """
    import sys

    from .checkpoint import convert

    sys.modules.setdefault(f"{__name__}.models.converters", convert)
    models.converters = convert  # ``from cpvt_mm.models import converters``


_alias_old_module_paths()

__all__ = ["MODELS", "__version__"]
