"""Whole LSTM and GRU sequences as one ``Op`` each: the fused recurrences behind
``LSTMLayer`` and ``GRULayer``.

A ``scan`` of PyTensor's elementwise ops runs a step as many scalar C loops (its C
``tanh`` costs ~13 ns a value) plus scan's per-step overhead. :class:`LSTMSequence` and
:class:`GRUSequence` run the whole time loop in one op instead: in C++ when PyTensor has a
compiler (:mod:`._recurrent_c`: one BLAS GEMM a step and one vectorised gate loop), else in
``perform`` (:mod:`._recurrent_cpu`: one BLAS GEMM a step, NumPy's vectorised ufuncs).
:class:`LSTMSequenceGrad` and :class:`GRUSequenceGrad` are their back-propagation through
time, so ``pytensor.grad`` works. All have JAX translations (``jax.lax.scan``, the
gradients a ``jax.vjp`` of it) in :mod:`._jax.recurrent`.

Equations (Lasagne's ``LSTMLayer`` with its default nonlinearities; gates stacked in the
order i, f, c, o)::

    a = x_t + h_{t-1} . W_hid                  # x_t = input_t . W_in + b, precomputed
    i = sigmoid(a_i + w_ci * c_{t-1})          # peephole terms only with peepholes
    f = sigmoid(a_f + w_cf * c_{t-1})
    c = f * c_{t-1} + i * tanh(a_c)
    o = sigmoid(a_o + w_co * c)
    h = o * tanh(c)
    c_t, h_t = switch(mask_t, (c, h), (c_{t-1}, h_{t-1}))   # with a mask

Time comes first: ``x`` is ``(steps, batch, 4 * units)``, the mask ``(steps, batch)``; the
step loop visits the steps in order (reverse the sequences outside for ``backwards``).

The GRU's equations are in :class:`GRUSequence`.

API::

    lstm_sequence(x, W_hid, c0, h0, peepholes=None, mask=None) -> (hid, cell)
    gru_sequence(x, W_hid, h0, mask=None) -> hid
"""

import pytensor.tensor as pt
from pytensor.compile import optdb
from pytensor.gradient import DisconnectedType, disconnected_type
from pytensor.graph.basic import Apply
from pytensor.graph.rewriting.basic import node_rewriter
from pytensor.link.c.op import COp

from . import _recurrent_c, _recurrent_cpu
from ._backend import register_numba_perform
from ._common import as_float_tensor, common_dtype, infer_shape_arguments, named_errors
from .reduce import CPU_REWRITES

__all__ = ["LSTMSequence", "LSTMSequenceGrad", "lstm_sequence", "local_lstm_unused_gates",
           "GRUSequence", "GRUSequenceGrad", "gru_sequence"]


def _as_tensor(value, ndim, role, op_name):
    variable = pt.as_tensor_variable(value)
    if variable.type.ndim != ndim:
        raise TypeError(f"{op_name}: {role} must be a {ndim}-D tensor, got "
                        f"{variable.type.ndim}-D {variable.type}")
    return variable


class _CSequence(COp):
    """The C side shared by the sequence ops: one support-code block, its version."""

    def c_support_code(self, **kwargs):
        return _recurrent_c.SUPPORT_CODE

    def c_code_cache_version(self):
        return _recurrent_c.CODE_VERSION


