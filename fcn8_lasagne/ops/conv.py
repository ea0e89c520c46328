"""Convolution ops with Theano's names, arguments and numerics: 1, 2 and 3 spatial axes.

API
---
Functions (Theano 1.0.5's ``theano.tensor.nnet.abstract_conv`` signatures; ``conv1d*`` is
ours, Theano had none)::

    conv1d(input, filters, input_shape=None, filter_shape=None, border_mode='valid',
           subsample=(1,), filter_flip=True, filter_dilation=(1,), num_groups=1)
    conv2d(..., subsample=(1, 1), filter_dilation=(1, 1), num_groups=1)
    conv3d(..., subsample=(1, 1, 1), filter_dilation=(1, 1, 1), num_groups=1)
    convNd_grad_wrt_inputs(output_grad, filters, input_shape, filter_shape=None,
                           border_mode='valid', subsample, filter_flip=True,
                           filter_dilation, num_groups=1)          # N = 1, 2, 3
    convNd_grad_wrt_weights(input, output_grad, filter_shape, input_shape=None,
                            border_mode='valid', subsample, filter_flip=True,
                            filter_dilation, num_groups=1)          # N = 1, 2, 3

Tensors are channels-first: inputs ``(batch, channels, *spatial)``, filters
``(filters, channels // num_groups, *kernel)``; group ``g`` convolves input channels
``g * C/G ... (g+1) * C/G - 1`` with filters ``g * F/G ... (g+1) * F/G - 1``.
``border_mode`` is ``'valid'``, ``'full'`` (pad ``dilated - 1``), ``'half'`` (``'same'``,
pad ``dilated // 2``), an int or a tuple of one int per axis; ``subsample`` (stride) and
``filter_dilation`` are ints or tuples, ``dilated = (k - 1) * dilation + 1``; output length
``(in + 2 pad - dilated) // stride + 1``. ``filter_flip=True`` is a true convolution
(kernel rotated by 180 degrees), False a cross-correlation. Strides, dilations and groups
are accepted as ints too.

Length formulas for layers (per axis, ints or symbolic, None for unknown) are in
:mod:`.shapes`: ``conv_output_length(input_length, filter_size, stride, pad=0,
dilation=1)``, ``conv_input_length(output_length, filter_size, stride, pad=0,
dilation=1)`` (the transposed convolution's minimal output), ``dilated_filter_size``,
``normalize_pad(pad, filter_size, dilation=1)``, ``normalize_border_mode(border_mode,
ndim)`` and ``border_pads(border_mode, filter_shape, dilation)``. They accept the ops'
pads (``'valid'``, ``'full'``, ``'same'``, ``'half'``, ints); Lasagne's own
``conv_output_length`` rejects ``'half'`` with ``ValueError('Invalid pad: ...')``.

Ops
---
One family per rank, sharing ``ndim``, ``border_mode``, ``subsample``, ``filter_flip``,
``filter_dilation`` and ``num_groups``: :class:`Conv` (``Conv1d``, ``Conv2d``,
``Conv3d``), :class:`ConvGradInputs` (the transposed convolution: gradient of the
convolution with respect to its input, given the output gradient and the filters) and
:class:`ConvGradWeights` (gradient with respect to the filters, given the input and the
output gradient). Their gradients are built from each other, so graphs of any order of
differentiation compile on every backend.

The spatial size that a transposed convolution produces and the kernel size of a weight
gradient are ambiguous for strided convolutions. These ops take them as a third input:
either a *reference tensor* whose shape supplies them (the forward input, the filters), or
an integer vector of one entry per spatial axis. A reference keeps the size static for
JAX, which needs output shapes at trace time, whatever the input size: one compiled
function serves every input size.

On the CPU the products run as BLAS GEMMs (:mod:`._conv_cpu`); stride-1 undilated 2-D 3x3
layers with many channels use Winograd's F(2x2, 3x3) there, whose float32 rounding error
is about twice that of a direct sum (``set_winograd(False)`` turns it off;
``docs/faithfulness.md``). The JAX translations are in :mod:`._jax.conv`.
"""

