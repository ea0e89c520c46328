"""Layers that combine several inputs, with Lasagne's automatic cropping.

For every axis whose cropping mode is not ``None``, all inputs are cut to the smallest size
on that axis — ``'lower'`` keeps ``[:size]``, ``'upper'`` ``[-size:]`` and ``'center'``
``[offset:offset + size]`` with ``offset = (length - size) // 2`` (an odd difference drops
the extra element at the end). The rule itself lives in :mod:`fcn8_lasagne.ops.crop`.
"""

import pytensor.tensor as pt

from ..ops.crop import CROP_MODES, crop_offsets, crop_to_smallest
from .base import MergeLayer

__all__ = [
    "autocrop",
    "autocrop_array_shapes",
    "crop_offsets",
    "ConcatLayer",
    "concat",
    "ElemwiseMergeLayer",
    "ElemwiseSumLayer",
]

def _full_cropping(cropping, ndim):
    cropping = list(cropping)
    for mode in cropping:
        if mode is not None and mode not in CROP_MODES:
            raise ValueError(f"Unknown crop mode '{mode}'")
    return cropping + [None] * (ndim - len(cropping))


def autocrop(inputs, cropping):
    """Crop symbolic ``inputs`` to a common size along the axes ``cropping`` names.

    Parameters
    ----------
    inputs : list of pytensor TensorVariable
    cropping : list of {None, 'lower', 'center', 'upper'} or None
        One mode per leading axis; a shorter list is padded with ``None``.

    Returns
    -------
    list of TensorVariable
    """
    if cropping is None:
        return inputs
    _full_cropping(cropping, inputs[0].ndim)
    return crop_to_smallest(inputs, cropping)


def autocrop_array_shapes(input_shapes, cropping):
    """The shapes :func:`autocrop` produces for inputs of ``input_shapes``."""
    if cropping is None:
        return input_shapes
    ndim = len(input_shapes[0])
    if not all(len(shape) == ndim for shape in input_shapes):
        raise ValueError(
            f"Not all inputs are of the same dimensionality. Got {len(input_shapes)} inputs "
            f"of dimensionalities {[len(shape) for shape in input_shapes]}."
        )
    result = []
    for sizes, mode in zip(zip(*input_shapes), _full_cropping(cropping, ndim)):
        if mode is None:
            result.append(sizes)
        else:
            smallest = None if any(size is None for size in sizes) else min(sizes)
            result.append([smallest] * len(sizes))
    return [tuple(shape) for shape in zip(*result)]


def _first_known(sizes):
    return next((size for size in sizes if size is not None), None)


class ConcatLayer(MergeLayer):
    """Concatenates its inputs along ``axis``, cropping the other axes if asked.

    Parameters
    ----------
    incomings : list of Layer or tuple
    axis : int, default 1
    cropping : list or None
        Crop modes per axis (see :func:`autocrop`); the concatenation axis is never cropped.
    """

    def __init__(self, incomings, axis=1, cropping=None, **kwargs):
        super().__init__(incomings, **kwargs)
        self.axis = axis
        if cropping is not None:
            cropping = list(cropping)
            cropping[axis] = None
        self.cropping = cropping

    def get_output_shape_for(self, input_shapes):
        input_shapes = autocrop_array_shapes(input_shapes, self.cropping)
        output_shape = [_first_known(sizes) for sizes in zip(*input_shapes)]
        axis = self.axis if self.axis >= 0 else len(output_shape) + self.axis

        def match(shape1, shape2):
            return len(shape1) == len(shape2) and all(
                i == axis or s1 is None or s2 is None or s1 == s2
                for i, (s1, s2) in enumerate(zip(shape1, shape2)))

        if not all(match(shape, output_shape) for shape in input_shapes):
            raise ValueError(
                f"Mismatch: input shapes must be the same except in the concatenation axis; "
                f"got {input_shapes}"
            )
        sizes = [shape[self.axis] for shape in input_shapes]
        output_shape[self.axis] = None if any(s is None for s in sizes) else sum(sizes)
        return tuple(output_shape)

    def get_output_for(self, inputs, **kwargs):
        return pt.concatenate(autocrop(inputs, self.cropping), axis=self.axis)


concat = ConcatLayer


class ElemwiseMergeLayer(MergeLayer):
    """Folds its inputs with ``merge_function`` left to right, after optional cropping.

    Parameters
    ----------
    incomings : list of Layer or tuple
    merge_function : callable
        Of two symbolic tensors, e.g. ``pytensor.tensor.mul``.
    cropping : list or None
        See :func:`autocrop`.
    """

    def __init__(self, incomings, merge_function, cropping=None, **kwargs):
        super().__init__(incomings, **kwargs)
        self.merge_function = merge_function
        self.cropping = cropping

    def get_output_shape_for(self, input_shapes):
        input_shapes = autocrop_array_shapes(input_shapes, self.cropping)
        output_shape = tuple(_first_known(sizes) for sizes in zip(*input_shapes))

        def match(shape1, shape2):
            return len(shape1) == len(shape2) and all(
                s1 is None or s2 is None or s1 == s2 for s1, s2 in zip(shape1, shape2))

        if not all(match(shape, output_shape) for shape in input_shapes):
            name = f" {self.name!r}" if self.name else ""
            raise ValueError(
                f"Mismatch in {type(self).__name__}{name}: not all input shapes are the "
                f"same: {input_shapes}"
            )
        return output_shape

    def get_output_for(self, inputs, **kwargs):
        output = None
        for input in autocrop(inputs, self.cropping):
            output = input if output is None else self.merge_function(output, input)
        return output


class ElemwiseSumLayer(ElemwiseMergeLayer):
    """Sums its inputs, each optionally scaled by a coefficient.

    Parameters
    ----------
    incomings : list of Layer or tuple
    coeffs : number or list of numbers, default 1
    cropping : list or None
        See :func:`autocrop`; FCN-8 uses ``[None, None, 'center', 'center']``.
    """

    def __init__(self, incomings, coeffs=1, cropping=None, **kwargs):
        super().__init__(incomings, pt.add, cropping=cropping, **kwargs)
        if isinstance(coeffs, list):
            if len(coeffs) != len(incomings):
                raise ValueError(
                    f"Mismatch: got {len(coeffs)} coeffs for {len(incomings)} incomings")
        else:
            coeffs = [coeffs] * len(incomings)
        self.coeffs = coeffs

    def get_output_for(self, inputs, **kwargs):
        inputs = [input * coeff if coeff != 1 else input
                  for coeff, input in zip(self.coeffs, inputs)]
        return super().get_output_for(inputs, **kwargs)
