"""NumPy references for pooling and upscaling, written from the definitions with explicit
windows (one Python loop iteration per output position; tiny inputs only).

Window ``i`` of an axis of length ``L`` padded by ``p`` covers padded coordinates
``[i * s, i * s + w)`` clipped to ``[0, L + 2 p)``; its image elements are those of
``[p, p + L)``. ``'max'`` and ``'sum'`` use the image elements only, ``'average_inc_pad'``
divides the sum by the clipped window's size, ``'average_exc_pad'`` by its number of image
elements. ``ignore_border=False`` (``p = 0``) adds windows while the previous ones leave an
element uncovered (or, with gaps between windows, while a window starts inside).
"""

import numpy as np

__all__ = [
    "output_length",
    "windows",
    "pool",
    "max_pool_grad",
    "average_pool_grad",
    "max_pool_grad_grad",
    "upscale",
]


def output_length(length, w, s, p, ignore_border):
    """Number of windows along one axis, counted from the definition."""
    if ignore_border:
        count = 0
        while count * s + w <= length + 2 * p:
            count += 1
        return count
    assert p == 0
    count, start = 0, 0
    while start < length and (count == 0 or s >= w or (count - 1) * s + w < length):
        count += 1
        start = count * s
    return count


def windows(length, w, s, p, ignore_border):
    """Per window of one axis: (image slice, size clipped to the padded image)."""
    result = []
    for i in range(output_length(length, w, s, p, ignore_border)):
        start, end = i * s, min(i * s + w, length + 2 * p)
        image = slice(max(start, p) - p, min(end, length + p) - p)
        result.append((image, end - start))
    return result


def _geometry(x, ws, stride, pad, ignore_border):
    nd = len(ws)
    stride = ws if stride is None else stride
    pad = (0,) * nd if pad is None else pad
    spatial = x.shape[x.ndim - nd:]
    per_axis = [windows(n, w, s, p, ignore_border)
                for n, w, s, p in zip(spatial, ws, stride, pad)]
    return nd, per_axis


def _positions(per_axis):
    for index in np.ndindex(*[len(axis) for axis in per_axis]):
        region = tuple(per_axis[a][i][0] for a, i in enumerate(index))
        padded_size = np.prod([per_axis[a][i][1] for a, i in enumerate(index)])
        image_size = np.prod([r.stop - r.start for r in region])
        yield (Ellipsis,) + index, (Ellipsis,) + region, padded_size, image_size


def pool(x, ws, stride=None, pad=None, ignore_border=True, mode="max"):
    """Theano's ``Pool`` over the last ``len(ws)`` axes of ``x``."""
    nd, per_axis = _geometry(x, ws, stride, pad, ignore_border)
    axes = tuple(range(x.ndim - nd, x.ndim))
    out = np.zeros(x.shape[:x.ndim - nd] + tuple(len(a) for a in per_axis), dtype=x.dtype)
    for out_index, region, padded_size, image_size in _positions(per_axis):
        values = x[region]
        if mode == "max":
            out[out_index] = values.max(axis=axes)
        else:
            total = values.sum(axis=axes)
            divisor = {"sum": 1, "average_inc_pad": padded_size,
                       "average_exc_pad": image_size}[mode]
            out[out_index] = total / divisor
    return out


def _expand(value, nd):
    return value[(Ellipsis,) + (None,) * nd]


def max_pool_grad(x, gz, ws, stride=None, pad=None, ignore_border=True):
    """Theano's rule: every element equal to its window's maximum gets the gradient."""
    nd, per_axis = _geometry(x, ws, stride, pad, ignore_border)
    z = pool(x, ws, stride, pad, ignore_border, "max")
    gx = np.zeros_like(x)
    for out_index, region, _, _ in _positions(per_axis):
        is_max = x[region] == _expand(z[out_index], nd)
        gx[region] += is_max * _expand(gz[out_index], nd)
    return gx


def average_pool_grad(x_shape, gz, ws, stride=None, pad=None, ignore_border=True,
                      mode="average_inc_pad"):
    x = np.zeros(x_shape, dtype=gz.dtype)
    nd, per_axis = _geometry(x, ws, stride, pad, ignore_border)
    for out_index, region, padded_size, image_size in _positions(per_axis):
        divisor = {"sum": 1, "average_inc_pad": padded_size,
                   "average_exc_pad": image_size}[mode]
        x[region] += _expand(gz[out_index], nd) / divisor
    return x


def max_pool_grad_grad(x, ggx, ws, stride=None, pad=None, ignore_border=True):
    """Per window, the sum of ``ggx`` over the elements equal to the window's maximum."""
    nd, per_axis = _geometry(x, ws, stride, pad, ignore_border)
    z = pool(x, ws, stride, pad, ignore_border, "max")
    ggz = np.zeros_like(z)
    axes = tuple(range(x.ndim - nd, x.ndim))
    for out_index, region, _, _ in _positions(per_axis):
        is_max = x[region] == _expand(z[out_index], nd)
        ggz[out_index] = (is_max * ggx[region]).sum(axis=axes)
    return ggz


def upscale(x, scale_factor, mode="repeat"):
    """Lasagne's ``Upscale*DLayer``: each value repeated ``scale_factor`` times per axis
    (``'repeat'``) or placed at multiples of the factor with zeros between (``'dilate'``),
    over the last ``len(scale_factor)`` axes."""
    nd = len(scale_factor)
    lead = x.ndim - nd
    out = np.zeros(x.shape[:lead] + tuple(n * f for n, f in zip(x.shape[lead:],
                                                                scale_factor)), x.dtype)
    for index in np.ndindex(*x.shape[lead:]):
        if mode == "repeat":
            target = tuple(slice(i * f, (i + 1) * f) for i, f in zip(index, scale_factor))
            out[(Ellipsis,) + target] = _expand(x[(Ellipsis,) + index], nd)
        else:
            out[(Ellipsis,) + tuple(i * f for i, f in zip(index, scale_factor))] = \
                x[(Ellipsis,) + index]
    return out
