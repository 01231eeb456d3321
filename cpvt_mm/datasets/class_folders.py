"""A folder of images per class, numbered by ONE class list that every split shares.

mmpretrain's ``CustomDataset`` numbers the classes of each split from that split's own sorted sub-folders. A
validation folder with one extra class folder (or one missing) therefore shifts every label after it, and
accuracy comes out as 17.7% or 0.6% instead of 95% without a word. :class:`ClassFolderDataset` takes the
class list from ``metainfo=dict(classes=...)`` (the example configs set it once and pass it to every split)
and numbers each image by its folder's position in that list, whatever else the split's folder holds:

    data/my_images/train/<class>/*.png      -> label = classes.index(<class>)
    data/my_images/val/<class>/*.png

A folder that is not one of the classes is refused (its images would have no label). A split without a
folder for some class is read correctly here; ``tools/train.py`` / ``tools/test.py`` still refuse it
(:mod:`cpvt_mm.apis.datasets`), since it is usually a mistake in the data.
"""

from __future__ import annotations

from typing import Any

from mmpretrain.datasets import CustomDataset
from mmpretrain.datasets.custom import find_folders, get_samples

from ..registry import DATASETS

__all__ = ["ClassFolderDataset"]


@DATASETS.register_module()
class ClassFolderDataset(CustomDataset):
    """``CustomDataset`` in folder mode, with labels from the configured class list instead of the folders.

    Args:
        data_root, data_prefix: the split's folder is ``data_root + data_prefix`` (e.g. ``data/x/`` + ``val/``).
        metainfo: must hold ``classes``, the class names in label order (the sub-folder names).
        **kwargs: the rest of mmpretrain's ``CustomDataset`` (``extensions``, ``pipeline``, ...);
            ``ann_file`` is refused (a list file carries its own labels: use ``CustomDataset`` for that).
    """

    def __init__(self, data_root: str = "", data_prefix: str | dict = "", metainfo: dict | None = None,
                 **kwargs: Any) -> None:  # fmt: skip
        if not (metainfo or {}).get("classes"):
            raise ValueError(
                "ClassFolderDataset needs metainfo=dict(classes=(...)): the one class list that numbers every "
                "split (see configs/classification/examples/)"
            )
        if kwargs.get("ann_file"):
            raise ValueError("ClassFolderDataset reads class folders, not an ann_file; use CustomDataset for lists")
        super().__init__(data_root=data_root, data_prefix=data_prefix, metainfo=metainfo, **kwargs)

    def _find_samples(self) -> list[tuple[str, int]]:
        classes = list(self.CLASSES)
        folders, _ = find_folders(self.img_prefix)
        unknown = sorted(set(folders) - set(classes))
        if unknown:
            raise ValueError(
                f"{self.img_prefix} has class folders {unknown} that are not in classes {tuple(classes)}: add them "
                "to classes or move them out"
            )
        self.folder_to_idx = {name: classes.index(name) for name in folders}
        samples, _ = get_samples(self.img_prefix, self.folder_to_idx, is_valid_file=self.is_valid_file)
        if not samples:
            raise ValueError(
                f"found no images ({', '.join(sorted(self.extensions))}) in the class folders of {self.img_prefix}"
            )
        return samples
