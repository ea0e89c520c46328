"""The Lasagne Recipes ``vgg16.pkl`` (ImageNet VGG16) as the body of an FCN.

The file (``modelzoo/vgg16.py`` of Lasagne/Recipes) is a pickle of a dict with

- ``'param values'``: 32 arrays in ``get_all_params`` order: ``conv1_1.W, conv1_1.b, ...,
  conv5_3.b`` (filters ``(out, in, 3, 3)``, for layers built with
  ``flip_filters=False`` like the FCN builders' VGG convolutions), then the
  ``DenseLayer`` s ``fc6`` ``(25088, 4096)``, ``fc7`` ``(4096, 4096)`` and ``fc8``
  ``(4096, 1000)`` with their biases;
- ``'mean value'``: the per-channel mean to subtract, in BGR order (the network expects
  BGR images in [0, 255]);
- ``'synset words'``: the 1000 ImageNet class names.

It was written by Python 2, so it is read with ``encoding='latin-1'``.

.. warning::
   Unpickling runs code chosen by whoever wrote the file. :func:`load_lasagne_vgg16`
   therefore refuses to read it unless called with ``trust=True``; only do so for a file
   from a source you trust (e.g. the Lasagne Recipes download, checked against its hash).
"""

import os
import pickle

import numpy as np

from .assign import WeightLoadError, assign_params

__all__ = [
    "VGG16_CONV_LAYERS",
    "VGG16_LAYERS",
    "read_lasagne_vgg16",
    "lasagne_vgg16_to_fcn",
    "load_lasagne_vgg16",
]

#: The 13 convolutions of VGG16, in parameter order.
VGG16_CONV_LAYERS = (
    "conv1_1", "conv1_2",
    "conv2_1", "conv2_2",
    "conv3_1", "conv3_2", "conv3_3",
    "conv4_1", "conv4_2", "conv4_3",
    "conv5_1", "conv5_2", "conv5_3",
)  # fmt: skip

#: The layers of the Recipes VGG16, in the order of its ``'param values'``.
VGG16_LAYERS = VGG16_CONV_LAYERS + ("fc6", "fc7", "fc8")


def read_lasagne_vgg16(path, trust=False):
    """Read a Lasagne Recipes VGG16 pickle.

    Parameters
    ----------
    path : str or os.PathLike
    trust : bool
        Must be ``True``: unpickling can execute arbitrary code (see the module warning).

    Returns
    -------
    dict
        The unpickled dictionary (``'param values'``, ``'mean value'``, ...).

    Raises
    ------
    PermissionError
        When ``trust`` is not ``True``.
    WeightLoadError
        When the file cannot be unpickled or is not a dict with ``'param values'``.
    """
    path = os.fspath(path)
    if trust is not True:
        raise PermissionError(
            f"{path}: refusing to unpickle: a pickle can run arbitrary code when loaded. "
            "Pass trust=True (CLI: --trust-pickle) only for a file from a trusted source."
        )
    with open(path, "rb") as stream:  # a missing file stays a FileNotFoundError
        try:
            contents = pickle.load(stream, encoding="latin-1")
        except Exception as error:  # truncated or corrupt pickles raise many types
            raise WeightLoadError(
                f"{path}: cannot read the Lasagne VGG16 pickle: "
                f"{type(error).__name__}: {' '.join(str(error).split())}"
            ) from error
    if not isinstance(contents, dict) or "param values" not in contents:
        found = sorted(contents) if isinstance(contents, dict) else type(contents).__name__
        raise WeightLoadError(
            f"{path}: not a Lasagne Recipes model pickle: expected a dict with "
            f"'param values', got {found}"
        )
    return contents


def lasagne_vgg16_to_fcn(param_values, source):
    """Map the Recipes' 32 VGG16 arrays to ``{layer: [W, b]}`` for an FCN body.

    The convolutions keep their filters; ``fc6`` ``(25088, 4096)`` is transposed to
    ``(4096, 25088)`` (rows = output units, columns = the pool5 input flattened C-order from
    ``(512, 7, 7)``), which :func:`~fcn8_lasagne.weights.assign.assign_params` reshapes to
    the ``(4096, 512, 7, 7)`` filter; ``fc7`` likewise becomes ``(4096, 4096, 1, 1)``.
    ``fc8`` (the ImageNet classifier) is left out.
    """
    expected = 2 * len(VGG16_LAYERS)
    if len(param_values) != expected:
        raise WeightLoadError(
            f"{source}: expected {expected} arrays in 'param values' (VGG16: "
            f"{', '.join(VGG16_LAYERS)}, W and b each), got {len(param_values)}"
        )
    values = {}
    for index, name in enumerate(VGG16_LAYERS):
        weight = np.asarray(param_values[2 * index])
        bias = np.asarray(param_values[2 * index + 1])
        if name == "fc8":
            continue
        if name in ("fc6", "fc7"):
            if weight.ndim != 2:
                raise WeightLoadError(
                    f"{source}: layer {name!r}: W expected a 2-D DenseLayer matrix "
                    f"(inputs, units), got shape {weight.shape}"
                )
            weight = weight.T
        values[name] = [weight, bias]
    return values


def load_lasagne_vgg16(net, path, trust=False, allow_nonfinite=False):
    """Load the Lasagne Recipes ``vgg16.pkl`` into the VGG body of an FCN.

    Sets ``conv1_1`` ... ``conv5_3``, ``fc6`` and ``fc7`` of ``net``; the score and
    deconvolution layers are untouched. All shapes are checked before any value is set.

    Parameters
    ----------
    net : dict
        Layer name to layer (``buildFCN8`` / ``buildFCN16`` / ``buildFCN32`` or the Caffe
        variants).
    path : str or os.PathLike
        The pickle.
    trust : bool
        Must be ``True`` to unpickle (see the module warning).
    allow_nonfinite : bool, default False
        Accept NaN and infinite values (by default an error, as are non-float dtypes).

    Returns
    -------
    numpy.ndarray or None
        The file's ``'mean value'`` (BGR), to subtract from BGR inputs in [0, 255].

    Raises
    ------
    PermissionError
        When ``trust`` is not ``True``.
    WeightLoadError
        On an unreadable file or a shape that does not fit ``net``; ``net`` is unchanged.
    """
    contents = read_lasagne_vgg16(path, trust=trust)
    source = os.fspath(path)
    values = lasagne_vgg16_to_fcn(contents["param values"], source)
    assign_params(net, values, source, convention="cross_correlation",
                  allow_nonfinite=allow_nonfinite)
    mean = contents.get("mean value")
    return None if mean is None else np.asarray(mean)
