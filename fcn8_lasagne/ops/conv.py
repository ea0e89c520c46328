"""2-D convolution ops with Theano's names, arguments and numerics (NCHW).

Three ``Op`` s cover a convolution and its derivatives:

* :class:`Conv2d` -- ``conv2d(input, filters)``;
* :class:`Conv2dGradInputs` -- the transposed convolution: gradient of ``conv2d`` with
  respect to its input, given the output gradient and the filters;
* :class:`Conv2dGradWeights` -- gradient of ``conv2d`` with respect to its filters, given
  the input and the output gradient.

All three share ``border_mode`` (``'valid'``, ``'full'``, ``'half'``, or an integer pair),
``subsample`` (the stride) and ``filter_flip`` (``True``: true convolution, the kernel
rotated by 180 degrees; ``False``: cross-correlation), and their gradients are built from
each other, so graphs of any order of differentiation compile on every backend.

The spatial size that a transposed convolution produces and the kernel size of a weight
gradient are ambiguous for strided convolutions. These ops take them as a third input:
either a *reference tensor* whose shape supplies them (the forward input, the filters), or
an integer vector ``[height, width]``. A reference keeps the size static for JAX, which
needs output shapes at trace time, whatever the input size: one compiled function serves
every input size.

On the CPU the products run as BLAS GEMMs (:mod:`._conv_cpu`); stride-1 3x3 layers with
many channels use Winograd's F(2x2, 3x3) there, whose float32 rounding error is about
twice that of a direct sum (``set_winograd(False)`` turns it off; ``docs/faithfulness.md``).
"""

import contextlib

import numpy as np
import pytensor.tensor as pt
from pytensor.gradient import disconnected_type
from pytensor.graph.basic import Apply, Constant, Variable
from pytensor.graph.op import Op
from pytensor.scalar import upcast

from . import _conv_cpu
from ._backend import register_jax, register_numba_perform
from .shapes import conv_input_length, conv_output_length, normalize_pad

__all__ = [
    "conv2d",
    "conv2d_grad_wrt_inputs",
    "conv2d_grad_wrt_weights",
    "Conv2d",
    "Conv2dGradInputs",
    "Conv2dGradWeights",
]

_FLOAT_DTYPES = ("float32", "float64")


def _int_pair(value, name):
    pair = (value, value) if np.ndim(value) == 0 else tuple(value)
    if len(pair) != 2 or not all(isinstance(v, (int, np.integer)) for v in pair):
        raise ValueError(f"{name} must be an int or a pair of ints, got {value!r}")
    return tuple(int(v) for v in pair)


def _normalize_border_mode(border_mode):
    """Canonical ``border_mode``: ``'full'``, ``'half'`` or a pair of non-negative ints."""
    if isinstance(border_mode, str):
        if border_mode == "same":
            return "half"
        if border_mode == "valid":
            return (0, 0)
        if border_mode in ("full", "half"):
            return border_mode
        raise ValueError(
            f"invalid border_mode {border_mode!r}: expected 'valid', 'full', 'half', "
            "an int or a pair of ints"
        )
    pads = _int_pair(border_mode, "border_mode")
    if min(pads) < 0:
        raise ValueError(f"border_mode must not be negative, got {border_mode!r}")
    return pads


def _axis_pads(border_mode):
    """Per-axis padding specs for :mod:`.shapes` (ints or ``'full'``/``'half'``)."""
    return (border_mode, border_mode) if isinstance(border_mode, str) else border_mode


def _infer_shape_arguments(args):
    """``(node, input_shapes)`` of ``infer_shape``, called with a leading ``fgraph`` before
    PyTensor 3.3 and without it since (where a 4-argument signature is deprecated)."""
    return args[-2], args[-1]


@contextlib.contextmanager
def _named_errors(node):
    """Prefix run-time shape errors with the output's name (layers name it after
    themselves), so a bad input names the layer it reached."""
    try:
        yield
    except ValueError as error:
        name = node.outputs[0].name
        if not name:
            raise
        raise ValueError(f"layer {name!r}: {error}") from None


