"""Old import path of the checkpoint file conversion, now :mod:`cpvt_mm.checkpoint.convert` (kept as aliases)."""

from ..checkpoint.convert import (
    ARCHS,
    ConversionError,
    ConvertedCheckpoint,
    backbone_config,
    convert_checkpoint_file,
    validate,
)

__all__ = ["ARCHS", "ConversionError", "ConvertedCheckpoint", "backbone_config", "convert_checkpoint_file", "validate"]
