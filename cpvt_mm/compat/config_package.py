"""Fix ``config_package``: ``cpvt_mm::`` references in configs.

Symptom without it: MMEngine resolves ``package::path`` only for packages in its own ``MODULE2PACKAGE``
table, so ``_base_ = 'cpvt_mm::classification/...'`` fails; and it looks for a package next to its dist-info,
which is wrong for PEP 660 editable installs (the dist-info sits in site-packages, the code in the checkout).

Fix: add cpvt_mm to the table (the configs ship inside the package under ``cpvt_mm/.mim``) and answer
cpvt_mm's own installed path from the imported package.
"""

from __future__ import annotations

import os.path as osp

PACKAGE_DIR = osp.dirname(osp.dirname(osp.abspath(__file__)))  # .../cpvt_mm


def apply() -> bool:
    from mmengine.config.utils import MODULE2PACKAGE

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
