"""Polyps912 (EndoScene / CVC-912): the colonoscopy frames the FCN-8 tutorial trains on.

Layout (``polyps_split7.zip`` of the tutorial)::

    <root>/{train,valid,test}/images/<name>.bmp
    <root>/{train,valid,test}/masks2/<name>.tif     2 classes + void
    <root>/{train,valid,test}/masks3/<name>.tif     3 classes + void
    <root>/{train,valid,test}/masks4/<name>.tif     4 classes + void

912 frames of 36 patients: train 547 frames (20 patients), valid 183 (8), test 182 (8).

Label values
------------
In the folder ``masksN`` the values ``0 .. N-1`` are the N classes and the value ``N`` is
void, the black border and corners of the colonoscopy frame:

=========  ==========================================================  ======
folder     classes (value: name)                                       void
=========  ==========================================================  ======
masks2     0: background, 1: polyp                                     2
masks3     0: background, 1: polyp, 2: lumen                           3
masks4     0: background, 1: polyp, 2: lumen, 3: specularity           4
=========  ==========================================================  ======

The tutorial's loader (fvisin/dataset_loaders ``Polyps912Dataset``) reads ``masks2`` with
``non_void_nclasses = 2`` and ``_void_labels = [2]``. Its base class maps the non-void values
to ``0 .. n-1`` in order and every void value to ``n``; for these files that mapping is the
identity, so the values reach the network unchanged and ``train_fcn8.py`` masks label 2. We
do the same, for ``masks3`` and ``masks4`` too. The ``masks3``/``masks4`` names and the
void-equals-N rule come from the EndoScene benchmark scripts of the same authors (``masks``
+ the number of classes, void class = that number, colour map background, polyp, lumen,
specularity); the tutorial itself uses only ``masks2``. Any other value in a mask is an
error that names the file.
"""

from .base import (
    SegmentationDataset,
    canonical_split,
    find_split_folder,
    pair_files_by_stem,
)

__all__ = ["Polyps912", "POLYPS912_LABELLINGS"]

POLYPS912_LABELLINGS = {
    "masks2": ("background", "polyp"),
    "masks3": ("background", "polyp", "lumen"),
    "masks4": ("background", "polyp", "lumen", "specularity"),
}


def _labelling_folder(masks):
    folder = f"masks{masks}" if isinstance(masks, int) else masks
    if folder not in POLYPS912_LABELLINGS:
        raise ValueError(
            f"unknown Polyps912 labelling {masks!r}: expected one of "
            f"{', '.join(POLYPS912_LABELLINGS)} (or 2, 3, 4)"
        )
    return folder


class Polyps912(SegmentationDataset):
    """One split of Polyps912: BMP frames and TIFF label maps.

    Parameters
    ----------
    root : str or Path
        The folder holding ``train``, ``valid`` and ``test``.
    split : str
        'train', 'valid' (or 'val') or 'test'.
    masks : {'masks2', 'masks3', 'masks4'} or {2, 3, 4}
        Which labelling to read; the tutorial uses 'masks2'.
    train_from_0_255 : bool
        See :class:`SegmentationDataset`.
    """

    name = "polyps912"

    def __init__(self, root, split="train", masks="masks2", train_from_0_255=False):
        self.masks = _labelling_folder(masks)
        split = canonical_split(split)
        split_folder = find_split_folder(root, split)
        image_paths, mask_paths = pair_files_by_stem(
            split_folder / "images",
            split_folder / self.masks,
            image_suffixes=(".bmp",),
            mask_suffixes=(".tif", ".tiff"),
        )
        class_names = POLYPS912_LABELLINGS[self.masks]
        super().__init__(
            image_paths,
            mask_paths,
            class_names,
            void_values=(len(class_names),),
            train_from_0_255=train_from_0_255,
            split=split,
        )
        self.root = split_folder.parent
