"""Open a dataset split by name: ``load_dataset('polyps912', root, 'train')``."""

from .camvid import CamVid
from .cortical_layers import CorticalLayers
from .folder import FolderDataset
from .isbi_em import IsbiEmStacks
from .polyps912 import Polyps912
from .synthetic import SyntheticPolyps
from .synthetic_em import SyntheticEmStacks
from .synthetic_profiles import SyntheticCorticalProfiles
from .synthetic_voc import SyntheticVOC
from .voc import SBDSegmentation, VOCSegmentation

__all__ = ["load_dataset", "DATASETS"]

DATASETS = {
    "polyps912": Polyps912,
    "camvid": CamVid,
    "folder": FolderDataset,
    "synthetic": SyntheticPolyps,
    "isbi_em": IsbiEmStacks,
    "cortical_layers": CorticalLayers,
    "synthetic_em": SyntheticEmStacks,
    "synthetic_profiles": SyntheticCorticalProfiles,
    "voc": VOCSegmentation,
    "sbd": SBDSegmentation,
    "synthetic_voc": SyntheticVOC,
}

# the data sets that generate their data when no root is given
_GENERATED = (SyntheticPolyps, SyntheticEmStacks, SyntheticCorticalProfiles, SyntheticVOC)


def load_dataset(name, root=None, split="train", **options):
    """Open one split of a named dataset.

    Parameters
    ----------
    name : str
        One of 'polyps912', 'camvid', 'folder', 'synthetic', 'isbi_em', 'cortical_layers',
        'synthetic_em', 'synthetic_profiles', 'voc', 'sbd', 'synthetic_voc'.
    root : str, Path or None
        The dataset folder; only the synthetic sets may leave it ``None`` (each generates its
        data once into the cache, see :func:`~fcn8_lasagne.data.ensure_synthetic_polyps`).
    split : str
        'train', 'valid' or 'test' (for 'folder', any split folder name).
    **options
        Passed to the dataset class: ``train_from_0_255`` for all but the profiles; ``masks`` for
        'polyps912'; ``class_names``, ``void_values``, ``value_to_class`` for 'folder';
        ``n_train``, ``n_valid``, ``n_test``, ``image_size``, ``seed`` for 'synthetic';
        ``train_fraction`` for 'isbi_em' and 'cortical_layers' and their synthetic sets;
        ``n_pages``, ``page_size`` for 'isbi_em' and 'synthetic_em' (and ``seed``);
        ``smooth_or_raw`` for 'cortical_layers' and 'synthetic_profiles' (``n_profiles``,
        ``seed``); ``n_train``, ``n_val``, ``image_size``, ``seed`` for 'synthetic_voc'.

    Returns
    -------
    SegmentationDataset
    """
    try:
        dataset_class = DATASETS[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"unknown dataset {name!r}: expected one of {', '.join(DATASETS)}"
        ) from None
    if root is None and dataset_class not in _GENERATED:
        raise ValueError(f"dataset {name!r} needs a root folder")
    return dataset_class(root, split, **options)
