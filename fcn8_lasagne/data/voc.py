"""PASCAL VOC 2012 segmentation (and SBD's augmented labels): 20 classes, background and void.

Layout (the ``VOCtrainval_11-May-2012.tar`` archive)::

    <root>/VOCdevkit/VOC2012/JPEGImages/<id>.jpg
    <root>/VOCdevkit/VOC2012/SegmentationClass/<id>.png     palette PNGs, index = class, 255 void
    <root>/VOCdevkit/VOC2012/ImageSets/Segmentation/{train,val}.txt   one <id> per line

``root`` may be the folder holding ``VOCdevkit``, the ``VOCdevkit`` folder (Gluon-CV's
``root``) or ``VOC2012`` itself. Split 'train' reads ``train.txt``, 'valid' (or 'val')
``val.txt``; VOC's test labels are not public, so 'test' reads ``val.txt`` too (Gluon-CV's
``test.py`` also evaluates on val). Class ids are the palette indices 0 (background) .. 20;
the raw value 255 (object boundaries, "difficult" regions) becomes the void id 21, which the
losses and metrics of this package ignore.

SBD (Hariharan et al., ``benchmark_RELEASE/dataset``: ``img/<id>.jpg``, ``cls/<id>.mat``
whose ``GTcls.Segmentation`` holds the class map, ``train.txt``, ``val.txt``) is read by
:class:`SBDSegmentation` with the same classes; its ``.mat`` files need SciPy.

Every problem is one line naming the file: a split list that is missing or empty, an id
without its image or label map, a label PNG that is not a palette or grey-level image (a
colour rendering of the classes), label values that are neither a class nor 255, an image
and label map of different sizes.
"""

from pathlib import Path

import numpy as np

from .base import SegmentationDataset, _open_with_pillow, canonical_split, read_rgb_image

__all__ = ["VOCSegmentation", "SBDSegmentation", "VOC_CLASS_NAMES", "VOC_VOID_VALUE",
           "find_voc2012", "read_voc_label_png", "read_sbd_label_mat", "voc_palette"]

VOC_CLASS_NAMES = (
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat",
    "chair", "cow", "diningtable", "dog", "horse", "motorbike", "person", "pottedplant",
    "sheep", "sofa", "train", "tvmonitor",
)
VOC_VOID_VALUE = 255
_SPLIT_LISTS = {"train": "train", "valid": "val", "test": "val"}


def voc_palette():
    """VOC's 256-colour palette (the bit-interleaved colour map of the devkit's ``labelcolormap``):
    a flat list of 768 ints, for ``Image.putpalette``."""
    palette = []
    for index in range(256):
        red = green = blue = 0
        value = index
        for bit in range(8):
            red |= ((value >> 0) & 1) << (7 - bit)
            green |= ((value >> 1) & 1) << (7 - bit)
            blue |= ((value >> 2) & 1) << (7 - bit)
            value >>= 3
        palette.extend((red, green, blue))
    return palette