import numpy as np
import pytensor.tensor as pt
from pytensor.gradient import disconnected_type
from pytensor.graph.basic import Apply, Variable
from pytensor.graph.op import Op

from . import _conv_cpu
from ._backend import register_numba_perform
from ._common import (as_float_tensor, common_dtype, infer_shape_arguments, int_tuple,
                      named_errors, run_time_size, size_input, static_size, symbolic_size)
from .shapes import (border_pads, conv_input_length, conv_output_length, dilated_filter_size,
                     normalize_border_mode, normalize_pad)

__all__ = [
    "conv1d",
    "conv2d",
    "conv3d",
    "conv1d_grad_wrt_inputs",
    "conv2d_grad_wrt_inputs",
    "conv3d_grad_wrt_inputs",
    "conv1d_grad_wrt_weights",
    "conv2d_grad_wrt_weights",
    "conv3d_grad_wrt_weights",
    "Conv",
    "ConvGradInputs",
    "ConvGradWeights",
    "Conv1d",
    "Conv1dGradInputs",
    "Conv1dGradWeights",
    "Conv2d",
    "Conv2dGradInputs",
    "Conv2dGradWeights",
    "Conv3d",
    "Conv3dGradInputs",
    "Conv3dGradWeights",
]

_FLOAT_DTYPES = ("float32", "float64")


class _ConvBase(Op):
    """Properties and helpers shared by the convolution ops."""

    __props__ = ("ndim", "border_mode", "subsample", "filter_flip", "filter_dilation",
                 "num_groups")

    def __init__(self, ndim=2, border_mode="valid", subsample=1, filter_flip=True,
                 filter_dilation=1, num_groups=1):
        if ndim not in (1, 2, 3):
            raise ValueError(f"convolutions have 1, 2 or 3 spatial axes, got ndim={ndim!r}")
        self.ndim = int(ndim)
        self.border_mode = normalize_border_mode(border_mode, ndim)
        self.subsample = int_tuple(subsample, ndim, "subsample", minimum=1)
        self.filter_flip = bool(filter_flip)
        self.filter_dilation = int_tuple(filter_dilation, ndim, "filter_dilation", minimum=1)
        (num_groups,) = int_tuple(num_groups, 1, "num_groups")
        if num_groups < 1:
            raise ValueError(f"num_groups must have value greater than zero, got {num_groups}")
        self.num_groups = num_groups

    @property
    def _name(self):
        return f"{type(self).__name__}"

    def _axis_pads(self):
        mode = self.border_mode
        return (mode,) * self.ndim if isinstance(mode, str) else mode

    def pads(self, kernel_shape):
        """Integer (or symbolic) padding per spatial axis for a kernel of ``kernel_shape``."""
        return border_pads(self.border_mode, kernel_shape, self.filter_dilation)

    def output_spatial(self, input_spatial, kernel_spatial):
        """Forward output size; entries are None where unknown."""
        return tuple(
            conv_output_length(length, kernel, stride, pad, dilation)
            for length, kernel, stride, pad, dilation in zip(
                input_spatial, kernel_spatial, self.subsample, self._axis_pads(),
                self.filter_dilation))

    def minimal_input_spatial(self, output_spatial, kernel_spatial):
        """Smallest forward input size that gives ``output_spatial``."""
        return tuple(
            conv_input_length(length, kernel, stride, pad, dilation)
            for length, kernel, stride, pad, dilation in zip(
                output_spatial, kernel_spatial, self.subsample, self._axis_pads(),
                self.filter_dilation))

    def _check_static_forward(self, input_shape, filter_shape):
        """Make-time version of the run-time shape checks, on the known dimensions."""
        name, groups = self._name, self.num_groups
        shapes = f"input shape {input_shape}, filter shape {filter_shape}"
        channels, filters, per_group = input_shape[1], filter_shape[0], filter_shape[1]
        if channels is not None and channels % groups:
            raise ValueError(f"{name}: num_groups={groups} does not divide the {channels} "
                             f"input channels ({shapes})")
        if filters is not None and filters % groups:
            raise ValueError(f"{name}: num_groups={groups} does not divide the {filters} "
                             f"filters ({shapes})")
        if None not in (channels, per_group) and channels != per_group * groups:
            if groups == 1:
                raise ValueError(f"{name}: the input has {channels} channels but the filters "
                                 f"expect {per_group} ({shapes})")
            raise ValueError(
                f"{name}: the input has {channels} channels, {channels // groups} per group "
                f"of num_groups={groups}, but the filters expect {per_group} per group "
                f"({shapes})")
        for axis in range(2, 2 + self.ndim):
            length, kernel = input_shape[axis], filter_shape[axis]
            if length is None or kernel is None:
                continue
            dilation = self.filter_dilation[axis - 2]
            pad = normalize_pad(self._axis_pads()[axis - 2], kernel, dilation)
            extent = dilated_filter_size(kernel, dilation)
            if length + 2 * pad < extent:
                dilated = f" (dilated by {dilation}: {extent})" if dilation > 1 else ""
                raise ValueError(
                    f"{name}: the filter size {kernel}{dilated} exceeds the padded input size "
                    f"{length + 2 * pad} on axis {axis} ({shapes}, border_mode "
                    f"{self.border_mode!r})")

    def _family(self):
        return _FAMILIES[self.ndim]

    def _params(self):
        return dict(border_mode=self.border_mode, subsample=self.subsample,
                    filter_flip=self.filter_flip, filter_dilation=self.filter_dilation,
                    num_groups=self.num_groups)

    def _forward(self):
        return self._family()[0](**self._params())

    def _grad_inputs(self):
        return self._family()[1](**self._params())

    def _grad_weights(self):
        return self._family()[2](**self._params())

    def _size_reference(self, tensor):
        """What a gradient op needs to know ``tensor``'s spatial size: None if implied."""
        return None if all(s == 1 for s in self.subsample) else tensor

    def _as_image(self, value, role):
        return as_float_tensor(value, self.ndim + 2, role, self._name, dtypes=_FLOAT_DTYPES)

    def _as_size_input(self, size):
        """A gradient op's third input: a reference tensor or an integer vector."""
        return size_input(size, self.ndim, self._name)

    def _static_size(self, size):
        """Spatial size given by a size input at graph-build time; None where unknown."""
        return static_size(size, self.ndim)

    def _run_time_size(self, size_value):
        return run_time_size(size_value, self.ndim)

    def _symbolic_size(self, size, size_shape):
        return symbolic_size(size, size_shape, self.ndim)


