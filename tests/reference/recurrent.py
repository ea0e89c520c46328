"""NumPy forward passes of Lasagne's recurrent layers, one explicit time loop each.

Written from the equations in Lasagne's documentation (one gate at a time, no stacked
weights), batch-major input ``(batch, steps, features)``. A mask keeps the previous state
where it is 0. ``backwards`` visits the steps from the end and returns the states in input
order; ``only_return_final`` returns the state after the last visited step.
"""

import numpy as np


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _loop(x, mask, backwards, only_return_final, states, step):
    """Run ``step(x_t, states) -> states`` (``states[-1]`` is the output) over time."""
    n_steps = x.shape[1]
    order = range(n_steps - 1, -1, -1) if backwards else range(n_steps)
    outputs = [None] * n_steps
    for t in order:
        new = step(x[:, t], states)
        if mask is not None:
            keep = mask[:, t][:, None] != 0
            new = [np.where(keep, n, s) for n, s in zip(new, states)]
        states = new
        outputs[t] = states[-1]
    if only_return_final:
        return states[-1]
    return np.stack(outputs, axis=1)


def _batch_init(value, batch):
    value = np.asarray(value)
    return np.broadcast_to(value, (batch,) + value.shape[1:]).astype(np.float64)


def rnn(x, W_in, W_hid, b, nonlinearity=lambda a: np.maximum(a, 0), hid_init=None,
        mask=None, backwards=False, only_return_final=False):
    """``h_t = nonlinearity(x_t W_in + h_{t-1} W_hid + b)``."""
    x = np.asarray(x, np.float64).reshape(x.shape[0], x.shape[1], -1)
    batch, units = x.shape[0], W_hid.shape[0]
    h0 = np.zeros((batch, units)) if hid_init is None else _batch_init(hid_init, batch)

    def step(x_t, states):
        (h,) = states
        pre = x_t @ W_in + h @ W_hid
        if b is not None:
            pre = pre + b
        return [nonlinearity(pre)]

    return _loop(x, mask, backwards, only_return_final, [h0], step)


def lstm(x, p, peepholes=True, nonlinearity=np.tanh, gate_nonlinearity=sigmoid,
         cell_nonlinearity=np.tanh, hid_init=None, cell_init=None, mask=None,
         backwards=False, only_return_final=False):
    """Lasagne's LSTM. ``p`` maps Lasagne's parameter names to arrays.

    ``i = s(x W_xi + h W_hi + w_ci * c_prev + b_i)``, ``f`` likewise,
    ``c = f * c_prev + i * cell_nl(x W_xc + h W_hc + b_c)``,
    ``o = s(x W_xo + h W_ho + w_co * c + b_o)``, ``h = o * nl(c)``.
    """
    x = np.asarray(x, np.float64).reshape(x.shape[0], x.shape[1], -1)
    batch, units = x.shape[0], p["W_hid_to_ingate"].shape[0]
    c0 = np.zeros((batch, units)) if cell_init is None else _batch_init(cell_init, batch)
    h0 = np.zeros((batch, units)) if hid_init is None else _batch_init(hid_init, batch)

    def lin(gate, x_t, h):
        return x_t @ p[f"W_in_to_{gate}"] + h @ p[f"W_hid_to_{gate}"] + p[f"b_{gate}"]

    def step(x_t, states):
        c_prev, h = states
        a_i, a_f, a_o = lin("ingate", x_t, h), lin("forgetgate", x_t, h), lin("outgate", x_t, h)
        if peepholes:
            a_i = a_i + c_prev * p["W_cell_to_ingate"]
            a_f = a_f + c_prev * p["W_cell_to_forgetgate"]
        i, f = gate_nonlinearity(a_i), gate_nonlinearity(a_f)
        c = f * c_prev + i * cell_nonlinearity(lin("cell", x_t, h))
        if peepholes:
            a_o = a_o + c * p["W_cell_to_outgate"]
        o = gate_nonlinearity(a_o)
        return [c, o * nonlinearity(c)]

    return _loop(x, mask, backwards, only_return_final, [c0, h0], step)


def gru(x, p, hid_init=None, mask=None, backwards=False, only_return_final=False):
    """Lasagne's GRU: ``r``, ``u`` sigmoid gates, ``c = tanh(x W_xc + b_c + r * (h W_hc))``,
    ``h = (1 - u) * h_prev + u * c``."""
    x = np.asarray(x, np.float64).reshape(x.shape[0], x.shape[1], -1)
    batch, units = x.shape[0], p["W_hid_to_resetgate"].shape[0]
    h0 = np.zeros((batch, units)) if hid_init is None else _batch_init(hid_init, batch)

    def step(x_t, states):
        (h,) = states
        r = sigmoid(x_t @ p["W_in_to_resetgate"] + h @ p["W_hid_to_resetgate"]
                    + p["b_resetgate"])
        u = sigmoid(x_t @ p["W_in_to_updategate"] + h @ p["W_hid_to_updategate"]
                    + p["b_updategate"])
        c = np.tanh(x_t @ p["W_in_to_hidden_update"] + p["b_hidden_update"]
                    + r * (h @ p["W_hid_to_hidden_update"]))
        return [(1 - u) * h + u * c]

    return _loop(x, mask, backwards, only_return_final, [h0], step)