class _LSTMBase(_CSequence):
    __props__ = ("peepholes", "masked")

    def __init__(self, peepholes=False, masked=False):
        self.peepholes = bool(peepholes)
        self.masked = bool(masked)

    def _split(self, inputs):
        """``(W_hid, (w_ci, w_cf, w_co) or Nones, c0, h0, mask or None, rest)``."""
        inputs = list(inputs)
        W_hid = inputs.pop(0)
        peeps = tuple(inputs.pop(0) for _ in range(3)) if self.peepholes else (None,) * 3
        c0, h0 = inputs.pop(0), inputs.pop(0)
        mask = inputs.pop(0) if self.masked else None
        return W_hid, peeps, c0, h0, mask, inputs

    def _float_inputs(self, x, W_hid, peepholes, c0, h0, op_name):
        x = as_float_tensor(x, 3, "the input projections", op_name)
        W_hid = as_float_tensor(W_hid, 2, "W_hid", op_name)
        c0 = as_float_tensor(c0, 2, "the initial cell", op_name)
        h0 = as_float_tensor(h0, 2, "the initial hidden state", op_name)
        peeps = [as_float_tensor(p, 1, "a peephole weight", op_name) for p in peepholes]
        return x, W_hid, peeps, c0, h0


@register_numba_perform
class LSTMSequence(_LSTMBase):
    """The LSTM recurrence over a whole sequence (see the module docstring).

    ``LSTMSequence(peepholes, masked, store_gates)(x, W_hid, [w_ci, w_cf, w_co,] c0, h0[,
    mask])``

    Parameters
    ----------
    peepholes : bool
        Whether the peephole weights ``w_ci, w_cf, w_co`` (each ``(units,)``) are inputs.
    masked : bool
        Whether a ``(steps, batch)`` mask is the last input.
    store_gates : bool, default True
        Whether ``gates`` holds the activations; False gives an empty ``(0, 4, batch,
        units)`` one and saves writing them (the rewrite :func:`local_lstm_unused_gates`
        sets it where nothing reads the gates). Such a node has no gradient.

    Outputs ``hid``, ``cell`` (``(steps, batch, units)``, the states after each step) and
    ``gates`` (``(steps, 4, batch, units)``, the activations ``i, f, tanh(a_c), o`` as
    contiguous blocks, which the gradient reads; it has no gradient of its own).
    """

    __props__ = ("peepholes", "masked", "store_gates")

    def __init__(self, peepholes=False, masked=False, store_gates=True):
        super().__init__(peepholes, masked)
        self.store_gates = bool(store_gates)

    def make_node(self, x, W_hid, *rest):
        name = type(self).__name__
        expected = 2 + 3 * self.peepholes + self.masked
        if len(rest) != expected:
            raise TypeError(f"{name}: expected {2 + expected} inputs, got {2 + len(rest)}")
        rest = list(rest)
        peeps = [rest.pop(0) for _ in range(3)] if self.peepholes else []
        c0, h0 = rest.pop(0), rest.pop(0)
        x, W_hid, peeps, c0, h0 = self._float_inputs(x, W_hid, peeps, c0, h0, name)
        (x, W_hid, c0, h0, *peeps), dtype = common_dtype(x, W_hid, c0, h0, *peeps)
        inputs = [x, W_hid, *peeps, c0, h0]
        if self.masked:
            inputs.append(_as_tensor(rest.pop(0), 2, "the mask", name))
        steps, batch, width = x.type.shape
        units = W_hid.type.shape[0]
        if width is not None and width % 4:
            raise ValueError(f"{name}: the input projections have {width} columns, not a "
                             "multiple of 4 (gates i, f, c, o)")
        if units is None and width is not None:
            units = width // 4
        if batch is None:
            batch = c0.type.shape[0] if c0.type.shape[0] is not None else h0.type.shape[0]
        state = pt.tensor(dtype=dtype, shape=(steps, batch, units))
        gates = pt.tensor(dtype=dtype, shape=(steps if self.store_gates else 0, 4, batch,
                                              units))
        return Apply(self, inputs, [state, state.type(), gates])

    def perform(self, node, inputs, output_storage):
        x = inputs[0]
        W_hid, peeps, c0, h0, mask, _ = self._split(inputs[1:])
        steps, batch, width = x.shape
        with named_errors(node):
            units = W_hid.shape[0]
            if width != 4 * units or W_hid.shape[1] != width:
                raise ValueError(f"LSTMSequence: input projections of shape {x.shape} and "
                                 f"W_hid of shape {W_hid.shape}, expected (steps, batch, "
                                 "4 * units) and (units, 4 * units)")
            for what, value in (("c0", c0), ("h0", h0)):
                if value.shape != (batch, units):
                    raise ValueError(f"LSTMSequence: {what} has shape {value.shape}, "
                                     f"expected (batch, units) = {(batch, units)}")
            if mask is not None and mask.shape != (steps, batch):
                raise ValueError(f"LSTMSequence: the mask has shape {mask.shape}, expected "
                                 f"(steps, batch) = {(steps, batch)}")
            if self.peepholes and any(p.shape != (units,) for p in peeps):
                raise ValueError(f"LSTMSequence: peephole weights of shapes "
                                 f"{[p.shape for p in peeps]}, expected ({units},)")
            outputs = _recurrent_cpu.lstm_forward(x, W_hid, c0, h0, *peeps, mask=mask,
                                                  store_gates=self.store_gates)
        for storage, value in zip(output_storage, outputs):
            storage[0] = value

    def c_code(self, node, name, inputs, outputs, sub):
        return _recurrent_c.lstm_forward_code(self, node, inputs, outputs, sub)

    def infer_shape(self, *args):
        node, shapes = infer_shape_arguments(args)
        steps, batch, width = shapes[0]
        units = shapes[1][0]
        gate_steps = steps if self.store_gates else 0
        return [(steps, batch, units), (steps, batch, units), (gate_steps, 4, batch, units)]

    def connection_pattern(self, node):
        pattern = [[True, True, True] for _ in node.inputs]
        if self.masked:
            pattern[-1] = [False, False, False]
        return pattern

    def pullback(self, inputs, outputs, cotangents):
        d_hid, d_cell, d_gates = cotangents
        if not isinstance(d_gates.type, DisconnectedType):
            raise NotImplementedError("LSTMSequence: the gates output has no gradient; "
                                      "differentiate through hid and cell")
        if not self.store_gates:
            raise NotImplementedError("LSTMSequence: a node without stored gates has no "
                                      "gradient (differentiate the graph before compiling)")
        hid, cell, gates = outputs
        if isinstance(d_hid.type, DisconnectedType):
            d_hid = pt.zeros_like(hid)
        cell_grad = not isinstance(d_cell.type, DisconnectedType)
        grad_op = LSTMSequenceGrad(self.peepholes, self.masked, cell_grad)
        grads = grad_op(*inputs, hid, cell, gates, d_hid, *([d_cell] if cell_grad else []))
        result = list(grads)
        if self.masked:
            result.append(disconnected_type())
        return result


