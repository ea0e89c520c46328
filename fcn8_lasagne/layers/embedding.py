"""Word embeddings: :class:`EmbeddingLayer`."""

from .. import init
from .base import Layer

__all__ = ["EmbeddingLayer"]


class EmbeddingLayer(Layer):
    """Looks up a learned vector for each integer of its input: ``W[input]``.

    Parameters
    ----------
    incoming : Layer or tuple
        An integer tensor of indices in ``0 .. input_size - 1`` (any shape).
    input_size : int
        The number of embeddings.
    output_size : int
        The size of each embedding.
    W : default Normal()
        Shape ``(input_size, output_size)``; trainable and regularizable.

    Notes
    -----
    The output shape is the input's followed by ``output_size``. Indices are not checked
    symbolically: out-of-range ones raise ``IndexError`` when the C function runs (JAX
    clamps them, as its gathers do).
    """

    def __init__(self, incoming, input_size, output_size, W=init.Normal(), **kwargs):
        super().__init__(incoming, **kwargs)
        self.input_size = input_size
        self.output_size = output_size
        self.W = self.add_param(W, (input_size, output_size), name="W")

    def get_output_shape_for(self, input_shape):
        return tuple(input_shape) + (self.output_size,)

    def get_output_for(self, input, **kwargs):
        return self.W[input]
