"""Base classes of all layers: :class:`Layer` (one input) and :class:`MergeLayer` (several)."""

import numbers
from collections import OrderedDict

import numpy as np
import pytensor
from pytensor.graph.basic import Variable

from ..utils import collect_shared_vars

__all__ = ["Layer", "MergeLayer", "create_param"]


def create_param(spec, shape, name=None):
    """Create a parameter variable of the given shape from an initialisation spec.

    Parameters
    ----------
    spec : pytensor shared variable or expression, numpy.ndarray, number or callable
        A callable (an initialiser from :mod:`fcn8_lasagne.init`) is called with ``shape``;
        an array becomes a shared variable; a symbolic variable is used as it is.
    shape : tuple of int
    name : str, optional

    Returns
    -------
    pytensor Variable

    Notes
    -----
    A shared variable created here from an array (or from what an initialiser returns) has
    a fully static shape, ``pytensor.shared(value, shape=value.shape)``: its dimensions of
    size 1 are broadcastable, as in Lasagne, and the others are fixed too. Gradients of
    this package's convolutions have static shapes, and PyTensor updates a variable in
    place (``W - lr * g`` written into ``W``'s buffer, likewise Adam's moments, which take
    their parameter's type) only when the update's type is the variable's own. The
    difference from Lasagne: ``set_value`` with an array of another shape raises
    ``TypeError``; values of the same shape are set as before. See
    ``docs/faithfulness.md``.
    """
    shape = tuple(shape)
    if any(d <= 0 for d in shape):
        raise ValueError(
            f"Cannot create param with a non-positive shape dimension. "
            f"Tried to create param with shape={shape!r}, name={name!r}"
        )
    err_prefix = f"cannot initialize parameter {name}: "
    if callable(spec):
        spec = spec(shape)
        err_prefix += "the callable returned "
    if isinstance(spec, numbers.Number) or (
        isinstance(spec, np.generic) and spec.dtype.kind in "biufc"
    ):
        spec = np.asarray(spec)
    if isinstance(spec, np.ndarray):
        if spec.shape != shape:
            raise ValueError(f"{err_prefix}an array of shape {spec.shape!r}, expected {shape!r}")
        spec = pytensor.shared(spec, name=name, shape=spec.shape)
    if isinstance(spec, Variable):
        if spec.ndim != len(shape):
            raise ValueError(
                f"{err_prefix}a variable with {spec.ndim} dimensions, expected {len(shape)}"
            )
        if name is not None and spec.name is None:
            spec.name = name
        return spec
    raise TypeError(
        f"{err_prefix}a {type(spec).__name__}; expected a pytensor variable, a numpy array, "
        "a number or a callable"
    )


class Layer:
    """Base class of layers with a single input.

    Parameters
    ----------
    incoming : Layer or tuple
        The layer feeding into this one, or the expected input shape.
    name : str, optional
        Used in parameter names (``'<name>.W'``) and error messages.
    """

    def __init__(self, incoming, name=None):
        if isinstance(incoming, tuple):
            self.input_shape = incoming
            self.input_layer = None
        else:
            self.input_shape = incoming.output_shape
            self.input_layer = incoming
        self.name = name
        self.params = OrderedDict()
        self.get_output_kwargs = []
        if any(d is not None and d <= 0 for d in self.input_shape):
            raise ValueError(
                f"Cannot create Layer with a non-positive input_shape dimension. "
                f"input_shape={self.input_shape!r}, self.name={self.name!r}"
            )

    @property
    def output_shape(self):
        shape = self.get_output_shape_for(self.input_shape)
        if any(isinstance(s, Variable) for s in shape):
            raise ValueError(
                f"{type(self).__name__} returned a symbolic output shape from its "
                f"get_output_shape_for() method: {shape!r}. Shapes must be tuples of "
                "integers for fixed-size dimensions and Nones for variable dimensions."
            )
        return shape

    def get_params(self, unwrap_shared=True, **tags):
        """The layer's parameters, optionally filtered by tags.

        Parameters
        ----------
        unwrap_shared : bool
            Return the shared variables that parameter expressions depend on.
        **tags
            ``trainable=True`` keeps parameters with that tag, ``trainable=False`` keeps
            parameters without it (likewise ``regularizable``).

        Returns
        -------
        list of pytensor variables
        """
        result = list(self.params.keys())
        only = {tag for tag, value in tags.items() if value}
        if only:
            result = [param for param in result if not (only - self.params[param])]
        exclude = {tag for tag, value in tags.items() if not value}
        if exclude:
            result = [param for param in result if not (self.params[param] & exclude)]
        if unwrap_shared:
            return collect_shared_vars(result)
        return result

    def get_output_shape_for(self, input_shape):
        """Output shape for a given input shape (default: unchanged)."""
        return input_shape

    def get_output_for(self, input, **kwargs):
        """Symbolic output for a symbolic input; each layer class defines it."""
        raise NotImplementedError

    def add_param(self, spec, shape, name=None, **tags):
        """Create a parameter, register it with its tags and return it.

        ``trainable`` and ``regularizable`` default to True. A layer named ``n`` names the
        parameter ``'n.name'``.
        """
        if name is not None and self.name is not None:
            name = f"{self.name}.{name}"
        param = create_param(spec, shape, name)
        tags["trainable"] = tags.get("trainable", True)
        tags["regularizable"] = tags.get("regularizable", True)
        self.params[param] = {tag for tag, value in tags.items() if value}
        return param

    def __repr__(self):
        name = f"{self.name!r}, " if self.name else ""
        return f"<{type(self).__name__} {name}output_shape={self.output_shape}>"


class MergeLayer(Layer):
    """Base class of layers with several inputs.

    Parameters
    ----------
    incomings : list of Layer or tuple
    name : str, optional
    """

    def __init__(self, incomings, name=None):
        self.input_shapes = [
            incoming if isinstance(incoming, tuple) else incoming.output_shape
            for incoming in incomings
        ]
        self.input_layers = [
            None if isinstance(incoming, tuple) else incoming for incoming in incomings
        ]
        self.name = name
        self.params = OrderedDict()
        self.get_output_kwargs = []

    @Layer.output_shape.getter
    def output_shape(self):
        shape = self.get_output_shape_for(self.input_shapes)
        if any(isinstance(s, Variable) for s in shape):
            raise ValueError(
                f"{type(self).__name__} returned a symbolic output shape from its "
                f"get_output_shape_for() method: {shape!r}."
            )
        return shape

    def get_output_shape_for(self, input_shapes):
        """Output shape for a list of input shapes; each merge layer defines it."""
        raise NotImplementedError

    def get_output_for(self, inputs, **kwargs):
        """Symbolic output for a list of symbolic inputs; each merge layer defines it."""
        raise NotImplementedError