@register_numba_perform
class LSTMSequenceGrad(_LSTMBase):
    """Back-propagation through time of :class:`LSTMSequence`.

    ``LSTMSequenceGrad(peepholes, masked, cell_grad)(x, W_hid, [w_ci, w_cf, w_co,] c0,
    h0, [mask,] hid, cell, gates, d_hid[, d_cell])`` (the forward's inputs, its outputs and
    the gradients of ``hid`` and, with ``cell_grad``, ``cell``) gives the gradients of
    ``x``, ``W_hid``, (the peephole weights,) ``c0`` and ``h0``. The CPU kernel reads the
    stored ``gates`` and states and not ``x``; the JAX translation recomputes from ``x``.
    """

    __props__ = ("peepholes", "masked", "cell_grad")

    def __init__(self, peepholes=False, masked=False, cell_grad=True):
        super().__init__(peepholes, masked)
        self.cell_grad = bool(cell_grad)

    def make_node(self, *inputs):
        name = type(self).__name__
        expected = 2 + 3 * self.peepholes + 2 + self.masked + 4 + self.cell_grad
        if len(inputs) != expected:
            raise TypeError(f"{name}: expected {expected} inputs, got {len(inputs)}")
        x = as_float_tensor(inputs[0], 3, "the input projections", name)
        W_hid, peeps, c0, h0, mask, rest = self._split(inputs[1:])
        tensors = [pt.as_tensor_variable(v) for v in rest]
        _, W_hid, peeps, c0, h0 = self._float_inputs(
            x, W_hid, peeps if self.peepholes else [], c0, h0, name)
        tensors[2] = as_float_tensor(tensors[2], 4, "the gates", name)
        floats, dtype = common_dtype(x, W_hid, *peeps, c0, h0, *tensors)
        x, W_hid, floats = floats[0], floats[1], floats[2:]
        peeps, floats = floats[:len(peeps)], floats[len(peeps):]
        c0, h0, tensors = floats[0], floats[1], floats[2:]
        node_inputs = [x, W_hid, *peeps, c0, h0]
        if self.masked:
            node_inputs.append(_as_tensor(mask, 2, "the mask", name))
        node_inputs += tensors
        outputs = [x.type(), W_hid.type()] + [p.type() for p in peeps] + [c0.type(),
                                                                              h0.type()]
        return Apply(self, node_inputs, outputs)

    def perform(self, node, inputs, output_storage):
        W_hid, peeps, c0, h0, mask, rest = self._split(inputs[1:])
        hid, cell, gates, d_hid = rest[:4]
        d_cell = rest[4] if self.cell_grad else None
        with named_errors(node):
            grads = _recurrent_cpu.lstm_backward(W_hid, c0, h0, hid, cell, gates, d_hid,
                                                 d_cell, *peeps, mask=mask)
        d_x, d_W, d_ci, d_cf, d_co, d_c0, d_h0 = grads
        values = [d_x, d_W] + ([d_ci, d_cf, d_co] if self.peepholes else []) + [d_c0, d_h0]
        for storage, value in zip(output_storage, values):
            storage[0] = value

    def c_code(self, node, name, inputs, outputs, sub):
        return _recurrent_c.lstm_backward_code(self, node, inputs, outputs, sub)

    def infer_shape(self, *args):
        node, shapes = infer_shape_arguments(args)
        W_hid, peeps, c0, h0, mask, rest = self._split(shapes[1:])
        return [shapes[0], W_hid] + ([peeps[0]] * 3 if self.peepholes else []) + [c0, h0]


