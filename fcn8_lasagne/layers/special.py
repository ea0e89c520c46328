"""Layers applying an elementwise function or a learned bias/scale."""

import numpy as np
import pytensor
import pytensor.tensor as pt

from .. import init, nonlinearities
from ..ops.resize import sampling_grid
from ..ops.fill import full_like
from ..random import get_rng
from ..utils import _set_default_update, as_tuple, floatX, int_types
from .base import Layer, MergeLayer

__all__ = ["NonlinearityLayer", "BiasLayer", "ScaleLayer", "standardize", "ExpressionLayer",
           "InverseLayer", "ParametricRectifierLayer", "prelu", "RandomizedRectifierLayer",
           "rrelu"]


class NonlinearityLayer(Layer):
    """Applies ``nonlinearity`` to its input (``None`` means linear).

    FCN-8 uses it for the row softmax over ``(B·H·W, C)`` scores.
    """

    def __init__(self, incoming, nonlinearity=nonlinearities.rectify, **kwargs):
        super().__init__(incoming, **kwargs)
        self.nonlinearity = nonlinearities.identity if nonlinearity is None else nonlinearity

    def get_output_for(self, input, **kwargs):
        return self.nonlinearity(input)


def _per_axis_parameter_shape(layer, shared_axes, kind):
    """Resolve ``shared_axes`` ('auto' = all but the second) and the parameter's shape."""
    if shared_axes == "auto":
        shared_axes = (0,) + tuple(range(2, len(layer.input_shape)))
    elif isinstance(shared_axes, int):
        shared_axes = (shared_axes,)
    shape = [size for axis, size in enumerate(layer.input_shape) if axis not in shared_axes]
    if any(size is None for size in shape):
        raise ValueError(f"{kind} needs specified input sizes for all axes that its "
                         "parameters are not shared over.")
    return shared_axes, shape


def _broadcast_pattern(shared_axes, ndim):
    axes = iter(range(ndim - len(shared_axes)))
    return ["x" if axis in shared_axes else next(axes) for axis in range(ndim)]


class BiasLayer(Layer):
    """Adds a learned bias, shared over ``shared_axes`` (default all but the second)."""

    def __init__(self, incoming, b=init.Constant(0), shared_axes="auto", **kwargs):
        super().__init__(incoming, **kwargs)
        self.shared_axes, shape = _per_axis_parameter_shape(self, shared_axes, "BiasLayer")
        self.b = None if b is None else self.add_param(b, shape, "b", regularizable=False)

    def get_output_for(self, input, **kwargs):
        if self.b is None:
            return input
        return input + self.b.dimshuffle(*_broadcast_pattern(self.shared_axes, input.ndim))


class ScaleLayer(Layer):
    """Multiplies by a learned scale, shared over ``shared_axes`` (default all but the second)."""

    def __init__(self, incoming, scales=init.Constant(1), shared_axes="auto", **kwargs):
        super().__init__(incoming, **kwargs)
        self.shared_axes, shape = _per_axis_parameter_shape(self, shared_axes, "ScaleLayer")
        self.scales = self.add_param(scales, shape, "scales", regularizable=False)

    def get_output_for(self, input, **kwargs):
        return input * self.scales.dimshuffle(*_broadcast_pattern(self.shared_axes, input.ndim))


def standardize(layer, offset, scale, shared_axes="auto"):
    """Subtract a fixed ``offset`` and divide by a fixed ``scale`` (e.g. a training set's
    mean and standard deviation), shared over ``shared_axes``.

    A :class:`BiasLayer` with ``b = -offset`` and a :class:`ScaleLayer` with
    ``scales = 1 / scale``, whose parameters lose the ``trainable`` tag (they stay in
    :func:`get_all_params`, so they are saved with the weights).

    Parameters
    ----------
    layer : Layer or tuple
    offset : numpy.ndarray or shared variable
    scale : numpy.ndarray or shared variable
    shared_axes : 'auto', int or tuple of int
        As for :class:`BiasLayer` (``'auto'``: all axes but the second).

    Returns
    -------
    ScaleLayer
    """
    layer = BiasLayer(layer, -offset, shared_axes)
    layer.params[layer.b].remove("trainable")
    layer = ScaleLayer(layer, floatX(1.0) / scale, shared_axes)
    layer.params[layer.scales].remove("trainable")
    return layer


