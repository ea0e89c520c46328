"""Recurrent layers (Lasagne's ``lasagne.layers.recurrent``) on ``pytensor.scan``.

The input of every layer is ``(batch_size, sequence_length, num_inputs...)``; the output is
``(batch_size, sequence_length, num_units...)``, or ``(batch_size, num_units...)`` with
``only_return_final=True``. Internally time comes first: the input is dimshuffled to
``(sequence_length, batch_size, ...)``, ``pytensor.scan`` (or
:func:`~fcn8_lasagne.utils.unroll_scan` with ``unroll_scan=True``) iterates over it, and
the result is dimshuffled back (and reversed again for ``backwards=True``), as in Lasagne.

.. autosummary::
    :nosignatures:

    CustomRecurrentLayer
    RecurrentLayer
    Gate
    LSTMLayer
    GRULayer

The one rule a reader must know: a mask (``mask_input``, shape ``(batch_size,
sequence_length)``) keeps the previous state where it is 0, ``switch(mask, new, old)`` — the
rule of Lasagne 0.2.dev1 (older Lasagne wrote ``mask * new + (1 - mask) * old``; both agree
for 0/1 masks).

Differences from Lasagne (all are added checks; see ``docs/faithfulness.md``): input of
fewer than 3 dimensions, a mask whose shape is not the input's first two dimensions, a
``hid_init``/``cell_init`` layer of the wrong shape and an unrolled layer fed a sequence of
another length raise errors naming the layer and the shapes (at construction when the shapes
are known, otherwise when the function runs in the C backend; the JAX backend, which
specialises shapes, reports them when compiling). Lasagne ran such graphs with a broadcasting
error, or silently used the shorter length.

``LSTMLayer`` and ``GRULayer`` in Lasagne's default configuration run as one fused op
each (:mod:`fcn8_lasagne.ops.recurrent`) rather than ``scan``; ``USE_FUSED_OPS = False`` (a
module attribute, read by ``get_output``) forces the scan graph.

``gradient_steps=k`` (truncated backpropagation through time) runs as two scans, the first
``sequence_length - k`` steps cut off from the gradient and the last ``k``: the values and
gradients of Theano's ``truncate_gradient=k``, which Lasagne used and whose gradient
PyTensor's JAX backend cannot build.
"""

import numpy as np
import pytensor
import pytensor.tensor as pt
from pytensor.gradient import disconnected_grad
from pytensor.graph.basic import Constant, Variable
from pytensor.raise_op import Assert

from .. import init, nonlinearities
from ..ops.recurrent import gru_sequence, lstm_sequence
from ..utils import unroll_scan
from . import helper
from .base import Layer, MergeLayer
from .dense import DenseLayer
from .input import InputLayer

__all__ = [
    "CustomRecurrentLayer",
    "RecurrentLayer",
    "Gate",
    "LSTMLayer",
    "GRULayer",
]


# ---------------------------------------------------------------------------------------
# Checks and the shared recurrence driver
# ---------------------------------------------------------------------------------------

def _describe(layer):
    name = f" {layer.name!r}" if layer.name else ""
    return f"{type(layer).__name__}{name}"


def _incomings(incoming, mask_input, **init_layers):
    """Lasagne's incoming list: input, then the mask, then each init given as a Layer.

    Returns the list and a dict ``{'mask': index, 'hid_init': index, ...}`` (-1 if absent).
    """
    incomings = [incoming]
    indices = {"mask": -1}
    if mask_input is not None:
        incomings.append(mask_input)
        indices["mask"] = len(incomings) - 1
    for key, value in init_layers.items():
        indices[key] = -1
        if isinstance(value, Layer):
            incomings.append(value)
            indices[key] = len(incomings) - 1
    return incomings, indices


def _check_common_settings(layer, unroll, gradient_steps):
    """Rank, unroll and mask checks every recurrent layer makes at construction."""
    input_shape = layer.input_shapes[0]
    if len(input_shape) < 3:
        raise ValueError(
            f"{_describe(layer)}: the input must have at least 3 dimensions "
            f"(batch_size, sequence_length, num_inputs...), got input shape {input_shape!r}")
    if unroll and gradient_steps != -1:
        raise ValueError("Gradient steps must be -1 when unroll_scan is true.")
    if unroll and input_shape[1] is None:
        raise ValueError("Input sequence length cannot be specified as None when "
                         "unroll_scan is True")
    if layer.mask_incoming_index > 0:
        mask_shape = layer.input_shapes[layer.mask_incoming_index]
        _check_static_shape(layer, "mask_input", mask_shape, input_shape[:2],
                            "(batch_size, sequence_length) of the input", input_shape)


def _check_static_shape(layer, what, shape, expected, expected_text, input_shape):
    """Raise if ``shape`` has another rank than ``expected`` or a known size differs."""
    shape = tuple(shape)
    if len(shape) != len(expected) or any(
            s is not None and e is not None and s != e for s, e in zip(shape, expected)):
        raise ValueError(
            f"{_describe(layer)}: {what} has shape {shape!r}, expected {tuple(expected)!r} "
            f"= {expected_text} (input shape {tuple(input_shape)!r})")


def _num_inputs(layer):
    """The flattened feature size of a gated layer's input (trailing dimensions known)."""
    input_shape = layer.input_shapes[0]
    if any(s is None for s in input_shape[2:]):
        raise ValueError(
            f"{_describe(layer)}: the feature dimensions (all but the first two) of the "
            f"input must be known, got input shape {input_shape!r}")
    return int(np.prod(input_shape[2:]))


