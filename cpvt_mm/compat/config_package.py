"""Fix ``config_package``: ``cpvt_mm::`` references in configs.

Symptom without it: MMEngine resolves ``package::path`` only for packages in its own ``MODULE2PACKAGE``
table, so ``_base_ = 'cpvt_mm::classification/...'`` fails; and it looks for a package next to its dist-info,
which is wrong for PEP 660 editable installs (the dist-info sits in site-packages, the code in the checkout).

A second symptom: MMEngine gives every ``type`` dict of a ``package::`` base ``_scope_=package``, so a config
derived from ``cpvt_mm::classification/cpvt-tiny_8xb256_in1k.py`` looked up ``ImageClassifier`` (and every
transform not already scoped by an ``mmpretrain::`` base) in cpvt_mm's registries: ``KeyError: 'ImageClassifier
is not in the cpvt_mm::model registry'``. cpvt_mm's configs are configs of their toolkit (its ``default_scope``)
and name cpvt_mm's own classes as ``cpvt_mm.X``, so a ``cpvt_mm::`` base is read like a local base: no scope.

A third: MMEngine finds every ``package::`` base through ``pkg_resources``, which setuptools 82 removed; then
``mmpretrain::`` / ``mmseg::`` bases fail with ``No module named 'pkg_resources'``.

A fourth, of speed: for every ``package::`` base MMEngine reads the package's whole model index (mmseg: 212 YAML
files, about a second) to look the name up, also for a ``package::_base_/...`` file it then finds by path; and it
reloads ``pkg_resources`` to ask whether the package is installed. A segmentation config with four such bases
took 4-5 s to load, in every tool start and every test that reads it.

Fix: add cpvt_mm to the table (the configs ship inside the package under ``cpvt_mm/.mim``), answer cpvt_mm's
own installed path from the imported package, give ``cpvt_mm::`` bases no ``_scope_``, find a package
through importlib where ``pkg_resources`` is missing, and read a package's model index once per process (an
installed package's files and presence do not change while it runs).
"""

from __future__ import annotations

import contextlib
import functools
import os.path as osp
import warnings

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


@functools.cache
def _model_index(package_path: str) -> dict[str, dict]:
    """Config name (``'twins/twins_pcpvt-s_fpn_fpnhead_8xb4-80k_ade20k-512x512'``) -> its model entry, from every
    metafile of the package's model index; for a config with several weights, its first entry (as MMEngine)."""
    from mmengine.fileio import load

    entries: dict[str, dict] = {}
    for metafile in load(osp.join(package_path, ".mim", "model-index.yml"))["Import"]:
        for model in load(osp.join(package_path, ".mim", metafile))["Models"]:
            if "Config" not in model:
                warnings.warn(
                    f"{metafile}: a model without a Config entry is ignored: {model.get('Name')}", stacklevel=3
                )
                continue
            entries.setdefault(model["Config"].partition("/")[-1], model)
    return entries


def _cfg_metainfo(package_path: str, cfg_path: str) -> dict:
    """``mmengine.config.utils._get_cfg_metainfo`` on the index read once: the same entry, or the same ValueError
    (which tells MMEngine to take the name as a path under ``.mim/configs``)."""
    entries = _model_index(package_path)
    if cfg_path not in entries:
        raise ValueError(f"Expected configs: {entries.keys()}, but got {cfg_path}")
    return dict(entries[cfg_path])


def _indexed_metainfo() -> None:
    import mmengine.config.utils as utils
    import mmengine.hub.hub as hub  # imported the function by name (mmengine.hub.get_config)

    if utils._get_cfg_metainfo is not _cfg_metainfo:
        _cfg_metainfo.__wrapped__ = utils._get_cfg_metainfo  # type: ignore[attr-defined]  (MMEngine's, for tests)
    utils._get_cfg_metainfo = hub._get_cfg_metainfo = _cfg_metainfo


def apply() -> bool:
    from mmengine.config.utils import MODULE2PACKAGE

    _unscoped_cpvt_mm_bases()
    _indexed_metainfo()

    MODULE2PACKAGE.setdefault("cpvt_mm", "cpvt_mm")
    import mmengine.config.config as config_module

    original = config_module.get_installed_path
    if getattr(original, "_cpvt_mm", False):
        return True

    original_is_installed = config_module.is_installed

    def get_installed_path(package: str) -> str:
        if package == "cpvt_mm":
            return PACKAGE_DIR
        try:
            return original(package)
        except ModuleNotFoundError as e:  # setuptools >= 82 has no pkg_resources, which mmengine imports here
            if e.name != "pkg_resources":
                raise
            return _module_dir(package)

    @functools.cache
    def is_installed(package: str) -> bool:
        try:
            return original_is_installed(package)
        except ModuleNotFoundError as e:
            if e.name != "pkg_resources":
                raise
            try:
                _module_dir(package)
            except ModuleNotFoundError:
                return False
            return True

    get_installed_path._cpvt_mm = True  # type: ignore[attr-defined]
    config_module.get_installed_path = get_installed_path
    config_module.is_installed = is_installed
    return True


def _module_dir(package: str) -> str:
    """Where an installed distribution's module lives (``mmsegmentation`` -> ``.../mmseg``), by importlib alone."""
    import importlib.metadata
    import importlib.util

    names = [package]
    with contextlib.suppress(importlib.metadata.PackageNotFoundError):  # the distribution's own top-level modules
        names += (importlib.metadata.distribution(package).read_text("top_level.txt") or "").split()
    for name in names:
        try:
            spec = importlib.util.find_spec(name)
        except (ImportError, ValueError):
            spec = None
        if spec is not None and spec.origin is not None:
            return osp.dirname(spec.origin)
    raise ModuleNotFoundError(f"{package} is not installed", name=package)
