"""``theano.tensor.nnet`` for unchanged scripts (Theano 1.0.5's names and numerics).

PyTensor dropped this module. Written here on PyTensor and this package's ops: the
activations (``sigmoid``, ``softplus``, ``softmax``, ``logsoftmax``, ``relu``, ``elu``,
``softsign``, ``hard_sigmoid``, ``ultra_fast_sigmoid``), the losses
(``categorical_crossentropy``, ``binary_crossentropy``, ``sigmoid_binary_crossentropy``,
``crossentropy_categorical_1hot``), ``confusion_matrix``, and the convolutions ``conv2d``,
``conv2d_transpose`` and ``abstract_conv`` (:mod:`fcn8_lasagne.ops`, with dilation and groups;
no unshared filters).
"""

import pytensor.tensor as pt
from pytensor.tensor.special import log_softmax as _log_softmax
from pytensor.tensor.special import softmax as _softmax

from ..... import objectives as _objectives
from ...._errors import shim_getattr
from . import abstract_conv
from .abstract_conv import conv2d, conv2d_transpose

__legacy_shim__ = True

__all__ = ["sigmoid", "softplus", "softmax", "logsoftmax", "relu", "elu", "softsign",
           "hard_sigmoid", "ultra_fast_sigmoid", "categorical_crossentropy",
           "binary_crossentropy", "sigmoid_binary_crossentropy",
           "crossentropy_categorical_1hot", "confusion_matrix", "conv2d", "conv2d_transpose",
           "abstract_conv"]

sigmoid = pt.sigmoid
softplus = pt.softplus


def _softmax_input(c):
    c = pt.as_tensor_variable(c)
    if c.type.ndim not in (1, 2):
        raise ValueError(f"x must be 1-d or 2-d tensor of floats. Got {c.type}")
    # Theano's Softmax op turns a vector into a one-row matrix
    return pt.shape_padleft(c) if c.type.ndim == 1 else c


def softmax(c):
    """Softmax of each row of a matrix (a vector becomes a one-row matrix, as in Theano)."""
    return _softmax(_softmax_input(c), axis=-1)


def logsoftmax(c):
    """Log-softmax of each row of a matrix (Theano's ``logsoftmax``)."""
    return _log_softmax(_softmax_input(c), axis=-1)


def relu(x, alpha=0):
    """Rectified linear unit; ``alpha`` is the slope for negative inputs (Theano's formula:
    ``0.5 (x + |x|)``, or ``f1 x + f2 |x|`` with ``f1 = (1 + alpha) / 2``,
    ``f2 = (1 - alpha) / 2``)."""
    if alpha == 0:
        return 0.5 * (x + abs(x))
    f1, f2 = 0.5 * (1 + alpha), 0.5 * (1 - alpha)
    return f1 * x + f2 * abs(x)


def elu(x, alpha=1):
    """Exponential linear unit: ``x`` for ``x > 0``, else ``alpha (exp(x) - 1)``."""
    return pt.switch(x > 0, x, alpha * pt.expm1(x))


def softsign(x):
    """``x / (1 + |x|)``."""
    return x / (1 + abs(x))


def hard_sigmoid(x):
    """Theano's piecewise-linear sigmoid: ``clip(0.2 x + 0.5, 0, 1)``."""
    slope = pt.constant(0.2, dtype=pt.as_tensor_variable(x).dtype)
    shift = pt.constant(0.5, dtype=slope.dtype)
    return pt.clip(x * slope + shift, 0, 1)


def ultra_fast_sigmoid(x):
    """Theano's piecewise approximation of the sigmoid (max. error about 0.0045)."""
    x = pt.as_tensor_variable(x)
    half = 0.5 * x
    magnitude = abs(half)
    z = pt.switch(magnitude < 1.7, 1.5 * magnitude / (1 + magnitude),
                  pt.switch(magnitude < 3, 0.935409070603099
                            + 0.0458812946797165 * (magnitude - 1.7), 0.99505475368673))
    return pt.cast(0.5 * pt.sign(half) * z + 0.5, x.dtype)


def categorical_crossentropy(coding_dist, true_dist):
    """``-sum(true_dist * log(coding_dist), axis=-1)``, or, for an integer vector
    ``true_dist`` of class indices, ``-log(coding_dist[i, true_dist[i]])``."""
    return _objectives.categorical_crossentropy(coding_dist, true_dist)


def crossentropy_categorical_1hot(coding_dist, true_one_of_n):
    """``-log(coding_dist[i, true_one_of_n[i]])`` for a matrix and an integer vector."""
    coding_dist = pt.as_tensor_variable(coding_dist)
    true_one_of_n = pt.as_tensor_variable(true_one_of_n)
    if coding_dist.type.ndim != 2:
        raise TypeError("coding_dist must be a matrix")
    if true_one_of_n.type.ndim != 1 or not true_one_of_n.dtype.startswith(("int", "uint")):
        raise TypeError("true_one_of_n must be an integer vector")
    return _objectives.categorical_crossentropy(coding_dist, true_one_of_n)


def binary_crossentropy(output, target):
    """``-(target log(output) + (1 - target) log(1 - output))``, element-wise."""
    return -(target * pt.log(output) + (1.0 - target) * pt.log(1.0 - output))


def sigmoid_binary_crossentropy(output, target):
    """Binary cross-entropy of ``sigmoid(output)`` computed from the pre-sigmoid values:
    ``softplus(-|output|) + output ((output > 0) - target)``."""
    return pt.softplus(-abs(output)) + output * ((output > 0) - target)


def confusion_matrix(actual, pred):
    """Theano's ``confusion_matrix``: ``[counts, order]`` where ``order`` is the sorted set
    of labels in ``actual`` and ``pred`` and ``counts[i, j]`` the number of items of true
    label ``order[i]`` predicted as ``order[j]``."""
    actual, pred = pt.as_tensor_variable(actual), pt.as_tensor_variable(pred)
    if actual.type.ndim != 1:
        raise ValueError("actual must be 1-d tensor variable")
    if pred.type.ndim != 1:
        raise ValueError("pred must be 1-d tensor variable")
    order = pt.extra_ops.unique(pt.concatenate([actual, pred]))
    one_hot_actual = pt.eq(actual.dimshuffle(0, "x"), order).astype("int64")
    one_hot_pred = pt.eq(pred.dimshuffle(0, "x"), order).astype("int64")
    return [pt.dot(one_hot_actual.T, one_hot_pred), order]


__getattr__ = shim_getattr(globals(), "theano.tensor.nnet")