class Conv(_ConvBase):
    """N-d convolution of a (B, C, *S) input with (F, C / num_groups, *k) filters.

    ``Conv(ndim, border_mode, subsample, filter_flip, filter_dilation, num_groups)(input,
    filters)`` is a (B, F, *S') tensor with
    ``S' = (S + 2 pad - (k - 1) * dilation - 1) // stride + 1``. See :func:`conv2d`.
    """

    def make_node(self, input, filters):
        input = self._as_image(input, "the input")
        filters = self._as_image(filters, "the filters")
        (input, filters), dtype = common_dtype(input, filters)
        input_shape, filter_shape = input.type.shape, filters.type.shape
        self._check_static_forward(input_shape, filter_shape)
        out_spatial = self.output_spatial(input_shape[2:], filter_shape[2:])
        out_type = pt.TensorType(dtype, shape=(input_shape[0], filter_shape[0], *out_spatial))
        return Apply(self, [input, filters], [out_type()])

    def perform(self, node, inputs, output_storage):
        x, w = inputs
        with named_errors(node):
            output_storage[0][0] = _conv_cpu.conv_forward(
                x, w, self.pads(w.shape[2:]), self.subsample, self.filter_flip,
                self.filter_dilation, self.num_groups)

    def infer_shape(self, *args):
        node, shapes = infer_shape_arguments(args)
        input_shape, filter_shape = shapes
        return [(input_shape[0], filter_shape[0],
                 *self.output_spatial(input_shape[2:], filter_shape[2:]))]

    def pullback(self, inputs, outputs, cotangents):
        x, w = inputs
        (output_grad,) = cotangents
        input_grad = self._grad_inputs()(output_grad, w, self._size_reference(x))
        filter_grad = self._grad_weights()(x, output_grad, w)
        return [input_grad, filter_grad]