class ExpressionLayer(Layer):
    """Applies an arbitrary ``function(input)``.

    Parameters
    ----------
    incoming : Layer or tuple
    function : callable
        Maps the input expression to the output expression.
    output_shape : None, tuple, callable or 'auto'
        None: the input's shape; a tuple (may hold None): that shape for any input; a
        callable: called with the input shape (it replaces ``get_output_shape_for``, as in
        Lasagne); ``'auto'``: ``function`` is evaluated on zeros of the input shape with
        0 for every unknown size, and output sizes of 0 become None.

    Notes
    -----
    With ``'auto'`` the zeros are floatX (Lasagne's ``T.alloc(0, ...)`` was int8), so
    that functions defined only on floats work too; the shape each input shape gives is
    remembered. A size PyTensor computes from a zero size is None too: e.g.
    ``X.flatten(2)`` of ``(None, 3, 5)`` gives ``(None, None)`` (PyTensor infers the
    ``-1`` of its reshape from the total size, Theano multiplied the trailing sizes).
    """

    def __init__(self, incoming, function, output_shape=None, **kwargs):
        super().__init__(incoming, **kwargs)
        if output_shape is None or (isinstance(output_shape, str) and output_shape == "auto"):
            self._output_shape = output_shape
        elif callable(output_shape):
            self._output_shape = None
            self.get_output_shape_for = output_shape
        else:
            self._output_shape = tuple(output_shape)
        self.function = function
        self._auto_shapes = {}

    def get_output_shape_for(self, input_shape):
        if self._output_shape is None:
            return input_shape
        if isinstance(self._output_shape, str):
            input_shape = tuple(input_shape)
            if input_shape not in self._auto_shapes:
                dummy = pt.zeros(tuple(0 if s is None else s for s in input_shape),
                                 dtype=pytensor.config.floatX)
                with np.errstate(divide="ignore", invalid="ignore"):  # zero sizes on purpose
                    shape = pytensor.function([], self.function(dummy).shape,
                                              mode="FAST_COMPILE")()
                self._auto_shapes[input_shape] = tuple(int(s) if s else None for s in shape)
            return self._auto_shapes[input_shape]
        return self._output_shape

    def get_output_for(self, input, **kwargs):
        return self.function(input)


class InverseLayer(MergeLayer):
    """The gradient of ``layer`` with respect to its input, applied to ``incoming``.

    ``pytensor.grad(None, wrt=layer_input, known_grads={layer_output: incoming})``: a
    transposed :class:`DenseLayer`, a transposed convolution for a convolution, an
    unpooling for a max pool; a nonlinearity and a bias of ``layer`` are differentiated
    too. Useful for auto-encoders with tied weights.

    Parameters
    ----------
    incoming : Layer or tuple
        Of ``layer``'s output shape.
    layer : Layer
        The layer to invert; its input layer is this layer's third input.

    Notes
    -----
    The output shape is ``layer``'s input shape; ``input_layers`` are
    ``[incoming, layer, layer.input_layer]``, as in Lasagne.
    """

    def __init__(self, incoming, layer, **kwargs):
        super().__init__([incoming, layer, layer.input_layer], **kwargs)

    def get_output_shape_for(self, input_shapes):
        return input_shapes[2]

    def get_output_for(self, inputs, **kwargs):
        input, layer_out, layer_in = inputs
        return pytensor.grad(None, wrt=layer_in, known_grads={layer_out: input})


