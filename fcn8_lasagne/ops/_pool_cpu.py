"""CPU kernels of the pooling ops (:mod:`.pool`) for any number of spatial axes.

Every kernel works on arrays whose last ``len(ws)`` axes are spatial; the leading axes
(batch, channels, ...) are flattened into one and split into blocks of about
``_BLOCK_BYTES`` that run on the worker threads (:func:`._threads.parallel_for`). Inside a
block the loops run over window *taps* only: tap ``t`` of every window is one strided view
of the image, so there is no loop over pixels. The rule to know: a window covers padded
coordinates ``i * stride + tap`` and only the taps that land inside the image take part
(max and sum never see the padding; the averages divide by Theano's window sizes).
"""

import itertools

import numpy as np

from ._threads import parallel_for, spans
from .shapes import pool_output_length

__all__ = [
    "output_spatial",
    "pool_forward",
    "max_pool_grad",
    "average_pool_grad",
    "max_pool_grad_grad",
]

#: Bytes of image that one task covers: fits in L2 with its temporaries, and gives the
#: threads many tasks on large layers.
_BLOCK_BYTES = 1 << 20


# --------------------------------------------------------------------------------------
# Window arithmetic along one axis (Python ints only)
# --------------------------------------------------------------------------------------


def output_spatial(spatial, ws, stride, pad, ignore_border):
    """Pooled spatial shape (Theano's ``Pool.out_shape`` on every axis)."""
    return tuple(pool_output_length(length, w, s, p, ignore_border)
                 for length, w, s, p in zip(spatial, ws, stride, pad))