def _checked(layer, what, var, expected, expected_text, input_var):
    """``var`` with a check that its shape is ``expected`` (ints, symbolic sizes or None).

    Known sizes are compared now; the others get an ``Assert`` that runs with the function.
    """
    if var.ndim != len(expected):
        raise ValueError(
            f"{_describe(layer)}: {what} has {var.ndim} dimensions, expected "
            f"{len(expected)} = {expected_text} (input type shape {input_var.type.shape!r})")
    static = tuple(var.type.shape)
    conditions = []
    for axis, size in enumerate(expected):
        if size is None:
            continue
        if not isinstance(size, Variable) or isinstance(size, Constant):
            size = int(size.data) if isinstance(size, Constant) else int(size)
            if static[axis] is not None:
                if static[axis] != size:
                    raise ValueError(
                        f"{_describe(layer)}: {what} has shape {static!r}, expected size "
                        f"{size} on axis {axis} = {expected_text} "
                        f"(input type shape {input_var.type.shape!r})")
                continue
        conditions.append(pt.eq(var.shape[axis], size))
    if not conditions:
        return var
    message = (f"{_describe(layer)}: {what} must have shape {expected_text} "
               f"(input type shape {input_var.type.shape!r}, {what} type shape {static!r})")
    return Assert(message)(var, *conditions)


def _input_sizes(input_var):
    """``(batch_size, sequence_length)`` of an input: static ints where known."""
    return tuple(s if s is not None else input_var.shape[axis]
                 for axis, s in enumerate(input_var.type.shape[:2]))


def _prepare_input(layer, input):
    """Check the input's rank (and, when unrolled, its length)."""
    if input.ndim < 3:
        raise ValueError(
            f"{_describe(layer)}: the input must have at least 3 dimensions "
            f"(batch_size, sequence_length, num_inputs...), got a {input.ndim}-dimensional "
            f"input of type shape {input.type.shape!r}")
    if layer.unroll_scan:
        n_steps = layer.input_shapes[0][1]
        expected = (None, n_steps) + (None,) * (input.ndim - 2)
        input = _checked(layer, "the input", input, expected,
                         f"sequence length {n_steps} (unroll_scan=True unrolls that many steps)",
                         input)
    return input


def _prepare_mask(layer, inputs, input):
    """The mask as ``(sequence_length, batch_size, 1)``, checked against the input."""
    if layer.mask_incoming_index <= 0:
        return None
    mask = inputs[layer.mask_incoming_index]
    mask = _checked(layer, "the mask", mask, _input_sizes(input),
                    "(batch_size, sequence_length) of the input", input)
    return mask.dimshuffle(1, 0, "x")


def _initial_state(layer, inputs, key, param, num_batch, state_shape, input):
    """A state's initial value: the incoming layer's output (checked) or ``param`` repeated.

    ``state_shape`` is the state's shape after the batch axis. The repeat is
    ``ones((num_batch, 1, ...)) * param`` (Lasagne multiplies by a ones column with ``dot``;
    the values are the same).
    """
    index = getattr(layer, f"{key}_incoming_index")
    if index > 0:
        value = inputs[index]
        return _checked(layer, key, value, (num_batch,) + tuple(state_shape),
                        f"(batch_size,) + {tuple(state_shape)!r}", input)
    ones = pt.ones((num_batch,) + (1,) * (param.ndim - 1), dtype=param.dtype)
    return ones * param


#: Run ``LSTMLayer`` and ``GRULayer`` through the fused sequence ops
#: (:class:`~fcn8_lasagne.ops.recurrent.LSTMSequence`, ``GRUSequence``) when their
#: configuration allows it (see :func:`_lstm_fusable`, :func:`_gru_fusable`). Set to False before ``get_output`` to force the
#: ``pytensor.scan`` graph (e.g. to differentiate twice, which the fused op cannot).
USE_FUSED_OPS = True


def _lstm_fusable(layer):
    """Whether ``layer`` (an LSTMLayer) computes exactly what the fused op computes.

    Lasagne's default nonlinearities (sigmoid gates, tanh cell and output, compared to the
    :mod:`fcn8_lasagne.nonlinearities` objects), no ``grad_clipping``, no
    ``gradient_steps``, not ``unroll_scan``, and :data:`USE_FUSED_OPS` set.
    """
    sigmoid, tanh = nonlinearities.sigmoid, nonlinearities.tanh
    return (USE_FUSED_OPS and not layer.unroll_scan and layer.gradient_steps < 0
            and not layer.grad_clipping
            and layer.nonlinearity_ingate is sigmoid
            and layer.nonlinearity_forgetgate is sigmoid
            and layer.nonlinearity_cell is tanh
            and layer.nonlinearity_outgate is sigmoid
            and layer.nonlinearity is tanh)


def _gru_fusable(layer):
    """Whether ``layer`` (a GRULayer) computes exactly what the fused op computes: the
    conditions of :func:`_lstm_fusable` (sigmoid gates, tanh hidden update)."""
    sigmoid, tanh = nonlinearities.sigmoid, nonlinearities.tanh
    return (USE_FUSED_OPS and not layer.unroll_scan and layer.gradient_steps < 0
            and not layer.grad_clipping
            and layer.nonlinearity_resetgate is sigmoid
            and layer.nonlinearity_updategate is sigmoid
            and layer.nonlinearity_hid is tanh)


def _scan(step_fun, sequences, outputs_info, non_seqs, go_backwards=False, truncate=-1):
    return list(pytensor.scan(fn=step_fun, sequences=sequences, outputs_info=outputs_info,
                              go_backwards=go_backwards, non_sequences=non_seqs,
                              truncate_gradient=truncate, strict=True, return_list=True,
                              return_updates=False))


def _truncated_scan(step_fun, sequences, outputs_info, non_seqs, backwards, k):
    """Scan whose gradient runs through the last ``k`` steps only (``truncate_gradient=k``).

    Two scans: the first ``n - k`` steps, cut off from the gradient, then the last ``k``
    from the first's final state. Values and gradients are those of Theano's
    ``truncate_gradient`` (the gradients of outputs before the last ``k`` steps, and through
    them, are dropped); this form also compiles in PyTensor's JAX backend, whose truncated
    scan gradient fails to build.
    """
    if backwards:  # scan's go_backwards: the steps in reverse, outputs in that order
        sequences = [s[::-1] for s in sequences]
    split = pt.maximum(sequences[0].shape[0] - k, 0)
    head = _scan(step_fun, [s[:split] for s in sequences], outputs_info, non_seqs)
    restart = []
    for init_state, states in zip(outputs_info, head):
        last = pt.concatenate([pt.shape_padleft(init_state), states], axis=0)[-1]
        restart.append(pt.switch(pt.gt(split, 0), disconnected_grad(last), init_state))
    tail = _scan(step_fun, [s[split:] for s in sequences], restart, non_seqs)
    return [pt.concatenate([disconnected_grad(a), b], axis=0) for a, b in zip(head, tail)]


