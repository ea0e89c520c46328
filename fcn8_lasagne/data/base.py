"""The dataset class every layout shares, and the image and label-map readers.

A dataset is a list of (image file, label-map file) pairs plus the rule that turns the raw
values stored in the label maps into class ids. Class ids are ``0 .. n_classes - 1``; every
raw value declared void becomes the single id ``void_label == n_classes``, which is what the
tutorial's loss and metrics mask out (``void_labels=[n_classes]``).

Files are read lazily, one pair per ``dataset[i]``, so that opening a dataset only lists its
folders. Listing already refuses unpaired files and empty splits; reading refuses unreadable
files, an image and label map of different sizes and label values that are neither a class
nor void. Every such error names the file.
"""

import re
from pathlib import Path

import numpy as np
import tifffile
from PIL import Image, UnidentifiedImageError

__all__ = [
    "SegmentationDataset",
    "canonical_split",
    "pair_files_by_stem",
    "find_split_folder",
    "read_rgb_image",
    "read_label_map",
    "IMAGE_SUFFIXES",
    "LABEL_MAP_SUFFIXES",
]

IMAGE_SUFFIXES = (".bmp", ".png", ".jpg", ".jpeg", ".tif", ".tiff")
# Lossy formats would blur the class boundaries, so label maps are never JPEG.
LABEL_MAP_SUFFIXES = (".png", ".bmp", ".tif", ".tiff")
_TIFF_SUFFIXES = (".tif", ".tiff")

_SPLIT_ALIASES = {
    "train": "train",
    "training": "train",
    "valid": "valid",
    "val": "valid",
    "validation": "valid",
    "test": "test",
    "testing": "test",
}


def canonical_split(split):
    """Name a split the way the tutorial's loader did: 'train', 'valid' or 'test'.

    Parameters
    ----------
    split : str
        One of 'train'/'training', 'valid'/'val'/'validation', 'test'/'testing'.

    Returns
    -------
    str
    """
    try:
        return _SPLIT_ALIASES[split]
    except (KeyError, TypeError):
        raise ValueError(
            f"unknown split {split!r}: expected 'train', 'valid' (or 'val') or 'test'"
        ) from None


def _natural_key(path):
    # '2.bmp' sorts before '10.bmp', as a person numbering frames expects.
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path.name)]


def _list_files(folder, suffixes):
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"folder not found: {folder}")
    files = [
        entry
        for entry in folder.iterdir()
        if entry.is_file() and entry.suffix.lower() in suffixes and not entry.name.startswith(".")
    ]
    return sorted(files, key=_natural_key)


def _by_stem(files, kind):
    by_stem = {}
    for path in files:
        if path.stem in by_stem:
            raise ValueError(
                f"two {kind} files share the name {path.stem!r}: {by_stem[path.stem]} and {path}"
            )
        by_stem[path.stem] = path
    return by_stem


def _describe_orphans(orphans, counterpart_folder, counterpart_kind, counterpart_suffixes):
    shown = ", ".join(str(path) for path in orphans[:5])
    more = f" and {len(orphans) - 5} more" if len(orphans) > 5 else ""
    message = f"{shown}{more} (no {counterpart_kind} with the same name in {counterpart_folder}"
    # a counterpart saved with a suffix this dataset does not read is the usual cause
    stems = {path.stem for path in orphans}
    ignored = sorted((entry for entry in Path(counterpart_folder).iterdir()
                      if entry.is_file() and entry.stem in stems), key=_natural_key)
    if ignored:
        message += (f"; {ignored[0].name}{' and others' if len(ignored) > 1 else ''} has the "
                    f"name, but this dataset reads {counterpart_kind}s only with the suffixes "
                    f"{', '.join(counterpart_suffixes)}")
    return message + ")"


