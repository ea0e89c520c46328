"""JAX translations of :mod:`..pool`: ``lax.reduce_window`` and Theano's tie rule tap by tap.

The window, stride and padding must be constants (read from the Apply node when the graph
is translated); the traced arrays give the other shapes. The max-pool gradient gives every
input equal to its window's maximum the window's gradient, as the CPU op, instead of the
single argmax of ``reduce_window``'s autodiff: per window tap, ``(tap == z) * gz`` is
spread back with an interior-padded ``lax.pad`` (no scatter).
"""

import itertools

import jax.numpy as jnp
import numpy as np
from jax import lax
from pytensor.link.jax.dispatch.basic import jax_funcify

from .._pool_cpu import _divisor, output_spatial
from ..pool import AveragePoolGrad, DownsampleFactorMaxGradGrad, MaxPoolGrad, Pool


def _geometry(op, node):
    """The op's constant ``(ws, stride, pad)``, or a clear error for symbolic ones."""
    geometry = op.static_geometry(node)
    for name, values in zip(("ws", "stride", "pad"), geometry):
        if values is None:
            raise NotImplementedError(
                f"{type(op).__name__}: JAX needs the pooling {name} at compile time, but it "
                "is computed in the graph. Pass ints (or compile this graph for the C "
                "backend, mode='CVM', which runs symbolic windows).")
    return geometry


def _padding(spatial, out_spatial, ws, stride, pad):
    """Per pooled axis, the (before, after) padding that holds every window."""
    padding = []
    for length, n, w, s, p in zip(spatial, out_spatial, ws, stride, pad):
        covered = max(length + 2 * p, (n - 1) * s + w) if n else length + 2 * p
        padding.append((p, covered - length - p))
    return tuple(padding)


def _pad(array, lead, padding, value):
    return jnp.pad(array, ((0, 0),) * lead + padding,
                   constant_values=np.asarray(value, dtype=array.dtype))


def _taps(padded, lead, tap, out_spatial, stride):
    """The padded array's elements read by window tap ``tap`` of every window."""
    start = (0,) * lead + tuple(tap)
    limit = padded.shape[:lead] + tuple(t + (n - 1) * s + 1
                                        for t, n, s in zip(tap, out_spatial, stride))
    return lax.slice(padded, start, limit, (1,) * lead + tuple(stride))


def _spread(values, lead, padded_spatial, tap, stride):
    """Place ``values[..., i, j, ...]`` at ``(i * stride + tap, ...)`` of the padded image,
    zeros elsewhere (``lax.pad`` with interior padding)."""
    config = [(0, 0, 0)] * lead
    for length, n, t, s in zip(padded_spatial, values.shape[lead:], tap, stride):
        config.append((t, length - t - (n - 1) * s - 1, s - 1))
    return lax.pad(values, np.zeros((), dtype=values.dtype), config)


def _crop(array, lead, padding, spatial):
    return array[(slice(None),) * lead
                 + tuple(slice(before, before + length)
                         for (before, _), length in zip(padding, spatial))]


def _all_taps(ws):
    return itertools.product(*(range(w) for w in ws))


@jax_funcify.register(Pool)
def jax_funcify_pool(op, node=None, **kwargs):
    ws, stride, pad = _geometry(op, node)
    nd = op.ndim

    def pool(x, *geometry):
        lead = x.ndim - nd
        spatial = x.shape[lead:]
        out_spatial = output_spatial(spatial, ws, stride, pad, op.ignore_border)
        if 0 in out_spatial:
            return jnp.zeros(x.shape[:lead] + out_spatial, dtype=x.dtype)
        if op.mode == "max":
            init, combine = np.array(-np.inf, dtype=x.dtype), lax.max
        else:
            init, combine = np.zeros((), dtype=x.dtype), lax.add
        pooled = lax.reduce_window(
            x, init, combine, (1,) * lead + ws, (1,) * lead + stride,
            ((0, 0),) * lead + _padding(spatial, out_spatial, ws, stride, pad))
        pooled = pooled[(slice(None),) * lead + tuple(slice(0, n) for n in out_spatial)]
        if op.mode.startswith("average"):
            pooled = pooled / _divisor(spatial, out_spatial, ws, stride, pad, op.mode,
                                       x.dtype)
        return pooled

    return pool


@jax_funcify.register(MaxPoolGrad)
def jax_funcify_max_pool_grad(op, node=None, **kwargs):
    ws, stride, pad = _geometry(op, node)
    nd = op.ndim

    def max_pool_grad(x, z, gz, *geometry):
        lead = x.ndim - nd
        spatial, out_spatial = x.shape[lead:], z.shape[lead:]
        if 0 in out_spatial:
            return jnp.zeros_like(x)
        padding = _padding(spatial, out_spatial, ws, stride, pad)
        padded_x = _pad(x, lead, padding, -np.inf)
        padded_spatial = padded_x.shape[lead:]
        zero = jnp.zeros((), dtype=gz.dtype)
        gx = jnp.zeros(padded_x.shape, dtype=gz.dtype)
        for tap in _all_taps(ws):
            taps = _taps(padded_x, lead, tap, out_spatial, stride)
            gx = gx + _spread(jnp.where(taps == z, gz, zero), lead, padded_spatial, tap,
                              stride)
        return _crop(gx, lead, padding, spatial)

    return max_pool_grad


@jax_funcify.register(AveragePoolGrad)
def jax_funcify_average_pool_grad(op, node=None, **kwargs):
    ws, stride, pad = _geometry(op, node)
    nd = op.ndim

    def average_pool_grad(x, gz, *geometry):
        lead = x.ndim - nd
        spatial, out_spatial = x.shape[lead:], gz.shape[lead:]
        if 0 in out_spatial:
            return jnp.zeros(x.shape, dtype=gz.dtype)
        if op.mode != "sum":
            gz = gz / _divisor(spatial, out_spatial, ws, stride, pad, op.mode, gz.dtype)
        padding = _padding(spatial, out_spatial, ws, stride, pad)
        padded_spatial = tuple(length + before + after
                               for length, (before, after) in zip(spatial, padding))
        gx = jnp.zeros(x.shape[:lead] + padded_spatial, dtype=gz.dtype)
        for tap in _all_taps(ws):
            gx = gx + _spread(gz, lead, padded_spatial, tap, stride)
        return _crop(gx, lead, padding, spatial)

    return average_pool_grad


@jax_funcify.register(DownsampleFactorMaxGradGrad)
def jax_funcify_max_pool_grad_grad(op, node=None, **kwargs):
    ws, stride, pad = _geometry(op, node)
    nd = op.ndim

    def max_pool_grad_grad(x, z, ggx, *geometry):
        lead = x.ndim - nd
        spatial, out_spatial = x.shape[lead:], z.shape[lead:]
        if 0 in out_spatial:
            return jnp.zeros_like(z)
        padding = _padding(spatial, out_spatial, ws, stride, pad)
        padded_x = _pad(x, lead, padding, -np.inf)
        padded_ggx = _pad(ggx, lead, padding, 0)
        zero = jnp.zeros((), dtype=z.dtype)
        ggz = jnp.zeros_like(z)
        for tap in _all_taps(ws):
            taps = _taps(padded_x, lead, tap, out_spatial, stride)
            tap_ggx = _taps(padded_ggx, lead, tap, out_spatial, stride)
            ggz = ggz + jnp.where(taps == z, tap_ggx, zero)
        return ggz

    return max_pool_grad_grad
