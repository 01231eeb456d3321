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

And two that ended in a raw traceback: a syntax error in a config (mmengine's message names a temporary copy)
is reported with the file and line by :func:`load_config`; a parameter scheduler that begins at or after the
end of the run (an epoch-based warm-up of 5 epochs with ``max_epochs=3``) died inside mmengine with ``end
should be larger than begin, but got begin=100, end=60``, naming no setting: :func:`check_param_schedulers`
names the scheduler and the ways out.
"""

from __future__ import annotations

import difflib
import inspect
import os.path as osp
from collections.abc import Iterator, Mapping
from typing import Any

from mmengine.config import Config

__all__ = [
    "ConfigError",
    "ConfigOptionError",
    "PretrainedWeightsMissingError",
    "check_param_schedulers",
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


class ConfigError(ValueError):
    """A config that cannot run as written (syntax error, a schedule outside the run); names file and setting."""


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
    """``Config.fromfile(path)`` with checked ``--cfg-options`` merged in; a missing file is named, and so is
    the line of a syntax error (in the config or in one of its bases)."""
    if not osp.isfile(path):
        raise FileNotFoundError(f"config not found: {path}")
    try:
        cfg = Config.fromfile(path)
    except SyntaxError as e:
        raise ConfigError(_syntax_error_message(path, e)) from None
    return merge_cfg_options(cfg, options)


def _syntax_error_message(path: str, error: SyntaxError) -> str:
    """``config X line N: <what> (<the line>)``; mmengine re-raises with the name of a temporary copy."""
    import ast

    try:
        with open(path, encoding="utf-8") as f:
            ast.parse(f.read(), filename=path)
    except SyntaxError as e:
        text = f": {e.text.strip()}" if e.text else ""
        return f"syntax error in config {path}, line {e.lineno}: {e.msg}{text}"
    # the config itself parses: the error is in a base, which mmengine's message names
    return f"syntax error in a base of config {path}: {' '.join(str(error).split())}"


def _schedulers(cfg: Config) -> Iterator[tuple[str, Mapping]]:
    """(config key, scheduler) of ``param_scheduler``: a dict, a list, or a dict of lists per optimizer."""
    node = cfg.get("param_scheduler")
    if isinstance(node, Mapping) and "type" not in node:
        for name, value in node.items():
            for i, s in enumerate(value if isinstance(value, (list, tuple)) else [value]):
                yield f"param_scheduler.{name}.{i}", s
        return
    for i, s in enumerate(node if isinstance(node, (list, tuple)) else [node] if node else []):
        yield f"param_scheduler.{i}", s


def check_param_schedulers(cfg: Config) -> None:
    """Refuse a parameter scheduler that would begin at or after the end of training (or end before it begins).

    The run's end is ``train_cfg.max_epochs`` for epoch-based schedulers and ``train_cfg.max_iters`` for
    iteration-based ones in an iteration-based loop (iteration-based schedulers in an epoch loop depend on the
    dataset's length and are left to mmengine). A scheduler whose ``end`` lies beyond the run is cut short,
    which works (a 12-epoch step schedule run for one epoch as a smoke test): it is only warned about.

    Raises:
        ConfigError: naming the scheduler, its ``begin`` / ``end``, the run's length and how to fix it.
    """
    from mmengine.optim.scheduler.param_scheduler import INF

    train_cfg = cfg.get("train_cfg") or {}
    for key, sched in _schedulers(cfg):
        if not isinstance(sched, Mapping):
            continue
        by_epoch = sched.get("by_epoch", True)
        if by_epoch:
            limit, unit, setting = train_cfg.get("max_epochs"), "epoch", "train_cfg.max_epochs"
        elif "max_iters" in train_cfg:
            limit, unit, setting = train_cfg.get("max_iters"), "iteration", "train_cfg.max_iters"
        else:
            continue
        if not isinstance(limit, (int, float)):
            continue
        begin, end = sched.get("begin", 0), sched.get("end", limit)
        name = f"{key} ({sched.get('type')})"
        fractions = (
            "or express warm-up and decay as fractions of the run (one cpvt_mm.WarmupCosineLR without begin/end, as "
            "configs/classification/examples/ do)"
        )
        if begin >= limit:
            raise ConfigError(
                f"{name} begins at {unit} {begin}, but training stops after {limit} ({setting}={limit}), so it "
                f"would never run (mmengine: 'end should be larger than begin'): set {key}.begin below {limit}, "
                f"raise {setting}, {fractions}"
            )
        if end <= begin:
            raise ConfigError(f"{name} ends at {unit} {end}, not after its begin ({begin}): set {key}.end > {begin}")
        if limit < end < INF:
            import warnings

            warnings.warn(
                f"{name} ends at {unit} {end}, after the run's last ({setting}={limit}): it is cut short",
                UserWarning,
                stacklevel=2,
            )


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