def _relu(x, alpha):
    """Theano's ``nnet.relu(x, alpha)``: ``0.5 * (1 + alpha) * x + 0.5 * (1 - alpha) * |x|``
    (the identity's and the absolute value's halves, so the gradient at 0 is their mean).
    A number ``alpha`` becomes a constant first (floatX for a Python float), so the two
    factors are computed in its dtype, as Theano did."""
    alpha = pt.as_tensor_variable(alpha)
    return 0.5 * (1 + alpha) * x + 0.5 * (1 - alpha) * abs(x)


def _resolve_shared_axes(shared_axes, ndim):
    if isinstance(shared_axes, str) and shared_axes == "auto":
        return (0,) + tuple(range(2, ndim))
    if isinstance(shared_axes, str) and shared_axes == "all":
        return tuple(range(ndim))
    if isinstance(shared_axes, int_types):
        return (shared_axes,)
    return shared_axes


class ParametricRectifierLayer(Layer):
    """Parametric rectifier (PReLU, He et al. 2015): ``max(x, 0) + alpha * min(x, 0)``
    with a learned ``alpha`` shared over ``shared_axes``.

    Computed as Theano's ``relu(x, alpha)``:
    ``0.5 * (1 + alpha) * x + 0.5 * (1 - alpha) * abs(x)``.

    Parameters
    ----------
    incoming : Layer or tuple
    alpha : default Constant(0.25)
        Shape: the input's without ``shared_axes``; trainable, not regularizable.
    shared_axes : 'auto', 'all', int or tuple of int
        ``'auto'``: all axes but the second (one slope per channel); ``'all'``: one
        scalar slope.
    """

    def __init__(self, incoming, alpha=init.Constant(0.25), shared_axes="auto", **kwargs):
        super().__init__(incoming, **kwargs)
        self.shared_axes = _resolve_shared_axes(shared_axes, len(self.input_shape))
        shape = [size for axis, size in enumerate(self.input_shape)
                 if axis not in self.shared_axes]
        if any(size is None for size in shape):
            raise ValueError("ParametricRectifierLayer needs input sizes for all axes that "
                             "alpha's are not shared over.")
        self.alpha = self.add_param(alpha, shape, name="alpha", regularizable=False)

    def get_output_for(self, input, **kwargs):
        axes = iter(range(self.alpha.ndim))
        pattern = ["x" if axis in self.shared_axes else next(axes)
                   for axis in range(input.ndim)]
        return _relu(input, self.alpha.dimshuffle(pattern))


def _steal_nonlinearity(layer):
    if getattr(layer, "nonlinearity", None) is not None:
        layer.nonlinearity = nonlinearities.identity


def prelu(layer, **kwargs):
    """Replace ``layer``'s nonlinearity by a :class:`ParametricRectifierLayer` on top.

    Parameters
    ----------
    layer : Layer
        Its nonlinearity (if any) becomes the identity.
    **kwargs
        Passed to :class:`ParametricRectifierLayer`.

    Returns
    -------
    ParametricRectifierLayer
    """
    _steal_nonlinearity(layer)
    return ParametricRectifierLayer(layer, **kwargs)