def lstm_sequence(x, W_hid, c0, h0, peepholes=None, mask=None):
    """Lasagne's LSTM recurrence over ``x`` (time-major input projections).

    Parameters
    ----------
    x : tensor ``(steps, batch, 4 * units)``
        ``input_t . W_in + b`` for every step, gates i, f, c, o.
    W_hid : tensor ``(units, 4 * units)``
    c0, h0 : tensor ``(batch, units)``
    peepholes : tuple of 3 tensors ``(units,)``, optional
        ``(W_cell_to_ingate, W_cell_to_forgetgate, W_cell_to_outgate)``.
    mask : tensor ``(steps, batch)``, optional
        Nonzero where a step updates the state.

    Returns
    -------
    hid, cell : tensors ``(steps, batch, units)``
    """
    op = LSTMSequence(peepholes is not None, mask is not None)
    inputs = [x, W_hid, *(peepholes or ()), c0, h0] + ([mask] if mask is not None else [])
    hid, cell, _ = op(*inputs)
    return hid, cell


@node_rewriter([LSTMSequence])
def local_lstm_unused_gates(fgraph, node):
    """:class:`LSTMSequence` whose ``gates`` nothing reads → one with ``store_gates=False``
    (a forward-only graph: the gates are ``steps * 4 * batch * units`` values written and
    never read)."""
    op = node.op
    if not op.store_gates or fgraph.clients.get(node.outputs[2]):
        return None
    hid, cell, _ = LSTMSequence(op.peepholes, op.masked, store_gates=False)(*node.inputs)
    return {node.outputs[0]: hid, node.outputs[1]: cell}


