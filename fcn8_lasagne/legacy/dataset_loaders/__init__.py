"""``dataset_loaders`` for unchanged scripts: fvisin/dataset_loaders' classes over
:mod:`fcn8_lasagne.data`.

* ``dataset_loaders.images.polyps912.Polyps912Dataset`` reads the Polyps912 layout
  (``train``/``valid``/``test`` with ``images/*.bmp`` and ``masks2/*.tif``);
* ``dataset_loaders.images.isbi_em_stacks.IsbiEmStacksDataset`` reads the ISBI 2012 EM
  stacks (``train-volume.tif``, ``train-labels.tif``, ``test-volume.tif``);
* ``dataset_loaders.parallel_loader.ThreadedDataset`` is the iterator base class.

Where the data is: the ``data_dir`` argument of a dataset class, else the environment
variable ``FCN8_LEGACY_DATA_DIR``; either names the dataset's root (the folder holding
``train``, ``valid``, ``test``) or a folder holding one such root per dataset, named as the
original's ``name`` (``polyps912``, ``isbi_em_stacks``, ``cortical_layers``). With neither,
each is its built-in synthetic data (:mod:`fcn8_lasagne.data.synthetic`, ``synthetic_em``,
``synthetic_profiles``), generated once into the cache
(``fcn8_lasagne.data.default_cache_dir()``).
"""

import os
import sys
from pathlib import Path

from .._errors import shim_getattr

__legacy_shim__ = True

#: The environment variable naming the data folder.
DATA_DIR_ENV = "FCN8_LEGACY_DATA_DIR"

_announced = set()


def dataset_root(name, data_dir=None):
    """The root folder of dataset ``name`` from ``data_dir`` or ``$FCN8_LEGACY_DATA_DIR``.

    Returns
    -------
    Path or None
        ``None`` when neither is set.
    """
    folder = data_dir if data_dir is not None else os.environ.get(DATA_DIR_ENV) or None
    if folder is None:
        return None
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise FileNotFoundError(
            f"{'data_dir' if data_dir is not None else DATA_DIR_ENV} names {folder}, which is "
            "not a folder")
    return folder / name if (folder / name).is_dir() else folder


def announce(message):
    """Print ``message`` to stderr once per process."""
    if message not in _announced:
        _announced.add(message)
        print(f"dataset_loaders (fcn8_lasagne.legacy): {message}", file=sys.stderr)


from . import images, parallel_loader  # noqa: E402

__getattr__ = shim_getattr(globals(), "dataset_loaders")
