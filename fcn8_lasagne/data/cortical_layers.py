"""Cortical layers: 200-sample intensity profiles across the cortex, for the 1-D FCN tutorial.

Layout (``code/cnn_1D_segm/data_loader/cortical_layers.py`` of the tutorial)::

    <root>/6layers_segmentation/training_raw.txt       one raw profile per line
    <root>/6layers_segmentation/training_geo.txt       the same profiles, smoothed
    <root>/6layers_segmentation/training_cls.txt       one label per sample: 0 padding, 1..6
    <root>/6layers_segmentation/training_regions.txt   a region id per line (unused, as in
                                                       the original)

Every line holds 200 space-separated numbers; line ``i`` of each file is profile ``i``. The
original shuffled the line numbers with ``np.random.seed(1609); np.random.shuffle(...)``
(NumPy's legacy generator) and gave the first ``int(n * split)`` to 'train' and the rest to
'valid'; 'test' is every line, in the shuffled order. We draw the same permutation from a
private ``RandomState(1609)``, so the global generator is left alone.

``smooth_or_raw`` picks the input channels: 'raw', 'smooth' (the ``geo`` file) or 'both'
(channel 0 smooth, channel 1 raw, the original's order). Seven classes, no void.

The files are read and checked when a split is opened: each line must hold 200 numbers,
the labels must be integers 0..6, and the files used must have the same number of lines.
Every error names the file and the line (numbered from 1).
"""

from pathlib import Path

import numpy as np

from .base import canonical_split

__all__ = ["CorticalLayers", "CORTICAL_CLASS_NAMES", "CORTICAL_FILES", "read_profiles",
           "split_lines"]

#: Class names in class-id order: the padding outside the cortex, then layers 1 to 6.
CORTICAL_CLASS_NAMES = ("padding", "layer1", "layer2", "layer3", "layer4", "layer5", "layer6")
#: What the files hold → their names under ``6layers_segmentation``.
CORTICAL_FILES = {
    "raw": "training_raw.txt",
    "smooth": "training_geo.txt",
    "labels": "training_cls.txt",
    "regions": "training_regions.txt",
}
PROFILE_LENGTH = 200
_SUBFOLDER = "6layers_segmentation"
_SHUFFLE_SEED = 1609