# Not tagged fast_run: only the CPU mode of fcn8_lasagne.compile includes it (the JAX
# translation always computes the gates).
optdb["specialize"].register("local_lstm_unused_gates", local_lstm_unused_gates, CPU_REWRITES)


class _GRUBase(_CSequence):
    __props__ = ("masked",)

    def __init__(self, masked=False):
        self.masked = bool(masked)


@register_numba_perform
class GRUSequence(_GRUBase):
    """Lasagne's GRU recurrence over a whole sequence (gates r, u, c).

    ``GRUSequence(masked)(x, W_hid, h0[, mask])`` with ``x`` ``(steps, batch, 3 * units)``
    (``input_t . W_in + b``), ``W_hid`` ``(units, 3 * units)``, ``h0`` ``(batch, units)``::

        w = h_{t-1} . W_hid
        r = sigmoid(x_r + w_r);  u = sigmoid(x_u + w_u)
        c = tanh(x_c + r * w_c)
        h = (1 - u) * h_{t-1} + u * c          # switch(mask_t, h, h_{t-1}) with a mask

    Parameters
    ----------
    masked : bool
        Whether a ``(steps, batch)`` mask is the last input.

    Outputs ``hid`` (``(steps, batch, units)``) and ``gates`` (``(steps, 4, batch,
    units)``: ``r, u, c`` and ``w_c`` as contiguous blocks, which the gradient reads; it
    has no gradient of its own).
    """

    def make_node(self, x, W_hid, h0, *rest):
        name = type(self).__name__
        if len(rest) != self.masked:
            raise TypeError(f"{name}: expected {3 + self.masked} inputs, got {3 + len(rest)}")
        x = as_float_tensor(x, 3, "the input projections", name)
        W_hid = as_float_tensor(W_hid, 2, "W_hid", name)
        h0 = as_float_tensor(h0, 2, "the initial hidden state", name)
        (x, W_hid, h0), dtype = common_dtype(x, W_hid, h0)
        inputs = [x, W_hid, h0]
        if self.masked:
            inputs.append(_as_tensor(rest[0], 2, "the mask", name))
        steps, batch, width = x.type.shape
        units = W_hid.type.shape[0]
        if width is not None and width % 3:
            raise ValueError(f"{name}: the input projections have {width} columns, not a "
                             "multiple of 3 (gates r, u, c)")
        if units is None and width is not None:
            units = width // 3
        if batch is None:
            batch = h0.type.shape[0]
        hid = pt.tensor(dtype=dtype, shape=(steps, batch, units))
        gates = pt.tensor(dtype=dtype, shape=(steps, 4, batch, units))
        return Apply(self, inputs, [hid, gates])

    def perform(self, node, inputs, output_storage):
        x, W_hid, h0 = inputs[:3]
        mask = inputs[3] if self.masked else None
        steps, batch, width = x.shape
        with named_errors(node):
            units = W_hid.shape[0]
            if width != 3 * units or W_hid.shape[1] != width:
                raise ValueError(f"GRUSequence: input projections of shape {x.shape} and "
                                 f"W_hid of shape {W_hid.shape}, expected (steps, batch, "
                                 "3 * units) and (units, 3 * units)")
            if h0.shape != (batch, units):
                raise ValueError(f"GRUSequence: h0 has shape {h0.shape}, expected "
                                 f"(batch, units) = {(batch, units)}")
            if mask is not None and mask.shape != (steps, batch):
                raise ValueError(f"GRUSequence: the mask has shape {mask.shape}, expected "
                                 f"(steps, batch) = {(steps, batch)}")
            outputs = _recurrent_cpu.gru_forward(x, W_hid, h0, mask=mask)
        for storage, value in zip(output_storage, outputs):
            storage[0] = value

    def c_code(self, node, name, inputs, outputs, sub):
        return _recurrent_c.gru_forward_code(self, node, inputs, outputs, sub)

    def infer_shape(self, *args):
        node, shapes = infer_shape_arguments(args)
        steps, batch, width = shapes[0]
        units = shapes[1][0]
        return [(steps, batch, units), (steps, 4, batch, units)]

    def connection_pattern(self, node):
        pattern = [[True, True] for _ in node.inputs]
        if self.masked:
            pattern[-1] = [False, False]
        return pattern

    def pullback(self, inputs, outputs, cotangents):
        d_hid, d_gates = cotangents
        if not isinstance(d_gates.type, DisconnectedType):
            raise NotImplementedError("GRUSequence: the gates output has no gradient; "
                                      "differentiate through hid")
        hid, gates = outputs
        if isinstance(d_hid.type, DisconnectedType):
            d_hid = pt.zeros_like(hid)
        grads = GRUSequenceGrad(self.masked)(*inputs, hid, gates, d_hid)
        return list(grads) + ([disconnected_type()] if self.masked else [])


