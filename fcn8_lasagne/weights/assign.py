"""Put pretrained parameter values into a network: validate everything, then set.

Every foreign-format loader (Lasagne Recipes pickle, MatConvNet, PyTorch, Caffe) turns its
file into a mapping ``{layer_name: [W, b]}`` and hands it to :func:`assign_params`, which

1. resolves each name to a layer of the network dictionary (Caffe / pytorch-fcn names such
   as ``upscore2`` fall back to the tutorial's names such as ``score2``),
2. converts each kernel to the orientation the layer computes with (see below),
3. checks every shape, and only when *all* entries are valid
4. calls ``set_value`` on the layers' shared variables.

A file that does not fit therefore raises :class:`WeightLoadError` and leaves the network
exactly as it was.

Conventions
-----------
Caffe, PyTorch, MatConvNet and the Lasagne Recipes VGG16 (``flip_filters=False``) store
*cross-correlation* kernels for convolutions, and the adjoint of that cross-correlation for
transposed convolutions (``torch.nn.functional.conv_transpose2d``). With
``convention='cross_correlation'`` a kernel is rotated by 180 degrees where the target layer
needs it: for a ``Conv2DLayer`` with ``flip_filters=True`` and for a
``TransposedConv2DLayer`` with ``flip_filters=False`` (its default, which equals
``conv_transpose2d`` with the kernel rotated). Fully-connected matrices are then in the
frameworks' ``(out, in)`` layout: transposed for a ``DenseLayer`` (``(in, out)``), reshaped
for a convolution. With ``convention='lasagne'`` values are taken as they are.
"""

import numpy as np

from ..files import WeightLoadError, check_weight_values

__all__ = [
    "WeightLoadError",
    "CAFFE_TO_TUTORIAL_NAMES",
    "resolve_layer_name",
    "assign_params",
]

#: Layer names of the Caffe reference FCNs (and pytorch-fcn) that the tutorial's builders
#: call differently. Used only when the network has no layer of the Caffe name.
CAFFE_TO_TUTORIAL_NAMES = {
    "upscore2": "score2",
    "upscore_pool4": "score4",
    "upscore8": "upsample",
    "upscore16": "upsample",
    "upscore": "upsample",
}

_CONVENTIONS = ("cross_correlation", "lasagne")


def resolve_layer_name(net, name):
    """Name of the layer of ``net`` that receives the source layer ``name``.

    Parameters
    ----------
    net : dict
        Layer name to layer, as returned by the model builders.
    name : str
        Layer name in the source file (Caffe / pytorch-fcn / tutorial naming).

    Returns
    -------
    str or None
        ``name`` itself when ``net`` has it, else its tutorial name from
        :data:`CAFFE_TO_TUTORIAL_NAMES` when ``net`` has that, else ``None``.
    """
    if name in net:
        return name
    alias = CAFFE_TO_TUTORIAL_NAMES.get(name)
    if alias is not None and alias in net:
        return alias
    return None


def _is_transposed_conv(layer):
    from ..layers import TransposedConv2DLayer

    return isinstance(layer, TransposedConv2DLayer)


def _needs_rotation(layer):
    """Whether a cross-correlation-convention kernel must be rotated for ``layer``."""
    flip_filters = getattr(layer, "flip_filters", None)
    if flip_filters is None:  # dense and other layers without spatial kernels
        return False
    if _is_transposed_conv(layer):
        return not flip_filters
    return bool(flip_filters)


def _current_value(param):
    return param.get_value(borrow=True)


def _shape_error(source, name, what, expected, got, hint=""):
    message = (
        f"{source}: layer {name!r}: {what} expected shape {tuple(expected)}, "
        f"got {tuple(got)}"
    )
    if hint:
        message += f" ({hint})"
    return WeightLoadError(message)


def _prepare_weight(source, name, layer, value, convention):
    """Validate one weight array and return it ready for ``set_value``."""
    param = getattr(layer, "W", None)
    if param is None:
        raise WeightLoadError(
            f"{source}: layer {name!r} ({type(layer).__name__}) has no weights, "
            f"got an array of shape {np.shape(value)}"
        )
    target = _current_value(param)
    value = np.asarray(value)
    if convention == "cross_correlation" and value.ndim == 2 and target.ndim == 2:
        # framework (out, in) matrix into a DenseLayer, whose W is (in, out)
        if value.shape != target.shape[::-1]:
            raise _shape_error(source, name, "fully-connected weight (out, in)",
                               target.shape[::-1], value.shape)
        value = value.T
    if value.ndim == 2 and target.ndim == 4:
        # A fully-connected matrix in (out, in) layout becomes the filter of a
        # convolution over the whole (channels, rows, columns) input, flattened C-order.
        if value.shape[0] != target.shape[0] or value.shape[1] != int(
            np.prod(target.shape[1:])
        ):
            raise _shape_error(
                source,
                name,
                "fully-connected weight (out, in) for a convolution",
                (target.shape[0], int(np.prod(target.shape[1:]))),
                value.shape,
                f"the layer's filters are {tuple(target.shape)}",
            )
        value = value.reshape(target.shape)
    if value.shape != target.shape:
        raise _shape_error(source, name, "W", target.shape, value.shape)
    if convention == "cross_correlation" and _needs_rotation(layer):
        value = value[:, :, ::-1, ::-1]
    return param, np.ascontiguousarray(value, dtype=target.dtype)


