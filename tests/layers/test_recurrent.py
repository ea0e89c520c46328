"""Recurrent layers against NumPy time loops, finite differences, Lasagne's API and PyTorch."""

import importlib.util

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest

from fcn8_lasagne import compile as fcompile
from fcn8_lasagne import init, nonlinearities
from fcn8_lasagne.layers import (
    Conv2DLayer,
    CustomRecurrentLayer,
    DenseLayer,
    ElemwiseSumLayer,
    Gate,
    GRULayer,
    InputLayer,
    LSTMLayer,
    RecurrentLayer,
    get_all_params,
    get_output,
    get_output_shape,
)
from fcn8_lasagne.utils import unroll_scan
from tests import reference
from tests.conftest import FAST_MODE
from tests.reference import recurrent as ref

LSTM_NAMES = [f"{w}{g}" for g in ("ingate", "forgetgate", "cell", "outgate")
              for w in ("W_in_to_", "W_hid_to_", "b_")]
PEEPHOLE_NAMES = ["W_cell_to_ingate", "W_cell_to_forgetgate", "W_cell_to_outgate"]
GRU_NAMES = [f"{w}{g}" for g in ("updategate", "resetgate", "hidden_update")
             for w in ("W_in_to_", "W_hid_to_", "b_")]


def _randomise(layer, rng, scale=0.5):
    """Give every parameter (biases and initial states too) random values.

    Returns them by name without the layer's name prefix (``'W_in_to_ingate'``,
    ``'input_to_hidden.W'``).
    """
    values = {}
    prefix = f"{layer.name}." if layer.name else ""
    for param in get_all_params(layer):
        value = param.get_value()
        new = (scale * rng.standard_normal(value.shape)).astype(value.dtype)
        param.set_value(new)
        name = param.name[len(prefix):] if param.name.startswith(prefix) else param.name
        values[name] = new
    return values


def _inputs(rng, batch=3, steps=5, features=4, dtype=None):
    dtype = dtype or pytensor.config.floatX
    x = rng.standard_normal((batch, steps, features)).astype(dtype)
    mask = np.ones((batch, steps), dtype=dtype)
    mask[1, 3:] = 0  # a shorter sequence
    mask[2, 1] = 0  # and a gap
    return x, mask


def _function(layer, in_vars, mode=FAST_MODE, grads=False, **kwargs):
    out = get_output(layer, **kwargs)
    outputs = [out]
    if grads:
        params = get_all_params(layer, trainable=True)
        outputs += pytensor.grad((out ** 2).sum(), params)
    if mode == "jax":
        return fcompile.function(in_vars, outputs, device="jax")
    return pytensor.function(in_vars, outputs, mode=mode)


# ---------------------------------------------------------------------------------------
# API: parameters, tags, shapes
# ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("peepholes", [True, False])
@pytest.mark.parametrize("learn_init", [False, True])
def test_lstm_params_names_order_shapes_tags(peepholes, learn_init):
    layer = LSTMLayer((2, 5, 3, 2), 4, peepholes=peepholes, learn_init=learn_init, name="l")
    names = LSTM_NAMES + (PEEPHOLE_NAMES if peepholes else []) + ["cell_init", "hid_init"]
    params = layer.get_params()
    assert [p.name for p in params] == [f"l.{n}" for n in names]
    shapes = {"W_in": (6, 4), "W_hid": (4, 4), "b_": (4,), "W_cell": (4,), "cell_i": (1, 4),
              "hid_i": (1, 4)}
    for param, name in zip(params, names):
        key = next(k for k in shapes if name.startswith(k))
        assert param.get_value().shape == shapes[key], name
    trainable = [p.name for p in layer.get_params(trainable=True)]
    expected = LSTM_NAMES + (PEEPHOLE_NAMES if peepholes else [])
    expected += ["cell_init", "hid_init"] if learn_init else []
    assert trainable == [f"l.{n}" for n in expected]
    regularizable = [p.name for p in layer.get_params(regularizable=True)]
    assert regularizable == [f"l.{n}" for n in names if n.startswith("W_")]
    assert len(get_all_params(layer, trainable=True)) == (15 if peepholes else 12) + 2 * learn_init


@pytest.mark.parametrize("learn_init", [False, True])
def test_gru_params_names_order_shapes_tags(learn_init):
    layer = GRULayer((None, None, 3), 5, learn_init=learn_init)
    params = layer.get_params()
    assert [p.name for p in params] == GRU_NAMES + ["hid_init"]
    assert [p.get_value().shape for p in params] == [(3, 5), (5, 5), (5,)] * 3 + [(1, 5)]
    assert [p.name for p in layer.get_params(trainable=True)] == (
        GRU_NAMES + (["hid_init"] if learn_init else []))
    assert [p.name for p in layer.get_params(regularizable=True)] == [
        n for n in GRU_NAMES if n.startswith("W_")]


