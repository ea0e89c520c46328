"""Bilinear resizing ops (NCHW) and the sampling grid of Lasagne's spatial transformers.

* :func:`bilinear_resize` -- resize to a given size, with MXNet's / Gluon-CV's
  ``BilinearResize2D`` corners (``align_corners=True``) or PyTorch's
  ``F.interpolate(mode='bilinear', align_corners=False)`` pixel centres;
* :func:`bilinear_upsampling` -- Theano 1.0.5's function of that name (integer ratios);
* :func:`sampling_grid` -- the normalised target grid of Lasagne's ``TransformerLayer``.

The output size is an input of the op: integers (a constant vector), an integer vector
computed in the graph (CPU only), or a *reference tensor* whose last two dimensions give
it. A reference keeps the size static for JAX, which needs shapes at trace time, whatever
the input size: one compiled function serves every input size. The one rule to know: the
resize is linear and separable, ``out[b, c] = R @ x[b, c] @ C.T`` with the interpolation
matrices of :func:`interpolation_matrix`; its gradient op applies the transposes.
"""

import numpy as np
import pytensor.tensor as pt
from pytensor.gradient import disconnected_type
from pytensor.graph.basic import Apply, Variable
from pytensor.graph.op import Op

from . import _resize_cpu
from ._backend import register_numba_perform
from ._common import (as_float_tensor, infer_shape_arguments, int_tuple, named_errors,
                      run_time_size, size_input, static_size, symbolic_size)
from ._resize_cpu import MODES, interpolation_matrix

__all__ = [
    "bilinear_resize",
    "bilinear_upsampling",
    "sampling_grid",
    "interpolation_matrix",
    "grid_axis",
    "BilinearResize",
    "BilinearResizeGrad",
    "SamplingGrid",
]


def _check_mode(mode):
    if mode not in MODES:
        raise ValueError(f"unknown resize mode {mode!r}; expected one of {MODES}")
    return mode


def _check_sizes(op_name, in_hw, out_hw, mode):
    """Make-time and run-time checks on known sizes (None entries are skipped)."""
    for axis, (length, size) in enumerate(zip(in_hw, out_hw), start=2):
        if length is not None and length < 1:
            raise ValueError(f"{op_name}: the input is empty on axis {axis} (size {length})")
        if size is not None and size < 1:
            raise ValueError(f"{op_name}: the output size must be positive, got {size} on "
                             f"axis {axis}")
        if mode == "theano" and None not in (length, size) and size % length:
            raise ValueError(f"{op_name}: Theano's bilinear upsampling needs an integer "
                             f"ratio, got size {length} -> {size} on axis {axis}")


def resize_matrices(in_hw, out_hw, mode, dtype, transposed=False):
    """The row and column interpolation matrices of a resize from ``in_hw`` to ``out_hw``."""
    return tuple(interpolation_matrix(i, o, mode, dtype, transposed)
                 for i, o in zip(in_hw, out_hw))


class BilinearResize(Op):
    """Bilinear resize of a (B, C, H, W) tensor to (B, C, H', W').

    ``BilinearResize(mode)(input, size)``: ``size`` is a 4-D reference tensor (its last two
    dimensions give H', W') or an integer vector ``[H', W']``. ``mode`` is one of
    ``'align_corners'``, ``'half_pixel'`` and ``'theano'`` (see
    :func:`._resize_cpu.source_coordinates`).
    """

    __props__ = ("mode",)

    def __init__(self, mode):
        self.mode = _check_mode(mode)

    def make_node(self, input, size):
        name = type(self).__name__
        input = as_float_tensor(input, 4, "the input", name)
        size = size_input(size, 2, name)
        out_hw = static_size(size, 2)
        _check_sizes(name, input.type.shape[2:], out_hw, self.mode)
        out_type = pt.TensorType(input.type.dtype, shape=(*input.type.shape[:2], *out_hw))
        return Apply(self, [input, size], [out_type()])

    def perform(self, node, inputs, output_storage):
        x, size = inputs
        with named_errors(node):
            out_hw = run_time_size(size, 2)
            _check_sizes(type(self).__name__, x.shape[2:], out_hw, self.mode)
            rows, columns = resize_matrices(x.shape[2:], out_hw, self.mode, x.dtype)
            output_storage[0][0] = _resize_cpu.resize_images(x, rows, columns)

    def infer_shape(self, *args):
        node, shapes = infer_shape_arguments(args)
        input_shape, size_shape = shapes
        return [(*input_shape[:2], *symbolic_size(node.inputs[1], size_shape, 2))]

    def connection_pattern(self, node):
        return [[True], [False]]

    def pullback(self, inputs, outputs, cotangents):
        x, size = inputs
        return [BilinearResizeGrad(self.mode)(cotangents[0], x), disconnected_type()]