class RandomizedRectifierLayer(Layer):
    """Randomized leaky rectifier (RReLU, Xu et al. 2015).

    Training: ``relu(x, a)`` (Theano's form, as :class:`ParametricRectifierLayer`) with
    slopes ``a ~ U(lower, upper)`` drawn afresh at every call, one per position of the
    axes not in ``shared_axes``; ``deterministic=True`` (or ``lower == upper``) uses
    ``(lower + upper) / 2``.

    Parameters
    ----------
    incoming : Layer or tuple
    lower : float or symbolic scalar, default 0.3
    upper : float or symbolic scalar, default 0.8
        ``lower > upper`` (both numbers) raises ``ValueError``.
    shared_axes : 'auto', 'all', int or tuple of int
        ``'auto'``: all axes but the second; ``'all'``: a single slope.

    Notes
    -----
    The slopes are floatX draws from a NumPy generator seeded from
    :func:`fcn8_lasagne.random.get_rng` when the layer is built (Lasagne: Theano's MRG
    generator; the same distribution, other numbers).
    """

    def __init__(self, incoming, lower=0.3, upper=0.8, shared_axes="auto", **kwargs):
        super().__init__(incoming, **kwargs)
        self._rng = pytensor.shared(np.random.default_rng(get_rng().randint(1, 2147462579)))
        self.lower = lower
        self.upper = upper
        greater = lower > upper
        if not isinstance(greater, pytensor.graph.basic.Variable) and greater:
            raise ValueError("Upper bound for RandomizedRectifierLayer needs to be higher "
                             "than lower bound.")
        self.shared_axes = _resolve_shared_axes(shared_axes, len(self.input_shape))

    def get_output_for(self, input, deterministic=False, **kwargs):
        if deterministic or self.upper == self.lower:
            return _relu(input, (self.upper + self.lower) / 2.0)
        dtype = pytensor.config.floatX
        axes = {a if a >= 0 else a + input.ndim for a in self.shared_axes}
        # bounds shaped like one slice of the input, so the draw's shape stays static
        # under JAX
        shape_source = input[tuple(slice(0, 1) if a in axes else slice(None)
                                   for a in range(input.ndim))]
        lows = full_like(shape_source, 0, dtype=dtype) + pt.cast(self.lower, dtype)
        if axes:
            lows = pt.specify_broadcastable(lows, *sorted(axes))
        next_rng, slopes = pt.random.uniform(lows, pt.cast(self.upper, dtype), rng=self._rng,
                                             dtype=dtype, return_next_rng=True)
        _set_default_update(self._rng, next_rng)
        return _relu(input, slopes)


def rrelu(layer, **kwargs):
    """Replace ``layer``'s nonlinearity by a :class:`RandomizedRectifierLayer` on top.

    Parameters
    ----------
    layer : Layer
        Its nonlinearity (if any) becomes the identity.
    **kwargs
        Passed to :class:`RandomizedRectifierLayer`.

    Returns
    -------
    RandomizedRectifierLayer
    """
    _steal_nonlinearity(layer)
    return RandomizedRectifierLayer(layer, **kwargs)


# --- spatial transformers (Lasagne's TransformerLayer, TPSTransformerLayer) ---------------

_BORDER_MODES = ("nearest", "mirror", "wrap")


def _check_border_mode(border_mode):
    if border_mode not in _BORDER_MODES:
        raise ValueError("border_mode must be one of 'nearest', 'mirror', 'wrap', got "
                         f"{border_mode!r}")
    return border_mode


def _layer_label(layer):
    return f"{type(layer).__name__} {layer.name!r}" if layer.name else type(layer).__name__


def _check_transformer_shapes(layer, units, what):
    input_shape, loc_shape = layer.input_shapes
    if len(loc_shape) != 2 or loc_shape[-1] != units:
        raise ValueError(
            f"{_layer_label(layer)}: The localization network must have output shape: "
            f"(batch_size, {what}), got {loc_shape}")
    if len(input_shape) != 4:
        raise ValueError(
            f"{_layer_label(layer)}: The input network must have a 4-dimensional output "
            "shape: (batch_size, num_input_channels, input_rows, input_columns), got "
            f"{input_shape}")