def _recur(layer, step_fun, sequences, outputs_info, non_seqs):
    """Run the recurrence with scan or unrolled; one output list in scan's format."""
    if layer.unroll_scan:
        outputs = unroll_scan(fn=step_fun, sequences=sequences, outputs_info=outputs_info,
                              go_backwards=layer.backwards, non_sequences=non_seqs,
                              n_steps=layer.input_shapes[0][1])
    elif layer.gradient_steps >= 0:
        outputs = _truncated_scan(step_fun, sequences, outputs_info, non_seqs,
                                  layer.backwards, layer.gradient_steps)
    else:
        outputs = _scan(step_fun, sequences, outputs_info, non_seqs,
                        go_backwards=layer.backwards, truncate=layer.gradient_steps)
    return list(outputs)


def _finish(layer, hid_out):
    """Lasagne's output: the last step, or back to batch-major (and forward order)."""
    if layer.only_return_final:
        return hid_out[-1]
    hid_out = hid_out.dimshuffle(1, 0, *range(2, hid_out.ndim))
    if layer.backwards:
        hid_out = hid_out[:, ::-1]
    return hid_out


def _clip(layer, x):
    if layer.grad_clipping:
        return pytensor.gradient.grad_clip(x, -layer.grad_clipping, layer.grad_clipping)
    return x


def _slice_gate(x, n, num_units):
    return x[:, n * num_units:(n + 1) * num_units]


def _flat_time_major(input):
    """``(batch, steps, features...)`` to ``(steps, batch, prod(features))``."""
    if input.ndim > 3:
        input = input.flatten(3)
    return input.dimshuffle(1, 0, 2)


def _precompute(input, W_in_stacked, b_stacked):
    """``dot(input, W) + b`` for all steps as one GEMM over ``(steps * batch, features)``."""
    steps, batch = input.shape[0], input.shape[1]
    flat = input.reshape((steps * batch, input.shape[2]))
    out = pt.dot(flat, W_in_stacked) + b_stacked
    return out.reshape((steps, batch, W_in_stacked.shape[1]))


# ---------------------------------------------------------------------------------------
# Layers
# ---------------------------------------------------------------------------------------

def _sequence_output_shape(input_shape, state_shape, only_return_final):
    """``(batch, steps, *state)``, or ``(batch, *state)`` with ``only_return_final``."""
    leading = input_shape[:1] if only_return_final else input_shape[:2]
    return tuple(leading) + tuple(state_shape)