class BilinearResizeGrad(Op):
    """Gradient (adjoint) of :class:`BilinearResize`.

    ``BilinearResizeGrad(mode)(output_grad, input)`` with ``output_grad`` (B, C, H', W') is
    the (B, C, H, W) gradient ``R.T @ output_grad[b, c] @ C``; the forward ``input`` only
    gives (H, W).
    """

    __props__ = ("mode",)

    def __init__(self, mode):
        self.mode = _check_mode(mode)

    def make_node(self, output_grad, input):
        name = type(self).__name__
        output_grad = as_float_tensor(output_grad, 4, "the output gradient", name)
        input = as_float_tensor(input, 4, "the input", name)
        _check_sizes(name, input.type.shape[2:], output_grad.type.shape[2:], self.mode)
        shape = tuple(g if g is not None else i
                      for g, i in zip(output_grad.type.shape[:2], input.type.shape[:2]))
        out_type = pt.TensorType(output_grad.type.dtype, shape=(*shape, *input.type.shape[2:]))
        return Apply(self, [output_grad, input], [out_type()])

    def perform(self, node, inputs, output_storage):
        output_grad, x = inputs
        with named_errors(node):
            _check_sizes(type(self).__name__, x.shape[2:], output_grad.shape[2:], self.mode)
            rows, columns = resize_matrices(x.shape[2:], output_grad.shape[2:], self.mode,
                                            output_grad.dtype, transposed=True)
            output_storage[0][0] = _resize_cpu.resize_images(output_grad, rows, columns)

    def infer_shape(self, *args):
        node, shapes = infer_shape_arguments(args)
        grad_shape, input_shape = shapes
        return [(*grad_shape[:2], *input_shape[2:])]

    def connection_pattern(self, node):
        return [[True], [False]]

    def pullback(self, inputs, outputs, cotangents):
        output_grad, x = inputs
        return [BilinearResize(self.mode)(cotangents[0], output_grad), disconnected_type()]


def _size_argument(size):
    """``size`` of :func:`bilinear_resize` as what :class:`BilinearResize` takes."""
    if isinstance(size, Variable):
        return size
    if np.ndim(size) == 0 or not any(isinstance(s, Variable) for s in size):
        return pt.constant(np.array(int_tuple(size, 2, "size", minimum=1), dtype="int64"))
    return pt.stack([pt.cast(s, "int64") for s in size])


def bilinear_resize(input, size, align_corners):
    """Resize the last two dimensions of a (B, C, H, W) tensor bilinearly.

    Parameters
    ----------
    input : 4-D tensor
    size : int, pair of ints, integer vector or 4-D tensor
        The output's (H', W'), or a reference tensor whose last two dimensions give it (the
        way to keep shapes static under JAX for every input size). A size computed in the
        graph works on the CPU backends only.
    align_corners : bool
        True: MXNet's / Gluon-CV's ``BilinearResize2D``, ``src = dst * (in - 1) / (out -
        1)``. False: PyTorch's ``F.interpolate(mode='bilinear', align_corners=False)``,
        ``src = (dst + 0.5) * in / out - 0.5`` clamped at 0. Indices past the last pixel
        are clamped in both.

    Returns
    -------
    4-D tensor
        (B, C, H', W') of ``input``'s dtype.
    """
    mode = "align_corners" if align_corners else "half_pixel"
    return BilinearResize(mode)(input, _size_argument(size))