def pair_files_by_stem(image_folder, mask_folder, image_suffixes=IMAGE_SUFFIXES,
                       mask_suffixes=LABEL_MAP_SUFFIXES):
    """Pair each image with the label map of the same file name (less its suffix).

    Parameters
    ----------
    image_folder, mask_folder : str or Path
    image_suffixes, mask_suffixes : tuple of str
        Lower-case suffixes of the files to consider; other files are ignored.

    Returns
    -------
    image_paths, mask_paths : list of Path
        In natural order of the image names.

    Raises
    ------
    FileNotFoundError
        A folder is missing, or an image has no label map or a label map no image.
    ValueError
        The folder holds no image, or two files of one folder share a name.
    """
    image_folder, mask_folder = Path(image_folder), Path(mask_folder)
    images = _by_stem(_list_files(image_folder, image_suffixes), "image")
    masks = _by_stem(_list_files(mask_folder, mask_suffixes), "label-map")
    if not images and not masks:
        raise ValueError(
            f"empty split: no image ({', '.join(image_suffixes)}) in {image_folder}"
        )
    images_alone = [path for stem, path in images.items() if stem not in masks]
    if images_alone:
        raise FileNotFoundError(
            "image without label map: "
            + _describe_orphans(images_alone, mask_folder, "label map", mask_suffixes)
        )
    masks_alone = sorted((path for stem, path in masks.items() if stem not in images),
                         key=_natural_key)
    if masks_alone:
        raise FileNotFoundError(
            "label map without image: "
            + _describe_orphans(masks_alone, image_folder, "image", image_suffixes)
        )
    return list(images.values()), [masks[stem] for stem in images]


def _read_tiff(path):
    try:
        return tifffile.imread(path)
    except FileNotFoundError:
        raise
    except Exception as error:  # tifffile raises several types for damaged files
        raise ValueError(f"cannot read {path}: {error}") from error


def _open_with_pillow(path):
    try:
        with Image.open(path) as opened:
            opened.load()
            return opened.copy()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        if isinstance(error, FileNotFoundError):
            raise
        raise ValueError(f"cannot read {path}: {error}") from error


def read_rgb_image(path, notes=None):
    """Read an 8-bit image file as RGB.

    Grey-level and palette images are expanded to three channels and an alpha channel is
    dropped, the way Pillow's ``convert('RGB')`` does.

    Parameters
    ----------
    path : str or Path
        A BMP, PNG, JPEG (read with Pillow) or TIFF (read with tifffile) file.
    notes : list or None
        When given, a sentence naming the file and the conversion is appended to it for an
        image that was not RGB (``fcn8 predict`` prints them).

    Returns
    -------
    numpy.ndarray
        uint8 array of shape (H, W, 3).
    """
    path = Path(path)
    if path.suffix.lower() in _TIFF_SUFFIXES:
        pixels = _read_tiff(path)
        if pixels.dtype != np.uint8:
            raise ValueError(f"{path}: expected an 8-bit image, got pixels of type {pixels.dtype}")
        if pixels.ndim == 2:
            _note(notes, path, "grey-level", "its one channel repeated")
            return np.repeat(pixels[:, :, None], 3, axis=2)
        if pixels.ndim == 3 and pixels.shape[2] in (3, 4):
            if pixels.shape[2] == 4:
                _note(notes, path, "RGBA", "its alpha channel dropped")
            return np.ascontiguousarray(pixels[:, :, :3])
        raise ValueError(
            f"{path}: expected an image of shape (H, W), (H, W, 3) or (H, W, 4), "
            f"got {pixels.shape}"
        )
    image = _open_with_pillow(path)
    if image.mode not in ("RGB", "RGBA", "L", "LA", "P", "PA", "1", "CMYK", "YCbCr"):
        raise ValueError(f"{path}: expected an 8-bit image, got Pillow mode {image.mode!r}")
    if image.mode != "RGB":
        _note(notes, path, f"mode {image.mode}", _CONVERSIONS.get(image.mode, "converted"))
        image = image.convert("RGB")
    return np.asarray(image, dtype=np.uint8)


_CONVERSIONS = {"L": "its grey level repeated in R, G and B", "1": "black and white expanded",
                "LA": "grey repeated, alpha dropped", "RGBA": "its alpha channel dropped",
                "P": "its palette colours used", "PA": "palette colours used, alpha dropped"}


def _note(notes, path, kind, conversion):
    if notes is not None:
        notes.append(f"{path} is a {kind} image, read as RGB ({conversion})")


