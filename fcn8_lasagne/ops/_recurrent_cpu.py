"""NumPy/BLAS kernels of the fused recurrent sequence ops (:mod:`..recurrent`).

One Python loop over time, per step one GEMM (:func:`._blas.gemm` into preallocated
buffers) and NumPy's vectorised ufuncs for the gate nonlinearities, all written in place
with ``out=``. PyTensor's scalar C ``tanh`` costs ~13 ns a value where ``np.tanh`` is
vectorised (SIMD), which is why these kernels beat a ``scan`` of elementwise ops.

The sigmoid is ``1 / (1 + exp(-x))``, PyTensor's own formula (its C code): in float32 it
differs from PyTensor's ``sigmoid`` by at most 1 ulp of the value and keeps its relative
accuracy for large negative inputs, where ``0.5 * (1 + tanh(x / 2))`` (also measured)
rounds values below ~1e-8 to 0 (relative error up to 0.16).

Each step's GEMM writes the stacked ``(batch, 4 * units)`` pre-activations, which are then
copied once into four contiguous ``(batch, units)`` blocks: NumPy's ufuncs on the column
slices of the stacked array are 3-5x slower (strided, no SIMD) than on contiguous blocks.

Layouts are time-major: the input projections ``x`` are ``(steps, batch, 4 * units)``
(LSTM, gates in Lasagne's order i, f, c, o) or ``(steps, batch, 3 * units)`` (GRU, r, u,
c); states are ``(batch, units)``; a mask is ``(steps, batch)``, nonzero where the step
updates the state (elsewhere the previous state is kept, Lasagne's ``switch``).
"""

import contextlib

import numpy as np

from ._blas import gemm, single_threaded_blas

__all__ = ["lstm_forward", "lstm_backward", "gru_forward", "gru_backward"]


#: Per-step products below this many multiply-adds run on one BLAS thread: waking
#: OpenBLAS's threads for each small GEMM costs more than it gains, and far more on a busy
#: machine (measured at batch 32, 128 units: 2-10x slower loops with 2 threads).
SINGLE_THREAD_MACS = 1 << 24


def _blas_threads(batch, units, width):
    if batch * units * width < SINGLE_THREAD_MACS:
        return single_threaded_blas()
    return contextlib.nullcontext()


def _sigmoid_(a):
    """``a[...] = 1 / (1 + exp(-a))`` in place."""
    np.negative(a, out=a)
    np.exp(a, out=a)
    a += 1
    np.reciprocal(a, out=a)


def _keep(mask, dtype):
    """``(steps, batch, 1)`` 0/1 array of ``dtype``: 1 where the state updates."""
    if mask is None:
        return None
    return (np.asarray(mask) != 0).astype(dtype)[:, :, None]


