"""Evaluation beyond the toolkits' own metrics: the test-size sweep (CPVT Table 2) and its reports."""

from .report import REPORT_NAME, load_reports, write_report
from .resolutions import (
    GEOMETRIC_STEPS,
    evaluate_models,
    evaluate_sizes,
    native_size,
    positive_int,
    rescale_pipeline,
)

__all__ = [
    "GEOMETRIC_STEPS",
    "REPORT_NAME",
    "evaluate_models",
    "evaluate_sizes",
    "load_reports",
    "native_size",
    "positive_int",
    "rescale_pipeline",
    "write_report",
]