class _ConvBase(Op):
    """Properties and helpers shared by the three convolution ops."""

    __props__ = ("border_mode", "subsample", "filter_flip")

    def __init__(self, border_mode="valid", subsample=(1, 1), filter_flip=True):
        self.border_mode = _normalize_border_mode(border_mode)
        self.subsample = _int_pair(subsample, "subsample")
        if min(self.subsample) < 1:
            raise ValueError(f"subsample must be positive, got {subsample!r}")
        self.filter_flip = bool(filter_flip)

    def pads(self, kernel_hw):
        """Integer (or symbolic) padding per spatial axis for a kernel of ``kernel_hw``."""
        return tuple(normalize_pad(p, k) for p, k in zip(_axis_pads(self.border_mode), kernel_hw))

    def output_hw(self, input_hw, kernel_hw):
        """Forward output size; entries are None where unknown."""
        return tuple(
            None if length is None or kernel is None
            else conv_output_length(length, kernel, stride, pad)
            for length, kernel, stride, pad in zip(
                input_hw, kernel_hw, self.subsample, _axis_pads(self.border_mode)))

    def minimal_input_hw(self, output_hw, kernel_hw):
        """Smallest forward input size that gives ``output_hw``."""
        return tuple(
            None if length is None or kernel is None
            else conv_input_length(length, kernel, stride, pad)
            for length, kernel, stride, pad in zip(
                output_hw, kernel_hw, self.subsample, _axis_pads(self.border_mode)))

    def _check_static_forward(self, input_shape, filter_shape):
        """Make-time version of the run-time shape checks, on the known dimensions."""
        name = type(self).__name__
        if None not in (input_shape[1], filter_shape[1]) and input_shape[1] != filter_shape[1]:
            raise ValueError(
                f"{name}: the input has {input_shape[1]} channels but the filters expect "
                f"{filter_shape[1]} (input shape {input_shape}, filter shape {filter_shape})"
            )
        for axis in (2, 3):
            length, kernel = input_shape[axis], filter_shape[axis]
            if length is None or kernel is None:
                continue
            pad = normalize_pad(_axis_pads(self.border_mode)[axis - 2], kernel)
            if length + 2 * pad < kernel:
                raise ValueError(
                    f"{name}: the filter size {kernel} exceeds the padded input size "
                    f"{length + 2 * pad} on axis {axis} (input shape {input_shape}, filter "
                    f"shape {filter_shape}, border_mode {self.border_mode!r})"
                )

    def _forward(self):
        return Conv2d(self.border_mode, self.subsample, self.filter_flip)

    def _grad_inputs(self):
        return Conv2dGradInputs(self.border_mode, self.subsample, self.filter_flip)

    def _grad_weights(self):
        return Conv2dGradWeights(self.border_mode, self.subsample, self.filter_flip)

    def _size_reference(self, tensor):
        """What a gradient op needs to know ``tensor``'s spatial size: None if implied."""
        return None if self.subsample == (1, 1) else tensor


def _as_float4(value, role, op_name):
    variable = pt.as_tensor_variable(value)
    if variable.type.ndim != 4:
        raise TypeError(
            f"{op_name}: {role} must be a 4-D tensor (batch, channels, rows, columns), got "
            f"{variable.type.ndim}-D {variable.type} of shape {variable.type.shape}"
        )
    if variable.type.dtype not in _FLOAT_DTYPES:
        raise TypeError(f"{op_name}: {role} must be float32 or float64, got {variable.type.dtype}")
    return variable


def _common_dtype(*variables):
    dtype = upcast(*(v.type.dtype for v in variables))
    return [v if v.type.dtype == dtype else pt.cast(v, dtype) for v in variables], dtype


def _as_size_input(size, op_name):
    """A gradient op's third input: a 4-D reference tensor or an integer 2-vector."""
    variable = pt.as_tensor_variable(size)
    if variable.type.ndim == 4:
        return variable
    if variable.type.ndim != 1 or not variable.type.dtype.startswith(("int", "uint")):
        raise TypeError(
            f"{op_name}: the size input must be a 4-D reference tensor or an integer vector "
            f"[height, width], got {variable.type}"
        )
    if variable.type.shape[0] not in (None, 2):
        raise ValueError(
            f"{op_name}: the size vector must have 2 entries, got {variable.type.shape[0]}")
    if isinstance(variable, Constant):  # stays a constant, which JAX needs
        return pt.constant(np.asarray(variable.data, dtype="int64"))
    return pt.cast(variable, "int64")


def _static_size(size_input):
    """``(h, w)`` of a size input known at graph-build time; entries None where unknown."""
    if size_input.type.ndim == 4:
        return tuple(size_input.type.shape[2:])
    if isinstance(size_input, Constant):
        return tuple(int(v) for v in size_input.data)
    return (None, None)


