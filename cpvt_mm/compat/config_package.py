"""Fix ``config_package``: ``cpvt_mm::`` references in configs.

Symptom without it: MMEngine resolves ``package::path`` only for packages in its own ``MODULE2PACKAGE``
table, so ``_base_ = 'cpvt_mm::classification/...'`` fails; and it looks for a package next to its dist-info,
which is wrong for PEP 660 editable installs (the dist-info sits in site-packages, the code in the checkout).

A second symptom: MMEngine gives every ``type`` dict of a ``package::`` base ``_scope_=package``, so a config
derived from ``cpvt_mm::classification/cpvt-tiny_8xb256_in1k.py`` looked up ``ImageClassifier`` (and every
transform not already scoped by an ``mmpretrain::`` base) in cpvt_mm's registries: ``KeyError: 'ImageClassifier
is not in the cpvt_mm::model registry'``. cpvt_mm's configs are configs of their toolkit (its ``default_scope``)
and name cpvt_mm's own classes as ``cpvt_mm.X``, so a ``cpvt_mm::`` base is read like a local base: no scope.

Fix: add cpvt_mm to the table (the configs ship inside the package under ``cpvt_mm/.mim``), answer cpvt_mm's
own installed path from the imported package, and give ``cpvt_mm::`` bases no ``_scope_``.
"""

from __future__ import annotations

import os.path as osp

PACKAGE_DIR = osp.dirname(osp.dirname(osp.abspath(__file__)))  # .../cpvt_mm


def _unscoped_cpvt_mm_bases() -> None:
    """``Config._get_cfg_path`` returns ``(path, scope)`` per base; for ``cpvt_mm::`` bases the scope is None."""
    from mmengine.config import Config

    original = Config._get_cfg_path
    if getattr(original, "_cpvt_mm", False):
        return

    def _get_cfg_path(cfg_path: str, filename: str) -> tuple[str, str | None]:
        path, scope = original(cfg_path, filename)
        return path, (None if scope == "cpvt_mm" else scope)

    _get_cfg_path._cpvt_mm = True  # type: ignore[attr-defined]
    Config._get_cfg_path = staticmethod(_get_cfg_path)


def apply() -> bool:
    from mmengine.config.utils import MODULE2PACKAGE

    _unscoped_cpvt_mm_bases()

    MODULE2PACKAGE.setdefault("cpvt_mm", "cpvt_mm")
    import mmengine.config.config as config_module

    original = config_module.get_installed_path
    if getattr(original, "_cpvt_mm", False):
        return True

    def get_installed_path(package: str) -> str:
        if package == "cpvt_mm":
            return PACKAGE_DIR
        return original(package)

    get_installed_path._cpvt_mm = True  # type: ignore[attr-defined]
    config_module.get_installed_path = get_installed_path
    return True
