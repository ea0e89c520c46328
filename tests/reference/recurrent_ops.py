"""NumPy references of the fused LSTM and GRU sequence ops (time-major, stacked gates).

Written from the equations of Lasagne's ``LSTMLayer`` one gate at a time, in float64 and
with plain ``@`` products, independent of the op's in-place kernels.
"""

import numpy as np

from .recurrent import sigmoid


def lstm_sequence(x, W_hid, c0, h0, peepholes=None, mask=None):
    """``(hid, cell)``, each ``(steps, batch, units)``, of the op's recurrence.

    ``x`` is ``(steps, batch, 4 * units)``, ``peepholes`` ``(w_ci, w_cf, w_co)`` or None,
    ``mask`` ``(steps, batch)`` (nonzero: the step updates the state).
    """
    x = np.asarray(x, np.float64)
    units = W_hid.shape[0]
    c, h = np.array(c0, np.float64), np.array(h0, np.float64)
    hids, cells = [], []
    for t in range(x.shape[0]):
        a = x[t] + h @ W_hid
        a_i, a_f, a_c, a_o = (a[:, k * units:(k + 1) * units] for k in range(4))
        if peepholes is not None:
            a_i = a_i + c * peepholes[0]
            a_f = a_f + c * peepholes[1]
        c_new = sigmoid(a_f) * c + sigmoid(a_i) * np.tanh(a_c)
        if peepholes is not None:
            a_o = a_o + c_new * peepholes[2]
        h_new = sigmoid(a_o) * np.tanh(c_new)
        if mask is not None:
            keep = (mask[t] != 0)[:, None]
            c_new, h_new = np.where(keep, c_new, c), np.where(keep, h_new, h)
        c, h = c_new, h_new
        hids.append(h)
        cells.append(c)
    return np.stack(hids), np.stack(cells)


def gru_sequence(x, W_hid, h0, mask=None):
    """``hid`` ``(steps, batch, units)`` of the GRU op's recurrence (stacked gates r, u, c).

    ``x`` is ``(steps, batch, 3 * units)``; ``c = tanh(x_c + r * (h W_hc))``,
    ``h = (1 - u) * h_prev + u * c``.
    """
    x = np.asarray(x, np.float64)
    units = W_hid.shape[0]
    h = np.array(h0, np.float64)
    hids = []
    for t in range(x.shape[0]):
        x_r, x_u, x_c = (x[t][:, k * units:(k + 1) * units] for k in range(3))
        W_r, W_u, W_c = (W_hid[:, k * units:(k + 1) * units] for k in range(3))
        r = sigmoid(x_r + h @ W_r)
        u = sigmoid(x_u + h @ W_u)
        c = np.tanh(x_c + r * (h @ W_c))
        h_new = (1 - u) * h + u * c
        if mask is not None:
            h_new = np.where((mask[t] != 0)[:, None], h_new, h)
        h = h_new
        hids.append(h)
    return np.stack(hids)