def _run_time_size(size_value):
    if size_value.ndim == 4:
        return tuple(size_value.shape[2:])
    if size_value.shape != (2,):
        raise ValueError(f"the size vector must have 2 entries, got shape {size_value.shape}")
    return tuple(int(v) for v in size_value)


def _symbolic_size(size_input, size_shape):
    if size_input.type.ndim == 4:
        return tuple(size_shape[2:])
    return (size_input[0], size_input[1])


def _jax_conv(op, x, w):
    from jax import lax

    pad_h, pad_w = op.pads(w.shape[2:])
    if op.filter_flip:
        w = w[:, :, ::-1, ::-1]
    return lax.conv_general_dilated(
        x, w, window_strides=op.subsample, padding=((pad_h, pad_h), (pad_w, pad_w)),
        dimension_numbers=("NCHW", "OIHW", "NCHW"),
    )


def _jax_static_size(op, node, role):
    """The ``(h, w)`` a JAX function needs from a vector size input, read at compile time."""
    size_input = node.inputs[2]
    if isinstance(size_input, Constant):
        return tuple(int(v) for v in size_input.data)
    raise NotImplementedError(
        f"{type(op).__name__}: JAX needs the {role} at compile time, but it is computed in "
        "the graph. Pass ints, None (the minimal size), or a reference tensor whose shape "
        "gives the size."
    )


def _jax_conv2d(op, node):
    def conv2d(x, w):
        return _jax_conv(op, x, w)

    return conv2d


def _jax_conv2d_grad_inputs(op, node):
    import jax

    vector_size = None
    if len(node.inputs) == 3 and node.inputs[2].type.ndim == 1:
        vector_size = _jax_static_size(op, node, "input size")

    def conv2d_grad_inputs(output_grad, filters, *size):
        batch, channels = output_grad.shape[0], filters.shape[1]
        minimal = op.minimal_input_hw(output_grad.shape[2:], filters.shape[2:])
        if vector_size is not None:
            input_hw = tuple(m if s < 0 else s for s, m in zip(vector_size, minimal))
        elif size:
            input_hw = size[0].shape[2:]
        else:
            input_hw = minimal
        input_struct = jax.ShapeDtypeStruct((batch, channels, *input_hw), output_grad.dtype)
        transpose = jax.linear_transpose(lambda x: _jax_conv(op, x, filters), input_struct)
        return transpose(output_grad)[0]

    return conv2d_grad_inputs


def _jax_conv2d_grad_weights(op, node):
    import jax

    vector_size = None
    if node.inputs[2].type.ndim == 1:
        vector_size = _jax_static_size(op, node, "filter size")

    def conv2d_grad_weights(x, output_grad, size):
        kernel_hw = vector_size if vector_size is not None else size.shape[2:]
        filter_struct = jax.ShapeDtypeStruct(
            (output_grad.shape[1], x.shape[1], *kernel_hw), x.dtype)
        transpose = jax.linear_transpose(lambda w: _jax_conv(op, x, w), filter_struct)
        return transpose(output_grad)[0]

    return conv2d_grad_weights


@register_numba_perform
@register_jax(_jax_conv2d)
class Conv2d(_ConvBase):
    """2-D convolution of a (B, C, H, W) input with (F, C, kh, kw) filters.

    ``Conv2d(border_mode, subsample, filter_flip)(input, filters)`` is a (B, F, H', W')
    tensor with ``H' = (H + 2 pad - kh) // stride + 1``. See :func:`conv2d`.
    """

    def make_node(self, input, filters):
        name = type(self).__name__
        input = _as_float4(input, "the input", name)
        filters = _as_float4(filters, "the filters", name)
        (input, filters), dtype = _common_dtype(input, filters)
        input_shape, filter_shape = input.type.shape, filters.type.shape
        self._check_static_forward(input_shape, filter_shape)
        out_hw = self.output_hw(input_shape[2:], filter_shape[2:])
        out_type = pt.TensorType(dtype, shape=(input_shape[0], filter_shape[0], *out_hw))
        return Apply(self, [input, filters], [out_type()])

    def perform(self, node, inputs, output_storage):
        x, w = inputs
        with _named_errors(node):
            output_storage[0][0] = _conv_cpu.conv2d_forward(
                x, w, self.pads(w.shape[2:]), self.subsample, self.filter_flip)

    def infer_shape(self, *args):
        node, shapes = _infer_shape_arguments(args)
        input_shape, filter_shape = shapes
        return [(input_shape[0], filter_shape[0],
                 *self.output_hw(input_shape[2:], filter_shape[2:]))]

    def pullback(self, inputs, outputs, cotangents):
        x, w = inputs
        (output_grad,) = cotangents
        input_grad = self._grad_inputs()(output_grad, w, self._size_reference(x))
        filter_grad = self._grad_weights()(x, output_grad, w)
        return [input_grad, filter_grad]