class CustomRecurrentLayer(MergeLayer):
    r"""A recurrent layer with given connections: :math:`h_t = \sigma(f_i(x_t) + f_h(h_{t-1}))`.

    Parameters
    ----------
    incoming : Layer or tuple
        Input of shape ``(batch_size, sequence_length, features...)``.
    input_to_hidden : Layer
        :math:`f_i`, a network ending in one :class:`InputLayer` of the input's trailing
        shape. Its first dimension must be ``batch_size * sequence_length`` (or None) with
        ``precompute_input=True``, ``batch_size`` (or None) otherwise.
    hidden_to_hidden : Layer
        :math:`f_h`, a network ending in one :class:`InputLayer` whose shape is the hidden
        state's; its output shape after the first axis must equal ``input_to_hidden``'s.
    nonlinearity : callable or None, default rectify
        :math:`\sigma`; None means identity.
    hid_init : callable, array, shared variable or Layer, default Constant(0.)
        Initial hidden state :math:`h_0`; a parameter of shape ``(1,) + state shape``, or a
        Layer giving ``(batch_size,) + state shape``.
    backwards : bool, default False
        Process the sequence from its end; the output is reversed back into input order.
    learn_init : bool, default False
        Tag ``hid_init`` trainable.
    gradient_steps : int, default -1
        Steps of truncated backpropagation through time (-1: the whole sequence): the
        gradient flows through the last ``gradient_steps`` steps only, and the outputs of
        earlier steps get none, as with Theano's ``truncate_gradient``.
    grad_clipping : float, default 0
        If nonzero, clip the gradient of the pre-activation to ``[-grad_clipping,
        grad_clipping]`` (``pytensor.gradient.grad_clip``).
    unroll_scan : bool, default False
        Unroll the recursion (:func:`fcn8_lasagne.utils.unroll_scan`) instead of ``scan``;
        needs a known sequence length and ``gradient_steps=-1``.
    precompute_input : bool, default True
        Apply ``input_to_hidden`` to all steps at once before the recurrence.
    mask_input : Layer, optional
        A ``(batch_size, sequence_length)`` mask; where it is 0 the state is carried over.
    only_return_final : bool, default False
        Return only the last step's state, ``(batch_size,) + state shape``.
    **kwargs
        ``name``.

    Notes
    -----
    Parameters (:meth:`get_params`): this layer's ``hid_init`` (tagged trainable only with
    ``learn_init``, never regularizable), then ``input_to_hidden``'s, then
    ``hidden_to_hidden``'s, as in Lasagne.
    """

    def __init__(self, incoming, input_to_hidden, hidden_to_hidden,
                 nonlinearity=nonlinearities.rectify, hid_init=init.Constant(0.0),
                 backwards=False, learn_init=False, gradient_steps=-1, grad_clipping=0,
                 unroll_scan=False, precompute_input=True, mask_input=None,
                 only_return_final=False, **kwargs):
        incomings, indices = _incomings(incoming, mask_input, hid_init=hid_init)
        self.mask_incoming_index = indices["mask"]
        self.hid_init_incoming_index = indices["hid_init"]
        super().__init__(incomings, **kwargs)

        for what, network in (("input_to_hidden", input_to_hidden),
                              ("hidden_to_hidden", hidden_to_hidden)):
            n_inputs = sum(isinstance(l, InputLayer) for l in helper.get_all_layers(network))
            if n_inputs != 1:
                raise ValueError(
                    f"`{what}` must have exactly one InputLayer, but it has {n_inputs}")
        hid_to_hid_in = [l for l in helper.get_all_layers(hidden_to_hidden)
                         if isinstance(l, InputLayer)][0]

        self.input_to_hidden = input_to_hidden
        self.hidden_to_hidden = hidden_to_hidden
        self.learn_init = learn_init
        self.backwards = backwards
        self.gradient_steps = gradient_steps
        self.grad_clipping = grad_clipping
        self.unroll_scan = unroll_scan
        self.precompute_input = precompute_input
        self.only_return_final = only_return_final
        _check_common_settings(self, unroll_scan, gradient_steps)

        input_shape = self.input_shapes[0]
        in_out = input_to_hidden.output_shape
        hid_out = hidden_to_hidden.output_shape
        if (precompute_input and in_out[0] is not None and input_shape[0] is not None
                and input_shape[1] is not None and in_out[0] != input_shape[0] * input_shape[1]):
            raise ValueError(
                "When precompute_input == True, input_to_hidden.output_shape[0] must equal "
                "incoming.output_shape[0]*incoming.output_shape[1] (i.e. "
                "batch_size*sequence_length) or be None but input_to_hidden.output_shape[0] "
                f"= {in_out[0]} and incoming.output_shape[0]*incoming.output_shape[1] = "
                f"{input_shape[0] * input_shape[1]}")
        if (not precompute_input and in_out[0] is not None and hid_out[0] is not None
                and in_out[0] != hid_out[0]):
            raise ValueError(
                "When precompute_input == False, input_to_hidden.output_shape[0] must equal "
                "hidden_to_hidden.output_shape[0] but input_to_hidden.output_shape[0] = "
                f"{in_out[0]} and hidden_to_hidden.output_shape[0] = {hid_out[0]}")

        def agree(a, b):
            return len(a) == len(b) and all(
                s1 is None or s2 is None or s1 == s2 for s1, s2 in zip(a, b))

        if not agree(in_out[1:], hid_out[1:]):
            raise ValueError(
                "The output shape for input_to_hidden and hidden_to_hidden must be equal "
                f"after the first dimension, but input_to_hidden.output_shape={in_out} and "
                f"hidden_to_hidden.output_shape={hid_out}")
        if not agree(in_out[1:], hid_to_hid_in.output_shape[1:]):
            raise ValueError(
                "The output shape for input_to_hidden must be equal to the input shape of "
                "hidden_to_hidden after the first dimension, but "
                f"input_to_hidden.output_shape={in_out} and "
                f"hidden_to_hidden:input_layer.shape={hid_to_hid_in.output_shape}")

        self.nonlinearity = nonlinearities.identity if nonlinearity is None else nonlinearity
        state_shape = tuple(hid_out[1:])
        if isinstance(hid_init, Layer):
            _check_static_shape(self, "hid_init", hid_init.output_shape,
                                (input_shape[0],) + state_shape,
                                "(batch_size,) + hidden_to_hidden.output_shape[1:]",
                                input_shape)
            self.hid_init = hid_init
        else:
            if any(s is None for s in state_shape):
                raise ValueError(
                    f"{_describe(self)}: hid_init needs a known state shape, but "
                    f"hidden_to_hidden.output_shape={hid_out}")
            self.hid_init = self.add_param(hid_init, (1,) + state_shape, name="hid_init",
                                           trainable=learn_init, regularizable=False)

    def get_params(self, unwrap_shared=True, **tags):
        """This layer's parameters, then ``input_to_hidden``'s, then ``hidden_to_hidden``'s."""
        params = super().get_params(unwrap_shared=unwrap_shared, **tags)
        params += helper.get_all_params(self.input_to_hidden, unwrap_shared=unwrap_shared,
                                        **tags)
        params += helper.get_all_params(self.hidden_to_hidden, unwrap_shared=unwrap_shared,
                                        **tags)
        return params

    def get_output_shape_for(self, input_shapes):
        return _sequence_output_shape(input_shapes[0], self.hidden_to_hidden.output_shape[1:],
                                      self.only_return_final)

    def get_output_for(self, inputs, **kwargs):
        """The hidden states for ``inputs`` = [input, mask (if any), hid_init (if a Layer)]."""
        input = _prepare_input(self, inputs[0])
        mask = _prepare_mask(self, inputs, input)
        num_batch = _input_sizes(input)[0]
        state_shape = tuple(self.hidden_to_hidden.output_shape[1:])
        hid_init = _initial_state(self, inputs, "hid_init", self.hid_init, num_batch,
                                  state_shape, input)

        input = input.dimshuffle(1, 0, *range(2, input.ndim))
        seq_len, batch = input.shape[0], input.shape[1]
        if self.precompute_input:
            trailing = tuple(input.shape[n] for n in range(2, input.ndim))
            flat = input.reshape((seq_len * batch,) + trailing)
            pre = helper.get_output(self.input_to_hidden, flat, **kwargs)
            trailing = tuple(pre.shape[n] for n in range(1, pre.ndim))
            input = pre.reshape((seq_len, batch) + trailing)

        non_seqs = helper.get_all_params(self.hidden_to_hidden)
        if not self.precompute_input:
            non_seqs += helper.get_all_params(self.input_to_hidden)

        def step(input_n, hid_previous, *args):
            hid_pre = helper.get_output(self.hidden_to_hidden, hid_previous, **kwargs)
            if self.precompute_input:
                hid_pre = hid_pre + input_n
            else:
                hid_pre = hid_pre + helper.get_output(self.input_to_hidden, input_n, **kwargs)
            return self.nonlinearity(_clip(self, hid_pre))

        def step_masked(input_n, mask_n, hid_previous, *args):
            hid = step(input_n, hid_previous, *args)
            return pt.switch(mask_n, hid, hid_previous)

        if mask is not None:
            sequences, step_fun = [input, mask], step_masked
        else:
            sequences, step_fun = [input], step
        hid_out = _recur(self, step_fun, sequences, [hid_init], non_seqs)[0]
        return _finish(self, hid_out)