def lstm_forward(x, W_hid, c0, h0, w_ci=None, w_cf=None, w_co=None, mask=None,
                 store_gates=True):
    """Lasagne's LSTM over a sequence of precomputed input projections.

    Parameters
    ----------
    x : ndarray, ``(steps, batch, 4 * units)``
        ``input_t . W_in + b`` for every step, gates i, f, c, o.
    W_hid : ndarray, ``(units, 4 * units)``
    c0, h0 : ndarray, ``(batch, units)``
    w_ci, w_cf, w_co : ndarray ``(units,)`` or None
        Peephole weights (all or none).
    mask : ndarray ``(steps, batch)`` or None
    store_gates : bool
        Whether to return the gate activations (else an empty ``gates``).

    Returns
    -------
    hid, cell : ndarray, ``(steps, batch, units)``
        The states after each step (masked steps repeat the previous state).
    gates : ndarray, ``(steps, 4, batch, units)`` (``(0, 4, batch, units)`` without
        ``store_gates``)
        The gate activations ``i, f, tanh(c~), o`` of each step as contiguous blocks (the
        backward pass reads them).
    """
    steps, batch, width = x.shape
    units = width // 4
    dtype = x.dtype
    W_hid = np.ascontiguousarray(W_hid)
    hid = np.empty((steps, batch, units), dtype)
    cell = np.empty((steps, batch, units), dtype)
    gates = np.empty((steps if store_gates else 0, 4, batch, units), dtype)
    scratch = None if store_gates else np.empty((4, batch, units), dtype)
    keep = _keep(mask, dtype)
    peepholes = w_ci is not None
    pre = np.empty((batch, width), dtype)
    pre_blocks = pre.reshape(batch, 4, units).transpose(1, 0, 2)
    tmp = np.empty((batch, units), dtype)
    c_prev = np.ascontiguousarray(c0, dtype)
    h_prev = np.ascontiguousarray(h0, dtype)
    with np.errstate(over="ignore"), _blas_threads(batch, units, width):
        for t in range(steps):
            np.copyto(pre, x[t])
            gemm(h_prev, W_hid, pre, beta=1.0)
            g = gates[t] if store_gates else scratch
            np.copyto(g, pre_blocks)
            i, f, c_in, o = g
            if peepholes:
                np.multiply(c_prev, w_ci, out=tmp)
                i += tmp
                np.multiply(c_prev, w_cf, out=tmp)
                f += tmp
            _sigmoid_(g[:2])
            np.tanh(c_in, out=c_in)
            c = cell[t]
            np.multiply(f, c_prev, out=c)
            np.multiply(i, c_in, out=tmp)
            c += tmp
            if peepholes:
                np.multiply(c, w_co, out=tmp)
                o += tmp
            _sigmoid_(o)
            h = hid[t]
            np.tanh(c, out=h)
            h *= o
            if keep is not None:
                k = keep[t]
                # switch(mask, new, old) = old + k * (new - old), exact for k in {0, 1}
                np.copyto(c, c_prev, where=k == 0)
                np.copyto(h, h_prev, where=k == 0)
            c_prev, h_prev = c, h
    return hid, cell, gates