def _transformed_shape(shape, factors):
    return tuple(shape[:2]) + tuple(None if s is None else int(s // f)
                                    for s, f in zip(shape[2:], factors))


def _source_index(coordinate, size, border_mode):
    """Integer pixel index for a float index ``coordinate`` (floor or floor + 1) on an axis of
    ``size`` pixels (a float scalar): clipped, mirrored or wrapped as in Lasagne."""
    if border_mode == "nearest":
        index = pt.clip(coordinate, 0, size - 1)
    elif border_mode == "mirror":
        period = 2 * (size - 1)
        index = pt.minimum(coordinate % period, -coordinate % period)
    else:
        index = coordinate % size
    return pt.cast(index, "int64")


def _interpolate(im, x, y, border_mode):
    """Bilinear samples of ``im`` (B, H, W, C) at the normalised points ``x``, ``y``
    (B, H', W', in [-1, 1] across the image): a (B, H', W', C) tensor.

    Lasagne's ``_interpolate``: the four neighbours' weights use the unclipped floor and
    floor + 1, their indices follow ``border_mode``; gradients flow to ``x`` and ``y``
    through the weights and to ``im`` through the gathers.
    """
    height = pt.cast(im.shape[1], x.dtype)
    width = pt.cast(im.shape[2], x.dtype)
    x = (x + 1) / 2 * (width - 1)
    y = (y + 1) / 2 * (height - 1)
    x0_f = pt.floor(x)
    y0_f = pt.floor(y)
    x1_f = x0_f + 1
    y1_f = y0_f + 1
    x0, x1 = (_source_index(v, width, border_mode) for v in (x0_f, x1_f))
    y0, y1 = (_source_index(v, height, border_mode) for v in (y0_f, y1_f))
    batch = pt.arange(im.shape[0], dtype="int64")[:, None, None]
    pixel_a = im[batch, y0, x0]
    pixel_b = im[batch, y1, x0]
    pixel_c = im[batch, y0, x1]
    pixel_d = im[batch, y1, x1]
    weight_a = ((x1_f - x) * (y1_f - y))[..., None]
    weight_b = ((x1_f - x) * (y - y0_f))[..., None]
    weight_c = ((x - x0_f) * (y1_f - y))[..., None]
    weight_d = ((x - x0_f) * (y - y0_f))[..., None]
    return weight_a * pixel_a + weight_b * pixel_b + weight_c * pixel_c + weight_d * pixel_d


def _sample(input, x, y, border_mode):
    """``input`` (B, C, H, W) sampled at ``x``, ``y`` (B, H', W'): (B, C, H', W')."""
    output = _interpolate(input.dimshuffle(0, 2, 3, 1), x, y, border_mode)
    return output.dimshuffle(0, 3, 1, 2)


class TransformerLayer(MergeLayer):
    """Spatial transformer layer with an affine transformation (Jaderberg et al., 2015).

    The output grid ``(x_t, y_t)``, ``H // f0`` by ``W // f1`` points spaced evenly over
    [-1, 1], is mapped by the 2x3 matrix ``theta`` that ``localization_network`` gives for
    each example (row-major, ``[t1..t6]``: t1 and t5 zoom, t2 and t4 skew, t3 and t6 move)
    to source points, where the input is sampled bilinearly.

    Parameters
    ----------
    incoming : Layer or tuple
        The input, (batch_size, num_input_channels, input_rows, input_columns).
    localization_network : Layer
        Gives ``theta``, (batch_size, 6). Initialise it to ``[1, 0, 0, 0, 1, 0]`` (with a
        linear output) for the identity transform.
    downsample_factor : float or pair of floats
        The output has ``int(rows // f0)`` rows and ``int(columns // f1)`` columns; values
        below 1 upsample.
    border_mode : {'nearest', 'mirror', 'wrap'}
        Source points outside the input are clipped to its border, mirrored across it, or
        wrapped around.
    **kwargs
        ``name``.

    Notes
    -----
    The grid is an op (:func:`fcn8_lasagne.ops.resize.sampling_grid`) of the input, so its
    shape is static under JAX for any input size. An invalid ``border_mode`` is refused
    here at construction (Lasagne: when the output is built). For an output dimension of 1
    the grid is -1 where Lasagne's divides by zero (NaN).
    """

    def __init__(self, incoming, localization_network, downsample_factor=1,
                 border_mode="nearest", **kwargs):
        super().__init__([incoming, localization_network], **kwargs)
        self.downsample_factor = as_tuple(downsample_factor, 2)
        self.border_mode = border_mode
        _check_transformer_shapes(self, 6, "6")
        _check_border_mode(border_mode)

    def get_output_shape_for(self, input_shapes):
        return _transformed_shape(input_shapes[0], self.downsample_factor)

    def get_output_for(self, inputs, **kwargs):
        input, theta = inputs
        return _transform_affine(theta, input, self.downsample_factor, self.border_mode)


def _transform_affine(theta, input, downsample_factor, border_mode):
    # theta's rows of the 2x3 matrix taken by column: no reshape, whose inferred batch size
    # (a division of sizes) JAX could not trace as static
    grid = sampling_grid(input, downsample_factor)
    x_t, y_t = grid[0][None], grid[1][None]

    def row(i):
        return (theta[:, 3 * i, None, None] * x_t + theta[:, 3 * i + 1, None, None] * y_t
                + theta[:, 3 * i + 2, None, None])

    return _sample(input, row(0), row(1), _check_border_mode(border_mode))


def _thin_plate_kernel(squared_distance):
    """Bookstein's ``U = r^2 log r^2`` of squared distances (symbolic), 0 where they are 0."""
    positive = squared_distance > 0
    return pt.switch(positive, squared_distance * pt.log(pt.switch(positive, squared_distance, 1)),
                     0)


def _thin_plate_kernel_numpy(squared_distance):
    """:func:`_thin_plate_kernel` in NumPy, in the dtype of ``squared_distance``."""
    with np.errstate(divide="ignore", invalid="ignore"):
        values = squared_distance * np.log(squared_distance)
    return np.where(squared_distance > 0, values, 0).astype(squared_distance.dtype)


def _initialize_tps(num_control_points, input_shape, downsample_factor, precompute_grid):
    """Control points, the inverse of Bookstein's L matrix and (if ``precompute_grid``)
    the (num_control_points + 3, H' * W') matrix that maps coefficients to grid points, in
    floatX as Lasagne computes them."""
    dtype = pytensor.config.floatX
    grid_size = int(round(np.sqrt(num_control_points)))
    axis = np.linspace(-1, 1, grid_size)
    x_control, y_control = np.meshgrid(axis, axis)
    source_points = np.vstack((x_control.ravel(), y_control.ravel())).astype(dtype)
    count = num_control_points + 3
    L = np.zeros((count, count), dtype=dtype)
    L[0, 3:] = 1
    L[1:3, 3:] = source_points
    L[3:, 0] = 1
    L[3:, 1:3] = source_points.T
    difference = source_points[:, :, None] - source_points[:, None, :]
    L[3:, 3:] = _thin_plate_kernel_numpy((difference ** 2).sum(axis=0))
    L_inv = np.linalg.inv(L)
    right_mat = out_height = out_width = None
    if precompute_grid:
        out_height = int(input_shape[2] // downsample_factor[0])
        out_width = int(input_shape[3] // downsample_factor[1])
        x_t, y_t = np.meshgrid(np.linspace(-1, 1, out_width), np.linspace(-1, 1, out_height))
        grid = np.vstack((x_t.ravel(), y_t.ravel())).astype(dtype)
        squared = ((grid[None, :, :] - source_points.T[:, :, None]) ** 2).sum(axis=1)
        right_mat = np.concatenate(
            [np.ones((1, grid.shape[1]), dtype=dtype), grid, _thin_plate_kernel_numpy(squared)])
    return right_mat, L_inv, source_points, out_height, out_width


class TPSTransformerLayer(MergeLayer):
    """Spatial transformer layer with a thin plate spline transformation (Bookstein, 1989).

    ``control_points`` source points on an even grid over [-1, 1]^2 move by the offsets
    that ``localization_network`` gives, (batch_size, 2 * control_points): all x offsets,
    then all y offsets. The thin plate spline through them maps the output grid to source
    points, where the input is sampled bilinearly. Zero offsets give the identity.

    Parameters
    ----------
    incoming : Layer or tuple
        The input, (batch_size, num_input_channels, input_rows, input_columns).
    localization_network : Layer
        Gives the offsets, (batch_size, 2 * control_points).
    downsample_factor : float or pair of floats
        As for :class:`TransformerLayer`.
    control_points : int
        A perfect square (default 16).
    precompute_grid : 'auto' or bool
        Compute the spline basis of the output grid in NumPy at construction (needs the
        input's rows and columns; 'auto': when they are known) rather than in the graph.
    border_mode : {'nearest', 'mirror', 'wrap'}
    **kwargs
        ``name``.

    Notes
    -----
    With ``precompute_grid=False`` Lasagne's graph drops the spline's radial terms (its
    ``T.switch(T.isnan(log r^2), ...)`` is always 0), so only the affine part of the
    spline acted; here both settings compute the same spline, as Lasagne documents. An
    invalid ``border_mode`` is refused at construction. ``right_mat``, ``L_inv`` and
    ``source_points`` are NumPy arrays and ``out_height``, ``out_width`` ints (Lasagne:
    constant tensors), with Lasagne's values.
    """

    def __init__(self, incoming, localization_network, downsample_factor=1,
                 control_points=16, precompute_grid="auto", border_mode="nearest", **kwargs):
        super().__init__([incoming, localization_network], **kwargs)
        self.border_mode = border_mode
        self.downsample_factor = as_tuple(downsample_factor, 2)
        self.control_points = control_points
        input_shape = self.input_shapes[0]
        _check_transformer_shapes(self, 2 * control_points, "2*control_points")
        if round(np.sqrt(control_points)) ** 2 != control_points:
            raise ValueError(f"{_layer_label(self)}: The number of control points must be a "
                             f"perfect square, got {control_points}.")
        _check_border_mode(border_mode)
        can_precompute = all(s is not None for s in input_shape[2:])
        if precompute_grid == "auto":
            precompute_grid = can_precompute
        elif precompute_grid and not can_precompute:
            raise ValueError(f"{_layer_label(self)}: Grid can only be precomputed if the input "
                             f"height and width are pre-specified, got {input_shape}.")
        self.precompute_grid = precompute_grid
        (self.right_mat, self.L_inv, self.source_points, self.out_height,
         self.out_width) = _initialize_tps(control_points, input_shape,
                                           self.downsample_factor, precompute_grid)

    def get_output_shape_for(self, input_shapes):
        return _transformed_shape(input_shapes[0], self.downsample_factor)

    def get_output_for(self, inputs, **kwargs):
        input, dest_offsets = inputs
        return _transform_thin_plate_spline(
            dest_offsets, input, self.right_mat, self.L_inv, self.source_points,
            self.out_height, self.out_width, self.precompute_grid, self.downsample_factor,
            self.border_mode)


def _transform_thin_plate_spline(dest_offsets, input, right_mat, L_inv, source_points,
                                 out_height, out_width, precompute_grid, downsample_factor,
                                 border_mode):
    count = source_points.shape[1]
    to_coefficients = pt.constant(L_inv[:, 3:].T)
    coordinates = []
    for axis in (0, 1):  # x, then y: the destination points and their spline coefficients
        dest = pt.constant(source_points[axis]) + dest_offsets[:, axis * count:(axis + 1) * count]
        coefficients = pt.dot(dest, to_coefficients)  # (B, count + 3): 1, x, y, radial
        if precompute_grid:
            points = pt.dot(coefficients, pt.constant(right_mat))
            points = points.reshape((input.shape[0], out_height, out_width))
        else:
            grid = sampling_grid(input, downsample_factor)
            x_t, y_t = grid[0], grid[1]
            squared = ((x_t[None] - source_points[0][:, None, None]) ** 2
                       + (y_t[None] - source_points[1][:, None, None]) ** 2)
            radial = _thin_plate_kernel(squared)[None]  # (1, count, H', W')
            points = (coefficients[:, 0, None, None] + coefficients[:, 1, None, None] * x_t[None]
                      + coefficients[:, 2, None, None] * y_t[None]
                      + (coefficients[:, 3:, None, None] * radial).sum(axis=1))
        coordinates.append(points)
    return _sample(input, coordinates[0], coordinates[1], _check_border_mode(border_mode))


__all__ += ["TransformerLayer", "TPSTransformerLayer"]