def test_recurrent_layer_params_and_children():
    l_in = InputLayer((None, 6, 3))
    layer = RecurrentLayer(l_in, 4, name="rnn")
    names = [p.name for p in get_all_params(layer)]
    assert names == ["rnn.hid_init", "rnn.input_to_hidden.W", "rnn.input_to_hidden.b",
                     "rnn.hidden_to_hidden.W"]
    assert [p.name for p in get_all_params(layer, trainable=True)] == names[1:]
    assert [p.name for p in get_all_params(layer, regularizable=True)] == [
        "rnn.input_to_hidden.W", "rnn.hidden_to_hidden.W"]
    assert layer.W_in_to_hid.get_value().shape == (3, 4)
    assert layer.W_hid_to_hid.get_value().shape == (4, 4)
    assert layer.b.get_value().shape == (4,)
    assert layer.hid_init.get_value().shape == (1, 4)
    no_bias = RecurrentLayer(l_in, 4, b=None)
    assert no_bias.b is None and len(get_all_params(no_bias, trainable=True)) == 2
    # Lasagne's defaults
    assert layer.nonlinearity is nonlinearities.rectify
    assert isinstance(layer.input_to_hidden, DenseLayer)
    assert layer.hidden_to_hidden.b is None


def test_gate_defaults():
    gate = Gate()
    assert isinstance(gate.W_in, init.Normal) and gate.W_in.std == 0.1
    assert isinstance(gate.W_cell, init.Normal)
    assert gate.nonlinearity is nonlinearities.sigmoid
    assert not hasattr(Gate(W_cell=None), "W_cell")
    assert Gate(nonlinearity=None).nonlinearity is nonlinearities.identity


@pytest.mark.parametrize("only_return_final", [False, True])
@pytest.mark.parametrize("cls", [LSTMLayer, GRULayer, RecurrentLayer])
def test_output_shapes(rng, cls, only_return_final):
    l_in = InputLayer((None, None, 2, 2))
    layer = cls(l_in, 3, only_return_final=only_return_final)
    expected = (None, 3) if only_return_final else (None, None, 3)
    assert layer.output_shape == expected
    assert get_output_shape(layer, (7, 4, 2, 2)) == ((7, 3) if only_return_final else (7, 4, 3))
    fn = _function(layer, [l_in.input_var])
    out = fn(rng.standard_normal((7, 4, 2, 2)).astype("float32"))[0]
    assert out.shape == ((7, 3) if only_return_final else (7, 4, 3))


# ---------------------------------------------------------------------------------------
# Forward values against NumPy loops
# ---------------------------------------------------------------------------------------

FORWARD_CASES = [
    dict(),
    dict(mask=True),
    dict(backwards=True),
    dict(backwards=True, mask=True, only_return_final=True),
    dict(precompute_input=False, mask=True),
    dict(only_return_final=True),
    dict(unroll_scan=True, backwards=True, mask=True),
    dict(unroll_scan=True, precompute_input=False, only_return_final=True),
]


def _build(cls, rng, case, num_units=3, **layer_kwargs):
    case = dict(case)
    use_mask = case.pop("mask", False)
    steps = 5
    l_in = InputLayer((None, steps if case.get("unroll_scan") else None, 4))
    l_mask = InputLayer((None, None)) if use_mask else None
    layer = cls(l_in, num_units, mask_input=l_mask, learn_init=True, **case, **layer_kwargs)
    values = _randomise(layer, rng)
    in_vars = [l_in.input_var] + ([l_mask.input_var] if use_mask else [])
    x, mask = _inputs(rng, steps=steps)
    args = [x] + ([mask] if use_mask else [])
    ref_kwargs = dict(mask=mask if use_mask else None, backwards=case.get("backwards", False),
                      only_return_final=case.get("only_return_final", False))
    return layer, values, in_vars, args, x, ref_kwargs


@pytest.mark.parametrize("case", FORWARD_CASES, ids=lambda c: "-".join(c) or "plain")
@pytest.mark.parametrize("peepholes", [True, False])
def test_lstm_forward_matches_numpy(rng, case, peepholes):
    layer, p, in_vars, args, x, ref_kwargs = _build(LSTMLayer, rng, case, peepholes=peepholes)
    out = _function(layer, in_vars)(*args)[0]
    expected = ref.lstm(x, p, peepholes=peepholes, hid_init=p["hid_init"],
                        cell_init=p["cell_init"], **ref_kwargs)
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("case", FORWARD_CASES, ids=lambda c: "-".join(c) or "plain")
def test_gru_forward_matches_numpy(rng, case):
    layer, p, in_vars, args, x, ref_kwargs = _build(GRULayer, rng, case)
    out = _function(layer, in_vars)(*args)[0]
    expected = ref.gru(x, p, hid_init=p["hid_init"], **ref_kwargs)
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("case", FORWARD_CASES, ids=lambda c: "-".join(c) or "plain")
def test_recurrent_layer_forward_matches_numpy(rng, case):
    layer, p, in_vars, args, x, ref_kwargs = _build(RecurrentLayer, rng, case,
                                                    nonlinearity=nonlinearities.tanh)
    out = _function(layer, in_vars)(*args)[0]
    expected = ref.rnn(x, p["input_to_hidden.W"], p["hidden_to_hidden.W"],
                       p["input_to_hidden.b"], nonlinearity=np.tanh, hid_init=p["hid_init"],
                       **ref_kwargs)
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)