def find_voc2012(root):
    """The ``VOC2012`` folder under ``root`` (``root`` itself, ``root/VOC2012`` or
    ``root/VOCdevkit/VOC2012``).

    Raises
    ------
    FileNotFoundError
        Naming every folder tried.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"dataset root not found: {root}")
    tried = [root, root / "VOC2012", root / "VOCdevkit" / "VOC2012"]
    for folder in tried:
        if (folder / "JPEGImages").is_dir() or (folder / "ImageSets").is_dir():
            return folder
    raise FileNotFoundError(
        "no VOC2012 folder (with JPEGImages and ImageSets/Segmentation) at "
        + " or ".join(str(folder) for folder in tried))


def _read_split_list(path):
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"split list not found: {path}")
    ids = [line.strip().split()[0] for line in path.read_text(encoding="utf-8").splitlines()
           if line.strip()]
    if not ids:
        raise ValueError(f"{path}: the split list names no image")
    return ids


def _pair_listed(ids, list_path, image_folder, image_suffix, label_folder, label_suffix):
    image_paths = [image_folder / f"{name}{image_suffix}" for name in ids]
    label_paths = [label_folder / f"{name}{label_suffix}" for name in ids]
    for name, image, label in zip(ids, image_paths, label_paths):
        if not image.is_file():
            raise FileNotFoundError(f"image not found: {image} (listed in {list_path})")
        if not label.is_file():
            raise FileNotFoundError(f"image without label map: {image} has no {label} "
                                    f"(listed in {list_path})")
    return image_paths, label_paths


def read_voc_label_png(path):
    """The class indices of a VOC label PNG: a palette ('P') or grey-level ('L') image.

    Raises
    ------
    ValueError
        For any other mode, e.g. an RGB rendering of the palette colours.
    """
    image = _open_with_pillow(path)
    if image.mode not in ("P", "L"):
        raise ValueError(
            f"{path}: label PNG in mode {image.mode}, expected a palette (mode P) or grey-level "
            "(mode L) PNG whose values are class indices (VOC's SegmentationClass files); a "
            "colour rendering of the classes cannot be read")
    return np.asarray(image)


def read_sbd_label_mat(path):
    """The class map ``GTcls.Segmentation`` of an SBD ``cls/<id>.mat`` file (needs SciPy)."""
    try:
        from scipy.io import loadmat
    except ImportError:  # pragma: no cover - scipy is a dependency
        raise ImportError(f"reading {path} needs SciPy (pip install scipy)") from None
    try:
        contents = loadmat(path, squeeze_me=True, struct_as_record=False)
    except FileNotFoundError:
        raise
    except Exception as error:  # scipy raises several types for damaged files
        raise ValueError(f"cannot read {path}: {error}") from error
    record = contents.get("GTcls")
    segmentation = getattr(record, "Segmentation", None)
    if segmentation is None:
        raise ValueError(f"{path}: no GTcls.Segmentation in the file (is it an SBD cls/ "
                         f"label file? variables: {sorted(k for k in contents if not k.startswith('__'))})")
    values = np.asarray(segmentation)
    if values.ndim != 2 or values.dtype.kind not in "ui":
        raise ValueError(f"{path}: GTcls.Segmentation must be a 2-D integer map, got shape "
                         f"{values.shape} of type {values.dtype}")
    return values


class _ListedSegmentation(SegmentationDataset):
    """Pairs named by a split list; labels read by ``_read_labels``."""

    _read_labels = staticmethod(read_voc_label_png)

    def read_raw(self, index):
        index = self._check_index(index)
        image_path, label_path = self.image_paths[index], self.mask_paths[index]
        image = read_rgb_image(image_path)
        labels = self.encode_labels(self._read_labels(label_path), label_path)
        if image.shape[:2] != labels.shape:
            raise ValueError(
                f"size mismatch: image {image_path} is {image.shape[0]}x{image.shape[1]} "
                f"(HxW) but label map {label_path} is {labels.shape[0]}x{labels.shape[1]}")
        return image, labels


class VOCSegmentation(_ListedSegmentation):
    """One split of PASCAL VOC 2012 segmentation.

    Parameters
    ----------
    root : str or Path
        The folder holding ``VOCdevkit``, the ``VOCdevkit`` folder or ``VOC2012``.
    split : str
        'train', 'valid' (or 'val') or 'test' (= val, see the module notes).
    train_from_0_255 : bool
        See :class:`~fcn8_lasagne.data.SegmentationDataset`.
    class_names : sequence of str, optional
        Other class names, for a set in VOC's layout with other classes (values
        ``0 .. len - 1``, 255 void); VOC's 21 by default.
    """

    name = "voc"

    def __init__(self, root, split="train", train_from_0_255=False, class_names=None):
        split = canonical_split(split)
        voc = find_voc2012(root)
        list_path = voc / "ImageSets" / "Segmentation" / f"{_SPLIT_LISTS[split]}.txt"
        ids = _read_split_list(list_path)
        image_paths, label_paths = _pair_listed(ids, list_path, voc / "JPEGImages", ".jpg",
                                                voc / "SegmentationClass", ".png")
        super().__init__(image_paths, label_paths,
                         VOC_CLASS_NAMES if class_names is None else class_names,
                         void_values=(VOC_VOID_VALUE,), train_from_0_255=train_from_0_255,
                         split=split)
        self.root = voc
        self.split_list = list_path


class SBDSegmentation(_ListedSegmentation):
    """One split of SBD (the "augmented" VOC labels; Gluon-CV's ``pascal_aug``).

    Parameters
    ----------
    root : str or Path
        SBD's ``dataset`` folder (``img``, ``cls``, ``train.txt``, ``val.txt``), or the
        ``benchmark_RELEASE`` folder above it.
    split : str
        'train', 'valid' (or 'val'), or 'test' (= val).
    train_from_0_255 : bool
    """

    name = "sbd"
    _read_labels = staticmethod(read_sbd_label_mat)

    def __init__(self, root, split="train", train_from_0_255=False):
        split = canonical_split(split)
        root = Path(root)
        if not root.is_dir():
            raise FileNotFoundError(f"dataset root not found: {root}")
        folder = root / "dataset" if (root / "dataset" / "cls").is_dir() else root
        list_path = folder / f"{_SPLIT_LISTS[split]}.txt"
        ids = _read_split_list(list_path)
        image_paths, label_paths = _pair_listed(ids, list_path, folder / "img", ".jpg",
                                                folder / "cls", ".mat")
        super().__init__(image_paths, label_paths, VOC_CLASS_NAMES,
                         void_values=(VOC_VOID_VALUE,), train_from_0_255=train_from_0_255,
                         split=split)
        self.root = folder
        self.split_list = list_path
