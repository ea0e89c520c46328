"""The fused LSTM sequence op: NumPy loop, finite differences, JAX vs C, and the layer's use."""

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest
from pytensor.gradient import verify_grad

from fcn8_lasagne import compile as fcompile
from fcn8_lasagne import nonlinearities
from fcn8_lasagne.layers import Gate, InputLayer, LSTMLayer, get_all_params, get_output
from fcn8_lasagne.layers import recurrent as recurrent_layers
from fcn8_lasagne.ops.recurrent import LSTMSequence, LSTMSequenceGrad, lstm_sequence
from tests.conftest import FAST_MODE
from tests.reference import recurrent_ops as ref

STEPS, BATCH, UNITS = 4, 3, 2


def _values(rng, dtype="float64", steps=STEPS, batch=BATCH, units=UNITS):
    x = rng.standard_normal((steps, batch, 4 * units))
    W = 0.5 * rng.standard_normal((units, 4 * units))
    c0, h0 = rng.standard_normal((batch, units)), rng.standard_normal((batch, units))
    peeps = [rng.standard_normal(units) for _ in range(3)]
    mask = np.ones((steps, batch))
    mask[2:, 1] = 0  # a shorter sequence
    mask[1, 2] = 0  # a gap
    cast = [v.astype(dtype) for v in [x, W, c0, h0]]
    return cast, [p.astype(dtype) for p in peeps], mask.astype(dtype)


def _symbolic(dtype, peepholes, masked):
    x = pt.tensor3("x", dtype=dtype)
    W, c0, h0 = (pt.matrix(n, dtype=dtype) for n in ("W", "c0", "h0"))
    peeps = [pt.vector(n, dtype=dtype) for n in ("w_ci", "w_cf", "w_co")] if peepholes else []
    mask = [pt.matrix("mask", dtype=dtype)] if masked else []
    return [x, W, c0, h0], peeps, mask


@pytest.mark.parametrize("peepholes", [False, True])
@pytest.mark.parametrize("masked", [False, True])
def test_forward_matches_numpy_loop(rng, peepholes, masked):
    (x, W, c0, h0), peeps, mask = _values(rng, "float32")
    main, p_vars, m_vars = _symbolic("float32", peepholes, masked)
    hid, cell = lstm_sequence(*main, peepholes=p_vars or None,
                              mask=m_vars[0] if masked else None)
    fn = pytensor.function(main + p_vars + m_vars, [hid, cell], mode="CVM")
    args = [x, W, c0, h0] + (peeps if peepholes else []) + ([mask] if masked else [])
    got_h, got_c = fn(*args)
    exp_h, exp_c = ref.lstm_sequence(x, W, c0, h0, peeps if peepholes else None,
                                     mask if masked else None)
    assert got_h.dtype == "float32" and got_h.shape == (STEPS, BATCH, UNITS)
    np.testing.assert_allclose(got_h, exp_h, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got_c, exp_c, rtol=1e-5, atol=1e-6)
    if masked:  # the masked steps repeat the previous state exactly
        np.testing.assert_array_equal(got_h[2:, 1], np.broadcast_to(got_h[1, 1], (2, UNITS)))
        np.testing.assert_array_equal(got_c[1, 2], got_c[0, 2])


@pytest.mark.parametrize("peepholes", [False, True])
@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("use_cell", [False, True])
def test_gradients_match_finite_differences(rng, peepholes, masked, use_cell):
    (x, W, c0, h0), peeps, mask = _values(rng)
    weights = rng.standard_normal((2, STEPS, BATCH, UNITS))

    def cost(x, W, c0, h0, *p):
        hid, cell = lstm_sequence(x, W, c0, h0, peepholes=p or None,
                                  mask=pt.constant(mask) if masked else None)
        out = (hid * weights[0]).sum()
        return out + (cell * weights[1]).sum() if use_cell else out

    verify_grad(cost, [x, W, c0, h0] + (peeps if peepholes else []), rng=rng, mode="CVM",
                abs_tol=1e-6, rel_tol=1e-6)


def test_grad_op_reads_the_mask_and_skips_masked_steps(rng):
    (x, W, c0, h0), _, mask = _values(rng)
    main, _, m_vars = _symbolic("float64", False, True)
    hid, cell = lstm_sequence(*main, mask=m_vars[0])
    d_x = pytensor.grad(hid[-1].sum(), main[0])
    got = pytensor.function(main + m_vars, d_x, mode="CVM")(x, W, c0, h0, mask)
    masked = mask == 0
    assert np.all(got[masked] == 0) and np.all(np.abs(got[~masked]).sum(-1) > 0)