@register_numba_perform
class GRUSequenceGrad(_GRUBase):
    """Back-propagation through time of :class:`GRUSequence`.

    ``GRUSequenceGrad(masked)(x, W_hid, h0, [mask,] hid, gates, d_hid)`` gives the
    gradients of ``x``, ``W_hid`` and ``h0``. The CPU kernels read the stored ``gates`` and
    states and not ``x``; the JAX translation recomputes from ``x``.
    """

    def make_node(self, *inputs):
        name = type(self).__name__
        expected = 3 + self.masked + 3
        if len(inputs) != expected:
            raise TypeError(f"{name}: expected {expected} inputs, got {len(inputs)}")
        inputs = list(inputs)
        x = as_float_tensor(inputs[0], 3, "the input projections", name)
        W_hid = as_float_tensor(inputs[1], 2, "W_hid", name)
        h0 = as_float_tensor(inputs[2], 2, "the initial hidden state", name)
        mask = inputs[3] if self.masked else None
        hid, gates, d_hid = (pt.as_tensor_variable(v) for v in inputs[3 + self.masked:])
        gates = as_float_tensor(gates, 4, "the gates", name)
        (x, W_hid, h0, hid, gates, d_hid), dtype = common_dtype(x, W_hid, h0, hid, gates,
                                                                d_hid)
        node_inputs = [x, W_hid, h0]
        if self.masked:
            node_inputs.append(_as_tensor(mask, 2, "the mask", name))
        node_inputs += [hid, gates, d_hid]
        return Apply(self, node_inputs, [x.type(), W_hid.type(), h0.type()])

    def perform(self, node, inputs, output_storage):
        W_hid, h0 = inputs[1], inputs[2]
        mask = inputs[3] if self.masked else None
        hid, gates, d_hid = inputs[3 + self.masked:]
        with named_errors(node):
            grads = _recurrent_cpu.gru_backward(W_hid, h0, hid, gates, d_hid, mask=mask)
        for storage, value in zip(output_storage, grads):
            storage[0] = value

    def c_code(self, node, name, inputs, outputs, sub):
        return _recurrent_c.gru_backward_code(self, node, inputs, outputs, sub)

    def infer_shape(self, *args):
        node, shapes = infer_shape_arguments(args)
        return [shapes[0], shapes[1], shapes[2]]


def gru_sequence(x, W_hid, h0, mask=None):
    """Lasagne's GRU recurrence over ``x`` (time-major input projections).

    Parameters
    ----------
    x : tensor ``(steps, batch, 3 * units)``
        ``input_t . W_in + b`` for every step, gates r, u, c.
    W_hid : tensor ``(units, 3 * units)``
    h0 : tensor ``(batch, units)``
    mask : tensor ``(steps, batch)``, optional
        Nonzero where a step updates the state.

    Returns
    -------
    hid : tensor ``(steps, batch, units)``
    """
    op = GRUSequence(mask is not None)
    hid, _ = op(x, W_hid, h0, *([mask] if mask is not None else []))
    return hid