@register_numba_perform
@register_jax(_jax_conv2d_grad_inputs)
class Conv2dGradInputs(_ConvBase):
    """Transposed convolution: gradient of :class:`Conv2d` with respect to its input.

    ``Conv2dGradInputs(border_mode, subsample, filter_flip)(output_grad, filters[, size])``
    with ``output_grad`` (B, F, H', W') and the forward ``filters`` (F, C, kh, kw) is the
    (B, C, H, W) input gradient. ``size`` gives (H, W): a 4-D reference tensor (its shape),
    an integer vector ``[H, W]`` whose negative entries mean "minimal", or omitted for the
    minimal size ``(H' - 1) * stride - 2 pad + k``.
    """

    def make_node(self, output_grad, filters, size=None):
        name = type(self).__name__
        output_grad = _as_float4(output_grad, "the output gradient", name)
        filters = _as_float4(filters, "the filters", name)
        (output_grad, filters), dtype = _common_dtype(output_grad, filters)
        grad_shape, filter_shape = output_grad.type.shape, filters.type.shape
        if None not in (grad_shape[1], filter_shape[0]) and grad_shape[1] != filter_shape[0]:
            raise ValueError(
                f"{name}: the output gradient has {grad_shape[1]} channels but the filters "
                f"have {filter_shape[0]} (output gradient shape {grad_shape}, filter shape "
                f"{filter_shape})"
            )
        inputs = [output_grad, filters]
        minimal = self.minimal_input_hw(grad_shape[2:], filter_shape[2:])
        if size is None:
            input_hw = minimal
        else:
            size = _as_size_input(size, name)
            inputs.append(size)
            input_hw = tuple(m if s is not None and s < 0 else s
                             for s, m in zip(_static_size(size), minimal))
        input_shape = (grad_shape[0], filter_shape[1], *input_hw)
        self._check_static_forward(input_shape, filter_shape)
        expected = self.output_hw(input_hw, filter_shape[2:])
        for axis, (got, want) in enumerate(zip(grad_shape[2:], expected), start=2):
            if None not in (got, want) and got != want:
                raise ValueError(
                    f"{name}: an input of shape {input_shape} gives outputs of size {want} "
                    f"on axis {axis}, but the output gradient has shape {grad_shape} "
                    f"(filter shape {filter_shape})"
                )
        out_type = pt.TensorType(dtype, shape=input_shape)
        return Apply(self, inputs, [out_type()])

    def _input_hw(self, output_grad_shape, filter_shape, size_value):
        minimal = self.minimal_input_hw(output_grad_shape[2:], filter_shape[2:])
        if size_value is None:
            return minimal
        return tuple(m if s < 0 else s for s, m in zip(_run_time_size(size_value), minimal))

    def perform(self, node, inputs, output_storage):
        output_grad, filters, *size = inputs
        with _named_errors(node):
            input_hw = self._input_hw(output_grad.shape, filters.shape,
                                      size[0] if size else None)
            output_storage[0][0] = _conv_cpu.conv2d_backward_input(
                output_grad, filters, input_hw, self.pads(filters.shape[2:]), self.subsample,
                self.filter_flip)

    def infer_shape(self, *args):
        node, shapes = _infer_shape_arguments(args)
        grad_shape, filter_shape, *size_shape = shapes
        minimal = self.minimal_input_hw(grad_shape[2:], filter_shape[2:])
        if not size_shape:
            input_hw = minimal
        elif node.inputs[2].type.ndim == 4:
            input_hw = tuple(size_shape[0][2:])
        else:
            size = node.inputs[2]
            input_hw = tuple(pt.switch(pt.lt(size[i], 0), minimal[i], size[i]) for i in (0, 1))
        return [(grad_shape[0], filter_shape[1], *input_hw)]

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


