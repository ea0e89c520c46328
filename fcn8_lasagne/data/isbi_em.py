"""ISBI 2012 EM stacks: the electron-microscopy slices the U-Net tutorial trains on.

Layout (the challenge's files, under ``[isbi_em_stacks]`` in the tutorial)::

    <root>/train-volume.tif     30 pages of 512x512 8-bit grey images
    <root>/train-labels.tif     30 pages of 512x512: 0 membrane, 255 cell
    <root>/test-volume.tif      30 pages of 512x512, no labels

The tutorial's loader (fvisin/dataset_loaders ``IsbiEmStacksDataset``) divides the labels
by 255, so the classes are 0 (the black membranes) and 1 (the white cell interiors), with no
void; its ``split=0.85`` puts pages ``0 .. int(0.85 * 30) - 1 = 24`` in ``'train'`` and 25 .. 29
in ``'valid'``; ``'test'`` is the 30 pages of ``test-volume.tif``, which have no labels (their
label maps here are all void, so every metric ignores them). The original named the classes
``'Non-membranes'`` and ``'Membranes'`` in that order, the reverse of what the files hold,
and its validation set read pages 0 .. 4 instead of 25 .. 29 (it sought the page numbers
counted from the start of the split, not from the start of the file); both are fixed here
(``reproduce_val_bug=True`` restores the latter) and listed in ``docs/faithfulness.md``.

The stacks are checked when a split is opened: page count and page size of both files, one
grey 8-bit channel; reading a page checks that its labels are 0 or 255. Every error names the
file and, where it applies, the page (numbered from 0).
"""

from pathlib import Path

import numpy as np
import tifffile

from .base import SegmentationDataset, canonical_split

__all__ = ["IsbiEmStacks", "ISBI_EM_CLASS_NAMES", "ISBI_EM_FILES"]

#: Class names in class-id order (label value 0, label value 255).
ISBI_EM_CLASS_NAMES = ("membrane", "cell")
#: split → (image stack, label stack or None).
ISBI_EM_FILES = {
    "train": ("train-volume.tif", "train-labels.tif"),
    "valid": ("train-volume.tif", "train-labels.tif"),
    "test": ("test-volume.tif", None),
}


def _stack_pages(path, n_pages, page_size):
    """Open a multi-page TIFF and check its pages' number, shape and type, without reading
    the pixels."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"ISBI EM stack not found: {path}")
    try:
        with tifffile.TiffFile(path) as tiff:
            pages = [(page.shape, page.dtype) for page in tiff.pages]
    except Exception as error:  # tifffile raises several types for damaged files
        raise ValueError(f"cannot read {path}: {error}") from error
    if len(pages) != n_pages:
        raise ValueError(f"{path}: expected {n_pages} pages, got {len(pages)}")
    for index, (shape, dtype) in enumerate(pages):
        if tuple(shape) != tuple(page_size):
            raise ValueError(
                f"{path}, page {index}: expected a {page_size[0]}x{page_size[1]} grey image, "
                f"got shape {tuple(shape)}")
        if dtype != np.uint8:
            raise ValueError(f"{path}, page {index}: expected 8-bit pixels, got {dtype}")


def _read_stack(path):
    try:
        stack = tifffile.imread(path)
    except Exception as error:
        raise ValueError(f"cannot read {path}: {error}") from error
    return stack.reshape((-1,) + stack.shape[-2:])


class IsbiEmStacks(SegmentationDataset):
    """One split of the ISBI 2012 EM stacks: grey slices and membrane / cell labels.

    Parameters
    ----------
    root : str or Path
        The folder holding ``train-volume.tif``, ``train-labels.tif`` and (for 'test')
        ``test-volume.tif``.
    split : str
        'train', 'valid' (or 'val') or 'test'.
    train_fraction : float, default 0.85
        The original's ``split``: pages ``0 .. int(train_fraction * n_pages) - 1`` are
        'train', the rest 'valid'.
    train_from_0_255 : bool
        See :class:`~fcn8_lasagne.data.SegmentationDataset`.
    n_pages : int, default 30
    page_size : (int, int), default (512, 512)
        What every stack must hold (the challenge's 30 pages of 512x512; the synthetic set
        is smaller).
    reproduce_val_bug : bool, default False
        'valid' reads pages ``0 .. n_valid - 1``, as the original did.

    Attributes
    ----------
    pages : tuple of int
        The pages of the stack this split reads, in order.
    has_labels : bool
        False for 'test': its label maps are all ``void_label``.

    Notes
    -----
    ``dataset[i]`` returns ``(image, label)``: image float32 (1, H, W) in [0, 1] (or 0..255),
    label int32 (H, W), 0 membrane, 1 cell (2, void, for 'test').
    """

    name = "isbi_em"
    n_channels = 1

    def __init__(self, root, split="train", train_fraction=0.85, train_from_0_255=False,
                 n_pages=30, page_size=(512, 512), reproduce_val_bug=False):
        split = canonical_split(split)
        if not 0 < train_fraction < 1:
            raise ValueError(f"train_fraction must be in (0, 1), got {train_fraction!r}")
        self.root = Path(root)
        if not self.root.is_dir():
            raise FileNotFoundError(f"dataset root not found: {self.root}")
        self.n_pages = int(n_pages)
        self.page_size = tuple(int(size) for size in page_size)
        image_name, label_name = ISBI_EM_FILES[split]
        self.volume_path = self.root / image_name
        self.labels_path = None if label_name is None else self.root / label_name
        _stack_pages(self.volume_path, self.n_pages, self.page_size)
        if self.labels_path is not None:
            _stack_pages(self.labels_path, self.n_pages, self.page_size)
        n_train = int(train_fraction * self.n_pages)
        if split == "train":
            pages = range(0, n_train)
        elif split == "valid":
            pages = range(0, self.n_pages - n_train) if reproduce_val_bug \
                else range(n_train, self.n_pages)
        else:
            pages = range(self.n_pages)
        self.pages = tuple(pages)
        if not self.pages:
            raise ValueError(
                f"train_fraction={train_fraction} leaves no page of {self.n_pages} for "
                f"{split!r}")
        self.has_labels = self.labels_path is not None
        super().__init__(
            [self.volume_path] * len(self.pages),
            [self.labels_path or self.volume_path] * len(self.pages),
            ISBI_EM_CLASS_NAMES,
            label_values={0: 0, 255: 1},
            train_from_0_255=train_from_0_255,
            split=split,
        )
        self._volume = None
        self._labels = None

    @property
    def names(self):
        return tuple(f"{self.volume_path.stem}-{page:02d}" for page in self.pages)

    def _stacks(self):
        if self._volume is None:
            volume = _read_stack(self.volume_path)
            labels = None if self.labels_path is None else _read_stack(self.labels_path)
            self._volume, self._labels = volume, labels
        return self._volume, self._labels

    def read_raw(self, index):
        """Slice ``index`` as stored: uint8 (H, W, 1) and int32 class ids (H, W)."""
        page = self.pages[self._check_index(index)]
        volume, labels = self._stacks()
        image = volume[page][:, :, None]
        if labels is None:
            return image, np.full(self.page_size, self.void_label, dtype=np.int32)
        return image, self.encode_labels(labels[page], f"{self.labels_path}, page {page}")

    def channel_mean_std(self):
        """Mean and standard deviation of the grey values, as ``dataset[i]`` gives them.

        Returns
        -------
        mean, std : numpy.ndarray
            float64 of length 1.
        """
        values = np.stack([self[index][0].astype(np.float64) for index in range(len(self))])
        return np.array([values.mean()]), np.array([values.std()])
