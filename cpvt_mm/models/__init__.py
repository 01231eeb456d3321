"""cpvt_mm models: the PEG and layers, plain CPVT, PCPVT and SVT (registered in ``cpvt_mm.registry``)."""

from .attention import set_fused_attn, use_fused_attn
from .cpvt import CPVT
from .data_preprocessor import (
    MultiScaleTrainPreprocessor,
    PaddingAwareDetDataPreprocessor,
    PaddingAwareSegDataPreProcessor,
)
from .dense_heads import PaddingAwareRetinaHead, PaddingAwareRPNHead
from .necks import LayerNorm2d, SimpleFeaturePyramid
from .padding import attach, lookup
from .peg import PEG
from .twins import PCPVT, SVT

__all__ = [
    "CPVT",
    "PCPVT",
    "PEG",
    "SVT",
    "LayerNorm2d",
    "MultiScaleTrainPreprocessor",
    "PaddingAwareDetDataPreprocessor",
    "PaddingAwareRPNHead",
    "PaddingAwareRetinaHead",
    "PaddingAwareSegDataPreProcessor",
    "SimpleFeaturePyramid",
    "attach",
    "lookup",
    "set_fused_attn",
    "use_fused_attn",
]
