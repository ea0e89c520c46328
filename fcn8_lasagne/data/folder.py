"""Any dataset laid out as images and label maps of the same names.

Layout::

    <root>/<split>/images/<name>.{png,bmp,jpg,jpeg,tif,tiff}
    <root>/<split>/masks/<name>.{png,bmp,tif,tiff}

The split folder is looked up by the name given; 'valid' also finds ``val`` or
``validation`` (and the reverse), 'train' finds ``training``, 'test' finds ``testing``.
The label maps hold one integer per pixel. By default the value ``i`` is class ``i``; give
``value_to_class`` when the stored values differ (for example ``{0: 0, 255: 1}`` for
black-and-white masks) and ``void_values`` for the values to ignore.
"""

from .base import SegmentationDataset, find_split_folder, pair_files_by_stem

__all__ = ["FolderDataset"]

_FOLDER_ALIASES = {
    "train": ("training",),
    "training": ("train",),
    "valid": ("val", "validation"),
    "val": ("valid", "validation"),
    "validation": ("valid", "val"),
    "test": ("testing",),
    "testing": ("test",),
}


class FolderDataset(SegmentationDataset):
    """One split of a generic images/masks folder tree.

    Parameters
    ----------
    root : str or Path
    split : str
        Name of the split folder under ``root`` (see the module notes for aliases).
    class_names : sequence of str
        One name per non-void class.
    void_values : iterable of int
        Stored values to treat as void.
    value_to_class : dict or None
        Stored value -> class id; ``None`` means value ``i`` is class ``i``.
    train_from_0_255 : bool
        See :class:`SegmentationDataset`.
    images_folder, masks_folder : str
        Names of the two sub-folders of a split.
    """

    name = "folder"

    def __init__(self, root, split, class_names, void_values=(), value_to_class=None,
                 train_from_0_255=False, images_folder="images", masks_folder="masks"):
        split_folder = find_split_folder(root, split, _FOLDER_ALIASES.get(split, ()))
        image_paths, mask_paths = pair_files_by_stem(
            split_folder / images_folder, split_folder / masks_folder
        )
        super().__init__(
            image_paths,
            mask_paths,
            class_names,
            label_values=value_to_class,
            void_values=void_values,
            train_from_0_255=train_from_0_255,
            split=split,
        )
        self.root = split_folder.parent