def lstm_backward(W_hid, c0, h0, hid, cell, gates, d_hid, d_cell=None, w_ci=None,
                  w_cf=None, w_co=None, mask=None):
    """Back-propagation through time of :func:`lstm_forward`.

    Parameters
    ----------
    W_hid, c0, h0, w_ci, w_cf, w_co, mask
        As given to :func:`lstm_forward`.
    hid, cell, gates
        Its outputs.
    d_hid : ndarray ``(steps, batch, units)``
        Gradient of the cost with respect to ``hid``.
    d_cell : ndarray ``(steps, batch, units)`` or None
        Gradient with respect to ``cell`` (None: zero).

    Returns
    -------
    d_x, d_W_hid, d_w_ci, d_w_cf, d_w_co, d_c0, d_h0
        Gradients of the inputs (the peephole ones None without peepholes); ``d_x`` is
        ``(steps, batch, 4 * units)``.
    """
    steps, _, batch, units = gates.shape
    width = 4 * units
    dtype = gates.dtype
    W_hid = np.ascontiguousarray(W_hid)
    keep = _keep(mask, dtype)
    peepholes = w_ci is not None
    d_x = np.empty((steps, batch, width), dtype)
    da = np.empty((4, batch, units), dtype)
    da_i, da_f, da_c, da_o = da
    dh = np.zeros((batch, units), dtype)
    dc = np.zeros((batch, units), dtype)
    tc = np.empty((batch, units), dtype)
    tmp = np.empty((batch, units), dtype)
    if keep is not None:
        dh_new = np.empty((batch, units), dtype)
        dc_new = np.empty((batch, units), dtype)
        c_new = np.empty((batch, units), dtype)
    with _blas_threads(batch, units, width):
        for t in range(steps - 1, -1, -1):
            c_prev = cell[t - 1] if t else c0
            i, f, c_in, o = gates[t]
            dh += d_hid[t]
            if d_cell is not None:
                dc += d_cell[t]
            if keep is None:
                dhn, dcn, c = dh, dc, cell[t]
            else:
                k = keep[t]
                np.multiply(dh, k, out=dh_new)
                np.multiply(dc, k, out=dc_new)
                dh -= dh_new  # what goes to the previous state directly
                dc -= dc_new
                dhn, dcn = dh_new, dc_new
                np.multiply(f, c_prev, out=c_new)  # the step's cell before the mask
                np.multiply(i, c_in, out=tmp)
                c_new += tmp
                c = c_new
            np.tanh(c, out=tc)
            # output gate: h = o * tanh(c)
            np.multiply(dhn, tc, out=da_o)
            da_o *= o
            np.subtract(1, o, out=tmp)
            da_o *= tmp
            np.multiply(tc, tc, out=tc)
            np.subtract(1, tc, out=tc)
            tc *= o
            tc *= dhn
            dcn += tc
            if peepholes:
                np.multiply(da_o, w_co, out=tmp)
                dcn += tmp
            # c = f * c_prev + i * c_in
            np.multiply(dcn, c_in, out=da_i)
            da_i *= i
            np.subtract(1, i, out=tmp)
            da_i *= tmp
            np.multiply(dcn, c_prev, out=da_f)
            da_f *= f
            np.subtract(1, f, out=tmp)
            da_f *= tmp
            np.multiply(dcn, i, out=da_c)
            np.multiply(c_in, c_in, out=tmp)
            np.subtract(1, tmp, out=tmp)
            da_c *= tmp
            # the previous states
            if keep is None:
                dc *= f
            else:
                np.multiply(dcn, f, out=tmp)
                dc += tmp
            if peepholes:
                np.multiply(da_i, w_ci, out=tmp)
                dc += tmp
                np.multiply(da_f, w_cf, out=tmp)
                dc += tmp
            np.copyto(d_x[t].reshape(batch, 4, units).transpose(1, 0, 2), da)
            gemm(d_x[t], W_hid, dh, beta=0.0 if keep is None else 1.0, trans_b=True)
        d_W = np.empty_like(W_hid)
        gemm(np.ascontiguousarray(h0, dtype), d_x[0], d_W, trans_a=True)
        if steps > 1:
            gemm(hid[:-1].reshape(-1, units), d_x[1:].reshape(-1, width), d_W, beta=1.0,
                 trans_a=True)
    d_peep = (None, None, None)
    if peepholes:
        u1, u2, u3 = units, 2 * units, 3 * units
        c_prevs = np.concatenate([np.asarray(c0, dtype)[None], cell[:-1]])
        d_peep = ((d_x[:, :, :u1] * c_prevs).sum((0, 1)),
                  (d_x[:, :, u1:u2] * c_prevs).sum((0, 1)),
                  # masked steps have d_x = 0, so the kept cell there does not matter
                  (d_x[:, :, u3:] * cell).sum((0, 1)))
    return (d_x, d_W) + d_peep + (dc, dh)


