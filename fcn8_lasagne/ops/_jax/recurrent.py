"""JAX translations of :mod:`..recurrent`: the LSTM and GRU sequences as ``jax.lax.scan``.

The gradient op is a ``jax.vjp`` of the same scan (it recomputes the forward pass from the
inputs rather than reading the stored states), so forward and gradient share one
definition and every shape stays static.
"""

import jax
import jax.numpy as jnp
from pytensor.link.jax.dispatch.basic import jax_funcify

from ..recurrent import GRUSequence, GRUSequenceGrad, LSTMSequence, LSTMSequenceGrad


def _lstm_scan(x, W_hid, peeps, c0, h0, mask):
    """``(hid, cell, gates)`` of :class:`LSTMSequence` for JAX arrays (time-major)."""
    units = W_hid.shape[0]

    def step(carry, inputs):
        c_prev, h_prev = carry
        x_t, keep = inputs
        a = x_t + h_prev @ W_hid
        a_i, a_f, a_c, a_o = (a[:, k * units:(k + 1) * units] for k in range(4))
        if peeps is not None:
            a_i = a_i + c_prev * peeps[0]
            a_f = a_f + c_prev * peeps[1]
        i, f, c_in = jax.nn.sigmoid(a_i), jax.nn.sigmoid(a_f), jnp.tanh(a_c)
        c = f * c_prev + i * c_in
        if peeps is not None:
            a_o = a_o + c * peeps[2]
        o = jax.nn.sigmoid(a_o)
        h = o * jnp.tanh(c)
        gates = jnp.stack([i, f, c_in, o])  # (4, batch, units) blocks, as the CPU kernel
        if keep is not None:
            c = jnp.where(keep[:, None], c, c_prev)
            h = jnp.where(keep[:, None], h, h_prev)
        return (c, h), (h, c, gates)

    keep = None if mask is None else mask != 0
    _, (hid, cell, gates) = jax.lax.scan(step, (c0, h0), (x, keep))
    return hid, cell, gates


def _split(op, inputs):
    inputs = list(inputs)
    W_hid = inputs.pop(0)
    peeps = tuple(inputs.pop(0) for _ in range(3)) if op.peepholes else None
    c0, h0 = inputs.pop(0), inputs.pop(0)
    mask = inputs.pop(0) if op.masked else None
    return W_hid, peeps, c0, h0, mask, inputs


@jax_funcify.register(LSTMSequence)
def jax_funcify_lstm_sequence(op, node=None, **kwargs):
    def lstm_sequence(x, *rest):
        W_hid, peeps, c0, h0, mask, _ = _split(op, rest)
        return _lstm_scan(x, W_hid, peeps, c0, h0, mask)

    return lstm_sequence


@jax_funcify.register(LSTMSequenceGrad)
def jax_funcify_lstm_sequence_grad(op, node=None, **kwargs):
    def lstm_sequence_grad(x, *rest):
        W_hid, peeps, c0, h0, mask, others = _split(op, rest)
        hid, cell, gates, d_hid = others[:4]
        d_cell = others[4] if op.cell_grad else jnp.zeros_like(cell)

        def forward(x, W_hid, peeps, c0, h0):
            hid, cell, _ = _lstm_scan(x, W_hid, peeps, c0, h0, mask)
            return hid, cell

        _, pullback = jax.vjp(forward, x, W_hid, peeps, c0, h0)
        d_x, d_W, d_peeps, d_c0, d_h0 = pullback((d_hid, d_cell))
        return (d_x, d_W) + (tuple(d_peeps) if op.peepholes else ()) + (d_c0, d_h0)

    return lstm_sequence_grad


def _gru_scan(x, W_hid, h0, mask):
    """``(hid, gates)`` of :class:`GRUSequence` for JAX arrays (time-major)."""
    units = W_hid.shape[0]

    def step(h_prev, inputs):
        x_t, keep = inputs
        w = h_prev @ W_hid
        r = jax.nn.sigmoid(x_t[:, :units] + w[:, :units])
        u = jax.nn.sigmoid(x_t[:, units:2 * units] + w[:, units:2 * units])
        w_c = w[:, 2 * units:]
        c = jnp.tanh(x_t[:, 2 * units:] + r * w_c)
        h = (1 - u) * h_prev + u * c
        if keep is not None:
            h = jnp.where(keep[:, None], h, h_prev)
        return h, (h, jnp.stack([r, u, c, w_c]))

    keep = None if mask is None else mask != 0
    _, (hid, gates) = jax.lax.scan(step, h0, (x, keep))
    return hid, gates


@jax_funcify.register(GRUSequence)
def jax_funcify_gru_sequence(op, node=None, **kwargs):
    def gru_sequence(x, W_hid, h0, *mask):
        return _gru_scan(x, W_hid, h0, mask[0] if op.masked else None)

    return gru_sequence


@jax_funcify.register(GRUSequenceGrad)
def jax_funcify_gru_sequence_grad(op, node=None, **kwargs):
    def gru_sequence_grad(x, W_hid, h0, *rest):
        mask = rest[0] if op.masked else None
        d_hid = rest[-1]

        def forward(x, W_hid, h0):
            return _gru_scan(x, W_hid, h0, mask)[0]

        _, pullback = jax.vjp(forward, x, W_hid, h0)
        return tuple(pullback(d_hid))

    return gru_sequence_grad