def _prepare_bias(source, name, layer, value):
    """Validate one bias array; returns ``(param, array)`` or ``None`` when nothing to set.

    ``value=None`` means the source layer has no bias: a layer that has one gets zeros.
    A bias for a layer without one is accepted only when it is all zeros.
    """
    param = getattr(layer, "b", None)
    if param is None:
        if value is not None and np.any(np.asarray(value) != 0):
            raise WeightLoadError(
                f"{source}: layer {name!r} has no bias, but the file gives a non-zero "
                f"bias of shape {np.shape(value)}"
            )
        return None
    target = _current_value(param)
    if value is None:
        return param, np.zeros_like(target)
    value = np.asarray(value)
    if value.shape != target.shape:
        raise _shape_error(source, name, "b", target.shape, value.shape)
    return param, np.ascontiguousarray(value, dtype=target.dtype)


def assign_params(net, values, source, convention="cross_correlation", strict=True,
                  allow_nonfinite=False):
    """Set layers' ``W`` and ``b`` from a mapping, all or nothing.

    Parameters
    ----------
    net : dict
        Layer name to layer (the model builders' return value).
    values : mapping of str to sequence
        ``{layer_name: [W, b]}`` in source naming (see :func:`resolve_layer_name`). ``W``
        has the target layer's weight layout (``(out, in, kh, kw)`` for convolutions,
        ``(in, out, kh, kw)`` for transposed convolutions); a 2-D ``(out, in)`` matrix
        for a convolution is reshaped to its filter shape (fully-connected to
        convolution). ``b`` may be ``None`` (or the list may have one element) when the
        source layer has no bias; the target's bias, if any, is then set to zero.
    source : str
        What the values come from (usually the file path); starts every error message.
    convention : {'cross_correlation', 'lasagne'}
        Orientation of the kernels in ``values``; see the module docstring.
    strict : bool
        When true, a name that matches no layer of ``net`` is an error; when false it is
        skipped.
    allow_nonfinite : bool, default False
        Accept NaN and infinite values; by default they are an error, as are arrays whose
        dtype is not floating point (see :func:`fcn8_lasagne.files.check_weight_values`).

    Returns
    -------
    list of str
        The names (in ``net``) of the layers that were set, in the order of ``values``.

    Raises
    ------
    WeightLoadError
        On an unknown layer (``strict``), a layer without parameters, a shape mismatch, a
        non-float dtype or a non-finite value. Nothing is set in that case.
    """
    if convention not in _CONVENTIONS:
        raise ValueError(f"convention must be one of {_CONVENTIONS}, got {convention!r}")
    updates = []
    assigned = []
    for source_name, pair in values.items():
        name = resolve_layer_name(net, source_name)
        if name is None:
            if strict:
                with_params = [k for k, v in net.items() if getattr(v, "W", None) is not None]
                raise WeightLoadError(
                    f"{source}: layer {source_name!r} is not in the network "
                    f"(layers with weights: {', '.join(with_params)})"
                )
            continue
        if name in assigned:
            raise WeightLoadError(
                f"{source}: layer {name!r} is given twice (as {source_name!r})"
            )
        pair = list(pair)
        if not 1 <= len(pair) <= 2:
            raise WeightLoadError(
                f"{source}: layer {source_name!r}: expected [W] or [W, b], "
                f"got {len(pair)} arrays"
            )
        try:
            check_weight_values(pair, source, [f"layer {source_name!r} W",
                                               f"layer {source_name!r} b"][:len(pair)],
                                allow_nonfinite=allow_nonfinite)
        except ValueError as error:
            raise WeightLoadError(str(error)) from None
        layer = net[name]
        updates.append(_prepare_weight(source, name, layer, pair[0], convention))
        bias = _prepare_bias(source, name, layer, pair[1] if len(pair) == 2 else None)
        if bias is not None:
            updates.append(bias)
        assigned.append(name)
    for param, value in updates:
        param.set_value(value)
    return assigned
