"""What the tools do before and around the toolkits' own code: load a config with checked overrides, refuse
missing pretrained weights before anything heavy is built, validate datasets, and run inference with
bounded memory on large images.

``tools/train.py``, ``tools/test.py`` and ``tools/misc/infer.py`` are thin wrappers around these functions;
everything here is importable and tested on its own.
"""

from .config import (
    ConfigOptionError,
    PretrainedWeightsMissingError,
    check_pretrained_weights,
    disable_pretrained_weights,
    load_config,
    merge_cfg_options,
)
from .datasets import DatasetError, validate_datasets
from .inference import (
    UninitializedWeightsError,
    bounded_seg_postprocess,
    check_checkpoint_covers_model,
    use_bounded_seg_postprocess,
)

__all__ = [
    "ConfigOptionError",
    "DatasetError",
    "PretrainedWeightsMissingError",
    "UninitializedWeightsError",
    "bounded_seg_postprocess",
    "check_checkpoint_covers_model",
    "check_pretrained_weights",
    "disable_pretrained_weights",
    "load_config",
    "merge_cfg_options",
    "use_bounded_seg_postprocess",
    "validate_datasets",
]