@pytest.mark.parametrize("peepholes", [False, True])
@pytest.mark.parametrize("masked", [False, True])
def test_jax_agrees_with_c(rng, peepholes, masked):
    pytest.importorskip("jax")
    (x, W, c0, h0), peeps, mask = _values(rng, "float32")
    main, p_vars, m_vars = _symbolic("float32", peepholes, masked)
    hid, cell = lstm_sequence(*main, peepholes=p_vars or None,
                              mask=m_vars[0] if masked else None)
    cost = (hid ** 2).sum() + 0.5 * cell.sum()
    wrt = main + p_vars
    outputs = [hid, cell] + pytensor.grad(cost, wrt)
    ins = main + p_vars + m_vars
    args = [x, W, c0, h0] + (peeps if peepholes else []) + ([mask] if masked else [])
    c_results = pytensor.function(ins, outputs, mode="CVM")(*args)
    jax_results = fcompile.function(ins, outputs, device="jax")(*args)
    assert len(c_results) == len(jax_results) == 2 + len(wrt)
    for c_value, jax_value in zip(c_results, jax_results):
        np.testing.assert_allclose(np.asarray(jax_value), c_value, rtol=2e-4, atol=2e-5)


def test_infer_shape_and_static_types():
    x = pt.tensor3(dtype="float32", shape=(5, None, 12))
    W = pt.matrix(dtype="float32", shape=(3, 12))
    c0 = h0 = pt.matrix(dtype="float32")
    hid, cell, gates = LSTMSequence()(x, W, c0, h0)
    assert hid.type.shape == (5, None, 3) and gates.type.shape == (5, 4, None, 3)
    fn = pytensor.function([x, W, c0], [hid.shape, gates.shape], mode="CVM",
                           on_unused_input="ignore")
    ops = [type(n.op) for n in fn.maker.fgraph.apply_nodes]
    assert LSTMSequence not in ops  # the shapes come from infer_shape, not the op
    s_h, s_g = fn(np.zeros((5, 2, 12), "float32"), np.zeros((3, 12), "float32"),
                  np.zeros((2, 3), "float32"))
    assert tuple(s_h) == (5, 2, 3) and tuple(s_g) == (5, 4, 2, 3)


def test_bad_inputs_are_refused(rng):
    x, W, c0 = pt.tensor3(), pt.matrix(), pt.matrix()
    with pytest.raises(TypeError, match="input projections must be a 3-D"):
        LSTMSequence()(pt.matrix(), W, c0, c0)
    with pytest.raises(TypeError, match="expected 8 inputs, got 4"):
        LSTMSequence(peepholes=True, masked=True)(x, W, c0, c0)
    with pytest.raises(ValueError, match="multiple of 4"):
        LSTMSequence()(pt.tensor3(shape=(2, 2, 6)), W, c0, c0)
    hid, _, _ = LSTMSequence()(x, W, c0, c0)
    fn = pytensor.function([x, W, c0], hid, mode="CVM")
    floatX = pytensor.config.floatX
    with pytest.raises(ValueError, match=r"c0 has shape \(2, 2\), expected"):
        fn(np.zeros((3, 4, 8), floatX), np.zeros((2, 8), floatX), np.zeros((2, 2), floatX))
    with pytest.raises(ValueError, match="expected .steps, batch, 4 . units"):
        fn(np.zeros((3, 4, 8), floatX), np.zeros((3, 8), floatX), np.zeros((4, 3), floatX))


def test_gates_output_has_no_gradient():
    x, W, c0 = pt.tensor3(), pt.matrix(), pt.matrix()
    _, _, gates = LSTMSequence()(x, W, c0, c0)
    with pytest.raises(NotImplementedError, match="gates output has no gradient"):
        pytensor.grad(gates.sum(), W)
    assert LSTMSequenceGrad(True, False, False) != LSTMSequenceGrad(True, False, True)


# ---------------------------------------------------------------------------------------
# LSTMLayer: fused path against the scan path
# ---------------------------------------------------------------------------------------

def _lstm_results(rng, fused, layer_kwargs, mode="CVM", dtype=None, seed=7):
    """Outputs and gradients of a small LSTMLayer, built with or without the fused op."""
    dtype = dtype or pytensor.config.floatX
    data = np.random.default_rng(seed)
    batch, steps, features = 3, 5, 4
    l_in = InputLayer((None, steps, features))
    in_vars, args = [l_in.input_var], [data.standard_normal((batch, steps, features))
                                       .astype(dtype)]
    kwargs = dict(layer_kwargs)
    if kwargs.pop("masked", False):
        l_mask = InputLayer((None, steps))
        kwargs["mask_input"] = l_mask
        mask = np.ones((batch, steps), dtype)
        mask[1, 3:] = 0
        mask[2, 1] = 0
        in_vars.append(l_mask.input_var)
        args.append(mask)
    if kwargs.pop("init_layers", False):
        l_hid, l_cell = InputLayer((None, 3)), InputLayer((None, 3))
        kwargs.update(hid_init=l_hid, cell_init=l_cell)
        in_vars += [l_hid.input_var, l_cell.input_var]
        args += [data.standard_normal((batch, 3)).astype(dtype) for _ in range(2)]
    layer = LSTMLayer(l_in, 3, **kwargs)
    for param in get_all_params(layer):
        value = param.get_value()
        param.set_value((0.5 * data.standard_normal(value.shape)).astype(value.dtype))
    saved = recurrent_layers.USE_FUSED_OPS
    recurrent_layers.USE_FUSED_OPS = fused
    try:
        out = get_output(layer)
    finally:
        recurrent_layers.USE_FUSED_OPS = saved
    params = get_all_params(layer, trainable=True)
    wrt = params + [in_vars[0]] + (in_vars[-2:] if layer_kwargs.get("init_layers") else [])
    grads = pytensor.grad((out ** 2).sum() + out.sum(), wrt)
    if mode == "jax":
        fn = fcompile.function(in_vars, [out] + grads, device="jax")
    else:
        fn = pytensor.function(in_vars, [out] + grads, mode=mode)
    return fn, fn(*args)


