"""Functions over whole networks: outputs, shapes, layers and parameters.

The layer order is Lasagne's: a depth-first topological sort in which a merge layer's first
input is visited first; parameter lists follow it, ``W`` before ``b`` within a layer, and a
parameter shared by several layers appears once, where it is first met. The ``.npz`` weight
files (``arr_0 … arr_{n-1}``) rely on this order.
"""

import warnings
from collections import deque
from difflib import get_close_matches
from itertools import chain

import numpy as np

from ..utils import as_theano_expression, host_value, inspect_kwargs, unique
from .base import Layer, MergeLayer
from .input import InputLayer

__all__ = [
    "get_all_layers",
    "get_output",
    "get_output_shape",
    "get_all_params",
    "count_params",
    "get_all_param_values",
    "set_all_param_values",
    "param_owners",
]


def get_all_layers(layer, treat_as_input=None):
    """All layers below ``layer`` (a layer or a list of layers), inputs first.

    Parameters
    ----------
    layer : Layer or list of Layer
    treat_as_input : iterable of Layer, optional
        Layers whose inputs are not followed.

    Returns
    -------
    list of Layer
    """
    try:
        queue = deque(layer)
    except TypeError:
        queue = deque([layer])
    seen = set()
    done = set()
    result = []
    if treat_as_input is not None:
        seen.update(treat_as_input)
    while queue:
        layer = queue[0]
        if layer is None:
            queue.popleft()
        elif layer not in seen:
            seen.add(layer)
            if hasattr(layer, "input_layers"):
                queue.extendleft(reversed(layer.input_layers))
            elif hasattr(layer, "input_layer"):
                queue.appendleft(layer.input_layer)
        else:
            queue.popleft()
            if layer not in done:
                result.append(layer)
                done.add(layer)
    return result


def get_output(layer_or_layers, inputs=None, **kwargs):
    """Symbolic output of one layer or a list of layers.

    Parameters
    ----------
    layer_or_layers : Layer or list of Layer
    inputs : None, expression or dict
        ``None`` uses the input layers' variables; one expression replaces the single input
        layer's variable; a dict maps layers to expressions (those layers are treated as
        inputs; a key that is not a layer raises ``TypeError``).
    **kwargs
        Passed to every layer's ``get_output_for``, e.g. ``deterministic=True`` (disables
        dropout). Unknown keywords trigger a warning that suggests the closest known one.

    Returns
    -------
    TensorVariable or list of TensorVariable
    """
    if isinstance(inputs, dict):
        for input_key in inputs:
            if input_key is not None and not isinstance(input_key, Layer):
                raise TypeError("The inputs dictionary keys must be lasagne layers not "
                                f"{type(input_key)}.")
    accepted_kwargs = {"deterministic"}
    treat_as_input = inputs.keys() if isinstance(inputs, dict) else []
    all_layers = get_all_layers(layer_or_layers, treat_as_input)
    all_outputs = {layer: layer.input_var for layer in all_layers
                   if isinstance(layer, InputLayer) and layer not in treat_as_input}
    if isinstance(inputs, dict):
        all_outputs.update((layer, as_theano_expression(expression))
                           for layer, expression in inputs.items())
    elif inputs is not None:
        if len(all_outputs) > 1:
            raise ValueError(
                "get_output() was called with a single input expression on a network with "
                "multiple input layers. Please call it with a dictionary of input "
                "expressions instead.")
        for input_layer in all_outputs:
            all_outputs[input_layer] = as_theano_expression(inputs)
    for layer in all_layers:
        if layer in all_outputs:
            continue
        try:
            if isinstance(layer, MergeLayer):
                layer_inputs = [all_outputs[input_layer] for input_layer in layer.input_layers]
            else:
                layer_inputs = all_outputs[layer.input_layer]
        except KeyError:
            raise ValueError(
                f"get_output() was called without giving an input expression for the "
                f"free-floating layer {layer!r}. Please call it with a dictionary mapping "
                "this layer to an input expression.") from None
        all_outputs[layer] = layer.get_output_for(layer_inputs, **kwargs)
        try:
            accepted_kwargs |= set(inspect_kwargs(layer.get_output_for))
        except TypeError:  # a callable whose signature cannot be inspected
            pass
        accepted_kwargs |= set(layer.get_output_kwargs)
    unused_kwargs = set(kwargs) - accepted_kwargs
    if unused_kwargs:
        suggestions = []
        for kwarg in sorted(unused_kwargs):
            close = get_close_matches(kwarg, sorted(accepted_kwargs))
            suggestions.append(f"{kwarg} (perhaps you meant {close[0]})" if close else kwarg)
        warnings.warn("get_output() was called with unused kwargs:\n\t"
                      + "\n\t".join(suggestions))
    try:
        return [all_outputs[layer] for layer in layer_or_layers]
    except TypeError:
        return all_outputs[layer_or_layers]


