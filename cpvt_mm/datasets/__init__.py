"""Datasets the tests, the tutorials and the demo build or check: toy COCO and ADE20K sets drawn from a seed
(the same arguments give the same bytes), and the Fashion-MNIST layout check."""

from .fashion_mnist import IDX_FILES, check_fashion_mnist
from .toy_ade20k import make_toy_ade20k
from .toy_coco import make_toy_coco

__all__ = ["IDX_FILES", "check_fashion_mnist", "make_toy_ade20k", "make_toy_coco"]