class ConvGradInputs(_ConvBase):
    """Transposed convolution: gradient of :class:`Conv` with respect to its input.

    ``ConvGradInputs(ndim, ...)(output_grad, filters[, size])`` with ``output_grad``
    (B, F, *S') and the forward ``filters`` (F, C / num_groups, *k) is the (B, C, *S) input
    gradient. ``size`` gives S: a reference tensor of rank ``ndim + 2`` (its shape), an
    integer vector whose negative entries mean "minimal", or omitted for the minimal size
    ``(S' - 1) * stride - 2 pad + (k - 1) * dilation + 1``.
    """

    def make_node(self, output_grad, filters, size=None):
        name = self._name
        output_grad = self._as_image(output_grad, "the output gradient")
        filters = self._as_image(filters, "the filters")
        (output_grad, filters), dtype = common_dtype(output_grad, filters)
        grad_shape, filter_shape = output_grad.type.shape, filters.type.shape
        if None not in (grad_shape[1], filter_shape[0]) and grad_shape[1] != filter_shape[0]:
            raise ValueError(
                f"{name}: the output gradient has {grad_shape[1]} channels but the filters "
                f"have {filter_shape[0]} (output gradient shape {grad_shape}, filter shape "
                f"{filter_shape})")
        inputs = [output_grad, filters]
        minimal = self.minimal_input_spatial(grad_shape[2:], filter_shape[2:])
        if size is None:
            input_spatial = minimal
        else:
            size = self._as_size_input(size)
            inputs.append(size)
            input_spatial = tuple(m if s is not None and s < 0 else s
                                  for s, m in zip(self._static_size(size), minimal))
        channels = None if filter_shape[1] is None else filter_shape[1] * self.num_groups
        input_shape = (grad_shape[0], channels, *input_spatial)
        self._check_static_forward(input_shape, filter_shape)
        expected = self.output_spatial(input_spatial, filter_shape[2:])
        for axis, (got, want) in enumerate(zip(grad_shape[2:], expected), start=2):
            if None not in (got, want) and got != want:
                raise ValueError(
                    f"{name}: an input of shape {input_shape} gives outputs of size {want} "
                    f"on axis {axis}, but the output gradient has shape {grad_shape} "
                    f"(filter shape {filter_shape})")
        out_type = pt.TensorType(dtype, shape=input_shape)
        return Apply(self, inputs, [out_type()])

    def _input_spatial(self, output_grad_shape, filter_shape, size_value):
        minimal = self.minimal_input_spatial(output_grad_shape[2:], filter_shape[2:])
        if size_value is None:
            return minimal
        return tuple(m if s < 0 else s for s, m in zip(self._run_time_size(size_value), minimal))

    def perform(self, node, inputs, output_storage):
        output_grad, filters, *size = inputs
        with named_errors(node):
            input_spatial = self._input_spatial(output_grad.shape, filters.shape,
                                                size[0] if size else None)
            output_storage[0][0] = _conv_cpu.conv_backward_input(
                output_grad, filters, input_spatial, self.pads(filters.shape[2:]),
                self.subsample, self.filter_flip, self.filter_dilation, self.num_groups)

    def infer_shape(self, *args):
        node, shapes = infer_shape_arguments(args)
        grad_shape, filter_shape, *size_shape = shapes
        minimal = self.minimal_input_spatial(grad_shape[2:], filter_shape[2:])
        if not size_shape:
            input_spatial = minimal
        elif node.inputs[2].type.ndim == self.ndim + 2:
            input_spatial = tuple(size_shape[0][2:])
        else:
            size = node.inputs[2]
            input_spatial = tuple(pt.switch(pt.lt(size[i], 0), minimal[i], size[i])
                                  for i in range(self.ndim))
        return [(grad_shape[0], filter_shape[1] * self.num_groups, *input_spatial)]

    def connection_pattern(self, node):
        return [[True], [True]] + [[False]] * (len(node.inputs) - 2)

    def pullback(self, inputs, outputs, cotangents):
        output_grad, filters, *size = inputs
        (input_grad_grad,) = cotangents
        grads = [
            self._forward()(input_grad_grad, filters),
            self._grad_weights()(input_grad_grad, output_grad, filters),
        ]
        return grads + [disconnected_type() for _ in size]


