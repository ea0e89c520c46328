"""Open a dataset split by name: ``load_dataset('polyps912', root, 'train')``."""

from .camvid import CamVid
from .folder import FolderDataset
from .polyps912 import Polyps912
from .synthetic import SyntheticPolyps

__all__ = ["load_dataset", "DATASETS"]

DATASETS = {
    "polyps912": Polyps912,
    "camvid": CamVid,
    "folder": FolderDataset,
    "synthetic": SyntheticPolyps,
}


def load_dataset(name, root=None, split="train", **options):
    """Open one split of a named dataset.

    Parameters
    ----------
    name : {'polyps912', 'camvid', 'folder', 'synthetic'}
    root : str, Path or None
        The dataset folder; only 'synthetic' may leave it ``None`` (it then generates its
        data once into the cache, see :func:`~fcn8_lasagne.data.ensure_synthetic_polyps`).
    split : str
        'train', 'valid' or 'test' (for 'folder', any split folder name).
    **options
        Passed to the dataset class: ``train_from_0_255`` for all; ``masks`` for
        'polyps912'; ``class_names``, ``void_values``, ``value_to_class`` for 'folder';
        ``n_train``, ``n_valid``, ``n_test``, ``image_size``, ``seed`` for 'synthetic'.

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
    if root is None and dataset_class is not SyntheticPolyps:
        raise ValueError(f"dataset {name!r} needs a root folder")
    return dataset_class(root, split, **options)