def read_profiles(path, dtype, length=PROFILE_LENGTH):
    """Read a text file of one ``length``-value profile per line.

    Parameters
    ----------
    path : str or Path
    dtype : {'float32', 'int32'}
        Values are parsed as floats or as integers.
    length : int

    Returns
    -------
    numpy.ndarray
        (n_lines, length).

    Raises
    ------
    FileNotFoundError, ValueError
        Naming the file and the line.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"cortical layers file not found: {path}")
    parse = float if dtype == "float32" else int
    rows = []
    with open(path, encoding="ascii", errors="replace") as lines:
        for number, line in enumerate(lines, start=1):
            fields = line.split()
            if len(fields) != length:
                raise ValueError(
                    f"{path}, line {number}: expected {length} values, got {len(fields)}")
            try:
                rows.append([parse(field) for field in fields])
            except ValueError:
                bad = next(field for field in fields if not _parses(parse, field))
                kind = "a number" if parse is float else "an integer"
                raise ValueError(f"{path}, line {number}: {bad!r} is not {kind}") from None
    if not rows:
        raise ValueError(f"{path}: the file holds no profile")
    return np.array(rows, dtype=dtype)


def _parses(parse, field):
    try:
        parse(field)
    except ValueError:
        return False
    return True


def split_lines(n_lines, split, train_fraction=0.85):
    """The line numbers of a split, in the original's shuffled order.

    Parameters
    ----------
    n_lines : int
    split : {'train', 'valid', 'test'}
    train_fraction : float

    Returns
    -------
    list of int
    """
    order = list(range(n_lines))
    np.random.RandomState(_SHUFFLE_SEED).shuffle(order)
    n_train = int(n_lines * train_fraction)
    if split == "train":
        return order[:n_train]
    if split == "valid":
        return order[n_train:]
    return order


class CorticalLayers:
    """One split of the cortical layers profiles.

    Parameters
    ----------
    root : str or Path
        The folder holding ``6layers_segmentation/`` (or that folder itself).
    split : str
        'train', 'valid' (or 'val') or 'test'.
    smooth_or_raw : {'both', 'raw', 'smooth'}, default 'both'
    train_fraction : float, default 0.85
        The original's ``split``.

    Attributes
    ----------
    n_classes : int
        7.
    void_label : int
        7 (no profile sample carries it).
    class_names : tuple of str
    n_channels : int
        2 for 'both', else 1.
    lines : tuple of int
        The line numbers (from 0) of this split's profiles, in order.
    image_paths : tuple of Path
        The label file, once per profile (what batch errors name).

    Notes
    -----
    ``dataset[i]`` returns ``(profile, labels)``: float32 (n_channels, 200) and int32 (200,).
    """

    name = "cortical_layers"

    def __init__(self, root, split="train", smooth_or_raw="both", train_fraction=0.85):
        if smooth_or_raw not in ("both", "raw", "smooth"):
            raise ValueError(
                f"smooth_or_raw must be 'both', 'raw' or 'smooth', got {smooth_or_raw!r}")
        if not 0 < train_fraction < 1:
            raise ValueError(f"train_fraction must be in (0, 1), got {train_fraction!r}")
        self.split = canonical_split(split)
        root = Path(root)
        folder = root if root.name == _SUBFOLDER else root / _SUBFOLDER
        if not folder.is_dir():
            raise FileNotFoundError(f"cortical layers folder not found: {folder}")
        self.root = folder.parent
        self.smooth_or_raw = smooth_or_raw
        kinds = {"both": ("smooth", "raw"), "raw": ("raw",), "smooth": ("smooth",)}
        self.channel_kinds = kinds[smooth_or_raw]
        self.paths = {kind: folder / CORTICAL_FILES[kind]
                      for kind in ("raw", "smooth", "labels", "regions")}
        self.labels_path = self.paths["labels"]
        labels = read_profiles(self.labels_path, "int32")
        bad = (labels < 0) | (labels >= len(CORTICAL_CLASS_NAMES))
        if bad.any():
            line = int(np.flatnonzero(bad.any(axis=1))[0])
            value = int(labels[line][bad[line]][0])
            raise ValueError(
                f"{self.labels_path}, line {line + 1}: label {value} is not a class "
                f"(0..{len(CORTICAL_CLASS_NAMES) - 1}: {', '.join(CORTICAL_CLASS_NAMES)})")
        channels = []
        for kind in self.channel_kinds:
            values = read_profiles(self.paths[kind], "float32")
            if len(values) != len(labels):
                longer, shorter = ((self.labels_path, self.paths[kind])
                                   if len(labels) > len(values)
                                   else (self.paths[kind], self.labels_path))
                raise ValueError(
                    f"{self.paths[kind]} has {len(values)} lines but {self.labels_path} has "
                    f"{len(labels)}: line {min(len(values), len(labels)) + 1} of {longer} "
                    f"has no counterpart in {shorter} (line i of each file is profile i)")
            channels.append(values)
        self.lines = tuple(split_lines(len(labels), self.split, train_fraction))
        if not self.lines:
            raise ValueError(
                f"train_fraction={train_fraction} leaves no profile of {len(labels)} for "
                f"{self.split!r}")
        order = np.array(self.lines)
        self._profiles = np.ascontiguousarray(np.stack(channels, axis=1)[order])
        self._labels = np.ascontiguousarray(labels[order])
        self.class_names = CORTICAL_CLASS_NAMES
        self.n_classes = len(CORTICAL_CLASS_NAMES)
        self.void_label = self.n_classes
        self.n_channels = len(self.channel_kinds)

    @property
    def names(self):
        return tuple(f"line-{line + 1}" for line in self.lines)

    @property
    def image_paths(self):
        return (self.labels_path,) * len(self)

    def __len__(self):
        return len(self.lines)

    def __repr__(self):
        return (f"<{type(self).__name__} {self.name!r} split={self.split!r}: {len(self)} "
                f"profiles, {self.smooth_or_raw} ({self.n_channels} channels), "
                f"{self.n_classes} classes>")

    def _check_index(self, index):
        index = int(index)
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} profiles")
        return index % len(self)

    def __getitem__(self, index):
        index = self._check_index(index)
        return self._profiles[index].copy(), self._labels[index].copy()

    def arrays(self):
        """Every profile of the split at once: float32 (n, n_channels, 200), int32 (n, 200)."""
        return self._profiles.copy(), self._labels.copy()

    def validate(self, check=None):
        """The files were checked when the split was opened; run ``check(index, profile,
        labels)`` on every profile. Returns self."""
        if check is not None:
            for index in range(len(self)):
                check(index, *self[index])
        return self

    def class_counts(self):
        """Samples of each class (and, last, of void: 0), int64 of length ``n_classes + 1``."""
        return np.bincount(self._labels.ravel(), minlength=self.n_classes + 1).astype(np.int64)
