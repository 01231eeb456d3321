"""Fix ``mmpretrain_multimodal``: ``import mmpretrain.models`` next to transformers 5.

Symptom without it: mmpretrain 1.2 imports its multimodal models (BLIP, Flamingo, ...) whenever transformers
>= 4.28 is installed. Their modules import transformers 4 APIs inside a bare ``try`` that sets the names to None
when the import fails, which it does under transformers 5; the next line then dies with ``TypeError: NoneType
takes no arguments`` (``class BertPreTrainedModel(PreTrainedModel)``), and with it ``import mmpretrain`` and
every classifier. GPU hosts ship transformers 5.

Fix: with transformers >= 5 installed, mmpretrain is told it has no multimodal dependencies
(``mmpretrain.utils.dependency.WITH_MULTIMODAL = False``) as the module loads, so it registers its placeholders
for those models, as it does without transformers. Nothing else of mmpretrain changes. A no-op without
transformers or with transformers 4.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.metadata
import sys
from typing import Any

TARGET = "mmpretrain.utils.dependency"


def transformers_major() -> int | None:
    try:
        return int(importlib.metadata.version("transformers").split(".")[0])
    except (importlib.metadata.PackageNotFoundError, ValueError):
        return None


class _NoMultimodal(importlib.abc.MetaPathFinder):
    """Loads ``mmpretrain.utils.dependency`` as usual, then sets its ``WITH_MULTIMODAL`` to False."""

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> importlib.machinery.ModuleSpec | None:
        if name != TARGET:
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None:
            return spec
        loader_exec = spec.loader.exec_module

        def exec_module(module: Any) -> None:
            loader_exec(module)
            module.WITH_MULTIMODAL = False

        spec.loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec


def apply() -> bool:
    major = transformers_major()
    if major is None or major < 5:
        return False
    if TARGET in sys.modules:  # mmpretrain was imported first: in time only if its models were not
        sys.modules[TARGET].WITH_MULTIMODAL = False
    elif not any(isinstance(f, _NoMultimodal) for f in sys.meta_path):
        sys.meta_path.insert(0, _NoMultimodal())
    return True