class RecurrentLayer(CustomRecurrentLayer):
    r"""A dense ("vanilla") RNN, :math:`h_t = \sigma(x_t W_x + h_{t-1} W_h + b)`.

    A :class:`CustomRecurrentLayer` with two :class:`DenseLayer` connections named
    ``'<name>.input_to_hidden'`` (``W_in_to_hid``, ``b``) and ``'<name>.hidden_to_hidden'``
    (``W_hid_to_hid``, no bias), both linear.

    Parameters
    ----------
    incoming : Layer or tuple
        ``(batch_size, sequence_length, features...)``; the features are flattened.
    num_units : int
    W_in_to_hid : default Uniform()
        ``(num_inputs, num_units)``.
    W_hid_to_hid : default Uniform()
        ``(num_units, num_units)``.
    b : default Constant(0.)
        ``(num_units,)``, not regularizable; None for no bias.
    nonlinearity, hid_init, backwards, learn_init, gradient_steps, grad_clipping, \
unroll_scan, precompute_input, mask_input, only_return_final, **kwargs
        As in :class:`CustomRecurrentLayer`.
    """

    def __init__(self, incoming, num_units, W_in_to_hid=init.Uniform(),
                 W_hid_to_hid=init.Uniform(), b=init.Constant(0.0),
                 nonlinearity=nonlinearities.rectify, hid_init=init.Constant(0.0),
                 backwards=False, learn_init=False, gradient_steps=-1, grad_clipping=0,
                 unroll_scan=False, precompute_input=True, mask_input=None,
                 only_return_final=False, **kwargs):
        input_shape = incoming if isinstance(incoming, tuple) else incoming.output_shape
        if len(input_shape) < 3:
            raise ValueError(
                f"RecurrentLayer{' ' + repr(kwargs['name']) if kwargs.get('name') else ''}: "
                "the input must have at least 3 dimensions (batch_size, sequence_length, "
                f"num_inputs...), got input shape {tuple(input_shape)!r}")
        if "name" in kwargs:
            basename = f"{kwargs['name']}."
            layer_kwargs = {key: value for key, value in kwargs.items() if key != "name"}
        else:
            basename = ""
            layer_kwargs = kwargs
        in_to_hid = DenseLayer(InputLayer((None,) + tuple(input_shape[2:])), num_units,
                               W=W_in_to_hid, b=b, nonlinearity=None,
                               name=basename + "input_to_hidden", **layer_kwargs)
        hid_to_hid = DenseLayer(InputLayer((None, num_units)), num_units, W=W_hid_to_hid,
                                b=None, nonlinearity=None,
                                name=basename + "hidden_to_hidden", **layer_kwargs)
        self.W_in_to_hid = in_to_hid.W
        self.W_hid_to_hid = hid_to_hid.W
        self.b = in_to_hid.b
        super().__init__(incoming, in_to_hid, hid_to_hid, nonlinearity=nonlinearity,
                         hid_init=hid_init, backwards=backwards, learn_init=learn_init,
                         gradient_steps=gradient_steps, grad_clipping=grad_clipping,
                         unroll_scan=unroll_scan, precompute_input=precompute_input,
                         mask_input=mask_input, only_return_final=only_return_final,
                         **kwargs)


class Gate:
    """The parameters of one gate: ``nonlinearity(x W_in + h W_hid [+ c * W_cell] + b)``.

    Parameters
    ----------
    W_in : default Normal(0.1)
        Input-to-gate weights (initialiser, array or shared variable).
    W_hid : default Normal(0.1)
        Hidden-to-gate weights.
    W_cell : default Normal(0.1)
        Cell-to-gate (peephole) weight vector; None stores no ``W_cell`` attribute.
    b : default Constant(0.)
        Bias.
    nonlinearity : default sigmoid
        None means identity.
    """

    def __init__(self, W_in=init.Normal(0.1), W_hid=init.Normal(0.1),
                 W_cell=init.Normal(0.1), b=init.Constant(0.0),
                 nonlinearity=nonlinearities.sigmoid):
        self.W_in = W_in
        self.W_hid = W_hid
        if W_cell is not None:
            self.W_cell = W_cell
        self.b = b
        self.nonlinearity = nonlinearities.identity if nonlinearity is None else nonlinearity


def _add_gate_params(layer, gate, gate_name, num_inputs, num_units):
    """``W_in_to_<gate>``, ``W_hid_to_<gate>``, ``b_<gate>`` (not regularizable), nonlinearity."""
    return (layer.add_param(gate.W_in, (num_inputs, num_units), name=f"W_in_to_{gate_name}"),
            layer.add_param(gate.W_hid, (num_units, num_units), name=f"W_hid_to_{gate_name}"),
            layer.add_param(gate.b, (num_units,), name=f"b_{gate_name}", regularizable=False),
            gate.nonlinearity)


