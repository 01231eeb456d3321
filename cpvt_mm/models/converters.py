"""Old import path of the Twins checkpoint converters, now :mod:`cpvt_mm.checkpoint.convert` (kept as aliases)."""

from ..checkpoint.convert import (
    ARCHS,  # noqa: F401
    FAMILIES,
    SOURCE_FORMATS,
    KeyReport,
    check_state_dict,
    convert_twins_checkpoint,
    extract_state_dict,
    infer_twins_arch,
)

__all__ = [
    "FAMILIES",
    "SOURCE_FORMATS",
    "KeyReport",
    "check_state_dict",
    "convert_twins_checkpoint",
    "extract_state_dict",
    "infer_twins_arch",
]
