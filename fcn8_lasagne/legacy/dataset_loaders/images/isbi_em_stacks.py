"""``dataset_loaders.images.isbi_em_stacks.IsbiEmStacksDataset`` over
:class:`fcn8_lasagne.data.IsbiEmStacks`.

The stacks are read and checked by :class:`fcn8_lasagne.data.IsbiEmStacks` (page count and
size, labels 0/255; its error messages); the iteration is :class:`ThreadedDataset`'s. The
validation split is pages 25 .. 29 (the original read pages 0 .. 4, see
``docs/faithfulness.md``). Without ``data_dir`` or ``$FCN8_LEGACY_DATA_DIR`` the data is the
built-in synthetic EM stacks (30 pages of 256x256).
"""

import numpy as np

from ....data import IsbiEmStacks, SyntheticEmStacks
from ... import dataset_loaders as _package
from ..parallel_loader import ThreadedDataset

__legacy_shim__ = True

__all__ = ["IsbiEmStacksDataset"]


class IsbiEmStacksDataset(ThreadedDataset):
    """The ISBI 2012 EM stacks: grey slices, 2 classes (0 membrane, 1 cell), no void.

    Parameters
    ----------
    which_set : str
        'train', 'val' / 'valid' or 'test' (no labels).
    split : float, default 0.85
        The share of the 30 training pages that is 'train'.
    data_dir : str, Path or None
        The folder of ``train-volume.tif`` ... (or a folder holding ``isbi_em_stacks/``);
        default ``$FCN8_LEGACY_DATA_DIR``, else the built-in synthetic stacks.
    *args, **kwargs
        :class:`~fcn8_lasagne.legacy.dataset_loaders.parallel_loader.ThreadedDataset`'s.
    """

    name = "isbi_em_stacks"
    non_void_nclasses = 2
    _void_labels = []
    data_shape = (512, 512, 1)
    _cmap = {0: (0, 0, 0), 1: (255, 255, 255)}
    _mask_labels = {0: "Non-membranes", 1: "Membranes"}  # the original's names (0 is membrane)

    def __init__(self, which_set="train", split=0.85, *args, data_dir=None, **kwargs):
        if which_set not in ("train", "valid", "val", "test"):
            raise ValueError(f"Unknown set requested: {which_set}")
        self.which_set = "val" if which_set == "valid" else which_set
        root = _package.dataset_root(self.name, data_dir)
        if root is None:
            self._dataset = SyntheticEmStacks(split=self.which_set, train_fraction=split)
            _package.announce(f"{_package.DATA_DIR_ENV} is not set; IsbiEmStacksDataset reads "
                              f"the built-in synthetic EM stacks at {self._dataset.root}")
        else:
            self._dataset = IsbiEmStacks(root, self.which_set, train_fraction=split)
        self._path = self._dataset.root
        self.image_path = str(self._dataset.volume_path)
        self.target_path = (None if self._dataset.labels_path is None
                            else str(self._dataset.labels_path))
        self.set_has_GT = self._dataset.has_labels
        self.start, self.end = self._dataset.pages[0], self._dataset.pages[-1] + 1
        super().__init__(*args, **kwargs)

    @property
    def path(self):
        """The folder of the stacks."""
        return str(self._path)

    def get_names(self):
        return {"default": list(range(len(self._dataset)))}

    def load_sequence(self, sequence):
        images, labels, names = [], [], []
        subset = "default"
        for subset, index in sequence:
            image, label = self._dataset.read_raw(index)
            images.append(image.astype(np.float32) / np.float32(255))
            labels.append(label)
            names.append(self._dataset.pages[index])
        result = {"data": np.array(images), "subset": subset, "filenames": np.array(names)}
        result["labels"] = np.array(labels) if self.set_has_GT else np.array([])
        return result
