"""What the tools do before and around the toolkits' own code: load a config with checked overrides, refuse
missing pretrained weights before anything heavy is built, validate datasets, train and test from a config,
draw a prediction with bounded memory on large images, and convert checkpoints.

``tools/train.py`` (:mod:`.train`), ``tools/test.py`` (:mod:`.test`), ``tools/misc/infer.py``
(:mod:`.visualize`) and ``tools/model_converters/convert_checkpoint.py`` (:mod:`.convert`) only parse
arguments and call these functions; everything here is importable and tested on its own.
"""

from .config import (
    ConfigError,
    ConfigOptionError,
    PretrainedWeightsMissingError,
    check_param_schedulers,
    check_pretrained_weights,
    disable_pretrained_weights,
    load_config,
    merge_cfg_options,
)
from .convert import ConversionError, convert_checkpoint_file
from .datasets import DatasetError, check_model_channels, image_file_problem, validate_datasets
from .inference import (
    UninitializedWeightsError,
    bounded_seg_postprocess,
    check_checkpoint_covers_model,
    use_bounded_seg_postprocess,
)
from .test import prepare_test_config, run_test
from .train import TOOL_ERRORS, prepare_train_config, train
from .visualize import InferenceInputError, infer_and_draw

__all__ = [
    "TOOL_ERRORS",
    "ConfigError",
    "ConfigOptionError",
    "ConversionError",
    "DatasetError",
    "InferenceInputError",
    "PretrainedWeightsMissingError",
    "UninitializedWeightsError",
    "bounded_seg_postprocess",
    "check_checkpoint_covers_model",
    "check_model_channels",
    "check_param_schedulers",
    "check_pretrained_weights",
    "convert_checkpoint_file",
    "disable_pretrained_weights",
    "image_file_problem",
    "infer_and_draw",
    "load_config",
    "merge_cfg_options",
    "prepare_test_config",
    "prepare_train_config",
    "run_test",
    "train",
    "use_bounded_seg_postprocess",
    "validate_datasets",
]
