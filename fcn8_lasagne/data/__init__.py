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
from .cortical_layers import CORTICAL_CLASS_NAMES, CorticalLayers
from .folder import FolderDataset
from .isbi_em import ISBI_EM_CLASS_NAMES, IsbiEmStacks
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
from .synthetic_em import SyntheticEmStacks, ensure_synthetic_em, make_synthetic_em
from .synthetic_profiles import (
    SyntheticCorticalProfiles,
    ensure_synthetic_profiles,
    make_synthetic_profiles,
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
    "IsbiEmStacks",
    "CorticalLayers",
    "SyntheticEmStacks",
    "SyntheticCorticalProfiles",
    "make_synthetic_em",
    "ensure_synthetic_em",
    "make_synthetic_profiles",
    "ensure_synthetic_profiles",
    "ISBI_EM_CLASS_NAMES",
    "CORTICAL_CLASS_NAMES",
]
