"""Fully connected layers: :class:`DenseLayer` and :class:`NINLayer`."""

import numpy as np
import pytensor.tensor as pt

from .. import init, nonlinearities
from .base import Layer

__all__ = ["DenseLayer", "NINLayer"]


class DenseLayer(Layer):
    """A fully connected layer ``nonlinearity(dot(input, W) + b)``.

    Parameters
    ----------
    incoming : Layer or tuple
    num_units : int
    W : default GlorotUniform()
        Shape ``(num_inputs, num_units)``, ``num_inputs`` the product of the trailing axes.
    b : default Constant(0.)
    nonlinearity : default rectify
    num_leading_axes : int, default 1
        Axes kept; the rest are flattened into the dot product.
    """

    def __init__(self, incoming, num_units, W=init.GlorotUniform(), b=init.Constant(0.0),
                 nonlinearity=nonlinearities.rectify, num_leading_axes=1, **kwargs):
        super().__init__(incoming, **kwargs)
        self.nonlinearity = nonlinearities.identity if nonlinearity is None else nonlinearity
        self.num_units = num_units
        ndim = len(self.input_shape)
        if num_leading_axes >= ndim:
            raise ValueError(
                f"Got num_leading_axes={num_leading_axes} for a {ndim}-dimensional input, "
                "leaving no trailing axes for the dot product.")
        if num_leading_axes < -ndim:
            raise ValueError(
                f"Got num_leading_axes={num_leading_axes} for a {ndim}-dimensional input, "
                "requesting more trailing axes than there are input dimensions.")
        self.num_leading_axes = num_leading_axes
        if any(s is None for s in self.input_shape[num_leading_axes:]):
            raise ValueError(
                f"A DenseLayer requires a fixed input shape (except for the leading axes). "
                f"Got {self.input_shape!r} for num_leading_axes={num_leading_axes}.")
        num_inputs = int(np.prod(self.input_shape[num_leading_axes:]))
        self.W = self.add_param(W, (num_inputs, num_units), name="W")
        self.b = None if b is None else self.add_param(b, (num_units,), name="b",
                                                       regularizable=False)

    def get_output_shape_for(self, input_shape):
        return input_shape[:self.num_leading_axes] + (self.num_units,)

    def get_output_for(self, input, **kwargs):
        num_leading_axes = self.num_leading_axes
        if num_leading_axes < 0:
            num_leading_axes += input.ndim
        if input.ndim > num_leading_axes + 1:
            input = input.flatten(num_leading_axes + 1)
        activation = pt.dot(input, self.W)
        if self.b is not None:
            activation = activation + self.b
        return self.nonlinearity(activation)


class NINLayer(Layer):
    """Network-in-network layer: a :class:`DenseLayer` over the second axis, applied at
    every position of the trailing axes (a convolution with filter size 1 in any number of
    dimensions; Lin et al., 2013).

    ``nonlinearity(tensordot(W, input, [[0], [1]]) + b)`` with the output's axes in the
    input's order, ``(batch, num_units, ...)``.

    Parameters
    ----------
    incoming : Layer or tuple
        Shape ``(batch, num_inputs, ...)``.
    num_units : int
    untie_biases : bool, default False
        One bias per unit (shape ``(num_units,)``) or one per unit and position (shape
        ``(num_units,) + input_shape[2:]``, which must then be known).
    W : default GlorotUniform()
        Shape ``(num_inputs, num_units)``.
    b : default Constant(0.)
        ``None`` for no bias; not regularizable.
    nonlinearity : default rectify
        ``None`` means linear.
    """

    def __init__(self, incoming, num_units, untie_biases=False, W=init.GlorotUniform(),
                 b=init.Constant(0.0), nonlinearity=nonlinearities.rectify, **kwargs):
        super().__init__(incoming, **kwargs)
        self.nonlinearity = nonlinearities.identity if nonlinearity is None else nonlinearity
        self.num_units = num_units
        self.untie_biases = untie_biases
        self.W = self.add_param(W, (self.input_shape[1], num_units), name="W")
        if b is None:
            self.b = None
        else:
            shape = ((num_units,) + tuple(self.output_shape[2:]) if untie_biases
                     else (num_units,))
            self.b = self.add_param(b, shape, name="b", regularizable=False)

    def get_output_shape_for(self, input_shape):
        return (input_shape[0], self.num_units) + tuple(input_shape[2:])

    def get_output_for(self, input, **kwargs):
        trailing = list(range(2, input.ndim))
        # (num_units, batch, ...) -> (batch, num_units, ...)
        activation = pt.tensordot(self.W, input, axes=[[0], [1]]).dimshuffle(1, 0, *trailing)
        if self.b is not None:
            if self.untie_biases:
                bias = self.b.dimshuffle("x", *range(input.ndim - 1))
            else:
                bias = self.b.dimshuffle("x", 0, *(["x"] * (input.ndim - 2)))
            activation = activation + bias
        return self.nonlinearity(activation)
