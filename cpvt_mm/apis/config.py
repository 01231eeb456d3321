"""Loading a config the way the tools do: ``--cfg-options`` that cannot silently miss, and pretrained weights
that are checked before anything heavy is built.

Two mistakes used to pass or fail late:

* ``--cfg-options optim_wraper.optimizer.lr=0.5`` (a typo in the top-level key) merged a new, unread entry
  into the config and trained with the old learning rate. :func:`merge_cfg_options` refuses a top-level key
  that neither the config has nor MMEngine's ``Runner`` reads, and suggests the nearest existing key.
* A config whose backbone's ``init_cfg`` points at a pretrained file that does not exist trained for several
  seconds (datasets, model, optimizer built) and then died in ``init_weights()`` with mmengine's bare
  ``FileNotFoundError``. :func:`check_pretrained_weights` names the file, the config key, the convert command
  and the from-scratch switch before the runner is built; :func:`disable_pretrained_weights` is that switch.
"""

from __future__ import annotations

import difflib
import inspect
import os.path as osp
from collections.abc import Iterator, Mapping
from typing import Any

from mmengine.config import Config

__all__ = [
    "ConfigOptionError",
    "PretrainedWeightsMissingError",
    "check_pretrained_weights",
    "disable_pretrained_weights",
    "load_config",
    "merge_cfg_options",
]

# Top-level keys read by someone other than the Runner's constructor: the tools, mmengine's config machinery
# and the toolkits' inference APIs. Any key the config already has is accepted as well.
_EXTRA_TOP_LEVEL_KEYS = frozenset(
    {"custom_imports", "runner_type", "tta_model", "tta_pipeline", "train_pipeline", "test_pipeline", "work_dir"}
)

CONVERT_TOOL = "tools/model_converters/convert_checkpoint.py"


class ConfigOptionError(ValueError):
    """A ``--cfg-options`` entry would be ignored (its top-level key is read by nobody)."""


class PretrainedWeightsMissingError(FileNotFoundError):
    """A config asks for pretrained weights from a local file that does not exist."""


def _runner_keys() -> frozenset[str]:
    from mmengine.runner import Runner

    return frozenset(p for p in inspect.signature(Runner.__init__).parameters if p not in ("self", "cfg"))


def merge_cfg_options(cfg: Config, options: Mapping[str, Any] | None, source: str = "--cfg-options") -> Config:
    """Merge ``key.sub=value`` overrides into ``cfg`` (mmengine's ``merge_from_dict``), refusing typos.

    A top-level key must exist in the config or be one the Runner reads (``randomness``, ``load_from``, ...);
    otherwise the override would be stored and never read. Deeper keys are not checked here: a misspelt
    argument of a model, optimizer or dataset is refused by the class it is passed to when it is built.

    Raises:
        ConfigOptionError: naming the key, the closest existing keys, and ``source``.
    """
    if not options:
        return cfg
    known = set(cfg.keys()) | _runner_keys() | _EXTRA_TOP_LEVEL_KEYS
    for full_key in options:
        top = full_key.split(".", 1)[0]
        if top not in known:
            close = difflib.get_close_matches(top, sorted(known), n=3, cutoff=0.6)
            hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
            raise ConfigOptionError(
                f"{source}: {full_key!r} sets top-level key {top!r}, which the config "
                f"({cfg.filename or 'in memory'}) does not have and the Runner does not read, so it would be "
                f"ignored{hint}"
            )
    cfg.merge_from_dict(dict(options))
    return cfg


def load_config(path: str, options: Mapping[str, Any] | None = None) -> Config:
    """``Config.fromfile(path)`` with checked ``--cfg-options`` merged in; a missing file is named."""
    if not osp.isfile(path):
        raise FileNotFoundError(f"config not found: {path}")
    return merge_cfg_options(Config.fromfile(path), options)


def _pretrained_entries(node: Any, path: str) -> Iterator[tuple[str, Mapping, Any]]:
    """(config key, the dict holding ``init_cfg``, the init_cfg entry) for every ``Pretrained`` init_cfg."""
    if isinstance(node, Mapping):
        init = node.get("init_cfg")
        entries = init if isinstance(init, list) else [init]
        for entry in entries:
            if isinstance(entry, Mapping) and entry.get("type") == "Pretrained" and entry.get("checkpoint"):
                yield f"{path}.init_cfg", node, entry
        for key, value in node.items():
            if key != "init_cfg":
                yield from _pretrained_entries(value, f"{path}.{key}")
    elif isinstance(node, (list, tuple)):
        for i, value in enumerate(node):
            yield from _pretrained_entries(value, f"{path}.{i}")


def check_pretrained_weights(cfg: Config) -> None:
    """Refuse, before any runner is built, pretrained weights in ``cfg.model`` that point at a missing file.

    Only local paths are checked (URLs and ``open-mmlab://`` names are fetched by mmengine, which names them
    when it fails). ``load_from`` is checked too, as it is read only after everything is built.

    Raises:
        PretrainedWeightsMissingError: naming the file, the config key, how to make the file and how to train
            without it.
    """
    for key, _, entry in _pretrained_entries(cfg.get("model"), "model"):
        ckpt = str(entry["checkpoint"])
        if "://" in ckpt or osp.isfile(ckpt):
            continue
        raise PretrainedWeightsMissingError(
            f"pretrained weights not found: {ckpt} (config {cfg.filename}, key {key}.checkpoint). "
            f"Convert released ImageNet weights into that file with `python {CONVERT_TOOL} DOWNLOADED.pth {ckpt}`, "
            f"point the config at an existing file with `--cfg-options {key}.checkpoint=PATH`, or train from "
            f"scratch with `tools/train.py ... --from-scratch` (= `--cfg-options {key}=None`)"
        )
    load_from = cfg.get("load_from")
    if load_from and "://" not in str(load_from) and not osp.isfile(load_from) and not cfg.get("resume"):
        raise PretrainedWeightsMissingError(
            f"load_from checkpoint not found: {load_from} (config {cfg.filename}); fix the path or pass "
            "`--cfg-options load_from=None`"
        )


def disable_pretrained_weights(cfg: Config) -> list[str]:
    """Train from scratch: drop every ``Pretrained`` init_cfg in ``cfg.model`` (and mmseg's ``pretrained``).

    Modules whose ``init_cfg`` is removed keep their own default initialisation (cpvt_mm's backbones:
    truncated normal, as the authors). Returns the config keys that were cleared, so the caller can say so.
    """
    cleared = []
    for key, holder, entry in list(_pretrained_entries(cfg.get("model"), "model")):
        init = holder["init_cfg"]
        if isinstance(init, list):
            holder["init_cfg"] = [e for e in init if e is not entry] or None
        else:
            holder["init_cfg"] = None
        cleared.append(key)
    model = cfg.get("model")
    if isinstance(model, Mapping) and model.get("pretrained"):
        model["pretrained"] = None
        cleared.append("model.pretrained")
    return cleared