class LSTMLayer(MergeLayer):
    r"""A long short-term memory layer with optional peepholes and a forget gate.

    .. math ::
        i_t &= \sigma_i(x_t W_{xi} + h_{t-1} W_{hi} + w_{ci} \odot c_{t-1} + b_i)\\
        f_t &= \sigma_f(x_t W_{xf} + h_{t-1} W_{hf} + w_{cf} \odot c_{t-1} + b_f)\\
        c_t &= f_t \odot c_{t-1} + i_t \odot \sigma_c(x_t W_{xc} + h_{t-1} W_{hc} + b_c)\\
        o_t &= \sigma_o(x_t W_{xo} + h_{t-1} W_{ho} + w_{co} \odot c_t + b_o)\\
        h_t &= o_t \odot \sigma_h(c_t)

    Parameters
    ----------
    incoming : Layer or tuple
        ``(batch_size, sequence_length, features...)``; the features are flattened.
    num_units : int
    ingate, forgetgate, outgate : Gate, default Gate()
    cell : Gate, default Gate(W_cell=None, nonlinearity=tanh)
    nonlinearity : default tanh
        :math:`\sigma_h`; None means identity.
    cell_init, hid_init : default Constant(0.)
        ``(1, num_units)`` parameters (trainable only with ``learn_init``, never
        regularizable), or Layers giving ``(batch_size, num_units)``.
    backwards, learn_init, gradient_steps, unroll_scan, precompute_input, mask_input, \
only_return_final, **kwargs
        As in :class:`CustomRecurrentLayer`.
    peepholes : bool, default True
        Use ``W_cell_to_ingate``, ``W_cell_to_forgetgate``, ``W_cell_to_outgate``.
    grad_clipping : float, default 0
        If nonzero, clip the gradient of the stacked gate pre-activations.

    Notes
    -----
    Parameter order: ``W_in_to_ingate, W_hid_to_ingate, b_ingate``, the same for
    ``forgetgate``, ``cell`` and ``outgate``, then (peepholes) ``W_cell_to_ingate,
    W_cell_to_forgetgate, W_cell_to_outgate``, then ``cell_init``, ``hid_init``. The gate
    weights are concatenated in the order i, f, c, o so that one product serves all gates.

    With Lasagne's default nonlinearities, no ``grad_clipping``, no ``gradient_steps`` and
    not ``unroll_scan``, the recurrence is one
    :class:`~fcn8_lasagne.ops.recurrent.LSTMSequence` op (a compiled time loop with its
    own back-propagation through time; ``jax.lax.scan`` under JAX) instead of
    ``pytensor.scan``: the same values and gradients, many times faster in the C backend,
    but no second derivative. Set :data:`USE_FUSED_OPS` to False to keep the scan graph.
    """

    def __init__(self, incoming, num_units, ingate=Gate(), forgetgate=Gate(),
                 cell=Gate(W_cell=None, nonlinearity=nonlinearities.tanh), outgate=Gate(),
                 nonlinearity=nonlinearities.tanh, cell_init=init.Constant(0.0),
                 hid_init=init.Constant(0.0), backwards=False, learn_init=False,
                 peepholes=True, gradient_steps=-1, grad_clipping=0, unroll_scan=False,
                 precompute_input=True, mask_input=None, only_return_final=False, **kwargs):
        incomings, indices = _incomings(incoming, mask_input, hid_init=hid_init,
                                        cell_init=cell_init)
        self.mask_incoming_index = indices["mask"]
        self.hid_init_incoming_index = indices["hid_init"]
        self.cell_init_incoming_index = indices["cell_init"]
        super().__init__(incomings, **kwargs)
        self.nonlinearity = nonlinearities.identity if nonlinearity is None else nonlinearity
        self.learn_init = learn_init
        self.num_units = num_units
        self.backwards = backwards
        self.peepholes = peepholes
        self.gradient_steps = gradient_steps
        self.grad_clipping = grad_clipping
        self.unroll_scan = unroll_scan
        self.precompute_input = precompute_input
        self.only_return_final = only_return_final
        _check_common_settings(self, unroll_scan, gradient_steps)
        num_inputs = _num_inputs(self)

        (self.W_in_to_ingate, self.W_hid_to_ingate, self.b_ingate,
         self.nonlinearity_ingate) = _add_gate_params(self, ingate, "ingate", num_inputs,
                                                      num_units)
        (self.W_in_to_forgetgate, self.W_hid_to_forgetgate, self.b_forgetgate,
         self.nonlinearity_forgetgate) = _add_gate_params(self, forgetgate, "forgetgate",
                                                          num_inputs, num_units)
        (self.W_in_to_cell, self.W_hid_to_cell, self.b_cell,
         self.nonlinearity_cell) = _add_gate_params(self, cell, "cell", num_inputs, num_units)
        (self.W_in_to_outgate, self.W_hid_to_outgate, self.b_outgate,
         self.nonlinearity_outgate) = _add_gate_params(self, outgate, "outgate", num_inputs,
                                                       num_units)
        if peepholes:
            for gate_name, gate in (("ingate", ingate), ("forgetgate", forgetgate),
                                    ("outgate", outgate)):
                if not hasattr(gate, "W_cell"):
                    raise ValueError(
                        f"{_describe(self)}: peepholes=True needs {gate_name}.W_cell, but "
                        f"the {gate_name} Gate was made with W_cell=None")
                setattr(self, f"W_cell_to_{gate_name}",
                        self.add_param(gate.W_cell, (num_units,),
                                       name=f"W_cell_to_{gate_name}"))

        input_shape = self.input_shapes[0]
        for key, value in (("cell_init", cell_init), ("hid_init", hid_init)):
            if isinstance(value, Layer):
                _check_static_shape(self, key, value.output_shape,
                                    (input_shape[0], num_units), "(batch_size, num_units)",
                                    input_shape)
                setattr(self, key, value)
            else:
                setattr(self, key, self.add_param(value, (1, num_units), name=key,
                                                  trainable=learn_init, regularizable=False))

    def get_output_shape_for(self, input_shapes):
        return _sequence_output_shape(input_shapes[0], (self.num_units,),
                                      self.only_return_final)

    def get_output_for(self, inputs, **kwargs):
        """The hidden states for ``inputs`` = [input, mask?, hid_init Layer?, cell_init Layer?]."""
        input = _prepare_input(self, inputs[0])
        mask = _prepare_mask(self, inputs, input)
        num_batch = _input_sizes(input)[0]
        cell_init = _initial_state(self, inputs, "cell_init", self.cell_init, num_batch,
                                   (self.num_units,), input)
        hid_init = _initial_state(self, inputs, "hid_init", self.hid_init, num_batch,
                                  (self.num_units,), input)
        input = _flat_time_major(input)
        num_units = self.num_units

        W_in_stacked = pt.concatenate([self.W_in_to_ingate, self.W_in_to_forgetgate,
                                       self.W_in_to_cell, self.W_in_to_outgate], axis=1)
        W_hid_stacked = pt.concatenate([self.W_hid_to_ingate, self.W_hid_to_forgetgate,
                                        self.W_hid_to_cell, self.W_hid_to_outgate], axis=1)
        b_stacked = pt.concatenate([self.b_ingate, self.b_forgetgate, self.b_cell,
                                    self.b_outgate], axis=0)
        if _lstm_fusable(self):
            return self._fused_output(input, mask, cell_init, hid_init, W_in_stacked,
                                      W_hid_stacked, b_stacked)
        if self.precompute_input:
            input = _precompute(input, W_in_stacked, b_stacked)

        non_seqs = [W_hid_stacked]
        if self.peepholes:
            non_seqs += [self.W_cell_to_ingate, self.W_cell_to_forgetgate,
                         self.W_cell_to_outgate]
        if not self.precompute_input:
            non_seqs += [W_in_stacked, b_stacked]

        def step(input_n, cell_previous, hid_previous, *args):
            W_hid = args[0]
            rest = args[1:]
            if self.peepholes:
                w_ci, w_cf, w_co = rest[:3]
                rest = rest[3:]
            if not self.precompute_input:
                W_in, b = rest
                input_n = pt.dot(input_n, W_in) + b
            gates = _clip(self, input_n + pt.dot(hid_previous, W_hid))
            ingate = _slice_gate(gates, 0, num_units)
            forgetgate = _slice_gate(gates, 1, num_units)
            cell_input = _slice_gate(gates, 2, num_units)
            outgate = _slice_gate(gates, 3, num_units)
            if self.peepholes:
                ingate = ingate + cell_previous * w_ci
                forgetgate = forgetgate + cell_previous * w_cf
            ingate = self.nonlinearity_ingate(ingate)
            forgetgate = self.nonlinearity_forgetgate(forgetgate)
            cell_input = self.nonlinearity_cell(cell_input)
            cell = forgetgate * cell_previous + ingate * cell_input
            if self.peepholes:
                outgate = outgate + cell * w_co
            outgate = self.nonlinearity_outgate(outgate)
            hid = outgate * self.nonlinearity(cell)
            return [cell, hid]

        def step_masked(input_n, mask_n, cell_previous, hid_previous, *args):
            cell, hid = step(input_n, cell_previous, hid_previous, *args)
            return [pt.switch(mask_n, cell, cell_previous), pt.switch(mask_n, hid, hid_previous)]

        if mask is not None:
            sequences, step_fun = [input, mask], step_masked
        else:
            sequences, step_fun = [input], step
        cell_out, hid_out = _recur(self, step_fun, sequences, [cell_init, hid_init], non_seqs)
        return _finish(self, hid_out)

    def _fused_output(self, input, mask, cell_init, hid_init, W_in_stacked, W_hid_stacked,
                      b_stacked):
        """The recurrence as one :class:`~fcn8_lasagne.ops.recurrent.LSTMSequence` op.

        The input projections of all steps are one product (whatever
        ``precompute_input``); ``backwards`` reverses the sequences before the op, so its
        output is in scan's order and :func:`_finish` applies unchanged.
        """
        projections = _precompute(input, W_in_stacked, b_stacked)
        if mask is not None:
            mask = mask[:, :, 0]
        if self.backwards:
            projections = projections[::-1]
            mask = None if mask is None else mask[::-1]
        peepholes = None
        if self.peepholes:
            peepholes = (self.W_cell_to_ingate, self.W_cell_to_forgetgate,
                         self.W_cell_to_outgate)
        hid_out, _ = lstm_sequence(projections, W_hid_stacked, cell_init, hid_init,
                                   peepholes=peepholes, mask=mask)
        return _finish(self, hid_out)


