"""Datasets, augmentation and mini-batches for the FCN-8 tutorial.

A dataset split gives ``(image, label)`` pairs: image float32 (3, H, W), RGB in [0, 1];
label int32 (H, W) with classes ``0 .. n_classes - 1`` and every void pixel at
``void_label == n_classes``. :class:`BatchIterator` stacks them into the (B, 3, H, W) and
(B, H, W) arrays the training loop feeds to the network, after an optional
:class:`Augmentation` (the tutorial's random crop and flips).
"""

from .augmentation import Augmentation
from .base import SegmentationDataset, canonical_split, read_label_map, read_rgb_image
from .camvid import CAMVID_CLASS_NAMES, CamVid
from .folder import FolderDataset
from .iteration import BatchIterator
from .polyps912 import POLYPS912_LABELLINGS, Polyps912
from .registry import DATASETS, load_dataset
from .synthetic import (
    SYNTHETIC_DEFAULTS,
    SyntheticPolyps,
    default_cache_dir,
    ensure_synthetic_polyps,
    make_synthetic_polyps,
    render_synthetic_polyp,
)

__all__ = [
    "SegmentationDataset",
    "Polyps912",
    "CamVid",
    "FolderDataset",
    "SyntheticPolyps",
    "load_dataset",
    "DATASETS",
    "Augmentation",
    "BatchIterator",
    "make_synthetic_polyps",
    "ensure_synthetic_polyps",
    "render_synthetic_polyp",
    "default_cache_dir",
    "canonical_split",
    "read_rgb_image",
    "read_label_map",
    "POLYPS912_LABELLINGS",
    "CAMVID_CLASS_NAMES",
    "SYNTHETIC_DEFAULTS",
]