def gru_forward(x, W_hid, h0, mask=None):
    """Lasagne's GRU over a sequence of precomputed input projections.

    Parameters
    ----------
    x : ndarray, ``(steps, batch, 3 * units)``
        ``input_t . W_in + b`` for every step, gates r, u, c.
    W_hid : ndarray, ``(units, 3 * units)``
    h0 : ndarray, ``(batch, units)``
    mask : ndarray ``(steps, batch)`` or None

    Returns
    -------
    hid : ndarray, ``(steps, batch, units)``
    gates : ndarray, ``(steps, 4, batch, units)``
        ``r, u, tanh(c~)`` and the candidate's hidden product ``h_{t-1} . W_hc`` of each
        step as contiguous blocks (the backward pass reads them).
    """
    steps, batch, width = x.shape
    units = width // 3
    dtype = x.dtype
    W_hid = np.ascontiguousarray(W_hid)
    hid = np.empty((steps, batch, units), dtype)
    gates = np.empty((steps, 4, batch, units), dtype)
    keep = _keep(mask, dtype)
    hw = np.empty((batch, width), dtype)
    hw_blocks = hw.reshape(batch, 3, units).transpose(1, 0, 2)
    x_blocks = x.reshape(steps, batch, 3, units)
    tmp = np.empty((batch, units), dtype)
    h_prev = np.ascontiguousarray(h0, dtype)
    with np.errstate(over="ignore"), _blas_threads(batch, units, width):
        for t in range(steps):
            gemm(h_prev, W_hid, hw)
            g = gates[t]
            r, u, c, hc = g
            np.add(x_blocks[t, :, 0], hw_blocks[0], out=r)
            np.add(x_blocks[t, :, 1], hw_blocks[1], out=u)
            _sigmoid_(g[:2])
            np.copyto(hc, hw_blocks[2])
            np.multiply(r, hc, out=c)
            c += x_blocks[t, :, 2]
            np.tanh(c, out=c)
            h = hid[t]
            # h = (1 - u) * h_prev + u * c
            np.subtract(1, u, out=h)
            h *= h_prev
            np.multiply(u, c, out=tmp)
            h += tmp
            if keep is not None:
                np.copyto(h, h_prev, where=keep[t] == 0)
            h_prev = h
    return hid, gates


def gru_backward(W_hid, h0, hid, gates, d_hid, mask=None):
    """Back-propagation through time of :func:`gru_forward`.

    Returns
    -------
    d_x, d_W_hid, d_h0
        ``d_x`` is ``(steps, batch, 3 * units)``.
    """
    steps, _, batch, units = gates.shape
    width = 3 * units
    dtype = gates.dtype
    W_hid = np.ascontiguousarray(W_hid)
    keep = _keep(mask, dtype)
    d_x = np.empty((steps, batch, width), dtype)
    d_hw = np.empty((steps, batch, width), dtype)  # gradients of the hidden products
    da = np.empty((3, batch, units), dtype)
    da_r, da_u, da_c = da
    dh = np.zeros((batch, units), dtype)
    dhn = np.empty((batch, units), dtype)
    tmp = np.empty((batch, units), dtype)
    h0 = np.ascontiguousarray(h0, dtype)
    with _blas_threads(batch, units, width):
        for t in range(steps - 1, -1, -1):
            h_prev = hid[t - 1] if t else h0
            r, u, c, hc = gates[t]
            dh += d_hid[t]
            if keep is None:
                np.copyto(dhn, dh)
                dh[...] = 0
            else:
                np.multiply(dh, keep[t], out=dhn)
                dh -= dhn  # what goes to the previous state directly
            # h = (1 - u) * h_prev + u * c
            np.subtract(c, h_prev, out=da_u)
            da_u *= dhn
            da_u *= u
            np.subtract(1, u, out=tmp)
            da_u *= tmp
            np.multiply(tmp, dhn, out=tmp)
            dh += tmp
            np.multiply(c, c, out=da_c)
            np.subtract(1, da_c, out=da_c)
            da_c *= u
            da_c *= dhn
            np.multiply(da_c, hc, out=da_r)
            da_r *= r
            np.subtract(1, r, out=tmp)
            da_r *= tmp
            np.copyto(d_x[t].reshape(batch, 3, units).transpose(1, 0, 2), da)
            w_blocks = d_hw[t].reshape(batch, 3, units).transpose(1, 0, 2)
            np.copyto(w_blocks[:2], da[:2])
            np.multiply(da_c, r, out=w_blocks[2])
            gemm(d_hw[t], W_hid, dh, beta=1.0, trans_b=True)
        d_W = np.empty_like(W_hid)
        if steps == 0 or batch == 0:
            d_W[...] = 0
        else:
            gemm(h0, d_hw[0], d_W, trans_a=True)
            if steps > 1:
                gemm(hid[:-1].reshape(-1, units), d_hw[1:].reshape(-1, width), d_W,
                     beta=1.0, trans_a=True)
    return d_x, d_W, dh
