"""Nonlinearities with Lasagne's names, as functions of symbolic tensors."""

import pytensor.tensor as pt
from pytensor.tensor.special import softmax as _softmax

__all__ = [
    "sigmoid",
    "softmax",
    "tanh",
    "ScaledTanH",
    "ScaledTanh",
    "rectify",
    "LeakyRectify",
    "leaky_rectify",
    "very_leaky_rectify",
    "elu",
    "SELU",
    "selu",
    "softplus",
    "linear",
    "identity",
]


def sigmoid(x):
    """Logistic sigmoid ``1 / (1 + exp(-x))``."""
    return pt.sigmoid(x)


def softmax(x):
    """Row-wise softmax of a 2-D input: ``exp(x) / sum(exp(x), axis=1)``."""
    return _softmax(x, axis=-1)


def tanh(x):
    """Hyperbolic tangent."""
    return pt.tanh(x)


class ScaledTanH:
    """Scaled tanh ``scale_out * tanh(scale_in * x)`` (LeCun's 1.7159, 2/3 are common)."""

    def __init__(self, scale_in=1, scale_out=1):
        self.scale_in = scale_in
        self.scale_out = scale_out

    def __call__(self, x):
        return pt.tanh(x * self.scale_in) * self.scale_out


ScaledTanh = ScaledTanH


def rectify(x):
    """Rectified linear unit ``max(x, 0)``.

    Written as ``0.5 * (x + abs(x))`` like Lasagne, whose gradient at exactly 0 is 0.5;
    the tutorial's numbers (with ``pad=100`` many activations are exactly 0) depend on it.
    """
    return 0.5 * (x + abs(x))


class LeakyRectify:
    """Leaky rectifier ``max(x, leakiness * x)``.

    Parameters
    ----------
    leakiness : float
        Slope for negative inputs (default 0.01).
    """

    def __init__(self, leakiness=0.01):
        self.leakiness = leakiness

    def __call__(self, x):
        return pt.switch(pt.gt(x, 0), x, self.leakiness * x)


leaky_rectify = LeakyRectify()
very_leaky_rectify = LeakyRectify(1.0 / 3)


def elu(x):
    """Exponential linear unit ``x if x > 0 else exp(x) - 1``."""
    return pt.switch(x > 0, x, pt.expm1(x))


class SELU:
    """Scaled exponential linear unit ``scale * (x if x > 0 else scale_neg * (exp(x) - 1))``."""

    def __init__(self, scale=1, scale_neg=1):
        self.scale = scale
        self.scale_neg = scale_neg

    def __call__(self, x):
        return self.scale * pt.switch(x > 0.0, x, self.scale_neg * pt.expm1(x))


selu = SELU(scale=1.0507009873554804934193349852946,
            scale_neg=1.6732632423543772848170429916717)


def softplus(x):
    """Softplus ``log(1 + exp(x))``."""
    return pt.softplus(x)


def linear(x):
    """Identity: returns ``x`` unchanged."""
    return x


identity = linear