def test_recurrent_layer_default_rectify_and_identity(rng):
    for nonlinearity, np_fn in ((nonlinearities.rectify, lambda a: np.maximum(a, 0)),
                                (None, lambda a: a)):
        l_in = InputLayer((None, None, 4))
        layer = RecurrentLayer(l_in, 3, nonlinearity=nonlinearity)
        p = _randomise(layer, rng)
        x, _ = _inputs(rng)
        out = _function(layer, [l_in.input_var])(x)[0]
        expected = ref.rnn(x, p["input_to_hidden.W"], p["hidden_to_hidden.W"],
                           p["input_to_hidden.b"], nonlinearity=np_fn, hid_init=p["hid_init"])
        np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("precompute_input", [True, False])
def test_custom_recurrent_layer_equals_dense_rnn(rng, precompute_input):
    """Dense connections: the RNN equation; a second InputLayer in a connection is refused."""
    l_in = InputLayer((None, None, 4))
    l_in_hid = DenseLayer(InputLayer((None, 4)), 3, nonlinearity=None)
    l_hid_hid = DenseLayer(InputLayer((None, 3)), 3, nonlinearity=None, b=None)
    layer = CustomRecurrentLayer(l_in, l_in_hid, l_hid_hid, nonlinearity=nonlinearities.tanh,
                                 precompute_input=precompute_input)
    assert layer.get_params() == [layer.hid_init, l_in_hid.W, l_in_hid.b, l_hid_hid.W]
    _randomise(layer, rng)
    x, _ = _inputs(rng)
    out = _function(layer, [l_in.input_var])(x)[0]
    expected = ref.rnn(x, l_in_hid.W.get_value(), l_hid_hid.W.get_value(),
                       l_in_hid.b.get_value(), nonlinearity=np.tanh,
                       hid_init=layer.hid_init.get_value())
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)


def test_custom_recurrent_layer_multidimensional_state(rng):
    """A state of shape (2, 3) per example: the dense maps act on its last axis."""
    l_in = InputLayer((None, None, 2, 4))
    l_in_hid = DenseLayer(InputLayer((None, 2, 4)), 3, nonlinearity=None, num_leading_axes=2)
    l_hid_hid = DenseLayer(InputLayer((None, 2, 3)), 3, nonlinearity=None, b=None,
                           num_leading_axes=2)
    layer = CustomRecurrentLayer(l_in, l_in_hid, l_hid_hid, nonlinearity=nonlinearities.tanh)
    assert layer.hid_init.get_value().shape == (1, 2, 3)
    assert layer.output_shape == (None, None, 2, 3)
    _randomise(layer, rng)
    x = rng.standard_normal((3, 4, 2, 4)).astype("float32")
    out = _function(layer, [l_in.input_var])(x)[0]
    W, b, U = l_in_hid.W.get_value(), l_in_hid.b.get_value(), l_hid_hid.W.get_value()
    h = np.broadcast_to(layer.hid_init.get_value(), (3, 2, 3))
    for t in range(4):
        h = np.tanh(x[:, t] @ W + b + h @ U)
        np.testing.assert_allclose(out[:, t], h, rtol=1e-5, atol=1e-5)


@pytest.mark.slow  # 13 s, 40 s with a cold compile cache (C and JAX convolutions in scan)
def test_convolutional_recurrence(rng):
    """Lasagne's docstring example: Conv2DLayer connections (rectify inside and outside)."""
    l_in = InputLayer((2, 3, 4, 5, 6))
    l_in_hid = Conv2DLayer(InputLayer((None, 4, 5, 6)), 7, (3, 3), pad="same")
    l_hid_hid = Conv2DLayer(InputLayer(l_in_hid.output_shape), 7, (3, 3), pad="same")
    layer = CustomRecurrentLayer(l_in, l_in_hid, l_hid_hid)
    assert layer.output_shape == (2, 3, 7, 5, 6)
    assert layer.hid_init.get_value().shape == (1, 7, 5, 6)
    _randomise(layer, rng, scale=0.3)
    x = rng.standard_normal((2, 3, 4, 5, 6)).astype("float32")
    c_results = _function(layer, [l_in.input_var], mode="CVM", grads=True)(x)
    W1, b1 = l_in_hid.W.get_value(), l_in_hid.b.get_value()[:, None, None]
    W2, b2 = l_hid_hid.W.get_value(), l_hid_hid.b.get_value()[:, None, None]
    h = np.broadcast_to(layer.hid_init.get_value(), (2, 7, 5, 6))
    for t in range(3):
        h = np.maximum(np.maximum(reference.conv2d(x[:, t], W1, pad=1) + b1, 0)
                       + np.maximum(reference.conv2d(h, W2, pad=1) + b2, 0), 0)
        np.testing.assert_allclose(c_results[0][:, t], h, rtol=1e-5, atol=1e-5)
    if importlib.util.find_spec("jax"):
        jax_results = _function(layer, [l_in.input_var], mode="jax", grads=True)(x)
        for c_value, jax_value in zip(c_results, jax_results):
            np.testing.assert_allclose(np.asarray(jax_value), c_value, rtol=2e-4, atol=2e-4)


