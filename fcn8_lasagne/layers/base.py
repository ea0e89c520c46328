"""Base classes of all layers: :class:`Layer` (one input) and :class:`MergeLayer` (several)."""

from collections import OrderedDict

from pytensor.graph.basic import Variable

from ..utils import collect_shared_vars, create_param

__all__ = ["Layer", "MergeLayer", "create_param"]


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
        try:
            shape = f"output_shape={self.output_shape}"
        except Exception:  # a layer that cannot say its shape still has a repr
            shape = "output_shape=?"
        return f"<{type(self).__name__} {name}{shape}>"


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
