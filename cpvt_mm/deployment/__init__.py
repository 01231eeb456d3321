"""Deployment: ONNX export with dynamic sizes, compiled inference, and the models they take.

See ``docs/deployment.md``. Nothing here is imported by ``import cpvt_mm``: onnx / onnxruntime are needed only
when exporting or checking an export.
"""

from .compile import compile_backbone, compile_model, count_compiles
from .models import ARCHS, TensorModel, build_deployable
from .onnx import OnnxCheck, check_onnx, export_onnx

__all__ = [
    "ARCHS",
    "OnnxCheck",
    "TensorModel",
    "build_deployable",
    "check_onnx",
    "compile_backbone",
    "compile_model",
    "count_compiles",
    "export_onnx",
]
