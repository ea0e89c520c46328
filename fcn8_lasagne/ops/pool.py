"""Theano's 2-D pooling ops (``theano.tensor.signal.pool``) rebuilt for PyTensor.

PyTensor dropped Theano's pooling ops; this module brings back :func:`pool_2d` with Theano
1.0's arguments and CPU numerics:

- windows of ``ws`` rows and columns every ``stride`` rows and columns of the input padded
  with ``pad`` zeros on each side; with ``ignore_border=False`` the partial windows at the
  end of each axis are kept (clipped to the image);
- ``'max'`` takes the maximum over the window's *image* elements (the padding never wins,
  as in Theano's C code and as documented by Theano: "max and sum always exclude the
  padding"), ``'sum'`` the sum, ``'average_inc_pad'`` divides the sum by the size of the
  window clipped to the padded image and ``'average_exc_pad'`` by the size of the window
  clipped to the image itself;
- the max-pool gradient follows Theano's ``MaxPoolGrad``: *every* input equal to its
  window's maximum receives that window's gradient (ties are not broken, unlike PyTorch or
  ``jax.lax.reduce_window`` autodiff).

Four ops implement it, each with a vectorised NumPy ``perform``, shape inference, gradients
made of ops of this family (so that graphs of any derivative order compile on every backend)
and a JAX dispatch:

==========================  ==========================  ==================================
op                          inputs                      output
==========================  ==========================  ==================================
:class:`Pool2d`             ``x``                       the pooled ``z``
:class:`MaxPool2dGrad`      ``x``, ``z``, ``gz``        gradient with respect to ``x``
:class:`AveragePool2dGrad`  ``x``, ``gz``               gradient with respect to ``x``
:class:`MaxPool2dGradGrad`  ``x``, ``z``, ``ggx``       gradient of ``MaxPool2dGrad``
                                                        with respect to ``gz``
==========================  ==========================  ==================================

Window size, stride and padding are static ``__props__`` (Theano 1.0 also accepted symbolic
vectors; FCN-8 and Lasagne only pass ints), while the image size may stay unknown: a graph
built on ``pt.tensor4()`` runs for any input size.
"""

import warnings

import numpy as np
import pytensor.tensor as pt
from pytensor.gradient import DisconnectedType, disconnected_type
from pytensor.graph.basic import Apply
from pytensor.graph.op import Op
from pytensor.tensor.type import TensorType, float_dtypes

from ._backend import register_jax, register_numba_perform
from .shapes import pool_output_length

__all__ = [
    "pool_2d",
    "max_pool_2d_same_size",
    "Pool2d",
    "MaxPool2dGrad",
    "AveragePool2dGrad",
    "MaxPool2dGradGrad",
    "POOL_MODES",
]

#: The pooling modes, as Theano's ``Pool`` names them.
POOL_MODES = ("max", "sum", "average_inc_pad", "average_exc_pad")

# Other names Theano accepted: its CPU ``Pool`` turned 'max_deterministic' into 'max', and
# its GPU pooling op turned 'average' into 'average_inc_pad'.
_MODE_ALIASES = {"max_deterministic": "max", "average": "average_inc_pad"}


# --------------------------------------------------------------------------------------
# Argument checks shared by the ops and pool_2d
# --------------------------------------------------------------------------------------


def _int_pair(value, name, minimum):
    """Return ``value`` as a pair of Python ints, each at least ``minimum``."""
    if isinstance(value, pt.Variable):
        raise TypeError(f"{name} must be an int or a pair of ints (symbolic {name} is not "
                        f"supported), got {value}")
    pair = (value, value) if np.ndim(value) == 0 else tuple(value)
    if len(pair) != 2:
        raise ValueError(f"{name} must be an int or a pair of ints, got {value!r}")
    for item in pair:
        if isinstance(item, pt.Variable) or not isinstance(item, (int, np.integer)):
            raise TypeError(f"{name} must be an int or a pair of ints, got {value!r}")
        if isinstance(item, (bool, np.bool_)) or item < minimum:
            raise ValueError(f"{name} entries must be ints >= {minimum}, got {value!r}")
    return tuple(int(item) for item in pair)


def _canonical_mode(mode):
    """Map Theano's mode aliases to the four modes and reject anything else."""
    mode = _MODE_ALIASES.get(mode, mode)
    if mode not in POOL_MODES:
        raise ValueError(
            f"pooling mode must be one of {POOL_MODES} (or the Theano aliases "
            f"{tuple(_MODE_ALIASES)}), got {mode!r}"
        )
    return mode