@pytest.mark.parametrize("cls", [LSTMLayer, GRULayer, RecurrentLayer])
def test_init_states_given_as_layers(rng, cls):
    l_in = InputLayer((None, None, 4))
    l_hid = InputLayer((None, 3))
    kwargs = dict(hid_init=l_hid)
    in_vars = [l_in.input_var, l_hid.input_var]
    if cls is LSTMLayer:
        l_cell = InputLayer((None, 3))
        kwargs["cell_init"] = l_cell
        in_vars.append(l_cell.input_var)
    layer = cls(l_in, 3, **kwargs)
    assert layer.input_layers == [l_in] + [l for l in (l_hid, kwargs.get("cell_init")) if l]
    assert "hid_init" not in [p.name for p in layer.get_params()]
    p = _randomise(layer, rng)
    x, _ = _inputs(rng)
    h0 = rng.standard_normal((3, 3)).astype("float32")
    c0 = rng.standard_normal((3, 3)).astype("float32")
    args = [x, h0] + ([c0] if cls is LSTMLayer else [])
    out = _function(layer, in_vars)(*args)[0]
    if cls is LSTMLayer:
        expected = ref.lstm(x, p, hid_init=h0, cell_init=c0)
    elif cls is GRULayer:
        expected = ref.gru(x, p, hid_init=h0)
    else:
        expected = ref.rnn(x, p["input_to_hidden.W"], p["hidden_to_hidden.W"],
                           p["input_to_hidden.b"], hid_init=h0)
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("cls", [LSTMLayer, GRULayer])
def test_single_unit_and_single_example(rng, cls):
    """num_units=1 (slices of static size 1) and a static batch of 1 compile and match."""
    l_in = InputLayer((1, 4, 2))
    layer = cls(l_in, 1, learn_init=True)
    p = _randomise(layer, rng)
    x = rng.standard_normal((1, 4, 2)).astype("float32")
    out = _function(layer, [l_in.input_var], grads=True)(x)[0]
    expected = (ref.lstm(x, p, hid_init=p["hid_init"], cell_init=p["cell_init"])
                if cls is LSTMLayer else ref.gru(x, p, hid_init=p["hid_init"]))
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)


def test_mask_keeps_state_and_matches_shorter_sequence(rng):
    """A sequence masked after step k ends with the state of its first k steps."""
    l_in = InputLayer((None, None, 4))
    l_mask = InputLayer((None, None))
    layer = LSTMLayer(l_in, 3, mask_input=l_mask, only_return_final=True)
    _randomise(layer, rng)
    fn = _function(layer, [l_in.input_var, l_mask.input_var])
    x = rng.standard_normal((1, 6, 4)).astype("float32")
    mask = np.array([[1, 1, 1, 0, 0, 0]], "float32")
    short = fn(x[:, :3], np.ones((1, 3), "float32"))[0]
    np.testing.assert_allclose(fn(x, mask)[0], short, rtol=1e-6)


# ---------------------------------------------------------------------------------------
# Gradients
# ---------------------------------------------------------------------------------------

@pytest.fixture
def float64():
    with pytensor.config.change_flags(floatX="float64"):
        yield


def _numeric_gradient(f, value, eps=1e-6):
    grad = np.zeros_like(value)
    for index in np.ndindex(value.shape):
        old = value[index]
        value[index] = old + eps
        up = f()
        value[index] = old - eps
        down = f()
        value[index] = old
        grad[index] = (up - down) / (2 * eps)
    return grad


