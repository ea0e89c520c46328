"""
Weight penalties, with Lasagne's names and formulas
(``lasagne.regularization``).

Penalty functions take one tensor and return a scalar:

.. autosummary::
    :nosignatures:

    l1
    l2

and helpers apply a penalty to a tensor, a list of tensors, or the
parameters of layers (by default those tagged ``regularizable``: the weights,
not the biases):

.. autosummary::
    :nosignatures:

    apply_penalty
    regularize_layer_params
    regularize_layer_params_weighted
    regularize_network_params

Examples
--------
The weight decay of ``train_fcn8.py``:

>>> from fcn8_lasagne.regularization import regularize_network_params, l2
>>> loss = loss + weight_decay * regularize_network_params(network, l2)  # doctest: +SKIP
"""

import numpy as np
import pytensor.tensor as pt
from pytensor.graph.basic import Variable

__all__ = [
    "l1",
    "l2",
    "apply_penalty",
    "regularize_layer_params",
    "regularize_layer_params_weighted",
    "regularize_network_params",
]


def l1(x):
    """L1 norm of a tensor: the sum of the absolute values of its elements.

    Parameters
    ----------
    x : symbolic tensor

    Returns
    -------
    symbolic scalar
        ``sum(abs(x))``.
    """
    return pt.sum(abs(x))


def l2(x):
    """Squared L2 norm of a tensor: the sum of its squared elements (no 1/2).

    Parameters
    ----------
    x : symbolic tensor

    Returns
    -------
    symbolic scalar
        ``sum(x ** 2)``.
    """
    return pt.sum(x ** 2)


def apply_penalty(tensor_or_tensors, penalty, **kwargs):
    """Apply a penalty to a tensor, or sum it over a collection of tensors.

    Parameters
    ----------
    tensor_or_tensors : symbolic tensor or iterable of symbolic tensors
        A single tensor is penalised as a whole; a list, tuple or other
        iterable of tensors gives the sum of their penalties (0 if empty).
    penalty : callable
        Maps a tensor to a scalar, e.g. :func:`l1` or :func:`l2`.
    **kwargs
        Passed on to `penalty`.

    Returns
    -------
    symbolic scalar
        The total penalty.
    """
    # PyTensor tensors can be iterated over (row by row), so test for a
    # single tensor first rather than trying iteration as Lasagne did.
    if isinstance(tensor_or_tensors, (Variable, np.ndarray)):
        return penalty(tensor_or_tensors, **kwargs)
    return sum(penalty(tensor, **kwargs) for tensor in tensor_or_tensors)


def regularize_layer_params(layer, penalty, tags={"regularizable": True}, **kwargs):
    """Penalise the parameters of a layer or of a list of layers.

    Only the layers' own parameters are included, not those of the layers
    below them (see :func:`regularize_network_params`).

    Parameters
    ----------
    layer : Layer or list of Layer
        The layer or layers whose parameters to penalise.
    penalty : callable
        Maps a tensor to a scalar, e.g. :func:`l2`.
    tags : dict
        Tag filters for ``Layer.get_params``; by default only parameters
        tagged ``regularizable``. The dictionary is not modified.
    **kwargs
        Passed on to `penalty`.

    Returns
    -------
    symbolic scalar
        The summed penalty (0 if no parameter matches).
    """
    from .layers import Layer

    layers = [layer] if isinstance(layer, Layer) else list(layer)
    params = []
    for each_layer in layers:
        params.extend(each_layer.get_params(**tags))
    return apply_penalty(params, penalty, **kwargs)


def regularize_layer_params_weighted(layers, penalty, tags={"regularizable": True},
                                     **kwargs):
    """Penalise the parameters of several layers, each with its own coefficient.

    Parameters
    ----------
    layers : dict
        Maps each :class:`~fcn8_lasagne.layers.Layer` to its coefficient.
    penalty : callable
        Maps a tensor to a scalar, e.g. :func:`l2`.
    tags : dict
        Tag filters for ``Layer.get_params``; by default only parameters
        tagged ``regularizable``. The dictionary is not modified.
    **kwargs
        Passed on to `penalty`.

    Returns
    -------
    symbolic scalar
        ``sum(coefficient * penalty of the layer's parameters)``.
    """
    return sum(
        coefficient * apply_penalty(layer.get_params(**tags), penalty, **kwargs)
        for layer, coefficient in layers.items()
    )


def regularize_network_params(layer, penalty, tags={"regularizable": True}, **kwargs):
    """Penalise the parameters of a layer and of every layer below it.

    Parameters
    ----------
    layer : Layer or list of Layer
        The output layer(s) of the network.
    penalty : callable
        Maps a tensor to a scalar, e.g. :func:`l2`.
    tags : dict
        Tag filters for ``get_all_params``; by default only parameters
        tagged ``regularizable``. The dictionary is not modified.
    **kwargs
        Passed on to `penalty`.

    Returns
    -------
    symbolic scalar
        The summed penalty over the network's parameters, each counted once.
    """
    from .layers import get_all_params

    return apply_penalty(get_all_params(layer, **tags), penalty, **kwargs)