def _pooling_geometry(ws, stride, pad, ignore_border):
    """Check and normalise the window geometry shared by every op of this module."""
    ws = _int_pair(ws, "ws", 1)
    stride = ws if stride is None else _int_pair(stride, "stride", 1)
    pad = _int_pair(pad, "pad", 0)
    if not isinstance(ignore_border, (bool, np.bool_)):
        raise TypeError(f"ignore_border must be True or False, got {ignore_border!r}")
    ignore_border = bool(ignore_border)
    if pad != (0, 0) and not ignore_border:
        raise ValueError(f"padding {pad} requires ignore_border=True (as in Theano)")
    if pad[0] >= ws[0] or pad[1] >= ws[1]:
        raise ValueError(
            f"padding {pad} must be smaller than the pooling window {ws} (as in Theano)"
        )
    return ws, stride, pad, ignore_border


def _as_image_batch(variable, role, op_name):
    """``variable`` as a 4-D floating-point tensor, or a clear TypeError."""
    variable = pt.as_tensor_variable(variable)
    if variable.type.ndim != 4:
        raise TypeError(
            f"{op_name} expects {role} as a 4-D (batch, channels, rows, columns) tensor, "
            f"got {variable.type.ndim} dimensions ({variable.type})"
        )
    if variable.type.dtype not in float_dtypes:
        raise TypeError(
            f"{op_name} expects {role} of a floating-point dtype, got {variable.type.dtype}"
        )
    return variable


def _check_same_dtype(reference, others, op_name):
    for role, variable in others.items():
        if variable.type.dtype != reference.type.dtype:
            raise TypeError(
                f"{op_name} expects {role} of dtype {reference.type.dtype} (the input's), "
                f"got {variable.type.dtype}"
            )


# --------------------------------------------------------------------------------------
# Window arithmetic along one axis (Python ints only)
# --------------------------------------------------------------------------------------


