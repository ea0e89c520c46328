"""Lasagne's weight files: ``np.savez(path, *get_all_param_values(net))``.

A file holds ``arr_0 … arr_{n-1}``, the values of ``get_all_params(net)`` in order (for FCN-8
42 arrays, ``conv1_1.W, conv1_1.b, …, upsample.W, upsample.b``). Files written by the tutorial
load here and files written here load in the tutorial.
"""

import os
import zipfile

import numpy as np

from ..files import CORRUPT_ARCHIVE_ERRORS, atomic_write, describe_content, read_npz_arrays
from ..layers import get_all_param_values, set_all_param_values

__all__ = ["save_npz", "load_npz", "read_npz_values", "read_npz_shapes", "atomic_savez"]

def atomic_savez(path, *args, **kwds):
    """``np.savez`` that never leaves a half-written file at ``path``
    (:func:`fcn8_lasagne.files.atomic_write`: an existing file stays intact if anything
    fails, and an ``OSError`` names ``path``)."""
    atomic_write(path, lambda stream: np.savez(stream, *args, **kwds), suffix=".npz")


def save_npz(layer, path, **tags):
    """Save the parameter values below ``layer`` in Lasagne's ``arr_i`` format, atomically.

    Parameters
    ----------
    layer : Layer or list of Layer
        Usually the top layer (``net['probs']`` or ``net['probs_dimshuffle']``).
    path : str or path-like
    **tags
        Tag filter for :func:`~fcn8_lasagne.layers.get_all_params` (default: all).
    """
    atomic_savez(path, *get_all_param_values(layer, **tags))


def read_npz_values(path, allow_nonfinite=False):
    """Read the ``arr_0 … arr_{n-1}`` arrays of a Lasagne weight file, in order
    (:func:`fcn8_lasagne.files.read_npz_arrays`).

    Parameters
    ----------
    path : str or path-like
    allow_nonfinite : bool, default False
        Accept NaN and infinite values, which are an error by default.

    Raises
    ------
    ValueError
        If the file is not a readable ``.npz`` (saying what it is instead), its keys are not
        ``arr_0 … arr_{n-1}``, an array holds pickled objects, a dtype is not floating
        point, or (unless ``allow_nonfinite``) a value is NaN or infinite.
    """
    return read_npz_arrays(path, allow_nonfinite=allow_nonfinite)


def read_npz_shapes(path):
    """Shapes of the ``arr_0 … arr_{n-1}`` arrays of a weight file, in order, read from the
    array headers only (no data is loaded).

    Raises
    ------
    ValueError
        As :func:`read_npz_values`.
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        raise ValueError(f"{path}: is a folder, not an .npz weight file")
    with open(path, "rb") as stream:  # a missing file stays a FileNotFoundError
        kind = describe_content(stream.read(64))
    if kind is not None:
        raise ValueError(f"{path}: not an .npz weight file: {kind}")
    try:
        with zipfile.ZipFile(path) as archive:
            names = [name[:-len(".npy")] for name in archive.namelist() if name.endswith(".npy")]
            expected = [f"arr_{i}" for i in range(len(names))]
            if sorted(names, key=_arr_index) != expected:
                raise ValueError(
                    f"{path}: not a Lasagne weight file: expected arrays arr_0 … "
                    f"arr_{len(names) - 1}, found {sorted(names)[:5]}")
            shapes = []
            for name in expected:
                with archive.open(name + ".npy") as member:
                    version = np.lib.format.read_magic(member)
                    read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                                   else np.lib.format.read_array_header_2_0)
                    shape, _, _ = read_header(member)
                shapes.append(tuple(shape))
            return shapes
    except FileNotFoundError:
        raise
    except (*CORRUPT_ARCHIVE_ERRORS, OSError) as error:
        raise ValueError(f"{path}: not a readable .npz weight file ({error})") from error
    except ValueError as error:
        if str(error).startswith(path):
            raise
        raise ValueError(f"{path}: not a readable .npz weight file ({error})") from error


def _arr_index(name):
    prefix, _, index = name.partition("_")
    return (prefix != "arr", int(index) if index.isdigit() else -1, name)


def load_npz(layer, path, allow_nonfinite=False, **tags):
    """Load a Lasagne ``arr_i`` weight file into the parameters below ``layer``.

    Every array is checked against its parameter before any is set: a count or shape
    mismatch raises ``ValueError`` naming the file, the layer, the parameter and both shapes,
    and leaves the network unchanged.

    Parameters
    ----------
    layer : Layer or list of Layer
    path : str or path-like
    allow_nonfinite : bool, default False
        Accept NaN and infinite values (by default an error, as are non-float dtypes).
    **tags
        Tag filter for :func:`~fcn8_lasagne.layers.get_all_params` (default: all).
    """
    values = read_npz_values(path, allow_nonfinite=allow_nonfinite)
    try:
        set_all_param_values(layer, values, allow_nonfinite=allow_nonfinite, **tags)
    except ValueError as error:
        raise ValueError(f"{os.fspath(path)}: {error}") from None
