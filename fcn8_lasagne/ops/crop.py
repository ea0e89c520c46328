"""Lasagne's automatic cropping as an ``Op``: cut a tensor to the smallest of several sizes.

The crop rule lives here once. For every axis whose mode is not ``None`` the tensor is cut to
the smallest size that any of the tensors has on that axis: ``'lower'`` keeps ``[:size]``,
``'upper'`` ``[-size:]`` and ``'center'`` ``[offset:offset + size]`` with
``offset = (length - size) // 2`` — an odd difference drops the extra element at the end.

An ``Op`` rather than symbolic slicing because the slice bounds then come from the
tensors' shapes where they are known: at run time on the CPU, and at trace time under JAX,
which needs static slices. One compiled function still serves every input size.
"""

import numpy as np
import pytensor.tensor as pt
from pytensor.gradient import disconnected_type
from pytensor.graph.basic import Apply
from pytensor.graph.op import Op

from ._backend import register_numba_perform

__all__ = [
    "CROP_MODES", "crop_offsets", "crop_to_smallest", "crop_slices", "AutoCrop", "AutoCropGrad",
]

CROP_MODES = ("lower", "center", "upper")


def _smallest(lengths):
    if any(hasattr(length, "owner") for length in lengths):
        return pt.min(pt.stack(lengths))
    return min(lengths)


def crop_offsets(lengths, mode):
    """Start offsets that crop each of ``lengths`` to the smallest one.

    Parameters
    ----------
    lengths : list of int or symbolic scalars
    mode : {'lower', 'center', 'upper'}

    Returns
    -------
    list
        One offset per length (ints for int lengths).
    """
    if mode not in CROP_MODES:
        raise ValueError(f"Unknown crop mode '{mode}'")
    smallest = _smallest(lengths)
    if mode == "lower":
        return [0 for _ in lengths]
    if mode == "upper":
        return [length - smallest for length in lengths]
    return [(length - smallest) // 2 for length in lengths]


def crop_slices(modes, shapes):
    """Slices cropping ``shapes[0]`` to the smallest of ``shapes`` on the ``modes`` axes."""
    slices = []
    for axis, mode in enumerate(modes):
        if mode is None:
            slices.append(slice(None))
            continue
        lengths = [shape[axis] for shape in shapes]
        start = crop_offsets(lengths, mode)[0]
        slices.append(slice(start, start + min(lengths)))
    return tuple(slices)


class AutoCrop(Op):
    """``x`` cropped to the smallest size among ``(x, *others)`` on the axes ``modes`` names.

    Parameters
    ----------
    modes : tuple of {None, 'lower', 'center', 'upper'}
        One entry per axis of ``x``.
    """

    __props__ = ("modes",)

    def __init__(self, modes):
        for mode in modes:
            if mode is not None and mode not in CROP_MODES:
                raise ValueError(f"Unknown crop mode '{mode}'")
        self.modes = tuple(modes)

    def make_node(self, x, *others):
        x = pt.as_tensor_variable(x)
        others = [pt.as_tensor_variable(other) for other in others]
        if len(self.modes) != x.ndim or any(other.ndim != x.ndim for other in others):
            raise ValueError(
                f"AutoCrop: {len(self.modes)} crop modes for inputs of dimensionalities "
                f"{[x.ndim] + [other.ndim for other in others]}")
        static = [s if mode is None else None for s, mode in zip(x.type.shape, self.modes)]
        return Apply(self, [x, *others], [pt.tensor(dtype=x.dtype, shape=static)])

    def perform(self, node, inputs, output_storage):
        x = inputs[0]
        # always a new array: when nothing is cut the slice is x itself, and PyTensor may
        # update an Op's output in place (an ElemwiseSum after the crop does)
        slices = crop_slices(self.modes, [value.shape for value in inputs])
        output_storage[0][0] = np.array(x[slices], copy=True)

    def infer_shape(self, *args):
        # (fgraph, node, shapes) before PyTensor 3.3, (node, shapes) since
        node, shapes = args[-2:]
        output = []
        for axis, mode in enumerate(self.modes):
            lengths = [shape[axis] for shape in shapes]
            output.append(lengths[0] if mode is None else _smallest(lengths))
        return [tuple(output)]

    def connection_pattern(self, node):
        return [[True]] + [[False] for _ in node.inputs[1:]]

    def pullback(self, inputs, outputs, output_grads):
        grad = AutoCropGrad(self.modes)(output_grads[0], *inputs)
        return [grad] + [disconnected_type() for _ in inputs[1:]]


class AutoCropGrad(Op):
    """Gradient of :class:`AutoCrop`: ``gz`` placed back into zeros shaped like ``x``."""

    __props__ = ("modes",)

    def __init__(self, modes):
        self.modes = tuple(modes)

    def make_node(self, gz, x, *others):
        gz = pt.as_tensor_variable(gz)
        x = pt.as_tensor_variable(x)
        others = [pt.as_tensor_variable(other) for other in others]
        return Apply(self, [gz, x, *others], [pt.tensor(dtype=gz.dtype, shape=x.type.shape)])

    def perform(self, node, inputs, output_storage):
        gz, x = inputs[:2]
        grad = np.zeros(x.shape, dtype=gz.dtype)
        grad[crop_slices(self.modes, [value.shape for value in inputs[1:]])] = gz
        output_storage[0][0] = grad

    def infer_shape(self, *args):
        # (fgraph, node, shapes) before PyTensor 3.3, (node, shapes) since
        node, shapes = args[-2:]
        return [shapes[1]]

    def connection_pattern(self, node):
        return [[True]] + [[False] for _ in node.inputs[1:]]

    def pullback(self, inputs, outputs, output_grads):
        crop = AutoCrop(self.modes)(output_grads[0], *inputs[2:])
        return [crop] + [disconnected_type() for _ in inputs[1:]]


def crop_to_smallest(inputs, cropping):
    """Crop every tensor of ``inputs`` to the smallest size on the axes ``cropping`` names.

    Parameters
    ----------
    inputs : list of TensorVariable
        Of equal dimensionality.
    cropping : list of {None, 'lower', 'center', 'upper'}
        One mode per leading axis; a shorter list is padded with ``None``.

    Returns
    -------
    list of TensorVariable
    """
    ndim = inputs[0].ndim
    if not all(x.ndim == ndim for x in inputs):
        raise ValueError(
            f"Not all inputs are of the same dimensionality. Got {len(inputs)} inputs of "
            f"dimensionalities {[x.ndim for x in inputs]}.")
    modes = tuple(cropping) + (None,) * (ndim - len(cropping))
    op = AutoCrop(modes)
    return [op(x, *(other for other in inputs if other is not x)) for x in inputs]


register_numba_perform(AutoCrop)
register_numba_perform(AutoCropGrad)