@pytest.mark.parametrize("cls, kwargs", [
    (LSTMLayer, dict()),
    (LSTMLayer, dict(backwards=True, precompute_input=False, mask=True)),
    (LSTMLayer, dict(unroll_scan=True, only_return_final=True)),
    (GRULayer, dict(mask=True)),
    (GRULayer, dict(backwards=True, precompute_input=False, only_return_final=True)),
    (RecurrentLayer, dict(mask=True, nonlinearity=nonlinearities.tanh)),
], ids=lambda v: getattr(v, "__name__", None) or "-".join(v) or "plain")
def test_gradients_match_finite_differences(float64, rng, cls, kwargs):
    kwargs = dict(kwargs)
    use_mask = kwargs.pop("mask", False)
    steps = 3
    l_in = InputLayer((None, steps if kwargs.get("unroll_scan") else None, 2))
    l_mask = InputLayer((None, None)) if use_mask else None
    layer = cls(l_in, 2, mask_input=l_mask, learn_init=True, **kwargs)
    _randomise(layer, rng)
    x, mask = _inputs(rng, batch=3, steps=steps, features=2, dtype="float64")
    in_vars = [l_in.input_var] + ([l_mask.input_var] if use_mask else [])
    args = [x] + ([mask] if use_mask else [])
    out = get_output(layer)
    weights = rng.standard_normal((3,) + ((steps,) if out.ndim == 3 else ()) + (2,))
    cost = (out * weights).sum()
    params = get_all_params(layer, trainable=True)
    assert out.dtype == "float64" and all(p.dtype == "float64" for p in params)
    grads = pytensor.function(in_vars, pytensor.grad(cost, params + [l_in.input_var]),
                              mode=FAST_MODE)(*args)
    cost_fn = pytensor.function(in_vars, cost, mode=FAST_MODE)
    for param, grad in zip(params, grads):
        value = param.get_value(borrow=True)

        def f():
            param.set_value(value, borrow=True)
            return cost_fn(*args)

        np.testing.assert_allclose(grad, _numeric_gradient(f, value), rtol=1e-5, atol=1e-7,
                                   err_msg=param.name)
    np.testing.assert_allclose(grads[-1], _numeric_gradient(lambda: cost_fn(*args), x),
                               rtol=1e-5, atol=1e-7, err_msg="input")


def test_grad_clipping_clips_each_step_exactly(float64, rng):
    """W_hid = 0 and identity: d cost / d b = sum over batch and steps of clip(R)."""
    l_in = InputLayer((None, None, 2))
    layer = RecurrentLayer(l_in, 3, W_hid_to_hid=init.Constant(0.0), nonlinearity=None,
                           grad_clipping=1.0)
    unclipped = RecurrentLayer(l_in, 3, W_hid_to_hid=init.Constant(0.0), nonlinearity=None)
    R = 5 * rng.standard_normal((2, 4, 3))
    x = rng.standard_normal((2, 4, 2))
    grads = []
    for lay in (layer, unclipped):
        g = pytensor.grad((get_output(lay) * R).sum(), lay.b)
        grads.append(pytensor.function([l_in.input_var], g, mode=FAST_MODE)(x))
    np.testing.assert_allclose(grads[0], np.clip(R, -1, 1).sum(axis=(0, 1)), rtol=1e-12)
    np.testing.assert_allclose(grads[1], R.sum(axis=(0, 1)), rtol=1e-12)


@pytest.mark.parametrize("cls", [LSTMLayer, GRULayer])
@pytest.mark.parametrize("precompute_input", [True, False])
def test_gated_grad_clipping_bounds_bias_gradients(rng, cls, precompute_input):
    """Each step's clipped gate gradient is at most c, so |d cost / d b| <= batch*steps*c."""
    batch, steps, c = 3, 4, 1e-3
    l_in = InputLayer((None, None, 4))
    x = 3 * rng.standard_normal((batch, steps, 4)).astype("float32")
    results = []
    for clipping in (c, 0):
        np.random.seed(3)
        layer = cls(l_in, 3, grad_clipping=clipping, precompute_input=precompute_input)
        bias = layer.b_cell if cls is LSTMLayer else layer.b_hidden_update
        g = pytensor.grad((10 * get_output(layer)).sum(), bias)
        results.append(pytensor.function([l_in.input_var], g, mode=FAST_MODE)(x))
    assert np.all(np.abs(results[0]) <= batch * steps * c * (1 + 1e-5))
    assert np.abs(results[1]).max() > 10 * batch * steps * c


@pytest.mark.parametrize("cls", [LSTMLayer, GRULayer, RecurrentLayer])
@pytest.mark.parametrize("precompute_input", [True, False])
def test_gradient_steps_truncates_backpropagation(rng, cls, precompute_input):
    """Gradients of the last output reach only the last ``gradient_steps`` inputs."""
    steps, k = 5, 2
    l_in = InputLayer((None, None, 4))
    x, _ = _inputs(rng, steps=steps)
    grads = []
    for gradient_steps in (k, -1):
        np.random.seed(5)
        layer = cls(l_in, 3, gradient_steps=gradient_steps, precompute_input=precompute_input,
                    **({"nonlinearity": nonlinearities.tanh} if cls is RecurrentLayer else {}))
        cost = get_output(layer)[:, -1].sum()
        grads.append(pytensor.function([l_in.input_var], pytensor.grad(cost, l_in.input_var),
                                       mode=FAST_MODE)(x))
    truncated, full = grads
    assert np.all(truncated[:, :steps - k] == 0)
    assert np.all(np.abs(full[:, :steps - k]).sum(axis=-1) > 0)
    np.testing.assert_allclose(truncated[:, steps - k:], full[:, steps - k:], rtol=1e-5,
                               atol=1e-7)


