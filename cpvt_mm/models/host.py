"""cpvt_mm behaviour on top of mmdet / mmseg classes, without importing them when cpvt_mm is imported.

Padding awareness needs a few host classes to do one thing more (a data preprocessor that tells the backbone
where each image ends, a dense head that predicts only over each image's own grid). They are plain
subclasses: a mixin in front of the host's class, with the host's arguments and behaviour otherwise. Each is
created the first time a config builds it, so ``import cpvt_mm`` does not pull in mmdet or mmseg.
"""

from __future__ import annotations

import functools
import importlib


@functools.cache
def host_subclass(mixin: type, module: str, base_name: str, name: str) -> type:
    """``class name(mixin, module.base_name)``, created once."""
    base = getattr(importlib.import_module(module), base_name)
    doc = f"``{module}.{base_name}`` (same arguments) with :class:`{mixin.__module__}.{mixin.__name__}`.\n\n"
    return type(name, (mixin, base), {"__module__": mixin.__module__, "__doc__": doc + (mixin.__doc__ or "")})