@register_numba_perform
@register_jax(_jax_conv2d_grad_weights)
class Conv2dGradWeights(_ConvBase):
    """Gradient of :class:`Conv2d` with respect to its filters.

    ``Conv2dGradWeights(border_mode, subsample, filter_flip)(input, output_grad, size)``
    with ``input`` (B, C, H, W) and ``output_grad`` (B, F, H', W') is the (F, C, kh, kw)
    filter gradient; ``size`` gives (kh, kw): a 4-D reference tensor (the filters) or an
    integer vector ``[kh, kw]``.
    """

    def make_node(self, input, output_grad, size):
        name = type(self).__name__
        input = _as_float4(input, "the input", name)
        output_grad = _as_float4(output_grad, "the output gradient", name)
        (input, output_grad), dtype = _common_dtype(input, output_grad)
        size = _as_size_input(size, name)
        input_shape, grad_shape = input.type.shape, output_grad.type.shape
        filter_shape = (grad_shape[1], input_shape[1], *_static_size(size))
        if any(s is not None and s < 1 for s in filter_shape[2:]):
            raise ValueError(f"{name}: the filter size must be positive, got {filter_shape[2:]}")
        self._check_static_forward(input_shape, filter_shape)
        expected = self.output_hw(input_shape[2:], filter_shape[2:])
        for axis, (got, want) in enumerate(zip(grad_shape[2:], expected), start=2):
            if None not in (got, want) and got != want:
                raise ValueError(
                    f"{name}: an input of shape {input_shape} and filters of shape "
                    f"{filter_shape} give outputs of size {want} on axis {axis}, but the "
                    f"output gradient has shape {grad_shape}"
                )
        if None not in (input_shape[0], grad_shape[0]) and input_shape[0] != grad_shape[0]:
            raise ValueError(
                f"{name}: the input (shape {input_shape}) and the output gradient (shape "
                f"{grad_shape}) have different batch sizes"
            )
        out_type = pt.TensorType(dtype, shape=filter_shape)
        return Apply(self, [input, output_grad, size], [out_type()])

    def perform(self, node, inputs, output_storage):
        x, output_grad, size = inputs
        kernel_hw = _run_time_size(size)
        output_storage[0][0] = _conv_cpu.conv2d_backward_weights(
            x, output_grad, kernel_hw, self.pads(kernel_hw), self.subsample, self.filter_flip)

    def infer_shape(self, *args):
        node, shapes = _infer_shape_arguments(args)
        input_shape, grad_shape, size_shape = shapes
        return [(grad_shape[1], input_shape[1], *_symbolic_size(node.inputs[2], size_shape))]

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


def _shape_hint(variable, shape, role, enforce=True):
    """Apply the integer entries of a Theano-style shape hint with ``specify_shape``.

    With ``enforce=False`` the hint is only checked against the static shape: the op's own
    run-time check then reports a mismatch, naming the layer and both shapes.
    """
    if shape is None:
        return variable
    if isinstance(shape, Variable):
        return variable
    shape = tuple(shape)
    if len(shape) != 4:
        raise ValueError(f"{role} must have 4 entries, got {shape!r}")
    known = tuple(int(s) if isinstance(s, (int, np.integer)) else None for s in shape)
    if all(s is None for s in known):
        return variable
    for hint, static in zip(known, variable.type.shape):
        if None not in (hint, static) and hint != static:
            raise ValueError(
                f"{role} {shape!r} contradicts the tensor's shape {variable.type.shape}")
    return pt.specify_shape(variable, known) if enforce else variable


def _spatial_size_input(shape, role):
    """Integer vector (constant where possible) from the last two entries of a shape."""
    if isinstance(shape, Variable):
        shape = pt.as_tensor_variable(shape)
        return shape[2:] if shape.type.shape[0] in (None, 4) else shape
    entries = tuple(shape)
    if len(entries) != 4:
        raise ValueError(f"{role} must have 4 entries, got {shape!r}")
    spatial = [-1 if s is None else s for s in entries[2:]]
    if all(isinstance(s, (int, np.integer)) for s in spatial):
        return pt.constant(np.array(spatial, dtype="int64"))
    return pt.stack([pt.cast(s, "int64") for s in spatial])