def get_output_shape(layer_or_layers, input_shapes=None):
    """Output shape(s) of one layer or a list of layers for given input shapes.

    Parameters
    ----------
    layer_or_layers : Layer or list of Layer
    input_shapes : None, tuple or dict
        ``None`` uses the layers' own shapes; a tuple is the single input layer's shape; a
        dict maps input layers to shapes.
    """
    if input_shapes is None or input_shapes == {}:
        try:
            return [layer.output_shape for layer in layer_or_layers]
        except TypeError:
            return layer_or_layers.output_shape
    treat_as_input = input_shapes.keys() if isinstance(input_shapes, dict) else []
    all_layers = get_all_layers(layer_or_layers, treat_as_input)
    all_shapes = {layer: layer.shape for layer in all_layers
                  if isinstance(layer, InputLayer) and layer not in treat_as_input}
    if isinstance(input_shapes, dict):
        all_shapes.update(input_shapes)
    else:
        if len(all_shapes) > 1:
            raise ValueError(
                "get_output_shape() was called with a single input shape on a network with "
                "multiple input layers. Please call it with a dictionary of input shapes "
                "instead.")
        for input_layer in all_shapes:
            all_shapes[input_layer] = input_shapes
    for layer in all_layers:
        if layer in all_shapes:
            continue
        if isinstance(layer, MergeLayer):
            input_shapes_ = [all_shapes[input_layer] for input_layer in layer.input_layers]
        else:
            input_shapes_ = all_shapes[layer.input_layer]
        all_shapes[layer] = layer.get_output_shape_for(input_shapes_)
    try:
        return [all_shapes[layer] for layer in layer_or_layers]
    except TypeError:
        return all_shapes[layer_or_layers]


def get_all_params(layer, unwrap_shared=True, **tags):
    """Parameters of all layers below ``layer`` in Lasagne's order, filtered by tags."""
    layers = get_all_layers(layer)
    params = chain.from_iterable(
        l.get_params(unwrap_shared=unwrap_shared, **tags) for l in layers)
    return unique(params)


def param_owners(layer, **tags):
    """``(layer, parameter)`` pairs in :func:`get_all_params` order (for messages)."""
    owners = []
    seen = []
    for owner in get_all_layers(layer):
        for param in owner.get_params(**tags):
            if param not in seen:
                seen.append(param)
                owners.append((owner, param))
    return owners


def count_params(layer, **tags):
    """Total number of scalar parameters below ``layer`` (after tag filtering)."""
    return sum(int(np.prod(p.get_value(borrow=True).shape)) for p in get_all_params(layer, **tags))


def get_all_param_values(layer, **tags):
    """Values (NumPy arrays) of :func:`get_all_params`, in order.

    Copies, as Lasagne's: also of values that a JAX function keeps on its device (see
    :mod:`fcn8_lasagne.compile`), which come back to the host as NumPy arrays.
    """
    return [host_value(p) for p in get_all_params(layer, **tags)]


def _describe_param(owner, param):
    layer_name = owner.name or type(owner).__name__
    return f"layer {layer_name!r} parameter {param.name or '?'}"


def set_all_param_values(layer, values, allow_nonfinite=False, **tags):
    """Set the values of :func:`get_all_params` from a list of arrays.

    Every value is checked before any is set: the count, the shape, a dtype castable to the
    parameter's (integer arrays are refused for float parameters) and finite values. A
    mismatch raises ``ValueError`` naming the layer, the parameter and both shapes and leaves
    the network unchanged. Lasagne checked while setting, cast integers silently and
    accepted NaN and infinite values; see ``docs/faithfulness.md``.

    Parameters
    ----------
    layer : Layer or list of Layer
    values : list of numpy.ndarray
    allow_nonfinite : bool, default False
        Accept NaN and infinite values (by default an error: a network with them predicts
        class 0 everywhere without a word).
    **tags
        Tag filter, as for :func:`get_all_params`.
    """
    owners = param_owners(layer, **tags)
    values = list(values)
    if len(owners) != len(values):
        raise ValueError(f"mismatch: got {len(values)} values to set {len(owners)} parameters")
    converted = []
    for index, ((owner, param), value) in enumerate(zip(owners, values)):
        current = param.get_value(borrow=True)
        value = np.asarray(value)
        if current.shape != value.shape:
            raise ValueError(
                f"mismatch: {_describe_param(owner, param)} (value {index}) has shape "
                f"{current.shape!r} but value to set has shape {value.shape!r}")
        if not np.can_cast(value.dtype, current.dtype, casting="same_kind") or (
                value.dtype.kind in "biu" and current.dtype.kind == "f"):
            raise ValueError(
                f"mismatch: {_describe_param(owner, param)} (value {index}) has dtype "
                f"{current.dtype} but value to set has dtype {value.dtype}")
        if not allow_nonfinite and value.dtype.kind in "fc" and not np.isfinite(value).all():
            bad = int(value.size - np.count_nonzero(np.isfinite(value)))
            raise ValueError(
                f"{_describe_param(owner, param)} (value {index}) holds {bad} NaN or "
                "infinite values (allow_nonfinite=True accepts them)")
        converted.append(value.astype(current.dtype, copy=True))
    for (_, param), value in zip(owners, converted):
        param.set_value(value, borrow=True)
