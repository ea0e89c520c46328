"""``data_loader.cortical_layers.Cortical6LayersDataset`` over
:class:`fcn8_lasagne.data.CorticalLayers`.

The text files are read and checked by :class:`fcn8_lasagne.data.CorticalLayers` (200 values
a line, labels 0..6, equal line counts; its error messages), always preloaded; the split is
the original's ``np.random.seed(1609)`` shuffle, drawn from a private generator. Batches are
the original ``ThreadedDataset_1D``'s: ``data`` (batch, channels, 200) float32 (channels last
with ``return_01c``), channel 0 smooth and 1 raw for ``'both'``; ``labels`` (batch, 200)
int32 (one-hot with ``return_one_hot``). Without ``data_dir`` or ``$FCN8_LEGACY_DATA_DIR`` the
data is the built-in synthetic profiles.
"""

import numpy as np

from ...data import CorticalLayers, SyntheticCorticalProfiles
from .. import dataset_loaders as _package
from ..dataset_loaders.parallel_loader import ThreadedDataset

__legacy_shim__ = True

__all__ = ["Cortical6LayersDataset"]


class Cortical6LayersDataset(ThreadedDataset):
    """The cortical layers profiles: 1-D rays of 200 samples, 7 classes (0 padding), no void.

    Parameters
    ----------
    which_set : str
        'train', 'val' / 'valid' or 'test' (every profile).
    split : float, default 0.85
    shuffle_at_each_epoch : bool, default True
    smooth_or_raw : {'both', 'raw', 'smooth'}, default 'both'
    preload : bool
        Accepted; the profiles are always in memory.
    data_dir : str, Path or None
        The folder holding ``6layers_segmentation/`` (or a folder holding
        ``cortical_layers/``); default ``$FCN8_LEGACY_DATA_DIR``, else the built-in synthetic
        profiles.
    *args, **kwargs
        :class:`~fcn8_lasagne.legacy.dataset_loaders.parallel_loader.ThreadedDataset`'s; the
        augmentations are 2-D only and refused.
    """

    name = "cortical_layers"
    non_void_nclasses = 7
    GTclasses = [0, 1, 2, 3, 4, 5, 6]
    _void_labels = []
    _cmap = {0: (128, 128, 128), 1: (128, 0, 0), 2: (128, 64, 0), 3: (128, 64, 128),
             4: (0, 0, 128), 5: (0, 0, 64), 6: (64, 64, 128)}
    _mask_labels = {0: "padding", 1: "layers1", 2: "layer2", 3: "layer3", 4: "layer4",
                    5: "layer5", 6: "layer6"}

    def __init__(self, which_set="train", split=0.85, shuffle_at_each_epoch=True,
                 smooth_or_raw="both", *args, preload=False, data_dir=None, **kwargs):
        self.task = "segmentation"
        self.n_layers = 6
        self.which_set = "val" if which_set == "valid" else which_set
        if self.which_set not in ("train", "val", "test"):
            raise ValueError(f"Unknown argument to which_set {self.which_set}")
        self.split = split
        self.smooth_raw_both = smooth_or_raw
        root = _package.dataset_root(self.name, data_dir)
        if root is None:
            self._dataset = SyntheticCorticalProfiles(split=self.which_set,
                                                      smooth_or_raw=smooth_or_raw,
                                                      train_fraction=split)
            _package.announce(f"{_package.DATA_DIR_ENV} is not set; Cortical6LayersDataset "
                              f"reads the built-in synthetic profiles at {self._dataset.root}")
        else:
            self._dataset = CorticalLayers(root, self.which_set, smooth_or_raw=smooth_or_raw,
                                           train_fraction=split)
        paths = self._dataset.paths
        self.image_path_raw, self.image_path_smooth = str(paths["raw"]), str(paths["smooth"])
        self.mask_path, self.regions_path = str(paths["labels"]), str(paths["regions"])
        self.preload = preload
        self.data_shape = (200, self._dataset.n_channels)
        super().__init__(*args, shuffle_at_each_epoch=shuffle_at_each_epoch, **kwargs)
        if not self._augmentation.is_identity:
            raise NotImplementedError(
                "Cortical6LayersDataset: data_augm_kwargs crop and flips are 2-D; "
                "fcn8_lasagne.legacy does not provide them for 1-D profiles")
        self.data_shape = (200, self._dataset.n_channels)  # the original's, (length, channels)
        self._lines = {line: index for index, line in enumerate(self._dataset.lines)}

    @property
    def path(self):
        """The folder holding ``6layers_segmentation/``."""
        return str(self._dataset.root)

    @property
    def filenames(self):
        """The line numbers (from 0) of the split's profiles, in the seeded order."""
        return list(self._dataset.lines)

    def get_names(self):
        return {"default": self.filenames}

    def fetch_from_dataset(self, batch_to_load):
        """One batch as the original's ``ThreadedDataset_1D`` built it (see the module)."""
        lines = [element[1] for sequence in batch_to_load if sequence is not None
                 for element in sequence]
        pairs = [self._dataset[self._lines[line]] for line in lines]
        data = np.stack([profile for profile, _ in pairs]).transpose(0, 2, 1)  # b, 0, c
        labels = np.stack([label for _, label in pairs])
        raw_data = data.copy()
        if self.remove_per_img_mean:
            data -= data.mean(axis=1, keepdims=True)
        if self.divide_by_per_img_std:
            data /= data.std(axis=1, keepdims=True)
        if self.remove_mean:
            data -= getattr(self, "mean", 0)
        if self.divide_by_std:
            data /= getattr(self, "std", 1)
        if self.return_one_hot:
            labels = np.eye(self.nclasses, dtype=np.int32)[labels]  # b, 0, classes
        if not self.return_01c:
            data, raw_data = data.transpose(0, 2, 1), raw_data.transpose(0, 2, 1)
            if self.return_one_hot:
                labels = labels.transpose(0, 2, 1)
        if self.return_0_255:
            data = (data * 255).astype(np.uint8)
        if self.fill_last_batch and len(lines) < self.batch_size:
            repeat = self.batch_size - len(lines)
            data, labels, raw_data = (np.concatenate([array, np.repeat(array[-1:], repeat, 0)])
                                      for array in (data, labels, raw_data))
            lines = lines + [lines[-1]] * repeat
        if self.return_list:
            return [data, labels]
        return {"data": data, "labels": labels, "filenames": np.array(lines),
                "subset": "default", "raw_data": raw_data}