# ---------------------------------------------------------------------------------------
# Backends: C (the package default), JAX, unrolled
# ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("cls, kwargs", [
    (LSTMLayer, dict(mask=True, backwards=True, grad_clipping=1.0)),
    (LSTMLayer, dict(unroll_scan=True, precompute_input=False)),
    (GRULayer, dict(mask=True, backwards=True)),
    (RecurrentLayer, dict(unroll_scan=True, mask=True, only_return_final=True)),
], ids=lambda v: getattr(v, "__name__", None) or "-".join(v))
def test_c_and_jax_modes_agree_with_numpy(rng, cls, kwargs):
    pytest.importorskip("jax")
    kwargs = dict(kwargs)
    layer, p, in_vars, args, x, ref_kwargs = _build(cls, rng, kwargs)
    c_results = _function(layer, in_vars, mode="CVM", grads=True)(*args)
    jax_results = _function(layer, in_vars, mode="jax", grads=True)(*args)
    assert len(c_results) == len(jax_results) > 1
    for c_value, jax_value in zip(c_results, jax_results):
        np.testing.assert_allclose(np.asarray(jax_value), c_value, rtol=2e-4, atol=2e-5)
    if cls is LSTMLayer:
        expected = ref.lstm(x, p, hid_init=p["hid_init"], cell_init=p["cell_init"],
                            **ref_kwargs)
    elif cls is GRULayer:
        expected = ref.gru(x, p, hid_init=p["hid_init"], **ref_kwargs)
    else:
        expected = ref.rnn(x, p["input_to_hidden.W"], p["hidden_to_hidden.W"],
                           p["input_to_hidden.b"], hid_init=p["hid_init"], **ref_kwargs)
    np.testing.assert_allclose(c_results[0], expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("backwards", [False, True])
def test_gradient_steps_equal_scan_truncate_gradient(float64, rng, backwards):
    """Values and all gradients equal a hand-written ``scan(truncate_gradient=k)``."""
    steps, k = 5, 2
    l_in, l_mask = InputLayer((None, None, 2)), InputLayer((None, None))
    layer = RecurrentLayer(l_in, 3, nonlinearity=nonlinearities.tanh, gradient_steps=k,
                           backwards=backwards, mask_input=l_mask, learn_init=True)
    _randomise(layer, rng)
    W, U, b, h0 = layer.W_in_to_hid, layer.W_hid_to_hid, layer.b, layer.hid_init
    x_var, m_var = l_in.input_var, l_mask.input_var

    def step(x_t, m_t, h):
        return pt.switch(m_t, pt.tanh(pt.dot(x_t, W) + pt.dot(h, U) + b), h)

    hid = pytensor.scan(step, sequences=[x_var.dimshuffle(1, 0, 2), m_var.T[:, :, None]],
                        outputs_info=[pt.ones((x_var.shape[0], 1), "float64") * h0],
                        go_backwards=backwards, truncate_gradient=k, return_updates=False)
    hid = hid.dimshuffle(1, 0, 2)
    expected_out = hid[:, ::-1] if backwards else hid
    x, mask = _inputs(rng, steps=steps, features=2, dtype="float64")
    R = rng.standard_normal((3, steps, 3))
    wrt = [W, b, U, h0, x_var]
    results = []
    for out in (get_output(layer), expected_out):
        grads = pytensor.grad((out * R).sum(), wrt)
        results.append(pytensor.function([x_var, m_var], [out] + grads, mode=FAST_MODE)(x, mask))
    for name, ours, theirs in zip(["output", "W", "b", "U", "hid_init", "input"], *results):
        np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=1e-14, err_msg=name)
    assert np.any(results[0][-1] == 0) and np.any(results[0][-1] != 0)


def test_truncated_gradients_in_jax_mode_equal_c_mode(rng):
    pytest.importorskip("jax")
    l_in = InputLayer((None, None, 4))
    for steps in (5, 2):  # truncated, and shorter than gradient_steps
        layer = GRULayer(l_in, 3, gradient_steps=2, backwards=True, learn_init=True)
        x, _ = _inputs(rng, steps=steps)
        c_results = _function(layer, [l_in.input_var], mode="CVM", grads=True)(x)
        jax_results = _function(layer, [l_in.input_var], mode="jax", grads=True)(x)
        for c_value, jax_value in zip(c_results, jax_results):
            np.testing.assert_allclose(np.asarray(jax_value), c_value, rtol=2e-4, atol=2e-6)
        # hid_init's gradient (the last): zero exactly when the sequence is truncated
        assert (np.abs(c_results[-1]).max() == 0) == (steps > 2)


def test_unroll_scan_matches_scan_forward_and_backward(rng):
    seq = pt.matrix("seq")
    h0 = pt.vector("h0")
    w = pt.vector("w")

    def step(s, h, g, w_):
        return [pt.tanh(s * w_ + h), s * h + g]

    x = rng.standard_normal((4, 3)).astype("float32")
    h = rng.standard_normal(3).astype("float32")
    wv = rng.standard_normal(3).astype("float32")
    for backwards in (False, True):
        unrolled = unroll_scan(step, seq, [h0, h0], [w], 4,
                               go_backwards=backwards)
        scanned = pytensor.scan(step, sequences=seq,
                                outputs_info=[h0, h0], non_sequences=[w],
                                go_backwards=backwards, return_updates=False)
        outs = []
        for result in (unrolled, scanned):
            cost = result[0].sum() + (result[1] ** 2).sum()
            outs.append(pytensor.function([seq, h0, w], list(result) + [pytensor.grad(cost, w)],
                                          mode=FAST_MODE)(x, h, wv))
        for a, b in zip(*outs):
            np.testing.assert_allclose(a, b, rtol=1e-5)
    single = unroll_scan(lambda s, h: s + h, [seq], [h0], [], 2)
    assert isinstance(single, list) and len(single) == 1