def read_label_map(path):
    """Read a label map: one integer per pixel.

    A palette PNG gives its palette indices; an RGB file is accepted only when its three
    channels are equal (a grey label map saved in colour).

    Parameters
    ----------
    path : str or Path
        A PNG or BMP (read with Pillow) or TIFF (read with tifffile) file.

    Returns
    -------
    numpy.ndarray
        Integer array of shape (H, W), with the dtype the file stores.
    """
    path = Path(path)
    if path.suffix.lower() in _TIFF_SUFFIXES:
        values = _read_tiff(path)
        while values.ndim > 2 and values.shape[0] == 1:
            values = values[0]
    else:
        image = _open_with_pillow(path)
        if image.mode in ("RGBA", "LA", "PA"):
            image = image.convert(image.mode[:-1])
        values = np.asarray(image)
    if values.ndim == 3 and values.shape[2] in (3, 4):
        colour = values[:, :, :3]
        if not (np.array_equal(colour[:, :, 0], colour[:, :, 1])
                and np.array_equal(colour[:, :, 0], colour[:, :, 2])):
            raise ValueError(
                f"{path}: expected a single-channel label map, got a colour image of shape "
                f"{values.shape} whose channels differ"
            )
        values = colour[:, :, 0]
    if values.ndim != 2:
        raise ValueError(f"{path}: expected a label map of shape (H, W), got {values.shape}")
    if values.dtype == bool:
        values = values.astype(np.uint8)
    if values.dtype.kind == "f":
        if not np.all(np.isfinite(values)) or not np.array_equal(values, np.round(values)):
            raise ValueError(f"{path}: label map holds non-integer values")
        values = values.astype(np.int64)
    if values.dtype.kind not in "ui":
        raise ValueError(f"{path}: expected integer labels, got values of type {values.dtype}")
    return values