def bilinear_upsampling(input, ratio=None, frac_ratio=None, batch_size=None,
                        num_input_channels=None, use_1D_kernel=True):
    """Theano 1.0.5's bilinear upsampling by an integer ``ratio`` (same numbers, one op).

    Theano pads the input with a copy of its border rows and columns and applies a
    transposed convolution with a triangle kernel; that is the linear interpolation of
    :func:`._resize_cpu.source_coordinates` (mode ``'theano'``), run here by
    :class:`BilinearResize`. For even ratios the result is shifted by half an output pixel
    (Theano's note: the last row and column are repeated once more than the first).

    Parameters
    ----------
    input : 4-D tensor
        (batch, channels, rows, columns).
    ratio : int
        The upsampling factor of both spatial dimensions; the output is
        (B, C, rows * ratio, columns * ratio).
    frac_ratio : None
        Fractional ratios are not supported here (``NotImplementedError``).
    batch_size, num_input_channels : int, optional
        Theano's shape hints; checked against the input's static shape, else unused.
    use_1D_kernel : bool
        Theano's choice of two 1-D or one 2-D convolution, which gives the same result;
        unused.

    Returns
    -------
    4-D tensor
    """
    if ratio and frac_ratio:
        raise ValueError("can't use ratio and frac_ratio together")
    if not (ratio or frac_ratio):
        raise ValueError("No ratio (or frac_ratio) provided")
    if frac_ratio:
        raise NotImplementedError(
            "bilinear_upsampling: fractional ratios (frac_ratio) are not supported; use "
            "bilinear_resize for arbitrary sizes")
    if isinstance(ratio, Variable) or not isinstance(ratio, (int, np.integer)) or ratio < 1:
        raise TypeError(f"bilinear_upsampling: ratio must be a positive int, got {ratio!r}")
    input = as_float_tensor(input, 4, "the input", "bilinear_upsampling")
    for hint, static, role in ((batch_size, input.type.shape[0], "batch_size"),
                               (num_input_channels, input.type.shape[1], "num_input_channels")):
        if None not in (hint, static) and hint != static:
            raise ValueError(f"bilinear_upsampling: {role}={hint} contradicts the input's "
                             f"shape {input.type.shape}")
    known = input.type.shape[2:]
    if None not in known:
        size = pt.constant(np.array([known[0] * ratio, known[1] * ratio], dtype="int64"))
    else:
        # a reference tensor of the output's size keeps JAX's shapes static
        size = _UpsamplingReference(int(ratio))(input)
    return BilinearResize("theano")(input, size)


class _UpsamplingReference(Op):
    """An empty-channel (B, 0, H * ratio, W * ratio) tensor: a reference for the size of
    :func:`bilinear_upsampling` whose shape JAX knows at trace time."""

    __props__ = ("ratio",)

    def __init__(self, ratio):
        self.ratio = int(ratio)

    def make_node(self, input):
        shape = (input.type.shape[0], 0,
                 *(None if s is None else s * self.ratio for s in input.type.shape[2:]))
        return Apply(self, [input], [pt.TensorType(input.type.dtype, shape=shape)()])

    def perform(self, node, inputs, output_storage):
        (x,) = inputs
        output_storage[0][0] = np.empty(self.output_shape(x.shape), dtype=x.dtype)

    def output_shape(self, shape):
        return (shape[0], 0, shape[2] * self.ratio, shape[3] * self.ratio)

    def infer_shape(self, *args):
        node, shapes = infer_shape_arguments(args)
        (shape,) = shapes
        return [(shape[0], 0, shape[2] * self.ratio, shape[3] * self.ratio)]

    def connection_pattern(self, node):
        return [[False]]

    def pullback(self, inputs, outputs, cotangents):
        return [disconnected_type()]