def _tap_slices(length, tap, stride, pad, n_out):
    """Where window tap ``tap`` lands in the image, for every output position it reaches.

    Output position ``i`` reads padded coordinate ``i * stride + tap``, i.e. image
    coordinate ``i * stride + tap - pad``. Returns ``(image_slice, output_slice)`` for the
    output positions whose tap falls inside the image, or ``None`` when there are none.
    """
    first = max(0, -((tap - pad) // stride))
    stop = min(n_out, (length - 1 + pad - tap) // stride + 1)
    if stop <= first:
        return None
    start = first * stride + tap - pad
    image_slice = slice(start, start + (stop - first - 1) * stride + 1, stride)
    return image_slice, slice(first, stop)


def _window_sizes(length, pool, stride, pad, n_out, mode):
    """Number of elements each window averages over along one axis (Theano's divisors).

    ``'average_inc_pad'`` counts the window clipped to the padded image, ``'average_exc_pad'``
    the window clipped to the image itself.
    """
    starts = np.arange(n_out) * stride
    ends = np.minimum(starts + pool, length + 2 * pad)
    if mode == "average_exc_pad":
        starts = np.maximum(starts, pad)
        ends = np.minimum(ends, length + pad)
    return ends - starts


def _average_divisor(image_shape, output_shape, ws, stride, pad, mode, dtype):
    """The (rows, columns) array of window sizes, in ``dtype``."""
    row_sizes = _window_sizes(image_shape[0], ws[0], stride[0], pad[0], output_shape[0], mode)
    col_sizes = _window_sizes(image_shape[1], ws[1], stride[1], pad[1], output_shape[1], mode)
    return np.multiply.outer(row_sizes, col_sizes).astype(dtype)


def _padded_extent(length, pool, stride, pad, n_out):
    """(before, after) padding of one axis so that every window lies inside the array."""
    covered = max(length + 2 * pad, (n_out - 1) * stride + pool) if n_out else length + 2 * pad
    return pad, covered - length - pad


# --------------------------------------------------------------------------------------
# NumPy kernels (loops run over window taps only)
# --------------------------------------------------------------------------------------


def _reduce_axis(x, axis, pool, stride, pad, n_out, ufunc, identity):
    """Pool along one axis: combine the ``pool`` taps of every window with ``ufunc``."""
    out_shape = list(x.shape)
    out_shape[axis] = n_out
    head = (slice(None),) * axis
    out = None
    for tap in range(pool):
        slices = _tap_slices(x.shape[axis], tap, stride, pad, n_out)
        if slices is None:
            continue
        image_slice, output_slice = slices
        taps = x[head + (image_slice,)]
        if out is None and output_slice == slice(0, n_out):
            out = taps.copy()
            continue
        if out is None:
            out = np.full(out_shape, identity, dtype=x.dtype)
        target = out[head + (output_slice,)]
        ufunc(target, taps, out=target)
    if out is None:
        out = np.full(out_shape, identity, dtype=x.dtype)
    return out


def _pool_forward(x, ws, stride, pad, ignore_border, mode):
    """Theano's ``Pool`` on an NCHW array, computed separably (columns, then rows)."""
    out_rows = pool_output_length(x.shape[2], ws[0], stride[0], pad[0], ignore_border)
    out_cols = pool_output_length(x.shape[3], ws[1], stride[1], pad[1], ignore_border)
    if mode == "max":
        ufunc, identity = np.maximum, -np.inf
    else:
        ufunc, identity = np.add, 0
    pooled = _reduce_axis(x, 3, ws[1], stride[1], pad[1], out_cols, ufunc, identity)
    pooled = _reduce_axis(pooled, 2, ws[0], stride[0], pad[0], out_rows, ufunc, identity)
    if mode.startswith("average"):
        pooled /= _average_divisor(
            x.shape[2:], (out_rows, out_cols), ws, stride, pad, mode, x.dtype
        )
    return pooled


def _tap_pairs(image_shape, output_shape, ws, stride, pad):
    """Yield ``(image_index, output_index)`` for every window tap that reaches the image."""
    for row_tap in range(ws[0]):
        rows = _tap_slices(image_shape[0], row_tap, stride[0], pad[0], output_shape[0])
        if rows is None:
            continue
        for col_tap in range(ws[1]):
            cols = _tap_slices(image_shape[1], col_tap, stride[1], pad[1], output_shape[1])
            if cols is None:
                continue
            yield (Ellipsis, rows[0], cols[0]), (Ellipsis, rows[1], cols[1])


def _windows_overlap(ws, stride):
    """Whether an image element can belong to several windows."""
    return stride[0] < ws[0] or stride[1] < ws[1]


def _max_pool_grad(x, z, gz, ws, stride, pad):
    """Theano's ``MaxPoolGrad``: every element equal to its window's max gets the gradient."""
    if _windows_tile(x.shape, z.shape, ws, stride, pad):
        return _tiled_max_pool_grad(x, z, gz, ws)
    gx = np.zeros_like(x)
    overlap = _windows_overlap(ws, stride)
    for image_index, output_index in _tap_pairs(x.shape[2:], z.shape[2:], ws, stride, pad):
        is_max = x[image_index] == z[output_index]
        if overlap:
            gx[image_index] += is_max * gz[output_index]
        else:  # each image element belongs to one window at most
            np.multiply(is_max, gz[output_index], out=gx[image_index])
    return gx


#: Bytes of image that one task of a blocked pooling kernel covers (fits in L2 with its
#: temporaries, and gives the pool threads many tasks on FCN-8's large layers).
_BLOCK_BYTES = 1 << 20


def _windows_tile(x_shape, z_shape, ws, stride, pad):
    """Whether every window is a whole block of the image: stride = window, no padding, no
    partial window at the border (``ignore_border=True``, or sizes that divide evenly)."""
    return (tuple(stride) == tuple(ws) and tuple(pad) == (0, 0)
            and z_shape[2] * ws[0] <= x_shape[2] and z_shape[3] * ws[1] <= x_shape[3])


def _tiled_max_pool_grad(x, z, gz, ws):
    """:func:`_max_pool_grad` when the windows tile the image (stride = window, no padding).

    FCN-8's case: every image element lies in at most one window, so each of the
    ``kh * kw`` taps compares a strided slice of the image with the maxima and writes its
    share of the gradient, with no temporaries but one reused mask. Blocks of channels run
    on the pool threads: the large temporaries of a whole-array version cost more in
    first-touch page faults than the arithmetic, and the blocks stay in cache across taps.
    """
    from ._threads import parallel_for, spans  # the package's thread pool

    batch, channels = x.shape[:2]
    (kh, kw), (oh, ow) = ws, z.shape[2:]
    gx = np.empty_like(x)
    # image rows and columns that no window covers (ignore_border) get no gradient
    gx[:, :, oh * kh:, :] = 0
    gx[:, :, :oh * kh, ow * kw:] = 0
    per_block = max(1, _BLOCK_BYTES // max(1, x[0, 0].nbytes))
    tasks = [(b, span) for b in range(batch) for span in spans(channels, per_block)]
    taps = [(slice(row, oh * kh, kh), slice(col, ow * kw, kw))
            for row in range(kh) for col in range(kw)]

    def block(task, masks):
        b, (start, stop) = task
        planes = (slice(b, b + 1), slice(start, stop))
        maxima, gradient = z[planes], gz[planes]
        mask = masks.get(maxima.shape)
        if mask is None:
            mask = masks[maxima.shape] = np.empty(maxima.shape, dtype=bool)
        for tap in taps:
            np.equal(x[planes + tap], maxima, out=mask)
            np.multiply(mask, gradient, out=gx[planes + tap])

    parallel_for(tasks, block, make_state=dict, flops=4.0 * x.size)
    return gx


def _average_pool_grad(x_shape, gz, ws, stride, pad, mode, dtype):
    """Gradient of the sum and average modes: spread each window's gradient over it."""
    if mode != "sum":
        gz = gz / _average_divisor(x_shape[2:], gz.shape[2:], ws, stride, pad, mode, dtype)
    gx = np.zeros(x_shape, dtype=dtype)
    overlap = _windows_overlap(ws, stride)
    for image_index, output_index in _tap_pairs(x_shape[2:], gz.shape[2:], ws, stride, pad):
        if overlap:
            gx[image_index] += gz[output_index]
        else:
            gx[image_index] = gz[output_index]
    return gx


def _max_pool_grad_grad(x, z, ggx, ws, stride, pad):
    """Theano's ``DownsampleFactorMaxGradGrad``: sum ``ggx`` over each window's maxima."""
    ggz = np.zeros_like(z)
    for image_index, output_index in _tap_pairs(x.shape[2:], z.shape[2:], ws, stride, pad):
        ggz[output_index] += (x[image_index] == z[output_index]) * ggx[image_index]
    return ggz


# --------------------------------------------------------------------------------------
# JAX dispatch: the same numerics with static shapes read from the traced arrays
# --------------------------------------------------------------------------------------


def _jax_spread(values, padded_shape, row_tap, col_tap, stride):
    """Scatter ``values[..., i, j]`` to ``(i * stride + row_tap, j * stride + col_tap)``.

    The result has the padded image's shape and zeros elsewhere (``lax.pad`` with interior
    padding: no scatter op).
    """
    from jax import lax

    rows, cols = values.shape[2:]
    zero = np.zeros((), dtype=values.dtype)
    config = (
        (0, 0, 0),
        (0, 0, 0),
        (row_tap, padded_shape[0] - row_tap - (rows - 1) * stride[0] - 1, stride[0] - 1),
        (col_tap, padded_shape[1] - col_tap - (cols - 1) * stride[1] - 1, stride[1] - 1),
    )
    return lax.pad(values, zero, config)


def _jax_taps(padded, row_tap, col_tap, output_shape, stride):
    """The padded array's elements read by tap ``(row_tap, col_tap)`` of every window."""
    from jax import lax

    batch, channels = padded.shape[:2]
    limit = (
        batch,
        channels,
        row_tap + (output_shape[0] - 1) * stride[0] + 1,
        col_tap + (output_shape[1] - 1) * stride[1] + 1,
    )
    return lax.slice(padded, (0, 0, row_tap, col_tap), limit, (1, 1) + stride)


def _jax_padding(op, image_shape, output_shape):
    """Per spatial axis, the (before, after) padding that holds every window of ``op``."""
    return tuple(
        _padded_extent(image_shape[axis], op.ws[axis], op.stride[axis], op.pad[axis],
                       output_shape[axis])
        for axis in range(2)
    )


def _jax_pad(array, padding, value):
    """Pad the two spatial axes of an NCHW array with ``value``."""
    import jax.numpy as jnp

    return jnp.pad(array, ((0, 0), (0, 0)) + padding, constant_values=value)


def _jax_pool2d(op, node=None):
    """JAX version of :class:`Pool2d`: ``lax.reduce_window``, then Theano's divisors."""
    import jax.numpy as jnp
    from jax import lax

    def pool2d(x):
        image_shape = x.shape[2:]
        output_shape = tuple(op._output_length(image_shape[axis], axis) for axis in range(2))
        if 0 in output_shape:
            return jnp.zeros(x.shape[:2] + output_shape, dtype=x.dtype)
        if op.mode == "max":
            init, combine = np.array(-np.inf, dtype=x.dtype), lax.max
        else:
            init, combine = np.zeros((), dtype=x.dtype), lax.add
        pooled = lax.reduce_window(
            x, init, combine, (1, 1) + op.ws, (1, 1) + op.stride,
            ((0, 0), (0, 0)) + _jax_padding(op, image_shape, output_shape),
        )
        pooled = pooled[:, :, : output_shape[0], : output_shape[1]]
        if op.mode.startswith("average"):
            pooled = pooled / _average_divisor(
                image_shape, output_shape, op.ws, op.stride, op.pad, op.mode, x.dtype
            )
        return pooled

    return pool2d


def _jax_max_pool2d_grad(op, node=None):
    """JAX version of :class:`MaxPool2dGrad`, Theano's tie rule written out tap by tap."""
    import jax.numpy as jnp

    def max_pool2d_grad(x, z, gz):
        image_shape, output_shape = x.shape[2:], z.shape[2:]
        if 0 in output_shape:
            return jnp.zeros_like(x)
        padding = _jax_padding(op, image_shape, output_shape)
        padded_x = _jax_pad(x, padding, -np.inf)
        padded_shape = padded_x.shape[2:]
        gx = jnp.zeros_like(padded_x)
        for row_tap in range(op.ws[0]):
            for col_tap in range(op.ws[1]):
                taps = _jax_taps(padded_x, row_tap, col_tap, output_shape, op.stride)
                to_maxima = jnp.where(taps == z, gz, jnp.zeros((), dtype=gz.dtype))
                gx = gx + _jax_spread(to_maxima, padded_shape, row_tap, col_tap, op.stride)
        return gx[:, :, padding[0][0] : padding[0][0] + image_shape[0],
                  padding[1][0] : padding[1][0] + image_shape[1]]

    return max_pool2d_grad


def _jax_average_pool2d_grad(op, node=None):
    """JAX version of :class:`AveragePool2dGrad`."""
    import jax.numpy as jnp

    def average_pool2d_grad(x, gz):
        image_shape, output_shape = x.shape[2:], gz.shape[2:]
        if 0 in output_shape:
            return jnp.zeros_like(x)
        if op.mode != "sum":
            gz = gz / _average_divisor(
                image_shape, output_shape, op.ws, op.stride, op.pad, op.mode, gz.dtype
            )
        padding = _jax_padding(op, image_shape, output_shape)
        padded_shape = tuple(
            image_shape[axis] + padding[axis][0] + padding[axis][1] for axis in range(2)
        )
        gx = jnp.zeros(x.shape[:2] + padded_shape, dtype=x.dtype)
        for row_tap in range(op.ws[0]):
            for col_tap in range(op.ws[1]):
                gx = gx + _jax_spread(gz, padded_shape, row_tap, col_tap, op.stride)
        return gx[:, :, padding[0][0] : padding[0][0] + image_shape[0],
                  padding[1][0] : padding[1][0] + image_shape[1]]

    return average_pool2d_grad


def _jax_max_pool2d_grad_grad(op, node=None):
    """JAX version of :class:`MaxPool2dGradGrad`."""
    import jax.numpy as jnp

    def max_pool2d_grad_grad(x, z, ggx):
        image_shape, output_shape = x.shape[2:], z.shape[2:]
        if 0 in output_shape:
            return jnp.zeros_like(z)
        padding = _jax_padding(op, image_shape, output_shape)
        padded_x = _jax_pad(x, padding, -np.inf)
        padded_ggx = _jax_pad(ggx, padding, 0)
        ggz = jnp.zeros_like(z)
        for row_tap in range(op.ws[0]):
            for col_tap in range(op.ws[1]):
                taps = _jax_taps(padded_x, row_tap, col_tap, output_shape, op.stride)
                tap_ggx = _jax_taps(padded_ggx, row_tap, col_tap, output_shape, op.stride)
                ggz = ggz + jnp.where(taps == z, tap_ggx, jnp.zeros((), dtype=ggz.dtype))
        return ggz

    return max_pool2d_grad_grad


# --------------------------------------------------------------------------------------
# The ops
# --------------------------------------------------------------------------------------


class _PoolingOp(Op):
    """Window geometry and the PyTensor plumbing shared by the pooling ops.

    ``infer_shape`` takes ``(fgraph, node, input_shapes)`` on PyTensor < 3.3 and
    ``(node, input_shapes)`` on PyTensor 3.3, so it accepts both.
    """

    def __init__(self, ws, stride=None, pad=(0, 0), ignore_border=True):
        self.ws, self.stride, self.pad, self.ignore_border = _pooling_geometry(
            ws, stride, pad, ignore_border
        )

    def _output_length(self, length, axis):
        """Pooled length of one spatial axis (``axis`` 0: rows, 1: columns)."""
        return pool_output_length(
            length, self.ws[axis], self.stride[axis], self.pad[axis], self.ignore_border
        )

    def _geometry(self):
        """The window geometry as keyword arguments for the other ops of this module."""
        return dict(ws=self.ws, stride=self.stride, pad=self.pad)

    def __str__(self):
        props = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__props__)
        return f"{type(self).__name__}{{{props}}}"


@register_numba_perform
@register_jax(_jax_pool2d)
class Pool2d(_PoolingOp):
    """Theano's ``Pool`` on the last two axes of a 4-D NCHW tensor.

    Parameters
    ----------
    ws : int or pair of ints
        Window size (rows, columns).
    stride : int or pair of ints, optional
        Distance between windows; ``None`` means ``ws`` (non-overlapping windows).
    pad : int or pair of ints
        Zeros added on both sides of each axis; must be smaller than ``ws`` and needs
        ``ignore_border=True``.
    ignore_border : bool
        ``True`` drops the partial windows at the end of an axis (floor), ``False`` keeps
        them, clipped to the image.
    mode : {'max', 'sum', 'average_inc_pad', 'average_exc_pad'}
        What each window computes (see the module docstring).
    """

    __props__ = ("ws", "stride", "pad", "ignore_border", "mode")

    def __init__(self, ws, stride=None, pad=(0, 0), ignore_border=True, mode="max"):
        super().__init__(ws, stride, pad, ignore_border)
        self.mode = _canonical_mode(mode)

    def make_node(self, x):
        x = _as_image_batch(x, "its input", type(self).__name__)
        batch, channels, rows, cols = x.type.shape
        out_type = TensorType(
            x.type.dtype,
            shape=(batch, channels, self._output_length(rows, 0), self._output_length(cols, 1)),
        )
        return Apply(self, [x], [out_type()])

    def perform(self, node, inputs, outputs):
        (x,) = inputs
        outputs[0][0] = _pool_forward(
            x, self.ws, self.stride, self.pad, self.ignore_border, self.mode
        )

    def infer_shape(self, *args):
        node, (x_shape,) = args[-2:]
        batch, channels, rows, cols = x_shape
        return [(batch, channels, self._output_length(rows, 0), self._output_length(cols, 1))]

    def pullback(self, inputs, outputs, cotangents):
        (x,) = inputs
        (z,) = outputs
        (gz,) = cotangents
        if self.mode == "max":
            return [MaxPool2dGrad(ignore_border=self.ignore_border, **self._geometry())(x, z, gz)]
        return [
            AveragePool2dGrad(
                ignore_border=self.ignore_border, mode=self.mode, **self._geometry()
            )(x, gz)
        ]

    def pushforward(self, inputs, outputs, tangents):
        (x,) = inputs
        (z,) = outputs
        (dx,) = tangents
        if isinstance(dx.type, DisconnectedType):
            return [disconnected_type()]
        if self.mode == "max":
            grad_grad = MaxPool2dGradGrad(ignore_border=self.ignore_border, **self._geometry())
            return [grad_grad(x, z, dx)]
        return [self(dx)]


@register_numba_perform
@register_jax(_jax_max_pool2d_grad)
class MaxPool2dGrad(_PoolingOp):
    """Theano's ``MaxPoolGrad``: gradient of max pooling with respect to its input.

    Inputs are the pooled input ``x``, the pooled output ``z`` and the output gradient
    ``gz``. Every element of ``x`` equal to its window's maximum receives the window's
    gradient; an element in several windows sums their contributions. Ties are *not* broken.

    Parameters
    ----------
    ws, stride, pad, ignore_border
        As for :class:`Pool2d`.
    """

    __props__ = ("ws", "stride", "pad", "ignore_border")

    def make_node(self, x, z, gz):
        name = type(self).__name__
        x = _as_image_batch(x, "x", name)
        z = _as_image_batch(z, "the pooled output z", name)
        gz = _as_image_batch(gz, "the output gradient gz", name)
        _check_same_dtype(x, {"z": z, "gz": gz}, name)
        return Apply(self, [x, z, gz], [x.type()])

    def perform(self, node, inputs, outputs):
        x, z, gz = inputs
        outputs[0][0] = _max_pool_grad(x, z, gz, self.ws, self.stride, self.pad)

    def infer_shape(self, *args):
        node, (x_shape, _, _) = args[-2:]
        return [x_shape]

    def pullback(self, inputs, outputs, cotangents):
        x, z, gz = inputs
        (ggx,) = cotangents
        grad_grad = MaxPool2dGradGrad(ignore_border=self.ignore_border, **self._geometry())
        # Piecewise constant in x and z: their gradient is zero wherever it exists.
        return [pt.zeros_like(x), pt.zeros_like(z), grad_grad(x, z, ggx)]


@register_numba_perform
@register_jax(_jax_average_pool2d_grad)
class AveragePool2dGrad(_PoolingOp):
    """Theano's ``AveragePoolGrad``: gradient of sum and average pooling.

    Inputs are the pooled input ``x`` (only its shape is used) and the output gradient
    ``gz``; each window's gradient is spread evenly over the image elements of the window,
    divided by the same window size as the forward pass (not divided for ``'sum'``).
    Unlike Theano, ``'average_exc_pad'`` with padding is supported.

    Parameters
    ----------
    ws, stride, pad, ignore_border
        As for :class:`Pool2d`.
    mode : {'sum', 'average_inc_pad', 'average_exc_pad'}
    """

    __props__ = ("ws", "stride", "pad", "ignore_border", "mode")

    def __init__(self, ws, stride=None, pad=(0, 0), ignore_border=True, mode="average_inc_pad"):
        super().__init__(ws, stride, pad, ignore_border)
        self.mode = _canonical_mode(mode)
        if self.mode == "max":
            raise ValueError(
                "AveragePool2dGrad is for the sum and average modes; use MaxPool2dGrad"
            )

    def make_node(self, x, gz):
        name = type(self).__name__
        x = _as_image_batch(x, "x", name)
        gz = _as_image_batch(gz, "the output gradient gz", name)
        _check_same_dtype(x, {"gz": gz}, name)
        return Apply(self, [x, gz], [x.type()])

    def perform(self, node, inputs, outputs):
        x, gz = inputs
        outputs[0][0] = _average_pool_grad(
            x.shape, gz, self.ws, self.stride, self.pad, self.mode, x.dtype
        )

    def infer_shape(self, *args):
        node, (x_shape, _) = args[-2:]
        return [x_shape]

    def pullback(self, inputs, outputs, cotangents):
        x, gz = inputs
        (ggx,) = cotangents
        pool = Pool2d(ignore_border=self.ignore_border, mode=self.mode, **self._geometry())
        # Linear in gz, whose adjoint is the pooling itself; x only lends its shape.
        return [pt.zeros_like(x), pool(ggx)]


@register_numba_perform
@register_jax(_jax_max_pool2d_grad_grad)
class MaxPool2dGradGrad(_PoolingOp):
    """Theano's ``DownsampleFactorMaxGradGrad``: :class:`MaxPool2dGrad` differentiated in gz.

    Inputs are ``x``, the pooled output ``z`` and ``ggx`` (shaped like ``x``); the output,
    shaped like ``z``, is for every window the sum of ``ggx`` over the window's elements
    equal to its maximum. It is also the forward-mode derivative of max pooling.

    Parameters
    ----------
    ws, stride, pad, ignore_border
        As for :class:`Pool2d`.
    """

    __props__ = ("ws", "stride", "pad", "ignore_border")

    def make_node(self, x, z, ggx):
        name = type(self).__name__
        x = _as_image_batch(x, "x", name)
        z = _as_image_batch(z, "the pooled output z", name)
        ggx = _as_image_batch(ggx, "ggx", name)
        _check_same_dtype(x, {"z": z, "ggx": ggx}, name)
        return Apply(self, [x, z, ggx], [z.type()])

    def perform(self, node, inputs, outputs):
        x, z, ggx = inputs
        outputs[0][0] = _max_pool_grad_grad(x, z, ggx, self.ws, self.stride, self.pad)

    def infer_shape(self, *args):
        node, (_, z_shape, _) = args[-2:]
        return [z_shape]

    def pullback(self, inputs, outputs, cotangents):
        x, z, ggx = inputs
        (gggz,) = cotangents
        grad = MaxPool2dGrad(ignore_border=self.ignore_border, **self._geometry())
        # Linear in ggx; its adjoint is MaxPool2dGrad.
        return [pt.zeros_like(x), pt.zeros_like(z), grad(x, z, gggz)]


# --------------------------------------------------------------------------------------
# Public functions (Theano's)
# --------------------------------------------------------------------------------------


def _renamed_argument(new_value, old_value, new_name, old_name, default=None):
    """Theano 1.0's handling of its deprecated ``ds``/``st``/``padding`` names."""
    if old_value is None:
        return new_value
    new_value_unset = new_value is None or (
        default is not None and np.all(np.asarray(new_value) == np.asarray(default))
    )
    if not new_value_unset:
        raise ValueError(
            f"You can't provide a value to both {new_name!r} and {old_name!r}. "
            f"Please provide a value only to {new_name!r}."
        )
    warnings.warn(
        f"DEPRECATION: the {old_name!r} parameter is replaced by {new_name!r}.",
        DeprecationWarning,
        stacklevel=3,
    )
    return old_value


def pool_2d(input, ws=None, ignore_border=None, stride=None, pad=(0, 0), mode="max",
            ds=None, st=None, padding=None):
    """Downscale the input by pooling windows over its last two axes (Theano's ``pool_2d``).

    Parameters
    ----------
    input : tensor of 2 or more dimensions
        Images; pooling runs over the last two axes (4-D NCHW is the native case, other
        ranks are reshaped to it and back).
    ws : int or pair of ints
        Window size (rows, columns); ``(2, 2)`` halves each axis.
    ignore_border : bool, optional
        ``True``: a (5, 5) input with ``ws=(2, 2)`` gives a (2, 2) output; ``False``: (3, 3),
        the partial windows at the end being kept. ``None`` warns and means ``False``, as in
        Theano 1.0 (Lasagne always passes it explicitly).
    stride : int or pair of ints, optional
        Distance between windows; ``None`` means ``ws``.
    pad : int or pair of ints
        Zeros added on both sides of each axis; needs ``ignore_border=True`` and must be
        smaller than ``ws``.
    mode : {'max', 'sum', 'average_inc_pad', 'average_exc_pad'}
        ``'max'`` and ``'sum'`` ignore the padding; the averages divide by the window size
        including (``'average_inc_pad'``) or excluding (``'average_exc_pad'``) the padding.
        Theano's aliases ``'max_deterministic'`` (CPU op) and ``'average'`` (GPU op, meaning
        ``'average_inc_pad'``) are accepted.
    ds, st, padding
        *Deprecated* Theano names of ``ws``, ``stride`` and ``pad``.

    Returns
    -------
    TensorVariable
        The pooled tensor, of the input's rank and dtype.

    Notes
    -----
    Windows, strides and padding must be ints (Theano also took symbolic vectors).
    """
    ws = _renamed_argument(ws, ds, "ws", "ds")
    stride = _renamed_argument(stride, st, "stride", "st")
    pad = _renamed_argument(pad, padding, "pad", "padding", default=(0, 0))
    if ws is None:
        raise ValueError("You must provide a value for the window size ws.")
    if ignore_border is None:
        warnings.warn(
            "pool_2d() got ignore_border=None, which means ignore_border=False as in "
            "Theano 1.0 (whose default was meant to become True); pass ignore_border "
            "explicitly.",
            UserWarning,
            stacklevel=2,
        )
        ignore_border = False
    op = Pool2d(ws, stride=stride, pad=pad, ignore_border=ignore_border, mode=mode)
    input = pt.as_tensor_variable(input)
    if input.type.ndim == 4:
        return op(input)
    if input.type.ndim < 2:
        raise TypeError(f"pool_2d needs an input of 2 or more dimensions, got {input.type.ndim}")
    rows, cols = input.shape[-2], input.shape[-1]
    images = input.reshape((-1, 1, rows, cols), ndim=4)
    pooled = op(images)
    out_shape = pt.concatenate([input.shape[:-2], pooled.shape[-2:]])
    return pooled.reshape(out_shape, ndim=input.type.ndim)


def max_pool_2d_same_size(input, patch_size):
    """Zero every element of non-overlapping patches that is not its patch's maximum.

    Theano's ``max_pool_2d_same_size``: the output has the input's shape (4-D NCHW); every
    element equal to its ``patch_size`` patch's maximum is kept (ties included).
    """
    z = Pool2d(patch_size, ignore_border=True)(input)
    return MaxPool2dGrad(patch_size, ignore_border=True)(input, z, z)
