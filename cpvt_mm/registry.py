"""cpvt_mm's registry scope: children of MMEngine's root registries.

Configs of any toolkit refer to ``type='cpvt_mm.PCPVT'``; MMEngine resolves the ``cpvt_mm`` scope by
importing this module, and ``locations`` imports the modules that register the classes. We never register
into mmpretrain's or mmseg's registries (they have their own ``PCPVT``/``SVT``) and never change a host's
``default_scope``.
"""

from mmengine.registry import DATASETS as MMENGINE_DATASETS
from mmengine.registry import HOOKS as MMENGINE_HOOKS
from mmengine.registry import MODEL_WRAPPERS as MMENGINE_MODEL_WRAPPERS
from mmengine.registry import MODELS as MMENGINE_MODELS
from mmengine.registry import OPTIM_WRAPPERS as MMENGINE_OPTIM_WRAPPERS
from mmengine.registry import PARAM_SCHEDULERS as MMENGINE_PARAM_SCHEDULERS
from mmengine.registry import Registry

MODELS = Registry("model", parent=MMENGINE_MODELS, scope="cpvt_mm", locations=["cpvt_mm.models"])
MODEL_WRAPPERS = Registry(
    "model_wrapper", parent=MMENGINE_MODEL_WRAPPERS, scope="cpvt_mm", locations=["cpvt_mm.engine"]
)

OPTIM_WRAPPERS = Registry(
    "optim_wrapper", parent=MMENGINE_OPTIM_WRAPPERS, scope="cpvt_mm", locations=["cpvt_mm.engine"]
)

HOOKS = Registry("hook", parent=MMENGINE_HOOKS, scope="cpvt_mm", locations=["cpvt_mm.engine"])
PARAM_SCHEDULERS = Registry(
    "parameter scheduler", parent=MMENGINE_PARAM_SCHEDULERS, scope="cpvt_mm", locations=["cpvt_mm.engine"]
)

# ``type='cpvt_mm.ClassFolderDataset'`` in an mmpretrain config; the module imports mmpretrain, so it is only
# imported when a config asks for it
DATASETS = Registry("dataset", parent=MMENGINE_DATASETS, scope="cpvt_mm", locations=["cpvt_mm.datasets.class_folders"])

__all__ = ["DATASETS", "HOOKS", "MODELS", "MODEL_WRAPPERS", "OPTIM_WRAPPERS", "PARAM_SCHEDULERS"]