def grid_axis(length, dtype):
    """``length`` evenly spaced values from -1 to 1, as Lasagne's ``_linspace`` computes
    them in ``dtype``: ``arange(length) * step + (-1)`` with ``step = 2 / (length - 1)``
    (-1 alone when ``length == 1``, where Lasagne divides by zero)."""
    dtype = np.dtype(dtype)
    if length == 1:
        return np.array([-1], dtype=dtype)
    step = dtype.type(2) / dtype.type(length - 1)
    return np.arange(length, dtype=dtype) * step + dtype.type(-1)


def _grid_hw(op, in_hw):
    return tuple(None if s is None else int(s // f)
                 for s, f in zip(in_hw, op.downsample_factor))


class SamplingGrid(Op):
    """The (2, H', W') target grid of a spatial transformer: ``x_t`` then ``y_t``.

    ``SamplingGrid(downsample_factor)(reference)`` for a (B, C, H, W) ``reference`` is the
    grid of Lasagne's ``_meshgrid``: ``H' = int(H // factor[0])``, ``W' = int(W //
    factor[1])``, ``x_t[i, j] = grid_axis(W')[j]``, ``y_t[i, j] = grid_axis(H')[i]``, in
    ``reference``'s dtype. As an op, its shape is static under JAX for any input size.
    """

    __props__ = ("downsample_factor",)

    def __init__(self, downsample_factor):
        factors = tuple(float(f) for f in downsample_factor)
        if len(factors) != 2 or min(factors) <= 0:
            raise ValueError(
                f"downsample_factor must be two positive numbers, got {downsample_factor!r}")
        self.downsample_factor = factors

    def make_node(self, reference):
        reference = as_float_tensor(reference, 4, "the reference", type(self).__name__)
        out_hw = _grid_hw(self, reference.type.shape[2:])
        self._check(out_hw, reference.type.shape[2:])
        out_type = pt.TensorType(reference.type.dtype, shape=(2, *out_hw))
        return Apply(self, [reference], [out_type()])

    def _check(self, out_hw, in_hw):
        if any(s is not None and s < 1 for s in out_hw):
            raise ValueError(
                f"{type(self).__name__}: an input of spatial size {tuple(in_hw)} with "
                f"downsample_factor {self.downsample_factor} gives an empty output {out_hw}")

    def grid(self, in_hw, dtype):
        """The grid for an input of spatial size ``in_hw``, as a NumPy array."""
        out_h, out_w = _grid_hw(self, in_hw)
        self._check((out_h, out_w), in_hw)
        grid = np.empty((2, out_h, out_w), dtype=dtype)
        grid[0] = grid_axis(out_w, dtype)[None, :]
        grid[1] = grid_axis(out_h, dtype)[:, None]
        return grid

    def perform(self, node, inputs, output_storage):
        (reference,) = inputs
        with named_errors(node):
            output_storage[0][0] = self.grid(reference.shape[2:], reference.dtype)

    def infer_shape(self, *args):
        node, shapes = infer_shape_arguments(args)
        (shape,) = shapes
        return [(2, *(pt.cast(s // f, "int64") for s, f in zip(shape[2:],
                                                                self.downsample_factor)))]

    def connection_pattern(self, node):
        return [[False]]

    def pullback(self, inputs, outputs, cotangents):
        return [disconnected_type()]


def sampling_grid(reference, downsample_factor=1):
    """The (2, H // f0, W // f1) target grid (``x_t``, ``y_t`` in [-1, 1]) of Lasagne's
    spatial transformers for a (B, C, H, W) ``reference``; see :class:`SamplingGrid`."""
    if np.ndim(downsample_factor) == 0:
        downsample_factor = (downsample_factor, downsample_factor)
    return SamplingGrid(tuple(downsample_factor))(reference)


register_numba_perform(BilinearResize)
register_numba_perform(BilinearResizeGrad)
register_numba_perform(_UpsamplingReference)
register_numba_perform(SamplingGrid)