class ConvGradWeights(_ConvBase):
    """Gradient of :class:`Conv` with respect to its filters.

    ``ConvGradWeights(ndim, ...)(input, output_grad, size)`` with ``input`` (B, C, *S) and
    ``output_grad`` (B, F, *S') is the (F, C / num_groups, *k) filter gradient; ``size``
    gives k: a reference tensor of rank ``ndim + 2`` (the filters) or an integer vector.
    """

    def make_node(self, input, output_grad, size):
        name = self._name
        input = self._as_image(input, "the input")
        output_grad = self._as_image(output_grad, "the output gradient")
        (input, output_grad), dtype = common_dtype(input, output_grad)
        size = self._as_size_input(size)
        input_shape, grad_shape = input.type.shape, output_grad.type.shape
        groups = self.num_groups
        per_group = None if input_shape[1] is None or input_shape[1] % groups else (
            input_shape[1] // groups)
        filter_shape = (grad_shape[1], per_group, *self._static_size(size))
        if any(s is not None and s < 1 for s in filter_shape[2:]):
            raise ValueError(f"{name}: the filter size must be positive, got {filter_shape[2:]}")
        self._check_static_forward(input_shape, filter_shape)
        expected = self.output_spatial(input_shape[2:], filter_shape[2:])
        for axis, (got, want) in enumerate(zip(grad_shape[2:], expected), start=2):
            if None not in (got, want) and got != want:
                raise ValueError(
                    f"{name}: an input of shape {input_shape} and filters of shape "
                    f"{filter_shape} give outputs of size {want} on axis {axis}, but the "
                    f"output gradient has shape {grad_shape}")
        if None not in (input_shape[0], grad_shape[0]) and input_shape[0] != grad_shape[0]:
            raise ValueError(
                f"{name}: the input (shape {input_shape}) and the output gradient (shape "
                f"{grad_shape}) have different batch sizes")
        out_type = pt.TensorType(dtype, shape=filter_shape)
        return Apply(self, [input, output_grad, size], [out_type()])

    def perform(self, node, inputs, output_storage):
        x, output_grad, size = inputs
        with named_errors(node):
            kernel = self._run_time_size(size)
            output_storage[0][0] = _conv_cpu.conv_backward_weights(
                x, output_grad, kernel, self.pads(kernel), self.subsample, self.filter_flip,
                self.filter_dilation, self.num_groups)

    def infer_shape(self, *args):
        node, shapes = infer_shape_arguments(args)
        input_shape, grad_shape, size_shape = shapes
        per_group = input_shape[1] if self.num_groups == 1 else (
            input_shape[1] // self.num_groups)
        return [(grad_shape[1], per_group, *self._symbolic_size(node.inputs[2], size_shape))]

    def connection_pattern(self, node):
        return [[True], [True], [False]]

    def pullback(self, inputs, outputs, cotangents):
        x, output_grad, size = inputs
        (filter_grad_grad,) = cotangents
        return [
            self._grad_inputs()(output_grad, filter_grad_grad, self._size_reference(x)),
            self._forward()(x, filter_grad_grad),
            disconnected_type(),
        ]


def _fixed_rank(base, ndim, doc):
    """A subclass of ``base`` with ``ndim`` fixed: Theano-style positional arguments."""

    def __init__(self, border_mode="valid", subsample=(1,) * ndim, filter_flip=True,
                 filter_dilation=(1,) * ndim, num_groups=1):
        base.__init__(self, ndim, border_mode, subsample, filter_flip, filter_dilation,
                      num_groups)

    name = f"{base.__name__[:4]}{ndim}d{base.__name__[4:]}"
    cls = type(name, (base,), {"__init__": __init__, "__doc__": doc, "__module__": __name__})
    return register_numba_perform(cls)


for _base in (Conv, ConvGradInputs, ConvGradWeights):
    register_numba_perform(_base)

Conv1d = _fixed_rank(Conv, 1, "1-D :class:`Conv` of (B, C, L) inputs; see :func:`conv1d`.")
Conv2d = _fixed_rank(Conv, 2, "2-D :class:`Conv` of (B, C, H, W) inputs; see :func:`conv2d`.")
Conv3d = _fixed_rank(Conv, 3, "3-D :class:`Conv` of (B, C, D, H, W) inputs; see "
                              ":func:`conv3d`.")
Conv1dGradInputs = _fixed_rank(ConvGradInputs, 1, "1-D :class:`ConvGradInputs`.")
Conv2dGradInputs = _fixed_rank(ConvGradInputs, 2, "2-D :class:`ConvGradInputs`.")
Conv3dGradInputs = _fixed_rank(ConvGradInputs, 3, "3-D :class:`ConvGradInputs`.")
Conv1dGradWeights = _fixed_rank(ConvGradWeights, 1, "1-D :class:`ConvGradWeights`.")
Conv2dGradWeights = _fixed_rank(ConvGradWeights, 2, "2-D :class:`ConvGradWeights`.")
Conv3dGradWeights = _fixed_rank(ConvGradWeights, 3, "3-D :class:`ConvGradWeights`.")

_FAMILIES = {
    1: (Conv1d, Conv1dGradInputs, Conv1dGradWeights),
    2: (Conv2d, Conv2dGradInputs, Conv2dGradWeights),
    3: (Conv3d, Conv3dGradInputs, Conv3dGradWeights),
}


def _shape_hint(variable, shape, role, ndim, enforce=True):
    """Apply the integer entries of a Theano-style shape hint with ``specify_shape``.

    With ``enforce=False`` the hint is only checked against the static shape: the op's own
    run-time check then reports a mismatch, naming the layer and both shapes.
    """
    if shape is None or isinstance(shape, Variable):
        return variable
    shape = tuple(shape)
    if len(shape) != ndim + 2:
        raise ValueError(f"{role} must have {ndim + 2} entries, got {shape!r}")
    known = tuple(int(s) if isinstance(s, (int, np.integer)) else None for s in shape)
    if all(s is None for s in known):
        return variable
    for hint, static in zip(known, variable.type.shape):
        if None not in (hint, static) and hint != static:
            raise ValueError(
                f"{role} {shape!r} contradicts the tensor's shape {variable.type.shape}")
    return pt.specify_shape(variable, known) if enforce else variable


def _spatial_size_input(shape, role, ndim):
    """Integer vector (constant where possible) from the spatial entries of a shape."""
    if isinstance(shape, Variable):
        shape = pt.as_tensor_variable(shape)
        return shape[2:] if shape.type.shape[0] in (None, ndim + 2) else shape
    entries = tuple(shape)
    if len(entries) != ndim + 2:
        raise ValueError(f"{role} must have {ndim + 2} entries, got {shape!r}")
    spatial = [-1 if s is None else s for s in entries[2:]]
    if all(isinstance(s, (int, np.integer)) for s in spatial):
        return pt.constant(np.array(spatial, dtype="int64"))
    return pt.stack([pt.cast(s, "int64") for s in spatial])


def _conv(ndim, input, filters, input_shape, filter_shape, border_mode, subsample,
          filter_flip, filter_dilation, num_groups):
    input = _shape_hint(pt.as_tensor_variable(input), input_shape, "input_shape", ndim,
                        enforce=False)
    filters = _shape_hint(pt.as_tensor_variable(filters), filter_shape, "filter_shape", ndim)
    op = _FAMILIES[ndim][0](border_mode, subsample, filter_flip, filter_dilation, num_groups)
    return op(input, filters)


def _grad_inputs(ndim, output_grad, filters, input_shape, filter_shape, border_mode,
                 subsample, filter_flip, filter_dilation, num_groups):
    output_grad = pt.as_tensor_variable(output_grad)
    filters = _shape_hint(pt.as_tensor_variable(filters), filter_shape, "filter_shape", ndim)
    op = _FAMILIES[ndim][1](border_mode, subsample, filter_flip, filter_dilation, num_groups)
    if input_shape is None or (
        not isinstance(input_shape, Variable) and all(s is None for s in tuple(input_shape)[2:])
    ):
        return op(output_grad, filters)
    return op(output_grad, filters, _spatial_size_input(input_shape, "input_shape", ndim))


def _grad_weights(ndim, input, output_grad, filter_shape, input_shape, border_mode,
                  subsample, filter_flip, filter_dilation, num_groups):
    input = _shape_hint(pt.as_tensor_variable(input), input_shape, "input_shape", ndim,
                        enforce=False)
    output_grad = pt.as_tensor_variable(output_grad)
    if not isinstance(filter_shape, Variable) and any(s is None for s in tuple(filter_shape)[2:]):
        raise ValueError(f"filter_shape must give the kernel size, got {filter_shape!r}")
    size = _spatial_size_input(filter_shape, "filter_shape", ndim)
    op = _FAMILIES[ndim][2](border_mode, subsample, filter_flip, filter_dilation, num_groups)
    return op(input, output_grad, size)


_PARAMETERS = """
    border_mode : {{'valid', 'full', 'half', 'same'}} or int or tuple of {n} ints
        Zero padding: ``'valid'`` none, ``'full'`` ``dilated - 1``, ``'half'``
        (``'same'``) ``dilated // 2``, or explicit sizes, with
        ``dilated = (k - 1) * dilation + 1``.
    subsample : int or tuple of {n} ints
        Stride.
    filter_flip : bool
        True (default) for a true convolution (kernel rotated by 180 degrees), False for a
        cross-correlation.
    filter_dilation : int or tuple of {n} ints
        Spacing of the kernel taps (1: none).
    num_groups : int
        Channel groups: input channels and filters are split into ``num_groups``
        contiguous blocks, block ``g`` of the filters seeing only block ``g`` of the
        channels; the filters have ``channels // num_groups`` channels."""


def _doc(template, n):
    layout = {1: "(batch, channels, length)", 2: "(batch, channels, rows, columns)",
              3: "(batch, channels, depth, rows, columns)"}[n]
    kernel = {1: "(filters, channels // num_groups, length)",
              2: "(filters, channels // num_groups, rows, columns)",
              3: "(filters, channels // num_groups, depth, rows, columns)"}[n]
    return template.format(n=n, d=n + 2, layout=layout, kernel=kernel,
                           parameters=_PARAMETERS.format(n=n))


_CONV_DOC = """{n}-D convolution of channels-first images, as Theano's ``conv{n}d``.

    Parameters
    ----------
    input : {d}-D tensor, {layout}
    filters : {d}-D tensor, {kernel}
    input_shape, filter_shape : tuple of {d} ints or None, optional
        Shape hints. Integer entries of ``filter_shape`` are enforced (``specify_shape``);
        ``input_shape`` is checked against the static shape and at run time by the op.{parameters}

    Returns
    -------
    {d}-D tensor, (batch, filters, *out)
        Output length ``(in + 2 pad - dilated) // stride + 1``.
    """

_GRAD_INPUTS_DOC = """Gradient of :func:`conv{n}d` w.r.t. its input: the transposed convolution.

    Parameters
    ----------
    output_grad : {d}-D tensor, (batch, filters, *out)
    filters : {d}-D tensor, {kernel}
        The kernel of the forward convolution.
    input_shape : tuple of {d} entries or 1-D integer tensor of length {d}
        Shape of the forward input. Spatial entries may be ints, symbolic scalars or None;
        None means the smallest size, ``(out - 1) * stride - 2 pad + dilated``, which is
        the only size for stride 1. For strides > 1 a larger size (up to ``stride - 1``
        more) picks another of the inputs that the forward maps to the same output. Ints
        and None keep the graph compilable with JAX for any input size; symbolic sizes do
        not.
    filter_shape : tuple of {d} ints or None, optional
        Shape hint for ``filters``.{parameters}

    Returns
    -------
    {d}-D tensor, {layout}
    """

_GRAD_WEIGHTS_DOC = """Gradient of :func:`conv{n}d` with respect to its filters.

    Parameters
    ----------
    input : {d}-D tensor, {layout}
    output_grad : {d}-D tensor, (batch, filters, *out)
    filter_shape : tuple of {d} entries or 1-D integer tensor of length {d}
        Shape of the filters; the kernel size must be given (ints keep the graph
        compilable with JAX).
    input_shape : tuple of {d} ints or None, optional
        Shape hint for ``input``.{parameters}

    Returns
    -------
    {d}-D tensor, {kernel}
    """


def conv1d(input, filters, input_shape=None, filter_shape=None, border_mode="valid",
           subsample=(1,), filter_flip=True, filter_dilation=(1,), num_groups=1):
    return _conv(1, input, filters, input_shape, filter_shape, border_mode, subsample,
                 filter_flip, filter_dilation, num_groups)


def conv2d(input, filters, input_shape=None, filter_shape=None, border_mode="valid",
           subsample=(1, 1), filter_flip=True, filter_dilation=(1, 1), num_groups=1):
    return _conv(2, input, filters, input_shape, filter_shape, border_mode, subsample,
                 filter_flip, filter_dilation, num_groups)


def conv3d(input, filters, input_shape=None, filter_shape=None, border_mode="valid",
           subsample=(1, 1, 1), filter_flip=True, filter_dilation=(1, 1, 1), num_groups=1):
    return _conv(3, input, filters, input_shape, filter_shape, border_mode, subsample,
                 filter_flip, filter_dilation, num_groups)


def conv1d_grad_wrt_inputs(output_grad, filters, input_shape, filter_shape=None,
                           border_mode="valid", subsample=(1,), filter_flip=True,
                           filter_dilation=(1,), num_groups=1):
    return _grad_inputs(1, output_grad, filters, input_shape, filter_shape, border_mode,
                        subsample, filter_flip, filter_dilation, num_groups)


def conv2d_grad_wrt_inputs(output_grad, filters, input_shape, filter_shape=None,
                           border_mode="valid", subsample=(1, 1), filter_flip=True,
                           filter_dilation=(1, 1), num_groups=1):
    return _grad_inputs(2, output_grad, filters, input_shape, filter_shape, border_mode,
                        subsample, filter_flip, filter_dilation, num_groups)


def conv3d_grad_wrt_inputs(output_grad, filters, input_shape, filter_shape=None,
                           border_mode="valid", subsample=(1, 1, 1), filter_flip=True,
                           filter_dilation=(1, 1, 1), num_groups=1):
    return _grad_inputs(3, output_grad, filters, input_shape, filter_shape, border_mode,
                        subsample, filter_flip, filter_dilation, num_groups)


def conv1d_grad_wrt_weights(input, output_grad, filter_shape, input_shape=None,
                            border_mode="valid", subsample=(1,), filter_flip=True,
                            filter_dilation=(1,), num_groups=1):
    return _grad_weights(1, input, output_grad, filter_shape, input_shape, border_mode,
                         subsample, filter_flip, filter_dilation, num_groups)


def conv2d_grad_wrt_weights(input, output_grad, filter_shape, input_shape=None,
                            border_mode="valid", subsample=(1, 1), filter_flip=True,
                            filter_dilation=(1, 1), num_groups=1):
    return _grad_weights(2, input, output_grad, filter_shape, input_shape, border_mode,
                         subsample, filter_flip, filter_dilation, num_groups)


def conv3d_grad_wrt_weights(input, output_grad, filter_shape, input_shape=None,
                            border_mode="valid", subsample=(1, 1, 1), filter_flip=True,
                            filter_dilation=(1, 1, 1), num_groups=1):
    return _grad_weights(3, input, output_grad, filter_shape, input_shape, border_mode,
                         subsample, filter_flip, filter_dilation, num_groups)


for _n in (1, 2, 3):
    globals()[f"conv{_n}d"].__doc__ = _doc(_CONV_DOC, _n)
    globals()[f"conv{_n}d_grad_wrt_inputs"].__doc__ = _doc(_GRAD_INPUTS_DOC, _n)
    globals()[f"conv{_n}d_grad_wrt_weights"].__doc__ = _doc(_GRAD_WEIGHTS_DOC, _n)
del _n, _base