def conv2d(input, filters, input_shape=None, filter_shape=None, border_mode="valid",
           subsample=(1, 1), filter_flip=True):
    """2-D convolution of NCHW images, as Theano's ``conv2d``.

    Parameters
    ----------
    input : 4-D tensor, (batch, channels, rows, columns)
    filters : 4-D tensor, (filters, channels, kernel rows, kernel columns)
    input_shape, filter_shape : tuple of 4 ints or None, optional
        Shape hints. Integer entries of ``filter_shape`` are enforced (``specify_shape``);
        ``input_shape`` is checked against the static shape and at run time by the op.
    border_mode : {'valid', 'full', 'half'} or int or (int, int)
        Zero padding: ``'valid'`` none, ``'full'`` ``k - 1``, ``'half'`` (``'same'``)
        ``k // 2``, or explicit sizes.
    subsample : int or (int, int)
        Stride.
    filter_flip : bool
        True (default) for a true convolution (kernel rotated by 180 degrees), False for a
        cross-correlation.

    Returns
    -------
    4-D tensor, (batch, filters, out rows, out columns)
        Output length ``(in + 2 pad - k) // stride + 1``.
    """
    input = _shape_hint(pt.as_tensor_variable(input), input_shape, "input_shape",
                        enforce=False)
    filters = _shape_hint(pt.as_tensor_variable(filters), filter_shape, "filter_shape")
    return Conv2d(border_mode, subsample, filter_flip)(input, filters)


def conv2d_grad_wrt_inputs(output_grad, filters, input_shape, filter_shape=None,
                           border_mode="valid", subsample=(1, 1), filter_flip=True):
    """Gradient of :func:`conv2d` with respect to its input: the transposed convolution.

    Parameters
    ----------
    output_grad : 4-D tensor, (batch, filters, out rows, out columns)
    filters : 4-D tensor, (filters, channels, kernel rows, kernel columns)
        The kernel of the forward convolution.
    input_shape : tuple of 4 entries or 1-D integer tensor of length 4
        Shape of the forward input. Rows and columns may be ints, symbolic scalars or None;
        None means the smallest size, ``(out - 1) * stride - 2 pad + k``, which is the only
        size for stride 1. For strides > 1 a larger size (up to ``stride - 1`` more) picks
        another of the inputs that the forward maps to the same output. Ints and None keep
        the graph compilable with JAX for any input size; symbolic sizes do not.
    filter_shape : tuple of 4 ints or None, optional
        Shape hint for ``filters``.
    border_mode, subsample, filter_flip
        As for :func:`conv2d`.

    Returns
    -------
    4-D tensor, (batch, channels, rows, columns)
    """
    output_grad = pt.as_tensor_variable(output_grad)
    filters = _shape_hint(pt.as_tensor_variable(filters), filter_shape, "filter_shape")
    op = Conv2dGradInputs(border_mode, subsample, filter_flip)
    if input_shape is None or (
        not isinstance(input_shape, Variable) and all(s is None for s in tuple(input_shape)[2:])
    ):
        return op(output_grad, filters)
    return op(output_grad, filters, _spatial_size_input(input_shape, "input_shape"))


def conv2d_grad_wrt_weights(input, output_grad, filter_shape, input_shape=None,
                            border_mode="valid", subsample=(1, 1), filter_flip=True):
    """Gradient of :func:`conv2d` with respect to its filters.

    Parameters
    ----------
    input : 4-D tensor, (batch, channels, rows, columns)
    output_grad : 4-D tensor, (batch, filters, out rows, out columns)
    filter_shape : tuple of 4 entries or 1-D integer tensor of length 4
        Shape of the filters; the kernel rows and columns must be given (ints keep the graph
        compilable with JAX).
    input_shape : tuple of 4 ints or None, optional
        Shape hint for ``input``.
    border_mode, subsample, filter_flip
        As for :func:`conv2d`.

    Returns
    -------
    4-D tensor, (filters, channels, kernel rows, kernel columns)
    """
    input = _shape_hint(pt.as_tensor_variable(input), input_shape, "input_shape",
                        enforce=False)
    output_grad = pt.as_tensor_variable(output_grad)
    if not isinstance(filter_shape, Variable) and any(s is None for s in tuple(filter_shape)[2:]):
        raise ValueError(f"filter_shape must give the kernel size, got {filter_shape!r}")
    size = _spatial_size_input(filter_shape, "filter_shape")
    return Conv2dGradWeights(border_mode, subsample, filter_flip)(input, output_grad, size)
