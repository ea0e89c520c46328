"""The network's entry point."""

from collections import OrderedDict

import pytensor
import pytensor.tensor as pt

from .base import Layer

__all__ = ["InputLayer"]


class InputLayer(Layer):
    """Holds a symbolic input variable and its (partially known) shape.

    Parameters
    ----------
    shape : tuple of int or None
        Expected input shape; ``None`` marks sizes known only at run time.
    input_var : pytensor TensorVariable, optional
        The variable to use; by default one of the right dimensionality and ``floatX`` type
        (static size 1 where the shape says 1) is created.
    name : str, optional

    Notes
    -----
    As Lasagne's, it does not call :class:`Layer`'s constructor: it has no ``input_layer``
    or ``input_shape`` (it is where the network starts) and no ``get_output_kwargs``.
    """

    def __init__(self, shape, input_var=None, name=None, **kwargs):
        self.shape = tuple(shape)
        if any(d is not None and d <= 0 for d in self.shape):
            raise ValueError(f"Cannot create InputLayer with a non-positive shape: {self.shape}")
        ndim = len(self.shape)
        if input_var is None:
            var_name = f"{name}.input" if name is not None else "input"
            static_shape = tuple(1 if s == 1 else None for s in self.shape)
            input_var = pt.tensor(var_name, dtype=pytensor.config.floatX, shape=static_shape)
        elif input_var.ndim != ndim:
            raise ValueError(
                f"InputLayer {name or ''}: shape has {ndim} dimensions, "
                f"but variable has {input_var.ndim}"
            )
        self.input_var = input_var
        self.name = name
        self.params = OrderedDict()

    @Layer.output_shape.getter
    def output_shape(self):
        return self.shape