def _tap_slices(length, tap, stride, pad, n_out):
    """Where window tap ``tap`` lands in the image, for every output position it reaches.

    Output position ``i`` reads image coordinate ``i * stride + tap - pad``. Returns
    ``(image_slice, output_slice)`` for the positions whose tap lies inside the image, or
    ``None`` when there are none.
    """
    first = max(0, -((tap - pad) // stride))
    stop = min(n_out, (length - 1 + pad - tap) // stride + 1)
    if stop <= first:
        return None
    start = first * stride + tap - pad
    return slice(start, start + (stop - first - 1) * stride + 1, stride), slice(first, stop)


def _taps(spatial, out_spatial, ws, stride, pad):
    """``(image_index, output_index)`` of every window tap that reaches the image; the
    indices select the spatial axes of a (block, *spatial) array."""
    per_axis = []
    for length, n_out, w, s, p in zip(spatial, out_spatial, ws, stride, pad):
        slices = [_tap_slices(length, tap, s, p, n_out) for tap in range(w)]
        per_axis.append([pair for pair in slices if pair is not None])
    for combination in itertools.product(*per_axis):
        yield ((slice(None),) + tuple(pair[0] for pair in combination),
               (slice(None),) + tuple(pair[1] for pair in combination))


def _window_sizes(length, w, stride, pad, n_out, mode):
    """Elements each window averages over along one axis: the window clipped to the padded
    image (``'average_inc_pad'``) or to the image itself (``'average_exc_pad'``)."""
    starts = np.arange(n_out) * stride
    ends = np.minimum(starts + w, length + 2 * pad)
    if mode == "average_exc_pad":
        starts = np.maximum(starts, pad)
        ends = np.minimum(ends, length + pad)
    return ends - starts


def _divisor(spatial, out_spatial, ws, stride, pad, mode, dtype):
    """The window sizes of an average mode as an array of the output's spatial shape."""
    sizes = np.ones((), dtype=np.int64)
    for args in zip(spatial, ws, stride, pad, out_spatial):
        sizes = np.multiply.outer(sizes, _window_sizes(*args, mode))
    return sizes.astype(dtype)


def _overlap(ws, stride):
    """Whether an image element can belong to several windows."""
    return any(s < w for w, s in zip(ws, stride))


def _tiles(spatial, out_spatial, ws, stride, pad):
    """Whether the windows tile the image: stride = window, no padding (every image element
    lies in one window at most, and the covered part is a block at the origin)."""
    return tuple(stride) == tuple(ws) and not any(pad) and all(
        n * w <= length for n, w, length in zip(out_spatial, ws, spatial))


# --------------------------------------------------------------------------------------
# Blocks of the flattened leading axes
# --------------------------------------------------------------------------------------


def _flat(array, ndim):
    """``array`` as (leading, *spatial) and its leading shape."""
    lead = array.shape[:array.ndim - ndim]
    return array.reshape((int(np.prod(lead)),) + array.shape[array.ndim - ndim:]), lead


def _run_blocks(flat_input, body, work):
    """Call ``body(start, stop, state)`` for blocks of the leading axis on the threads."""
    plane = max(1, flat_input[0].nbytes if len(flat_input) else 1)
    per_block = max(1, _BLOCK_BYTES // plane)
    tasks = spans(flat_input.shape[0], per_block)
    parallel_for(tasks, lambda task, state: body(task[0], task[1], state),
                 make_state=dict, flops=work)


def _scratch(state, shape, dtype):
    """A temporary of ``shape`` kept in a worker's state and reused across taps and
    blocks (its contents are undefined)."""
    key = (shape, np.dtype(dtype).str)
    buffer = state.get(key)
    if buffer is None:
        buffer = state[key] = np.empty(shape, dtype=dtype)
    return buffer


# --------------------------------------------------------------------------------------
# Forward
# --------------------------------------------------------------------------------------


def _reduce_axis(x, axis, w, stride, pad, n_out, ufunc, identity, out=None):
    """Pool along one axis of ``x``: combine the ``w`` taps of every window with ``ufunc``
    (into ``out`` when given)."""
    shape = list(x.shape)
    shape[axis] = n_out
    head = (slice(None),) * axis
    started = False
    for tap in range(w):
        slices = _tap_slices(x.shape[axis], tap, stride, pad, n_out)
        if slices is None:
            continue
        image_slice, output_slice = slices
        taps = x[head + (image_slice,)]
        if not started:
            if out is None:
                out = np.empty(shape, dtype=x.dtype)
            if output_slice != slice(0, n_out):
                out[...] = identity
                out[head + (output_slice,)] = taps
            else:
                out[...] = taps
            started = True
            continue
        target = out[head + (output_slice,)]
        ufunc(target, taps, out=target)
    if not started:
        if out is None:
            out = np.empty(shape, dtype=x.dtype)
        out[...] = identity
    return out


def pool_forward(x, ws, stride, pad, ignore_border, mode):
    """Theano's ``Pool`` over the last ``len(ws)`` axes of ``x``, separably (one axis after
    the other, outermost first, so the strided innermost axis sees the least data)."""
    ndim = len(ws)
    flat, lead = _flat(x, ndim)
    spatial = flat.shape[1:]
    out_spatial = output_spatial(spatial, ws, stride, pad, ignore_border)
    out = np.empty((flat.shape[0],) + out_spatial, dtype=x.dtype)
    if out.size:
        ufunc, identity = (np.maximum, -np.inf) if mode == "max" else (np.add, 0)
        divisor = None
        if mode.startswith("average"):
            divisor = _divisor(spatial, out_spatial, ws, stride, pad, mode, x.dtype)
        axes = [axis for axis in range(ndim)
                if (ws[axis], stride[axis], pad[axis]) != (1, 1, 0)
                or out_spatial[axis] != spatial[axis]]

        def block(start, stop, state):
            pooled, target = flat[start:stop], out[start:stop]
            for position, axis in enumerate(axes):
                last = position == len(axes) - 1
                pooled = _reduce_axis(pooled, axis + 1, ws[axis], stride[axis], pad[axis],
                                      out_spatial[axis], ufunc, identity,
                                      out=target if last else None)
            if not axes:
                target[...] = pooled
            if divisor is not None:
                target /= divisor

        _run_blocks(flat, block, work=float(flat.size) * max(1, len(axes)))
    return out.reshape(lead + out_spatial)


# --------------------------------------------------------------------------------------
# Gradients
# --------------------------------------------------------------------------------------


def _zero_uncovered(gx, out_spatial, ws):
    """Zero the elements of a (block, *spatial) gradient that no tiling window covers."""
    for axis, (n, w) in enumerate(zip(out_spatial, ws)):
        index = [slice(None)] * gx.ndim
        for previous, (n_prev, w_prev) in enumerate(zip(out_spatial[:axis], ws[:axis])):
            index[previous + 1] = slice(0, n_prev * w_prev)
        index[axis + 1] = slice(n * w, None)
        gx[tuple(index)] = 0


def max_pool_grad(x, z, gz, ws, stride, pad):
    """Theano's ``MaxPoolGrad``: every element equal to its window's maximum receives the
    window's gradient (ties are not broken); an element in several windows sums them."""
    ndim = len(ws)
    flat_x, lead = _flat(x, ndim)
    flat_z, _ = _flat(z, ndim)
    flat_gz, _ = _flat(gz, ndim)
    spatial, out_spatial = flat_x.shape[1:], flat_z.shape[1:]
    gx = np.empty_like(flat_x)
    tiles = _tiles(spatial, out_spatial, ws, stride, pad)
    overlap = _overlap(ws, stride)
    taps = list(_taps(spatial, out_spatial, ws, stride, pad))

    def block(start, stop, state):
        grad = gx[start:stop]
        xb, zb, gzb = flat_x[start:stop], flat_z[start:stop], flat_gz[start:stop]
        if tiles:
            _zero_uncovered(grad, out_spatial, ws)
        else:
            grad[...] = 0
        for image_index, output_index in taps:
            maxima, gradient = zb[output_index], gzb[output_index]
            mask = _scratch(state, maxima.shape, bool)
            np.equal(xb[image_index], maxima, out=mask)
            if overlap:
                share = _scratch(state, maxima.shape, gx.dtype)
                np.multiply(mask, gradient, out=share)
                target = grad[image_index]
                np.add(target, share, out=target)
            else:  # each image element belongs to one window at most
                np.multiply(mask, gradient, out=grad[image_index])

    _run_blocks(flat_x, block, work=4.0 * flat_x.size)
    return gx.reshape(x.shape)


def average_pool_grad(x_shape, gz, ws, stride, pad, mode):
    """Gradient of the sum and average modes: each window's gradient spread over its image
    elements (divided by the forward pass's window size in the average modes)."""
    ndim = len(ws)
    flat_gz, lead = _flat(gz, ndim)
    spatial, out_spatial = tuple(x_shape[len(x_shape) - ndim:]), flat_gz.shape[1:]
    gx = np.empty((flat_gz.shape[0],) + spatial, dtype=gz.dtype)
    divisor = None
    if mode != "sum":
        divisor = _divisor(spatial, out_spatial, ws, stride, pad, mode, gz.dtype)
    tiles = _tiles(spatial, out_spatial, ws, stride, pad)
    overlap = _overlap(ws, stride)
    taps = list(_taps(spatial, out_spatial, ws, stride, pad))

    def block(start, stop, state):
        grad, gzb = gx[start:stop], flat_gz[start:stop]
        if divisor is not None:
            gzb = gzb / divisor
        if tiles:
            _zero_uncovered(grad, out_spatial, ws)
        else:
            grad[...] = 0
        for image_index, output_index in taps:
            target = grad[image_index]
            if overlap:
                np.add(target, gzb[output_index], out=target)
            else:
                target[...] = gzb[output_index]

    _run_blocks(gx, block, work=2.0 * gx.size)
    return gx.reshape(tuple(x_shape))


def max_pool_grad_grad(x, z, ggx, ws, stride, pad):
    """Theano's ``DownsampleFactorMaxGradGrad``: for every window, the sum of ``ggx`` over
    the window's elements equal to its maximum (shaped like ``z``)."""
    ndim = len(ws)
    flat_x, _ = _flat(x, ndim)
    flat_z, lead = _flat(z, ndim)
    flat_ggx, _ = _flat(ggx, ndim)
    spatial, out_spatial = flat_x.shape[1:], flat_z.shape[1:]
    ggz = np.empty_like(flat_z)
    taps = list(_taps(spatial, out_spatial, ws, stride, pad))

    def block(start, stop, state):
        out = ggz[start:stop]
        out[...] = 0
        xb, zb, ggxb = flat_x[start:stop], flat_z[start:stop], flat_ggx[start:stop]
        for image_index, output_index in taps:
            maxima = zb[output_index]
            mask = _scratch(state, maxima.shape, bool)
            np.equal(xb[image_index], maxima, out=mask)
            share = _scratch(state, maxima.shape, ggz.dtype)
            np.multiply(mask, ggxb[image_index], out=share)
            target = out[output_index]
            np.add(target, share, out=target)

    _run_blocks(flat_x, block, work=4.0 * flat_x.size)
    return ggz.reshape(z.shape)


# --------------------------------------------------------------------------------------
# Upscaling by repetition (the adjoint of sum pooling with window = stride = factor)
# --------------------------------------------------------------------------------------


def upscale_repeat(x, factors):
    """Every value of the last ``len(factors)`` axes repeated ``f`` times along each.

    ``np.repeat`` axis by axis, innermost (on the smallest array) first: NumPy copies
    fixed-size chunks there and whole rows on the outer axes. Measured faster than
    block-wise threaded copies, which contend for the page faults of the fresh output.
    """
    out = x
    for axis in reversed(range(len(factors))):
        if factors[axis] > 1:
            out = np.repeat(out, factors[axis], axis=x.ndim - len(factors) + axis)
    return out if out is not x else x.copy()
