"""Datasets the tests, the tutorials and the demo build or check: toy COCO and ADE20K sets drawn from a seed
and a class-per-folder image set (the same arguments give the same bytes), and the Fashion-MNIST layout check.
``ClassFolderDataset`` (``cpvt_mm.datasets.class_folders``) is imported by the registry when a config names it.
"""

from .fashion_mnist import IDX_FILES, check_fashion_mnist
from .toy_ade20k import make_toy_ade20k
from .toy_coco import make_toy_coco
from .toy_folders import make_toy_folders

__all__ = ["IDX_FILES", "check_fashion_mnist", "make_toy_ade20k", "make_toy_coco", "make_toy_folders"]