class SegmentationDataset:
    """Image / label-map pairs read on demand, labels mapped to class ids.

    Parameters
    ----------
    image_paths, mask_paths : sequence of str or Path
        The files of each pair, in the same order.
    class_names : sequence of str
        One name per non-void class; ``n_classes = len(class_names)``.
    label_values : dict or None
        Raw label-map value -> class id (``0 .. n_classes - 1``). ``None`` means the raw
        value ``i`` is class ``i`` for every class.
    void_values : iterable of int
        Raw values that are void; all of them become ``void_label``.
    train_from_0_255 : bool
        Keep image values in 0..255 (as float32) instead of scaling them to [0, 1], as the
        tutorial's ``-train_from_0_255`` flag did.
    name : str or None
        Overrides the class attribute ``name``.
    split : str or None
        The split these files come from, for messages.

    Attributes
    ----------
    n_classes : int
        Number of non-void classes.
    void_label : int
        The id every void pixel carries: ``n_classes``.
    class_names : tuple of str
    image_paths, mask_paths : tuple of Path
    names : tuple of str
        The image file names without suffix.

    Notes
    -----
    ``dataset[i]`` returns ``(image, label)``: image float32 of shape (3, H, W), RGB,
    channels first, in [0, 1] (or 0..255); label int32 of shape (H, W) with values in
    ``0 .. n_classes`` (the last one void).
    """

    name = "dataset"

    def __init__(self, image_paths, mask_paths, class_names, label_values=None,
                 void_values=(), train_from_0_255=False, name=None, split=None):
        self.image_paths = tuple(Path(path) for path in image_paths)
        self.mask_paths = tuple(Path(path) for path in mask_paths)
        if len(self.image_paths) != len(self.mask_paths):
            raise ValueError(
                f"{len(self.image_paths)} images but {len(self.mask_paths)} label maps"
            )
        if not self.image_paths:
            raise ValueError("a dataset needs at least one image")
        self.class_names = tuple(str(class_name) for class_name in class_names)
        if not self.class_names:
            raise ValueError("class_names is empty: a dataset needs at least one class")
        self.n_classes = len(self.class_names)
        self.void_label = self.n_classes
        if label_values is None:
            label_values = {value: value for value in range(self.n_classes)}
        self.label_values = {int(value): int(class_id) for value, class_id in label_values.items()}
        if not self.label_values:
            raise ValueError("label_values is empty: no raw value maps to a class")
        self.void_values = tuple(sorted({int(value) for value in void_values}))
        self._lookup = self._build_lookup()
        self.train_from_0_255 = bool(train_from_0_255)
        if name is not None:
            self.name = name
        self.split = split

    def _build_lookup(self):
        for value, class_id in self.label_values.items():
            if not 0 <= class_id < self.n_classes:
                raise ValueError(
                    f"label value {value} maps to class {class_id}, "
                    f"outside 0..{self.n_classes - 1}"
                )
        raw_values = list(self.label_values) + list(self.void_values)
        if any(value < 0 for value in raw_values):
            raise ValueError(f"label values must be non-negative, got {sorted(raw_values)}")
        both = sorted(set(self.label_values) & set(self.void_values))
        if both:
            raise ValueError(f"label value(s) {both} declared both a class and void")
        lookup = np.full(max(raw_values) + 1, -1, dtype=np.int32)
        for value, class_id in self.label_values.items():
            lookup[value] = class_id
        lookup[list(self.void_values)] = self.void_label
        return lookup

    @property
    def names(self):
        return tuple(path.stem for path in self.image_paths)

    def __len__(self):
        return len(self.image_paths)

    def __repr__(self):
        split = f" split={self.split!r}" if self.split else ""
        return (
            f"<{type(self).__name__} {self.name!r}{split}: {len(self)} images, "
            f"{self.n_classes} classes {list(self.class_names)}, void {self.void_label}>"
        )

    def encode_labels(self, raw_labels, path="<array>"):
        """Map raw label-map values to class ids, void values to ``void_label``.

        Parameters
        ----------
        raw_labels : numpy.ndarray of int
        path : str or Path
            Named in the error message.

        Returns
        -------
        numpy.ndarray
            int32, same shape.
        """
        raw_labels = np.asarray(raw_labels)
        lookup = self._lookup
        in_table = (raw_labels >= 0) & (raw_labels < lookup.size)
        labels = lookup[np.where(in_table, raw_labels, 0)]
        unknown = ~in_table | (labels < 0)
        if unknown.any():
            values = np.unique(raw_labels[unknown])
            shown = ", ".join(str(value) for value in values[:10])
            known = ", ".join(
                f"{value}: {self.class_names[class_id]}"
                for value, class_id in sorted(self.label_values.items())
            )
            void = ", ".join(str(value) for value in self.void_values) or "none"
            raise ValueError(
                f"{path}: label value(s) {shown} are neither a class ({known}) nor void ({void}); "
                "declare values to ignore with void_values=[...] (fcn8: --void-values, for a "
                "folder dataset) or map them to classes with value_to_class"
            )
        return labels.astype(np.int32, copy=False)

    def read_raw(self, index):
        """Read pair ``index`` as stored: uint8 RGB (H, W, 3) and int32 labels (H, W).

        The labels are already mapped to class ids; the image is not scaled.
        """
        index = self._check_index(index)
        image_path, mask_path = self.image_paths[index], self.mask_paths[index]
        image = read_rgb_image(image_path)
        labels = self.encode_labels(read_label_map(mask_path), mask_path)
        if image.shape[:2] != labels.shape:
            raise ValueError(
                f"size mismatch: image {image_path} is {image.shape[0]}x{image.shape[1]} "
                f"(HxW) but label map {mask_path} is {labels.shape[0]}x{labels.shape[1]}"
            )
        return image, labels

    def __getitem__(self, index):
        image, labels = self.read_raw(index)
        image = image.astype(np.float32)
        if not self.train_from_0_255:
            image /= np.float32(255)
        return np.ascontiguousarray(image.transpose(2, 0, 1)), labels

    def _check_index(self, index):
        index = int(index)
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} images")
        return index % len(self)

    def validate(self, check=None):
        """Read every pair once, so that a bad file fails now rather than mid-training.

        Parameters
        ----------
        check : callable, optional
            ``check(index, image, labels)``, called on every pair as it is read (e.g. a
            minimum image size); it raises to reject the pair.

        Returns
        -------
        self
        """
        for index in range(len(self)):
            image, labels = self.read_raw(index)
            if check is not None:
                check(index, image, labels)
        return self

    def class_counts(self):
        """Pixels of each class over the whole dataset.

        Returns
        -------
        numpy.ndarray
            int64 of length ``n_classes + 1``; the last entry counts void pixels.
        """
        counts = np.zeros(self.n_classes + 1, dtype=np.int64)
        for index in range(len(self)):
            _, labels = self.read_raw(index)
            counts += np.bincount(labels.ravel(), minlength=self.n_classes + 1)
        return counts

    def channel_mean_std(self):
        """Per-channel mean and standard deviation of the images, as ``dataset[i]`` gives them.

        Returns
        -------
        mean, std : numpy.ndarray
            float64 of length 3 (R, G, B).
        """
        total = np.zeros(3)
        total_squares = np.zeros(3)
        n_pixels = 0
        for index in range(len(self)):
            image = self[index][0].astype(np.float64)
            total += image.sum(axis=(1, 2))
            total_squares += np.square(image).sum(axis=(1, 2))
            n_pixels += image.shape[1] * image.shape[2]
        mean = total / n_pixels
        return mean, np.sqrt(np.maximum(total_squares / n_pixels - np.square(mean), 0.0))


def find_split_folder(root, split, aliases=()):
    """The folder of ``split`` under ``root``, trying ``aliases`` when it is absent.

    Raises
    ------
    FileNotFoundError
        Naming the root, or every folder tried.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"dataset root not found: {root}")
    tried = [root / name for name in (split, *aliases)]
    for folder in tried:
        if folder.is_dir():
            return folder
    raise FileNotFoundError(
        f"split folder not found: {' or '.join(str(folder) for folder in tried)}"
    )
