"""Convert Twins-PCPVT / Twins-SVT checkpoints into cpvt_mm's parameter names.

Pretrained Twins weights circulate in three layouts, all holding the same tensors under different names:

* the authors' / timm layout (``patch_embeds.{s}.proj``, ``blocks.{s}.{j}``, ``pos_block.{s}.proj.0``,
  ``norm``, ``head``), usually wrapped as ``{'model': sd}``;
* mmpretrain's (``backbone.``-prefixed ``patch_embeds.{s}.projection``, ``stages.{s}.{j}`` with
  ``ffn.layers.0.0`` / ``ffn.layers.1``, ``position_encodings.{s}.proj``, ``norm_after_stage3``, and a
  ``head.fc`` classifier);
* mmsegmentation's (``layers.{s}.{j}``; its GSA is an ``nn.MultiheadAttention`` whose fused
  ``in_proj_weight`` is ``cat(q, kv)`` and whose ``out_proj`` is the GSA output projection).

:func:`convert_twins_checkpoint` detects the layout from the keys, renames (and for mmseg splits) every
tensor, and refuses anything it cannot place, so a foreign or half-matching checkpoint fails loudly here
rather than being silently half-loaded by a non-strict ``load_state_dict``. It is a pure function of the
loaded checkpoint: no files, no models. :func:`check_state_dict` then compares the result with a built
model, shapes included, which is what catches a checkpoint of the wrong size (e.g. PCPVT-S into PCPVT-B).

:func:`convert_checkpoint_file` is the file-level job around it (``tools/model_converters/convert_checkpoint.py``
is its command line): the source is read with the safe loader, the result is checked strictly against the
matching cpvt_mm backbone (names *and* shapes, and a linear head if any), and only then written, atomically
and with a digest. A failed or interrupted conversion never leaves a half-written or mismatched file behind.

One peer configuration cannot be converted faithfully and is refused: mmpretrain / mmseg models built with
``norm_after_stage`` on a stage other than the last (mmseg's SVT default) feed the *normalised* map to the
next stage, while cpvt_mm's stage norms only apply to the returned maps.

The output is an mmpretrain-style checkpoint, ``{'state_dict': {'backbone.<name>': ..., 'head.fc.weight':
..., 'head.fc.bias': ...}, 'meta': {...}}``, loadable with ``init_cfg=dict(type='Pretrained',
checkpoint=..., prefix='backbone.')``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from .load import CheckpointError, load_checkpoint_file
from .save import save_checkpoint

__all__ = [  # and FAMILIES / ARCHS, built on first access (see __getattr__)
    "SOURCE_FORMATS",
    "ConversionError",
    "ConvertedCheckpoint",
    "KeyReport",
    "backbone_config",
    "check_state_dict",
    "convert_checkpoint_file",
    "convert_twins_checkpoint",
    "extract_state_dict",
    "infer_twins_arch",
    "supported_archs",
    "validate",
]


def _families() -> dict[str, type]:
    """``{'pcpvt': PCPVT, 'svt': SVT}``, imported on first use: the checkpoint package does not import the
    models at import time (``import cpvt_mm`` loads it before the compat fixes and the models)."""
    from ..models.twins import PCPVT, SVT

    return {"pcpvt": PCPVT, "svt": SVT}


def supported_archs() -> tuple[str, ...]:
    """Every zoo arch a converted checkpoint can be checked against: ``('pcpvt-small', ..., 'svt-large')``."""
    return tuple(f"{family}-{size}" for family, cls in _families().items() for size in cls.arch_zoo)


def __getattr__(name: str) -> Any:  # FAMILIES and ARCHS stay module constants for their old importers
    if name == "FAMILIES":
        return _families()
    if name == "ARCHS":
        return supported_archs()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


_PB = r"(?:backbone\.)?"  # every layout may sit under a classifier's / segmentor's ``backbone.``
_WB = r"(?P<p>weight|bias)"
_PARTS = r"norm1|norm2|attn\.(?:q|kv|qkv|proj|sr|norm)"  # block parts named alike by timm, mmpretrain, us
_BLOCK = "backbone.stages.{s}.blocks.{j}."


@dataclass(frozen=True)
class _Rule:
    """One source-key pattern and the cpvt_mm name it becomes.

    ``target`` is formatted with the pattern's named groups plus ``last`` (the last stage index).
    ``split`` names the two parts of an mmseg fused ``in_proj`` (cut ``1 : 2`` along dim 0), substituted
    for ``{m}``. ``stage_norm`` marks a norm that the source model applies *between* stages (mmpretrain's
    ``norm_after_stage{i}``, mmseg's ``norm_list.{i}``): cpvt_mm's stage norms only touch the returned map,
    so only the last stage's can be carried over.
    """

    pattern: re.Pattern[str]
    target: str
    split: tuple[str, str] | None = None
    stage_norm: bool = False


def _rule(pattern: str, target: str, **kwargs: Any) -> _Rule:
    return _Rule(re.compile(_PB + pattern), target, **kwargs)


def _openmmlab_rules(container: str) -> tuple[_Rule, ...]:
    """Names mmpretrain and mmseg share: mmcv ``PatchEmbed`` / ``FFN`` and the ``position_encodings``."""
    block = rf"{container}\.(?P<s>\d+)\.(?P<j>\d+)\."
    return (
        _rule(r"patch_embeds\.(?P<s>\d+)\.projection\." + _WB, "backbone.stages.{s}.patch_embed.proj.{p}"),
        _rule(r"patch_embeds\.(?P<s>\d+)\.norm\." + _WB, "backbone.stages.{s}.patch_embed.norm.{p}"),
        _rule(r"position_encodings\.(?P<s>\d+)\.proj\." + _WB, "backbone.stages.{s}.peg.proj.{p}"),
        _rule(block + r"ffn\.layers\.0\.0\." + _WB, _BLOCK + "mlp.fc1.{p}"),
        _rule(block + r"ffn\.layers\.1\." + _WB, _BLOCK + "mlp.fc2.{p}"),
    )


_HEAD_FC = _Rule(re.compile(r"head\.fc\." + _WB), "head.fc.{p}")

# Signature: a key shape only that layout has. Rules: every key the layout may hold.
_SIGNATURES = {
    "cpvt_mm": re.compile(_PB + r"stages\.\d+\.(?:patch_embed|blocks|peg)\."),
    "timm": re.compile(_PB + r"(?:blocks\.\d+\.\d+|pos_block\.\d+)\."),
    "mmpretrain": re.compile(_PB + r"stages\.\d+\.\d+\."),
    "mmseg": re.compile(_PB + r"layers\.\d+\.\d+\."),
}
SOURCE_FORMATS = tuple(_SIGNATURES)
_SEG_BLOCK = r"layers\.(?P<s>\d+)\.(?P<j>\d+)\."
_RULES: dict[str, tuple[_Rule, ...]] = {
    "cpvt_mm": (
        _rule(
            rf"(?P<k>stages\.\d+\.(?:patch_embed\.(?:proj|norm)|peg\.proj|norm"
            rf"|blocks\.\d+\.(?:{_PARTS}|mlp\.fc[12])))\." + _WB,
            "backbone.{k}.{p}",
        ),
        _HEAD_FC,
    ),
    "timm": (
        _rule(r"patch_embeds\.(?P<s>\d+)\.(?P<m>proj|norm)\." + _WB, "backbone.stages.{s}.patch_embed.{m}.{p}"),
        _rule(rf"blocks\.(?P<s>\d+)\.(?P<j>\d+)\.(?P<m>{_PARTS}|mlp\.fc[12])\." + _WB, _BLOCK + "{m}.{p}"),
        _rule(r"pos_block\.(?P<s>\d+)\.proj\.0\." + _WB, "backbone.stages.{s}.peg.proj.{p}"),
        _rule(r"norm\." + _WB, "backbone.stages.{last}.norm.{p}"),
        _Rule(re.compile(r"head\." + _WB), "head.fc.{p}"),
    ),
    "mmpretrain": (
        *_openmmlab_rules("stages"),
        _rule(rf"stages\.(?P<s>\d+)\.(?P<j>\d+)\.(?P<m>{_PARTS})\." + _WB, _BLOCK + "{m}.{p}"),
        _rule(r"norm_after_stage(?P<s>\d+)\." + _WB, "backbone.stages.{s}.norm.{p}", stage_norm=True),
        _HEAD_FC,
    ),
    "mmseg": (
        *_openmmlab_rules("layers"),
        # LSA keeps its own ``qkv`` / ``proj``; GSA is an nn.MultiheadAttention under ``attn.attn``.
        _rule(_SEG_BLOCK + r"(?P<m>norm1|norm2|attn\.(?:qkv|proj|sr|norm))\." + _WB, _BLOCK + "{m}.{p}"),
        _rule(_SEG_BLOCK + r"attn\.attn\.out_proj\." + _WB, _BLOCK + "attn.proj.{p}"),
        _rule(_SEG_BLOCK + r"attn\.attn\.in_proj_" + _WB, _BLOCK + "{m}.{p}", split=("attn.q", "attn.kv")),
        _rule(r"norm_list\.(?P<s>\d+)\." + _WB, "backbone.stages.{s}.norm.{p}", stage_norm=True),
        # mmseg's own twins2mmseg converter keeps the authors' final norm under its old name.
        _rule(r"norm\." + _WB, "backbone.stages.{last}.norm.{p}"),
    ),
}
_EMBED_KEY = re.compile(r"backbone\.stages\.(\d+)\.patch_embed\.proj\.weight")
_BLOCK_KEY = re.compile(r"backbone\.stages\.(\d+)\.blocks\.(\d+)\.")
_OWNER_BLOCK = re.compile(r"(?:.*\.)?blocks\.\d+")


@dataclass
class KeyReport:
    """Differences between a state dict and a model: the reasons a strict load would fail."""

    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    mismatched: list[tuple[str, tuple[int, ...], tuple[int, ...]]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.missing or self.unexpected or self.mismatched)

    def format(self, limit: int = 20) -> str:
        """Human-readable listing; missing / unexpected keys are grouped per block to stay short."""
        lines = []
        for title, keys in (("missing from the checkpoint", self.missing), ("unexpected", self.unexpected)):
            if keys:
                lines.append(f"{len(keys)} key(s) {title}, in: {_abbreviate(_owners(keys), limit)}")
        if self.mismatched:
            shown = [f"{k} (checkpoint {list(a)} vs model {list(b)})" for k, a, b in self.mismatched]
            lines.append(f"{len(shown)} shape mismatch(es): {_abbreviate(shown, limit)}")
        return "\n".join(lines) if lines else "all keys and shapes match"


def _owners(keys: list[str]) -> list[str]:
    """The modules owning ``keys``, in order, with a whole transformer block counted once."""
    owners = [m.group(0) if (m := _OWNER_BLOCK.match(k)) else k.rsplit(".", 1)[0] for k in keys]
    return list(dict.fromkeys(owners))


def _abbreviate(items: list[str], limit: int) -> str:
    more = f", ... and {len(items) - limit} more" if len(items) > limit else ""
    return ", ".join(items[:limit]) + more


def check_state_dict(state_dict: Mapping[str, Tensor], model: nn.Module, prefix: str = "backbone.") -> KeyReport:
    """Compare the ``prefix``-ed part of ``state_dict`` with ``model``'s own, names and shapes.

    ``load_state_dict(strict=True)`` reports names only and stops at the first shape error; this lists
    everything at once so a converter user sees the whole problem (e.g. all the missing blocks of a
    smaller arch) in one message.
    """
    ours = {k[len(prefix) :]: v for k, v in state_dict.items() if k.startswith(prefix)}
    expected = model.state_dict()
    report = KeyReport(
        missing=[k for k in expected if k not in ours],
        unexpected=[k for k in ours if k not in expected],
    )
    for k, v in ours.items():
        if k in expected and tuple(v.shape) != tuple(expected[k].shape):
            report.mismatched.append((k, tuple(v.shape), tuple(expected[k].shape)))
    return report


def extract_state_dict(checkpoint: Any) -> dict[str, Tensor]:
    """The tensors of a checkpoint: ``{'state_dict': sd}``, ``{'model': sd}`` or a bare ``sd``.

    Distributed-training ``module.`` prefixes are stripped (repeatedly, for nested wrappers).
    """
    if not isinstance(checkpoint, Mapping):
        raise ValueError(f"expected a checkpoint dict, got {type(checkpoint).__name__}")
    for wrapper in ("state_dict", "model"):
        if isinstance(checkpoint.get(wrapper), Mapping):
            checkpoint = checkpoint[wrapper]
            break
    not_tensors = sorted(str(k) for k, v in checkpoint.items() if not isinstance(v, Tensor))
    if not_tensors:
        raise ValueError(
            "checkpoint is not a state dict (expected {'state_dict': sd}, {'model': sd} or a bare sd); "
            f"non-tensor entries: {_abbreviate(not_tensors, 10)}"
        )
    out = {}
    for key, value in checkpoint.items():
        while key.startswith("module."):
            key = key[len("module.") :]
        out[key] = value
    return out


def _detect_format(keys: list[str]) -> str:
    found = [name for name, sig in _SIGNATURES.items() if any(sig.match(k) for k in keys)]
    if len(found) == 1:
        return found[0]
    if not found:
        raise ValueError(
            f"not a Twins (PCPVT / SVT) checkpoint in any known layout {SOURCE_FORMATS}: no key looks like a "
            f"Twins block; first keys: {_abbreviate(keys, 10)}"
        )
    raise ValueError(f"checkpoint mixes the key layouts of {found}; refusing to guess which one to convert")


def _rename(fmt: str, sd: dict[str, Tensor], keep: list[str], last: int) -> dict[str, Tensor]:
    """Apply ``fmt``'s rules to the ``keep`` keys; every key must match exactly one target."""
    out: dict[str, Tensor] = {}
    sources: dict[str, str] = {}
    unknown, between_stages = [], []
    for key in keep:
        found = next(((r, m) for r in _RULES[fmt] if (m := r.pattern.fullmatch(key))), None)
        if found is None:
            unknown.append(key)
            continue
        rule, groups = found[0], found[1].groupdict()
        if rule.stage_norm and int(groups["s"]) != last:
            between_stages.append(key)
            continue
        value = sd[key]
        if rule.split is None:
            pieces = [(rule.target.format(last=last, **groups), value)]
        else:
            dim = value.shape[0] // 3  # in_proj = cat(q, k, v); cpvt_mm keeps k and v fused as ``kv``
            pieces = [
                (rule.target.format(last=last, m=rule.split[0], **groups), value[:dim]),
                (rule.target.format(last=last, m=rule.split[1], **groups), value[dim:]),
            ]
        for target, tensor in pieces:
            if target in sources:
                raise ValueError(f"checkpoint keys {sources[target]!r} and {key!r} both map to {target!r}")
            sources[target] = key
            out[target] = tensor.clone() if rule.split else tensor
    if unknown:
        raise ValueError(
            f"{len(unknown)} key(s) of this {fmt}-layout checkpoint have no counterpart in cpvt_mm's "
            f"PCPVT / SVT: {_abbreviate(unknown, 20)}"
        )
    if between_stages:
        raise ValueError(
            f"the checkpoint normalises stage outputs before feeding them to the next stage ({between_stages}; "
            "mmpretrain / mmseg norm_after_stage on a stage other than the last). cpvt_mm's stage norms only "
            "apply to the returned feature maps, so these weights would give different outputs; not converted."
        )
    return out


def infer_twins_arch(state_dict: Mapping[str, Tensor]) -> tuple[str, str | None, list[int], list[int]]:
    """Family, zoo arch name, embed dims and depths of a converted (``backbone.``-prefixed) state dict.

    The family is SVT when any block has a locally-grouped attention (``attn.qkv``), else PCPVT. The name
    (e.g. ``'pcpvt-small'``) is None when dims and depths match no zoo entry; head counts and window sizes
    leave no trace in the weights, so a custom arch cannot be recovered from them.
    """
    dims: dict[int, int] = {}
    depths: dict[int, int] = {}
    for key, value in state_dict.items():
        if m := _EMBED_KEY.fullmatch(key):
            dims[int(m.group(1))] = int(value.shape[0])
        if m := _BLOCK_KEY.match(key):
            s, j = int(m.group(1)), int(m.group(2))
            depths[s] = max(depths.get(s, 0), j + 1)
    stages = range(max(dims, default=-1) + 1)
    dim_list, depth_list = [dims.get(s, 0) for s in stages], [depths.get(s, 0) for s in stages]
    family = "svt" if any(".attn.qkv." in k for k in state_dict) else "pcpvt"
    name = next(
        (
            f"{family}-{size}"
            for size, cfg in _families()[family].arch_zoo.items()
            if list(cfg["embed_dims"]) == dim_list and list(cfg["depths"]) == depth_list
        ),
        None,
    )
    return family, name, dim_list, depth_list


def convert_twins_checkpoint(checkpoint: Any, arch: str | None = None) -> dict[str, Any]:
    """Convert a loaded Twins checkpoint (any supported layout) to cpvt_mm's names.

    Args:
        checkpoint: What ``torch.load`` returned: ``{'model': sd}``, ``{'state_dict': sd}`` or a bare state
            dict, optionally with ``module.`` / ``backbone.`` prefixes.
        arch: Expected family, ``'pcpvt'`` or ``'svt'`` (a zoo name such as ``'svt-small'`` also works);
            None accepts whichever the weights hold.

    Returns:
        ``{'state_dict': {'backbone.stages....', 'head.fc.weight', 'head.fc.bias'}, 'meta': {...}}``; the
        head is present only when the source has a linear classifier. ``meta`` records ``source_format``,
        ``family``, ``arch`` (zoo name or None), ``embed_dims``, ``depths``, ``out_norms`` (the stage
        norms present), ``num_classes`` (None without a head) and ``dropped_keys``. Converting an
        already-converted checkpoint returns it unchanged.

    Raises:
        ValueError: the keys match no supported layout, some key has no cpvt_mm counterpart, the source
            normalises between stages, or the weights are not of the requested family.
    """
    family_wanted = None if arch is None else arch.split("-")[0].lower()
    if family_wanted is not None and family_wanted not in _families():
        raise ValueError(f"arch must name one of {sorted(_families())} (e.g. 'pcpvt' or 'svt-small'), got {arch!r}")
    sd = extract_state_dict(checkpoint)
    keys = list(sd)
    fmt = _detect_format(keys)

    # In a full classifier / segmentor only the backbone and a linear ``head`` have Twins counterparts;
    # necks and decode heads are dropped (and listed in the meta) rather than rejected.
    dropped: list[str] = []
    if any(k.startswith("backbone.") for k in keys):
        dropped = [k for k in keys if not k.startswith(("backbone.", "head."))]
    keep = [k for k in keys if k not in dropped]
    stage_ids = {int(m.group(1)) for k in keep if (m := re.match(_PB + r"(?:patch_embeds|stages)\.(\d+)\.", k))}
    new_sd = _rename(fmt, sd, keep, last=max(stage_ids, default=0))

    family, name, dims, depths = infer_twins_arch(new_sd)
    if family_wanted is not None and family != family_wanted:
        lsa = next((k for k in new_sd if ".attn.qkv." in k), None)
        evidence = f"locally-grouped attention such as {lsa!r}" if lsa else "no locally-grouped attention"
        raise ValueError(f"arch {arch!r} asks for {family_wanted.upper()} weights, but the checkpoint has {evidence}")

    source_meta = checkpoint.get("meta") if isinstance(checkpoint, Mapping) else None
    if fmt == "cpvt_mm" and isinstance(source_meta, Mapping) and "source_format" in source_meta:
        return dict(state_dict=new_sd, meta=dict(source_meta))  # already converted: keep its provenance
    head = new_sd.get("head.fc.weight")
    meta = dict(
        source_format=fmt,
        family=family,
        arch=name,
        embed_dims=dims,
        depths=depths,
        out_norms=[f"backbone.stages.{s}.norm.weight" in new_sd for s in range(len(dims))],
        num_classes=None if head is None else int(head.shape[0]),
        dropped_keys=dropped,
    )
    return dict(state_dict=new_sd, meta=meta)


# --------------------------------------------------------------------------- file conversion
class ConversionError(ValueError):
    """The source cannot be read or converted, or the result does not fit any cpvt_mm backbone; nothing written."""


@dataclass
class ConvertedCheckpoint:
    """What :func:`convert_checkpoint_file` wrote."""

    src: str
    dst: str
    backbone_cfg: dict[str, Any]
    meta: dict[str, Any]
    num_params: int  # backbone parameters

    def summary(self) -> str:
        """The lines ``convert_checkpoint.py`` prints."""
        meta = self.meta
        head = f"linear head, {meta['num_classes']} classes" if meta.get("num_classes") else "no classification head"
        lines = [
            f"converted {self.src} ({meta.get('source_format')} layout) -> {self.dst}",
            f"  backbone: {self.backbone_cfg}, {self.num_params / 1e6:.2f} M parameters; {head}",
        ]
        dropped = meta.get("dropped_keys") or []
        if dropped:
            parts = sorted({k.split(".")[0] for k in dropped})
            lines.append(
                f"  dropped {len(dropped)} key(s) outside the backbone and head: {', '.join(p + '.*' for p in parts)}"
            )
        return "\n".join(lines)


def backbone_config(arch: str, state_dict: dict[str, torch.Tensor]) -> dict[str, Any]:
    """The cpvt_mm backbone config these weights belong to.

    Stage output norms follow the checkpoint: mmseg's PCPVT and mmpretrain's default build have no final
    norm, and loading them into a model that has one would leave it at its initial values.
    """
    family, size = arch.split("-")
    cls = _families()[family]
    cfg: dict[str, Any] = dict(type=f"cpvt_mm.{cls.__name__}", arch=size)
    num_stages = len(cls.arch_zoo[size]["depths"])
    out_norms = [f"backbone.stages.{s}.norm.weight" in state_dict for s in range(num_stages)]
    if out_norms != [s == num_stages - 1 for s in range(num_stages)]:
        cfg["out_norms"] = out_norms
    return cfg


def validate(state_dict: dict[str, torch.Tensor], cfg: dict[str, Any]) -> KeyReport:
    """Every key and shape must match the backbone built from ``cfg`` (and a linear head, if any)."""
    from ..registry import MODELS

    backbone = MODELS.build(cfg)
    report = check_state_dict(state_dict, backbone, prefix="backbone.")
    head_weight = state_dict.get("head.fc.weight")
    if head_weight is not None:
        head = nn.Linear(backbone.embed_dims[-1], head_weight.shape[0])
        head_report = check_state_dict(state_dict, head, prefix="head.fc.")
        report.missing += [f"head.fc.{k}" for k in head_report.missing]
        report.unexpected += [f"head.fc.{k}" for k in head_report.unexpected]
        report.mismatched += [(f"head.fc.{k}", a, b) for k, a, b in head_report.mismatched]
    report.unexpected += [k for k in state_dict if not k.startswith(("backbone.", "head.fc."))]
    return report


def convert_checkpoint_file(src: str, dst: str, arch: str | None = None) -> ConvertedCheckpoint:
    """Convert ``src`` into ``dst`` for the ``arch`` backbone (default: inferred from the weights).

    Raises:
        ConversionError: ``src`` cannot be read or converted, its dims match no zoo arch and none was given,
            or the converted weights do not fit the backbone; ``dst`` is not touched.
    """
    try:
        checkpoint = load_checkpoint_file(src, map_location="cpu")
        converted = convert_twins_checkpoint(checkpoint, arch)
    except (OSError, CheckpointError, ValueError, KeyError, TypeError) as e:
        raise ConversionError(f"cannot convert {src}: {e}") from e
    state_dict, meta = converted["state_dict"], converted["meta"]
    arch = arch or meta.get("arch")
    if arch is None:
        raise ConversionError(
            f"{src} holds a {meta.get('family', 'Twins')} with embed dims {meta.get('embed_dims')} "
            f"and depths {meta.get('depths')}, which match no zoo arch; "
            f"pass --arch (one of {', '.join(supported_archs())})"
        )
    cfg = backbone_config(arch, state_dict)
    report = validate(state_dict, cfg)
    if not report.ok:
        raise ConversionError(f"{src} does not fit {arch} ({cfg}); nothing written.\n{report.format()}")
    meta["arch"] = arch
    save_checkpoint(converted, dst)  # atomic, with a tensor digest that loading verifies
    num_params = sum(v.numel() for k, v in state_dict.items() if k.startswith("backbone."))
    return ConvertedCheckpoint(src, dst, cfg, meta, num_params)
