"""NumPy references for the convolution layers, written from their definitions (Lasagne's
docs): loops over output positions, float64, for tiny inputs only.

* :func:`convolve`: ``y[b, f, o] = sum_{c in group(f), t} x_pad[b, c, o * stride + t *
  dilation] * w'[f, c, t]`` with ``w'`` the kernel reversed on every spatial axis when
  ``flip`` (a true convolution);
* :func:`transposed_convolve`: every input position ``i`` scatters ``x[b, c, i] * w'[c, f,
  t]`` onto output position ``i * stride + t - crop`` (Lasagne's layer weights
  ``(in_channels, num_filters, *k)``; ``w'`` reversed unless ``flip_filters``, the layer's
  flag being the inverse of the underlying convolution's);
* :func:`locally_connected`: one kernel per output position, 'same' padding, unit stride;
* :func:`pad_amounts` and :func:`output_length`: Lasagne's pads as integers and lengths.
"""

import itertools

import numpy as np

__all__ = ["pad_amounts", "output_length", "convolve", "transposed_convolve",
           "locally_connected"]


def _per_axis(value, n):
    return tuple(value) if isinstance(value, (tuple, list)) else (value,) * n


def pad_amounts(pad, kernel, dilation=None):
    """Integer zero padding per axis of a Lasagne pad ('valid', 'full', 'same', ints)."""
    n = len(kernel)
    dilation = (1,) * n if dilation is None else _per_axis(dilation, n)
    pad = (pad,) * n if isinstance(pad, str) else _per_axis(pad, n)
    result = []
    for p, k, d in zip(pad, kernel, dilation):
        extent = (k - 1) * d + 1
        result.append({"valid": 0, "full": extent - 1, "same": extent // 2}.get(p, p))
    return tuple(int(p) for p in result)


def output_length(length, kernel, stride, pad, dilation=1):
    """``floor((length + 2 pad - ((kernel - 1) dilation + 1)) / stride) + 1``."""
    return (length + 2 * pad - (kernel - 1) * dilation - 1) // stride + 1


def convolve(x, w, stride=1, pad=0, dilation=1, groups=1, flip=True):
    """Forward N-d convolution of ``x`` (B, C, *S) with ``w`` (F, C / groups, *k)."""
    x = np.asarray(x, dtype=np.float64)
    w = np.asarray(w, dtype=np.float64)
    n = x.ndim - 2
    kernel = w.shape[2:]
    stride, dilation = _per_axis(stride, n), _per_axis(dilation, n)
    pads = pad_amounts(pad, kernel, dilation)
    if flip:
        w = w[(slice(None), slice(None)) + (slice(None, None, -1),) * n]
    xp = np.pad(x, [(0, 0), (0, 0)] + [(p, p) for p in pads])
    out = tuple(output_length(s, k, st, p, d) for s, k, st, p, d in
                zip(x.shape[2:], kernel, stride, pads, dilation))
    filters, cg = w.shape[0], w.shape[1]
    fg = filters // groups
    y = np.zeros((x.shape[0], filters) + out)
    for o in itertools.product(*(range(m) for m in out)):
        window = tuple(slice(oi * st, oi * st + (k - 1) * d + 1, d)
                       for oi, st, k, d in zip(o, stride, kernel, dilation))
        for f in range(filters):
            g = f // fg
            patch = xp[(slice(None), slice(g * cg, (g + 1) * cg)) + window]
            y[(slice(None), f) + o] = (patch * w[f]).reshape(x.shape[0], -1).sum(axis=1)
    return y


def transposed_convolve(x, w, stride=1, crop=0, flip_filters=False, output_size=None):
    """Transposed N-d convolution of ``x`` (B, C, *S) with the layer weights ``w``
    (C, F, *k); output (B, F, *out) with ``out = (S - 1) * stride - 2 crop + k`` unless
    ``output_size`` gives a larger size."""
    x = np.asarray(x, dtype=np.float64)
    w = np.asarray(w, dtype=np.float64)
    n = x.ndim - 2
    kernel = w.shape[2:]
    stride = _per_axis(stride, n)
    crops = pad_amounts(crop, kernel)
    if not flip_filters:
        w = w[(slice(None), slice(None)) + (slice(None, None, -1),) * n]
    full = tuple((s - 1) * st + k for s, st, k in zip(x.shape[2:], stride, kernel))
    smallest = tuple(f - 2 * c for f, c in zip(full, crops))
    size = smallest if output_size is None else _per_axis(output_size, n)
    z = np.zeros((x.shape[0], w.shape[1]) + tuple(max(f, c + s) for f, c, s in
                                                  zip(full, crops, size)))
    for i in itertools.product(*(range(s) for s in x.shape[2:])):
        for t in itertools.product(*(range(k) for k in kernel)):
            target = tuple(ii * st + tt for ii, st, tt in zip(i, stride, t))
            z[(slice(None), slice(None)) + target] += x[(slice(None), slice(None)) + i] @ \
                w[(slice(None), slice(None)) + t]
    return z[(slice(None), slice(None)) + tuple(slice(c, c + s) for c, s in zip(crops, size))]


def locally_connected(x, w, flip=True, channelwise=False):
    """'Same'-padded unit-stride 2-D convolution with a kernel per output position:
    ``w`` (F, C, kh, kw, H, W), or (F, kh, kw, H, W) with ``channelwise``."""
    x = np.asarray(x, dtype=np.float64)
    w = np.asarray(w, dtype=np.float64)
    if channelwise:
        w = np.stack([np.where(c == np.arange(x.shape[1])[:, None, None, None, None],
                               w[c][None], 0.0) for c in range(w.shape[0])])
    batch, channels, rows, columns = x.shape
    filters, _, kh, kw = w.shape[:4]
    y = np.zeros((batch, filters, rows, columns))
    for i, j, u, v in itertools.product(range(rows), range(columns), range(kh), range(kw)):
        r, s = i + u - kh // 2, j + v - kw // 2
        if not (0 <= r < rows and 0 <= s < columns):
            continue
        wu, wv = (kh - 1 - u, kw - 1 - v) if flip else (u, v)
        y[:, :, i, j] += x[:, :, r, s] @ w[:, :, wu, wv, i, j].T
    return y
