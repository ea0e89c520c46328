"""N-d convolution references written from the definition: direct sums over kernel taps.

For ``x`` of shape (B, C, *S) and ``w`` of shape (F, C / G, *k), output
``y[b, f, o] = sum_{c in group(f), t} x_pad[b, c, o * stride + t * dilation] * w'[f, c, t]``
with ``w'`` the kernel rotated by 180 degrees when ``flip`` (a true convolution), zero
padding ``pad`` on both sides of every axis, and group ``g = f // (F / G)`` reading the
channels ``g * C / G ... (g + 1) * C / G``. The transposed convolution and the weight
gradient are the same sums scattered the other way. Slow on purpose; for tiny inputs.
"""

import itertools

import numpy as np

__all__ = ["pads", "conv", "conv_transpose", "conv_grad_weights", "output_length"]


def _tuple(value, n):
    return (value,) * n if np.isscalar(value) else tuple(value)


def pads(pad, kernel, dilation):
    """Integer padding per axis for Theano's border modes with dilated kernels."""
    n = len(kernel)
    pad = _tuple(pad, n) if not isinstance(pad, str) else (pad,) * n
    result = []
    for p, k, d in zip(pad, kernel, dilation):
        extent = (k - 1) * d + 1
        if p == "valid":
            result.append(0)
        elif p == "full":
            result.append(extent - 1)
        elif p in ("half", "same"):
            result.append(extent // 2)
        else:
            result.append(int(p))
    return tuple(result)


def output_length(length, kernel, stride, pad, dilation):
    """``floor((length + 2 pad - dilation (kernel - 1) - 1) / stride) + 1``."""
    return (length + 2 * pad - dilation * (kernel - 1) - 1) // stride + 1


def _setup(w, stride, pad, dilation, flip):
    n = w.ndim - 2
    stride, dilation = _tuple(stride, n), _tuple(dilation, n)
    pad = pads(pad, w.shape[2:], dilation)
    if flip:
        w = w[(slice(None), slice(None)) + (slice(None, None, -1),) * n]
    return n, stride, dilation, pad, w


def conv(x, w, stride=1, pad=0, dilation=1, groups=1, flip=True):
    """Forward convolution, float64, (B, F, *out)."""
    n, stride, dilation, pad, w = _setup(w, stride, pad, dilation, flip)
    batch, channels = x.shape[:2]
    filters = w.shape[0]
    cg, fg = channels // groups, filters // groups
    assert cg == w.shape[1]
    out = tuple(output_length(s, k, st, p, d) for s, k, st, p, d in
                zip(x.shape[2:], w.shape[2:], stride, pad, dilation))
    xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0)) + tuple((p, p) for p in pad))
    y = np.zeros((batch, filters) + out)
    for f in range(filters):
        g = f // fg
        for tap in itertools.product(*(range(k) for k in w.shape[2:])):
            window = tuple(slice(t * d, t * d + s * (o - 1) + 1, s)
                           for t, d, s, o in zip(tap, dilation, stride, out))
            patch = xp[(slice(None), slice(g * cg, (g + 1) * cg)) + window]
            y[:, f] += np.tensordot(patch, w[(f, slice(None)) + tap], axes=([1], [0]))
    return y


def conv_transpose(gy, w, input_shape, stride=1, pad=0, dilation=1, groups=1, flip=True):
    """Gradient of ``sum(conv(x, w) * gy)`` with respect to ``x`` of spatial
    ``input_shape``: every output pixel scatters ``gy * w`` back onto its window."""
    n, stride, dilation, pad, w = _setup(w, stride, pad, dilation, flip)
    batch, filters = gy.shape[:2]
    cg, fg = w.shape[1], filters // groups
    out = gy.shape[2:]
    size = tuple(s + 2 * p + (k - 1) * d + st for s, p, k, d, st in
                 zip(input_shape, pad, w.shape[2:], dilation, stride))
    xp = np.zeros((batch, cg * groups) + size)
    for f in range(filters):
        g = f // fg
        for tap in itertools.product(*(range(k) for k in w.shape[2:])):
            window = tuple(slice(t * d, t * d + s * (o - 1) + 1, s)
                           for t, d, s, o in zip(tap, dilation, stride, out))
            contribution = gy[:, f][:, None] * w[(f, slice(None)) + tap].reshape(
                (1, cg) + (1,) * n)
            xp[(slice(None), slice(g * cg, (g + 1) * cg)) + window] += contribution
    return xp[(slice(None), slice(None)) + tuple(slice(p, p + s)
                                                 for p, s in zip(pad, input_shape))]


def conv_grad_weights(x, gy, kernel, stride=1, pad=0, dilation=1, groups=1, flip=True):
    """Gradient of ``sum(conv(x, w) * gy)`` with respect to ``w`` of spatial ``kernel``."""
    n = x.ndim - 2
    kernel = tuple(kernel)
    stride, dilation = _tuple(stride, n), _tuple(dilation, n)
    pad = pads(pad, kernel, dilation)
    batch, channels = x.shape[:2]
    filters = gy.shape[1]
    cg, fg = channels // groups, filters // groups
    out = gy.shape[2:]
    xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0)) + tuple((p, p) for p in pad))
    grad = np.zeros((filters, cg) + kernel)
    for f in range(filters):
        g = f // fg
        for tap in itertools.product(*(range(k) for k in kernel)):
            window = tuple(slice(t * d, t * d + s * (o - 1) + 1, s)
                           for t, d, s, o in zip(tap, dilation, stride, out))
            patch = xp[(slice(None), slice(g * cg, (g + 1) * cg)) + window]
            axes = [0] + list(range(2, 2 + n))
            grad[(f, slice(None)) + tap] = np.tensordot(gy[:, f], patch,
                                                        axes=(axes[:1] + [a - 1 for a in axes[1:]],
                                                              axes))
    if flip:
        grad = grad[(slice(None), slice(None)) + (slice(None, None, -1),) * n]
    return grad
