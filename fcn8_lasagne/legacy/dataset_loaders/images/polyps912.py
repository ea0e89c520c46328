"""``dataset_loaders.images.polyps912.Polyps912Dataset`` over :class:`fcn8_lasagne.data.Polyps912`.

The files are read by :class:`fcn8_lasagne.data.Polyps912` (``images/*.bmp``, ``masks2/*.tif``;
its checks and error messages); the iteration is :class:`ThreadedDataset`'s. The images are
listed in natural order of their names (the original listed them in ``glob`` order, which
depends on the file system) before the shuffling of ``shuffle_at_each_epoch``.
"""

import numpy as np

from ....data import Polyps912, ensure_synthetic_polyps
from ... import dataset_loaders as _package
from ..parallel_loader import ThreadedDataset

__legacy_shim__ = True

__all__ = ["Polyps912Dataset"]


class Polyps912Dataset(ThreadedDataset):
    """The EndoScene / Polyps912 colonoscopy frames, 2 classes (background, polyp) + void.

    Parameters
    ----------
    which_set : str
        'train' (or 'training'), 'val' / 'valid' / 'validation', 'test' (or 'testing').
    preload : bool
        Read every image into memory once.
    data_dir : str, Path or None
        The Polyps912 root (or a folder holding ``polyps912/``); default
        ``$FCN8_LEGACY_DATA_DIR``, else the built-in synthetic data.
    *args, **kwargs
        :class:`~fcn8_lasagne.legacy.dataset_loaders.parallel_loader.ThreadedDataset`'s.
    """

    name = "polyps912"
    non_void_nclasses = 2
    _void_labels = [2]
    _cmap = {0: (0, 0, 0), 1: (255, 255, 255), 2: (128, 128, 128)}
    _mask_labels = {0: "Background", 1: "Polyp", 2: "Void"}

    def __init__(self, which_set="train", preload=False, *args, data_dir=None, **kwargs):
        if which_set in ("train", "training"):
            self.which_set = "train"
        elif which_set in ("val", "valid", "validation"):
            self.which_set = "valid"
        elif which_set in ("test", "testing"):
            self.which_set = "test"
        else:
            raise ValueError(f"Unknown set requested: {which_set}")
        root = _package.dataset_root(self.name, data_dir)
        if root is None:
            root = ensure_synthetic_polyps()
            _package.announce(f"{_package.DATA_DIR_ENV} is not set; Polyps912Dataset reads "
                              f"the built-in synthetic polyps at {root}")
        self._dataset = Polyps912(root, self.which_set, masks="masks2")
        self._index = {name: index for index, name in enumerate(self._dataset.names)}
        self._path = self._dataset.root
        self.image_path = str(self._path / self.which_set / "images")
        self.mask_path = str(self._path / self.which_set / "masks2")
        self.preload = preload
        self._preloaded = ([self._read(index) for index in range(len(self._dataset))]
                           if preload else None)
        super().__init__(*args, **kwargs)

    @property
    def path(self):
        """The dataset's root folder."""
        return str(self._path)

    @property
    def filenames(self):
        """The image names (without suffix) of the split."""
        return list(self._dataset.names)

    def _read(self, index):
        image, labels = self._dataset.read_raw(index)
        return (image.astype(np.float32) / np.float32(255)), labels.astype(np.int32)

    def get_names(self):
        return {"default": self.filenames}

    def load_sequence(self, sequence):
        images, labels, names = [], [], []
        subset = "default"
        for subset, name in sequence:
            index = self._index[name]
            image, label = (self._preloaded[index] if self._preloaded is not None
                            else self._read(index))
            images.append(image)
            labels.append(label)
            names.append(name)
        return {"data": np.array(images), "labels": np.array(labels), "subset": subset,
                "filenames": np.array(names)}