class GRULayer(MergeLayer):
    r"""A gated recurrent unit layer (Cho et al. 2014's formulation).

    .. math ::
        r_t &= \sigma_r(x_t W_{xr} + h_{t-1} W_{hr} + b_r)\\
        u_t &= \sigma_u(x_t W_{xu} + h_{t-1} W_{hu} + b_u)\\
        c_t &= \sigma_c(x_t W_{xc} + r_t \odot (h_{t-1} W_{hc}) + b_c)\\
        h_t &= (1 - u_t) \odot h_{t-1} + u_t \odot c_t

    The reset gate multiplies the product :math:`h_{t-1} W_{hc}` (not :math:`h_{t-1}`), so
    all hidden products are one GEMM; this is also PyTorch's ``nn.GRU`` with zero
    ``b_hn`` (whose update gate is :math:`1 - u_t`).

    Parameters
    ----------
    incoming : Layer or tuple
        ``(batch_size, sequence_length, features...)``; the features are flattened.
    num_units : int
    resetgate, updategate : Gate, default Gate(W_cell=None)
    hidden_update : Gate, default Gate(W_cell=None, nonlinearity=tanh)
    hid_init : default Constant(0.)
        A ``(1, num_units)`` parameter or a Layer giving ``(batch_size, num_units)``.
    backwards, learn_init, gradient_steps, unroll_scan, precompute_input, mask_input, \
only_return_final, **kwargs
        As in :class:`CustomRecurrentLayer`.
    grad_clipping : float, default 0
        If nonzero, clip the gradients of the input and hidden products and of the
        hidden-update pre-activation (with ``precompute_input=False`` the raw input's
        gradient is clipped, as in Lasagne).

    Notes
    -----
    Parameter order: ``W_in_to_updategate, W_hid_to_updategate, b_updategate``, then the
    same for ``resetgate`` and ``hidden_update``, then ``hid_init``. The weights are
    concatenated in the order r, u, c.

    With Lasagne's default nonlinearities, no ``grad_clipping``, no ``gradient_steps`` and
    not ``unroll_scan``, the recurrence is one
    :class:`~fcn8_lasagne.ops.recurrent.GRUSequence` op (a compiled time loop with its own
    back-propagation through time; ``jax.lax.scan`` under JAX) instead of
    ``pytensor.scan``: the same values and gradients, but no second derivative. Set
    :data:`USE_FUSED_OPS` to False to keep the scan graph.
    """

    def __init__(self, incoming, num_units, resetgate=Gate(W_cell=None),
                 updategate=Gate(W_cell=None),
                 hidden_update=Gate(W_cell=None, nonlinearity=nonlinearities.tanh),
                 hid_init=init.Constant(0.0), backwards=False, learn_init=False,
                 gradient_steps=-1, grad_clipping=0, unroll_scan=False,
                 precompute_input=True, mask_input=None, only_return_final=False, **kwargs):
        incomings, indices = _incomings(incoming, mask_input, hid_init=hid_init)
        self.mask_incoming_index = indices["mask"]
        self.hid_init_incoming_index = indices["hid_init"]
        super().__init__(incomings, **kwargs)
        self.learn_init = learn_init
        self.num_units = num_units
        self.grad_clipping = grad_clipping
        self.backwards = backwards
        self.gradient_steps = gradient_steps
        self.unroll_scan = unroll_scan
        self.precompute_input = precompute_input
        self.only_return_final = only_return_final
        _check_common_settings(self, unroll_scan, gradient_steps)
        num_inputs = _num_inputs(self)

        (self.W_in_to_updategate, self.W_hid_to_updategate, self.b_updategate,
         self.nonlinearity_updategate) = _add_gate_params(self, updategate, "updategate",
                                                          num_inputs, num_units)
        (self.W_in_to_resetgate, self.W_hid_to_resetgate, self.b_resetgate,
         self.nonlinearity_resetgate) = _add_gate_params(self, resetgate, "resetgate",
                                                         num_inputs, num_units)
        (self.W_in_to_hidden_update, self.W_hid_to_hidden_update, self.b_hidden_update,
         self.nonlinearity_hid) = _add_gate_params(self, hidden_update, "hidden_update",
                                                   num_inputs, num_units)
        input_shape = self.input_shapes[0]
        if isinstance(hid_init, Layer):
            _check_static_shape(self, "hid_init", hid_init.output_shape,
                                (input_shape[0], num_units), "(batch_size, num_units)",
                                input_shape)
            self.hid_init = hid_init
        else:
            self.hid_init = self.add_param(hid_init, (1, num_units), name="hid_init",
                                           trainable=learn_init, regularizable=False)

    def get_output_shape_for(self, input_shapes):
        return _sequence_output_shape(input_shapes[0], (self.num_units,),
                                      self.only_return_final)

    def get_output_for(self, inputs, **kwargs):
        """The hidden states for ``inputs`` = [input, mask (if any), hid_init (if a Layer)]."""
        input = _prepare_input(self, inputs[0])
        mask = _prepare_mask(self, inputs, input)
        num_batch = _input_sizes(input)[0]
        hid_init = _initial_state(self, inputs, "hid_init", self.hid_init, num_batch,
                                  (self.num_units,), input)
        input = _flat_time_major(input)
        num_units = self.num_units

        W_in_stacked = pt.concatenate([self.W_in_to_resetgate, self.W_in_to_updategate,
                                       self.W_in_to_hidden_update], axis=1)
        W_hid_stacked = pt.concatenate([self.W_hid_to_resetgate, self.W_hid_to_updategate,
                                        self.W_hid_to_hidden_update], axis=1)
        b_stacked = pt.concatenate([self.b_resetgate, self.b_updategate,
                                    self.b_hidden_update], axis=0)
        if _gru_fusable(self):
            projections = _precompute(input, W_in_stacked, b_stacked)
            if mask is not None:
                mask = mask[:, :, 0]
            if self.backwards:
                projections = projections[::-1]
                mask = None if mask is None else mask[::-1]
            return _finish(self, gru_sequence(projections, W_hid_stacked, hid_init, mask=mask))
        if self.precompute_input:
            input = _precompute(input, W_in_stacked, b_stacked)

        non_seqs = [W_hid_stacked]
        if not self.precompute_input:
            non_seqs += [W_in_stacked, b_stacked]

        def step(input_n, hid_previous, *args):
            W_hid = args[0]
            hid_input = pt.dot(hid_previous, W_hid)
            input_n = _clip(self, input_n)
            hid_input = _clip(self, hid_input)
            if not self.precompute_input:
                W_in, b = args[1:3]
                input_n = pt.dot(input_n, W_in) + b
            resetgate = self.nonlinearity_resetgate(
                _slice_gate(hid_input, 0, num_units) + _slice_gate(input_n, 0, num_units))
            updategate = self.nonlinearity_updategate(
                _slice_gate(hid_input, 1, num_units) + _slice_gate(input_n, 1, num_units))
            hidden_update = (_slice_gate(input_n, 2, num_units)
                             + resetgate * _slice_gate(hid_input, 2, num_units))
            hidden_update = self.nonlinearity_hid(_clip(self, hidden_update))
            return (1 - updategate) * hid_previous + updategate * hidden_update

        def step_masked(input_n, mask_n, hid_previous, *args):
            hid = step(input_n, hid_previous, *args)
            return pt.switch(mask_n, hid, hid_previous)

        if mask is not None:
            sequences, step_fun = [input, mask], step_masked
        else:
            sequences, step_fun = [input], step
        hid_out = _recur(self, step_fun, sequences, [hid_init], non_seqs)[0]
        return _finish(self, hid_out)