# ---------------------------------------------------------------------------------------
# Bad input
# ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("cls", [LSTMLayer, GRULayer, RecurrentLayer])
def test_input_of_rank_below_three_is_refused(cls):
    with pytest.raises(ValueError, match=rf"{cls.__name__} 'r'.*at least 3 dimensions.*"
                                         r"\(None, 4\)"):
        cls(InputLayer((None, 4)), 3, name="r")
    layer = cls(InputLayer((None, None, 4)), 3, name="r")
    with pytest.raises(ValueError, match=r"'r'.*at least 3 dimensions.*2-dimensional"):
        get_output(layer, pt.matrix())


@pytest.mark.parametrize("cls", [LSTMLayer, GRULayer, RecurrentLayer])
def test_mask_of_wrong_shape_is_refused(rng, cls):
    with pytest.raises(ValueError, match=rf"{cls.__name__} 'r': mask_input has shape "
                                         r"\(2, 6\), expected \(2, 5\).*\(2, 5, 4\)"):
        cls(InputLayer((2, 5, 4)), 3, mask_input=InputLayer((2, 6)), name="r")
    with pytest.raises(ValueError, match=r"mask_input has shape \(None, None, 1\)"):
        cls(InputLayer((2, 5, 4)), 3, mask_input=InputLayer((None, None, 1)))
    # sizes known only when the function runs
    l_in, l_mask = InputLayer((None, None, 4)), InputLayer((None, None))
    layer = cls(l_in, 3, mask_input=l_mask, name="r")
    fn = _function(layer, [l_in.input_var, l_mask.input_var], mode="CVM")
    x, mask = _inputs(rng)
    fn(x, mask)
    for bad in (np.ones((3, 6), "float32"), np.ones((2, 5), "float32")):
        with pytest.raises(AssertionError, match=rf"{cls.__name__} 'r': the mask must have "
                                                 r"shape \(batch_size, sequence_length\)"):
            fn(x, bad)


def test_mask_of_wrong_shape_is_refused_by_jax_when_compiling(rng):
    pytest.importorskip("jax")
    l_in, l_mask = InputLayer((None, None, 4)), InputLayer((None, None))
    layer = GRULayer(l_in, 3, mask_input=l_mask, name="r")
    fn = _function(layer, [l_in.input_var, l_mask.input_var], mode="jax")
    x, mask = _inputs(rng)
    with pytest.raises(AssertionError, match="GRULayer 'r': the mask must have shape"):
        fn(x, np.ones((3, 6), "float32"))


def test_unrolled_layer_needs_known_length_and_full_gradient(rng):
    with pytest.raises(ValueError, match="sequence length cannot be specified as None"):
        LSTMLayer(InputLayer((None, None, 4)), 3, unroll_scan=True, only_return_final=True)
    with pytest.raises(ValueError, match="Gradient steps must be -1"):
        GRULayer(InputLayer((None, 5, 4)), 3, unroll_scan=True, gradient_steps=2)
    l_in = InputLayer((None, 5, 4))
    layer = LSTMLayer(l_in, 3, unroll_scan=True, name="u")
    with pytest.raises(ValueError, match=r"LSTMLayer 'u': the input has shape \(None, 6, 4\)"):
        get_output(layer, pt.tensor3(shape=(None, 6, 4)))
    fn = _function(layer, [l_in.input_var], mode="CVM")
    x, _ = _inputs(rng, steps=5)
    assert fn(x)[0].shape == (3, 5, 3)
    with pytest.raises(AssertionError, match="LSTMLayer 'u': the input must have shape "
                                             "sequence length 5"):
        fn(_inputs(rng, steps=6)[0])


@pytest.mark.parametrize("cls", [LSTMLayer, GRULayer, RecurrentLayer])
def test_init_layer_of_wrong_shape_is_refused(rng, cls):
    with pytest.raises(ValueError, match=rf"{cls.__name__} 'r': hid_init has shape "
                                         r"\(2, 4\), expected \(2, 3\)"):
        cls(InputLayer((2, 5, 4)), 3, hid_init=InputLayer((2, 4)), name="r")
    with pytest.raises(ValueError, match=r"hid_init has shape \(3, 3\), expected \(2, 3\)"):
        cls(InputLayer((2, 5, 4)), 3, hid_init=InputLayer((3, 3)))
    if cls is LSTMLayer:
        with pytest.raises(ValueError, match=r"cell_init has shape \(2, 3, 1\)"):
            cls(InputLayer((2, 5, 4)), 3, cell_init=InputLayer((2, 3, 1)))
    l_in, l_hid = InputLayer((None, None, 4)), InputLayer((None, 3))
    layer = cls(l_in, 3, hid_init=l_hid, name="r")
    fn = _function(layer, [l_in.input_var, l_hid.input_var], mode="CVM")
    x, _ = _inputs(rng)
    with pytest.raises(AssertionError, match=rf"{cls.__name__} 'r': hid_init must have shape"):
        fn(x, np.zeros((2, 3), "float32"))


