"""cpvt_mm's registry scope: a child of MMEngine's root ``MODELS``.

Configs of any toolkit refer to ``type='cpvt_mm.PCPVT'``; MMEngine resolves the ``cpvt_mm`` scope by
importing this module, and ``locations`` imports ``cpvt_mm.models`` so the classes are registered. We
never register into mmpretrain's or mmseg's registries (they have their own ``PCPVT``/``SVT``) and
never change a host's ``default_scope``.
"""

from mmengine.registry import MODELS as MMENGINE_MODELS
from mmengine.registry import Registry

MODELS = Registry("model", parent=MMENGINE_MODELS, scope="cpvt_mm", locations=["cpvt_mm.models"])

__all__ = ["MODELS"]
