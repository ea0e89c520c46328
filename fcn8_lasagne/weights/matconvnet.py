"""MatConvNet DagNN models (``.mat``), the tutorial's ``pascal=True`` weights.

A DagNN saved with ``dagnn.DagNN.saveobj`` holds a struct array ``params`` with fields
``name`` and ``value`` (plus learning-rate fields, ignored). MatConvNet arrays are
column-major with the spatial axes first:

- convolution filters are ``(kh, kw, in, out)`` and transposed-convolution filters
  ``(kh, kw, out, in)``; ``np.swapaxes(value.T, 2, 3)`` gives ``(out, in, kh, kw)``
  and ``(in, out, kh, kw)``, the layouts of our ``Conv2DLayer`` and
  ``TransposedConv2DLayer``. MatConvNet's ``vl_nnconv`` is a cross-correlation;
- biases are vectors (``(n, 1)`` or ``(1, n)``).

Parameter names are the layer name plus a suffix: ``f`` / ``b`` in the tutorial's
``pascal-fcn8s-tvg-dag.mat`` (``conv1_1f``, ``conv1_1b``), ``_filter`` / ``_bias`` in
MatConvNet's own FCN conversions (``conv1_1_filter``).

As in the original tutorial, layers whose name contains ``score``, ``upsample``, ``final``
or ``probs`` are skipped by default, so only the VGG body (``conv1_1`` ... ``fc7``) is
loaded and the classifier keeps its own number of classes.
"""

import os

import numpy as np

from .assign import WeightLoadError, assign_params

__all__ = ["TUTORIAL_SKIPPED", "read_matconvnet_params", "matconvnet_to_fcn", "load_matconvnet"]

#: Substrings of layer names the original ``buildFCN8(pascal=True)`` did not load.
TUTORIAL_SKIPPED = ("score", "upsample", "final", "probs")

# Longer suffixes first: "conv1_1_filter" must not be read as layer "conv1_1_filte".
_SUFFIXES = (("_filter", "W"), ("_bias", "b"), ("f", "W"), ("b", "b"))


def _matlab_string(value):
    """A MATLAB char array as ``scipy.io.loadmat`` returns it, as a Python str."""
    array = np.asarray(value)
    if array.dtype == object:
        if array.size != 1:
            raise ValueError(f"expected one string, got an object array of shape {array.shape}")
        return _matlab_string(array.reshape(-1)[0])
    if array.dtype.kind in "US":
        return "".join(str(item) for item in array.reshape(-1))
    raise ValueError(f"expected a string, got an array of dtype {array.dtype}")


def read_matconvnet_params(path):
    """The ``params`` of a MatConvNet DagNN ``.mat`` file as a list of ``(name, value)``.

    Raises
    ------
    WeightLoadError
        When the file cannot be read or has no ``params`` struct with ``name`` and
        ``value`` fields.
    """
    import scipy.io

    path = os.fspath(path)
    with open(path, "rb") as stream:  # a missing file stays a FileNotFoundError
        try:
            contents = scipy.io.loadmat(stream)
        except Exception as error:  # truncated files raise OSError, ValueError, ...
            raise WeightLoadError(
                f"{path}: cannot read the MatConvNet file: {type(error).__name__}: {error}"
            ) from error
    params = contents.get("params")
    if params is None or params.dtype.names is None:
        raise WeightLoadError(
            f"{path}: not a MatConvNet DagNN file: expected a struct array 'params', "
            f"found variables {sorted(k for k in contents if not k.startswith('__'))}"
        )
    missing = {"name", "value"} - set(params.dtype.names)
    if missing:
        raise WeightLoadError(
            f"{path}: 'params' lacks the field(s) {sorted(missing)} "
            f"(has {list(params.dtype.names)})"
        )
    entries = []
    for index, entry in enumerate(params.reshape(-1, order="F")):
        try:
            name = _matlab_string(entry["name"])
        except ValueError as error:
            raise WeightLoadError(f"{path}: params({index + 1}).name: {error}") from error
        entries.append((name, np.asarray(entry["value"])))
    return entries


def _split_param_name(name):
    for suffix, kind in _SUFFIXES:
        if name.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)], kind
    return None, None


def matconvnet_to_fcn(entries, source, skip=TUTORIAL_SKIPPED):
    """Group MatConvNet ``(name, value)`` params into ``{layer: [W, b]}``.

    Filters are converted with ``np.swapaxes(value.T, 2, 3)``; biases are flattened.
    """
    weights, biases = {}, {}
    for name, value in entries:
        layer, kind = _split_param_name(name)
        if layer is None:
            raise WeightLoadError(
                f"{source}: parameter {name!r} has no filter or bias suffix "
                "('f'/'b' or '_filter'/'_bias')"
            )
        if any(word in layer for word in skip):
            continue
        if kind == "W":
            if value.ndim > 4:
                raise WeightLoadError(
                    f"{source}: layer {layer!r}: filter expected at most 4 axes "
                    f"(kh, kw, in, out), got shape {value.shape}"
                )
            # MATLAB drops trailing singleton axes (a 1-output filter is kh x kw x in).
            value = value.reshape(value.shape + (1,) * (4 - value.ndim))
            weights[layer] = np.swapaxes(value.T, 2, 3)
        else:
            biases[layer] = value.reshape(-1)
    for layer in biases:
        if layer not in weights:
            raise WeightLoadError(f"{source}: layer {layer!r} has a bias but no filter")
    return {layer: [weights[layer], biases.get(layer)] for layer in weights}


def load_matconvnet(net, path, skip=TUTORIAL_SKIPPED, strict=True):
    """Load a MatConvNet DagNN ``.mat`` model (e.g. ``pascal-fcn8s-tvg-dag.mat``).

    Parameters
    ----------
    net : dict
        Layer name to layer (``buildFCN8`` and siblings).
    path : str or os.PathLike
    skip : sequence of str
        Layers whose name contains one of these substrings are not loaded. The default is
        the original tutorial's; pass ``()`` to load the score and upsampling layers too
        (their shapes must then match ``net``, i.e. the same number of classes).
    strict : bool
        When true, a loaded layer missing from ``net`` is an error; else it is skipped.

    Returns
    -------
    list of str
        The layers of ``net`` that were set.

    Raises
    ------
    WeightLoadError
        On an unreadable file, an unknown layer or a shape mismatch; ``net`` is then
        unchanged.
    """
    source = os.fspath(path)
    values = matconvnet_to_fcn(read_matconvnet_params(path), source, skip=skip)
    return assign_params(net, values, source, convention="cross_correlation", strict=strict)