def test_peepholes_need_cell_weights():
    with pytest.raises(ValueError, match="peepholes=True needs forgetgate.W_cell"):
        LSTMLayer((None, None, 4), 3, forgetgate=Gate(W_cell=None))
    layer = LSTMLayer((None, None, 4), 3, forgetgate=Gate(W_cell=None), peepholes=False)
    assert not hasattr(layer, "W_cell_to_forgetgate")


def test_custom_recurrent_layer_connection_checks():
    l_in = InputLayer((2, 5, 4))
    hid_hid = DenseLayer(InputLayer((None, 3)), 3)
    with pytest.raises(ValueError, match="batch_size\\*sequence_length"):
        CustomRecurrentLayer(l_in, DenseLayer(InputLayer((2, 4)), 3), hid_hid)
    with pytest.raises(ValueError, match="must be equal after the first dimension"):
        CustomRecurrentLayer(l_in, DenseLayer(InputLayer((None, 4)), 5), hid_hid)
    with pytest.raises(ValueError, match="exactly one InputLayer"):
        CustomRecurrentLayer(l_in, DenseLayer(InputLayer((None, 4)), 3),
                             ElemwiseSumLayer([InputLayer((None, 3)), InputLayer((None, 3))]))


# ---------------------------------------------------------------------------------------
# PyTorch
# ---------------------------------------------------------------------------------------

def test_lstm_and_gru_match_torch(rng):
    torch = pytest.importorskip("torch")
    x = rng.standard_normal((2, 6, 4)).astype("float32")
    l_in = InputLayer((None, None, 4))

    lstm = LSTMLayer(l_in, 3, peepholes=False)
    p = _randomise(lstm, rng)
    t_lstm = torch.nn.LSTM(4, 3, batch_first=True)
    gates = ("ingate", "forgetgate", "cell", "outgate")  # torch's i, f, g, o
    with torch.no_grad():
        t_lstm.weight_ih_l0.copy_(torch.tensor(np.concatenate(
            [p[f"W_in_to_{g}"].T for g in gates])))
        t_lstm.weight_hh_l0.copy_(torch.tensor(np.concatenate(
            [p[f"W_hid_to_{g}"].T for g in gates])))
        t_lstm.bias_ih_l0.copy_(torch.tensor(np.concatenate([p[f"b_{g}"] for g in gates])))
        t_lstm.bias_hh_l0.zero_()
        h0 = torch.tensor(np.broadcast_to(p["hid_init"], (2, 3)).copy())[None]
        c0 = torch.tensor(np.broadcast_to(p["cell_init"], (2, 3)).copy())[None]
        expected = t_lstm(torch.tensor(x), (h0, c0))[0].numpy()
    np.testing.assert_allclose(_function(lstm, [l_in.input_var])(x)[0], expected,
                               rtol=1e-5, atol=1e-6)

    # torch: n = tanh(W_in x + b_in + r * (W_hn h + b_hn)), h' = (1 - z) n + z h.
    # Lasagne: c = tanh(x W_xc + b_c + r * (h W_hc)), h' = (1 - u) h + u c.
    # Same reset placement (after the hidden product) with b_hn = 0; z = 1 - u = s(-a_u).
    gru = GRULayer(l_in, 3)
    p = _randomise(gru, rng)
    t_gru = torch.nn.GRU(4, 3, batch_first=True)
    sign = {"resetgate": 1, "updategate": -1, "hidden_update": 1}
    gates = ("resetgate", "updategate", "hidden_update")  # torch's r, z, n
    with torch.no_grad():
        t_gru.weight_ih_l0.copy_(torch.tensor(np.concatenate(
            [sign[g] * p[f"W_in_to_{g}"].T for g in gates])))
        t_gru.weight_hh_l0.copy_(torch.tensor(np.concatenate(
            [sign[g] * p[f"W_hid_to_{g}"].T for g in gates])))
        t_gru.bias_ih_l0.copy_(torch.tensor(np.concatenate([sign[g] * p[f"b_{g}"]
                                                            for g in gates])))
        t_gru.bias_hh_l0.zero_()
        h0 = torch.tensor(np.broadcast_to(p["hid_init"], (2, 3)).copy())[None]
        expected = t_gru(torch.tensor(x), h0)[0].numpy()
    np.testing.assert_allclose(_function(gru, [l_in.input_var])(x)[0], expected,
                               rtol=1e-5, atol=1e-6)