CONFIGS = {
    "default": {},
    "no-peepholes": {"peepholes": False},
    "mask": {"masked": True},
    "backwards-mask": {"backwards": True, "masked": True},
    "final-backwards": {"only_return_final": True, "backwards": True},
    "learn_init": {"learn_init": True},
    "no-precompute-mask": {"precompute_input": False, "masked": True, "peepholes": False},
    "init-layers": {"init_layers": True, "only_return_final": True},
}


def _ops_of(fn):
    return {type(node.op).__name__ for node in fn.maker.fgraph.apply_nodes}


@pytest.mark.parametrize("config", list(CONFIGS))
def test_layer_fused_path_equals_scan_path(rng, config):
    fused_fn, fused = _lstm_results(rng, True, CONFIGS[config])
    scan_fn, scanned = _lstm_results(rng, False, CONFIGS[config], mode=FAST_MODE)
    assert {"LSTMSequence", "LSTMSequenceGrad"} <= _ops_of(fused_fn)
    assert "Scan" not in _ops_of(fused_fn) and "LSTMSequence" not in _ops_of(scan_fn)
    assert len(fused) == len(scanned)
    for f_value, s_value in zip(fused, scanned):
        np.testing.assert_allclose(f_value, s_value, rtol=1e-4, atol=1e-5)


def test_layer_fused_path_equals_scan_path_in_float64(rng):
    with pytensor.config.change_flags(floatX="float64"):
        _, fused = _lstm_results(rng, True, CONFIGS["backwards-mask"], dtype="float64")
        _, scanned = _lstm_results(rng, False, CONFIGS["backwards-mask"], mode=FAST_MODE,
                                   dtype="float64")
    for f_value, s_value in zip(fused, scanned):
        assert f_value.dtype == "float64"
        np.testing.assert_allclose(f_value, s_value, rtol=1e-10, atol=1e-12)


def test_layer_fused_path_in_jax_equals_c(rng):
    pytest.importorskip("jax")
    _, c_results = _lstm_results(rng, True, CONFIGS["backwards-mask"])
    _, jax_results = _lstm_results(rng, True, CONFIGS["backwards-mask"], mode="jax")
    for c_value, jax_value in zip(c_results, jax_results):
        np.testing.assert_allclose(np.asarray(jax_value), c_value, rtol=2e-4, atol=2e-5)


@pytest.mark.parametrize("kwargs", [
    {"grad_clipping": 1.0},
    {"gradient_steps": 2},
    {"unroll_scan": True},
    {"nonlinearity": nonlinearities.rectify},
    {"ingate": Gate(nonlinearity=nonlinearities.tanh)},
    {"cell": Gate(W_cell=None, nonlinearity=nonlinearities.sigmoid)},
], ids=["grad_clipping", "gradient_steps", "unroll_scan", "nonlinearity", "ingate",
        "cell"])
def test_other_configurations_keep_the_scan_path(kwargs):
    layer = LSTMLayer(InputLayer((None, 4, 2)), 3, **kwargs)
    assert not recurrent_layers._lstm_fusable(layer)
    assert recurrent_layers._lstm_fusable(LSTMLayer(InputLayer((None, 4, 2)), 3))


def test_switch_forces_the_scan_path(monkeypatch):
    l_in = InputLayer((None, 4, 2))
    layer = LSTMLayer(l_in, 3)
    monkeypatch.setattr(recurrent_layers, "USE_FUSED_OPS", False)
    out = get_output(layer)
    fn = pytensor.function([l_in.input_var], out, mode=FAST_MODE)
    assert "Scan" in _ops_of(fn) and "LSTMSequence" not in _ops_of(fn)
    monkeypatch.setattr(recurrent_layers, "USE_FUSED_OPS", True)
    fn = pytensor.function([l_in.input_var], get_output(layer), mode=FAST_MODE)
    assert "LSTMSequence" in _ops_of(fn) and "Scan" not in _ops_of(fn)
