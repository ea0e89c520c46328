"""The fused LSTM and GRU sequence ops: NumPy loops, finite differences, the C kernels
against the NumPy ones, JAX vs C, and the layers' use of them."""

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest
from pytensor.compile.mode import Mode
from pytensor.gradient import verify_grad
from pytensor.link.vm import VMLinker

from fcn8_lasagne import compile as fcompile
from fcn8_lasagne import nonlinearities
from fcn8_lasagne.layers import (
    Gate,
    GRULayer,
    InputLayer,
    LSTMLayer,
    get_all_params,
    get_output,
)
from fcn8_lasagne.layers import recurrent as recurrent_layers
from fcn8_lasagne.ops.recurrent import (
    GRUSequence,
    GRUSequenceGrad,
    LSTMSequence,
    LSTMSequenceGrad,
    gru_sequence,
    lstm_sequence,
)
from tests.conftest import FAST_MODE
from tests.reference import recurrent_ops as ref

STEPS, BATCH, UNITS = 4, 3, 2

#: The ops' NumPy ``perform`` (what runs without a C++ compiler) instead of their C code.
NUMPY_MODE = Mode(linker=VMLinker(c_thunks=False, use_cloop=False), optimizer="fast_run")
needs_cxx = pytest.mark.skipif(not pytensor.config.cxx, reason="no C++ compiler configured")


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

def _lstm_results(rng, fused, layer_kwargs, mode="CVM", dtype=None, seed=7, cls=LSTMLayer):
    """Outputs and gradients of a small LSTMLayer (or ``cls``), built with or without the
    fused op."""
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
    n_init = 0
    if kwargs.pop("init_layers", False):
        l_hid, l_cell = InputLayer((None, 3)), InputLayer((None, 3))
        kwargs.update(hid_init=l_hid)
        in_vars.append(l_hid.input_var)
        if cls is LSTMLayer:
            kwargs.update(cell_init=l_cell)
            in_vars.append(l_cell.input_var)
        n_init = len(in_vars) - (2 if "mask_input" in kwargs else 1)
        args += [data.standard_normal((batch, 3)).astype(dtype) for _ in range(n_init)]
    layer = cls(l_in, 3, **kwargs)
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
    wrt = params + [in_vars[0]] + (in_vars[len(in_vars) - n_init:] if n_init else [])
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


# ---------------------------------------------------------------------------------------
# The C kernels against the NumPy ones
# ---------------------------------------------------------------------------------------

def _our_thunks(fn, op_types):
    return [thunk for node, thunk in zip(fn.vm.nodes, fn.vm.thunks)
            if isinstance(node.op, op_types)]


@needs_cxx
def test_c_mode_runs_the_c_kernels_and_numpy_mode_the_python_ones():
    x, W, c0 = pt.tensor3(), pt.matrix(), pt.matrix()
    hid, cell = lstm_sequence(x, W, c0, c0)
    g_hid = gru_sequence(pt.tensor3(), W, c0)
    outputs = [hid, g_hid] + pytensor.grad(hid.sum() + g_hid.sum(), [W])
    ops = (LSTMSequence, LSTMSequenceGrad, GRUSequence, GRUSequenceGrad)
    c_fn = pytensor.function([x, g_hid.owner.inputs[0], W, c0], outputs, mode="CVM")
    numpy_fn = pytensor.function([x, g_hid.owner.inputs[0], W, c0], outputs,
                                 mode=NUMPY_MODE)
    c_thunks, numpy_thunks = _our_thunks(c_fn, ops), _our_thunks(numpy_fn, ops)
    assert len(c_thunks) == len(numpy_thunks) == 4
    assert all(hasattr(thunk, "cthunk") for thunk in c_thunks)
    assert not any(hasattr(thunk, "cthunk") for thunk in numpy_thunks)


def _lstm_case(rng, dtype, peepholes, masked, steps=6, batch=3, units=19):
    """Symbolic LSTM outputs and all gradients, and argument values (odd sizes so that the
    vectorised C loops have remainders)."""
    main, p_vars, m_vars = _symbolic(dtype, peepholes, masked)
    if masked:
        m_vars = [pt.matrix("mask", dtype="int8")]
    hid, cell = lstm_sequence(*main, peepholes=p_vars or None,
                              mask=m_vars[0] if masked else None)
    weights = rng.standard_normal((2, steps, batch, units)).astype(dtype)
    cost = (hid * weights[0]).sum() + (cell * weights[1]).sum()
    outputs = [hid, cell] + pytensor.grad(cost, main + p_vars)
    x = 2 * rng.standard_normal((steps, batch, 4 * units))
    W = 0.3 * rng.standard_normal((units, 4 * units))
    states = [rng.standard_normal((batch, units)) for _ in range(2)]
    peeps = [rng.standard_normal(units) for _ in range(3)] if peepholes else []
    args = [v.astype(dtype) for v in [x, W, *states, *peeps]]
    if masked:
        mask = np.ones((steps, batch), "int8")
        mask[3:, 1] = 0
        mask[1, 2] = 0
        args.append(mask)
    return main + p_vars + m_vars, outputs, args


def _gru_case(rng, dtype, masked, steps=6, batch=3, units=19):
    x, W, h0 = (pt.tensor3("x", dtype=dtype), pt.matrix("W", dtype=dtype),
                pt.matrix("h0", dtype=dtype))
    mask = pt.matrix("mask", dtype="int8") if masked else None
    hid = gru_sequence(x, W, h0, mask=mask)
    weights = rng.standard_normal((steps, batch, units)).astype(dtype)
    outputs = [hid] + pytensor.grad((hid * weights).sum(), [x, W, h0])
    args = [(2 * rng.standard_normal((steps, batch, 3 * units))).astype(dtype),
            (0.3 * rng.standard_normal((units, 3 * units))).astype(dtype),
            rng.standard_normal((batch, units)).astype(dtype)]
    ins = [x, W, h0]
    if masked:
        value = np.ones((steps, batch), "int8")
        value[3:, 1] = 0
        value[1, 2] = 0
        ins.append(mask)
        args.append(value)
    return ins, outputs, args


@needs_cxx
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("peepholes, masked", [(False, False), (True, True)])
def test_lstm_c_kernels_equal_numpy_kernels(rng, dtype, peepholes, masked):
    ins, outputs, args = _lstm_case(rng, dtype, peepholes, masked)
    c_values = pytensor.function(ins, outputs, mode="CVM")(*args)
    numpy_values = pytensor.function(ins, outputs, mode=NUMPY_MODE)(*args)
    tol = dict(rtol=2e-5, atol=2e-6) if dtype == "float32" else dict(rtol=1e-12, atol=1e-13)
    for c_value, numpy_value in zip(c_values, numpy_values):
        assert c_value.dtype == dtype
        np.testing.assert_allclose(c_value, numpy_value, **tol)


@needs_cxx
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("masked", [False, True])
def test_gru_c_kernels_equal_numpy_kernels(rng, dtype, masked):
    ins, outputs, args = _gru_case(rng, dtype, masked)
    c_values = pytensor.function(ins, outputs, mode="CVM")(*args)
    numpy_values = pytensor.function(ins, outputs, mode=NUMPY_MODE)(*args)
    tol = dict(rtol=2e-5, atol=2e-6) if dtype == "float32" else dict(rtol=1e-12, atol=1e-13)
    for c_value, numpy_value in zip(c_values, numpy_values):
        assert c_value.dtype == dtype
        np.testing.assert_allclose(c_value, numpy_value, **tol)


def _assert_c_equals_numpy(ins, outputs, args, tol):
    c_values = pytensor.function(ins, outputs, mode="CVM")(*args)
    numpy_values = pytensor.function(ins, outputs, mode=NUMPY_MODE)(*args)
    for c_value, numpy_value in zip(c_values, numpy_values):
        np.testing.assert_allclose(c_value, numpy_value, **tol)


@needs_cxx
@pytest.mark.parametrize("peepholes, masked", [(False, False), (True, True)])
def test_c_kernels_split_step_products_into_pieces_as_numpy_computes_them(rng, peepholes,
                                                                          masked):
    """Batch 40: the per-step products (40 x 90 x 360 multiply-adds for an LSTM of 90
    units, 40 x 100 x 300 for a GRU of 100) exceed the C kernels' piece size (1e6), so they
    run in pieces of 192 and 168 columns (forward; backward the inner dimension) or 160 and
    140 (GRU); each piece must land where the unsplit product puts it."""
    tol = dict(rtol=1e-12, atol=1e-12)
    ins, outputs, args = _lstm_case(rng, "float64", peepholes, masked, steps=3, batch=40,
                                    units=90)
    _assert_c_equals_numpy(ins, outputs, args, tol)
    ins, outputs, args = _gru_case(rng, "float64", masked, steps=3, batch=40, units=100)
    _assert_c_equals_numpy(ins, outputs, args, tol)


@needs_cxx
@pytest.mark.parametrize("peepholes, masked", [(False, False), (True, True)])
def test_c_kernels_split_the_batch_into_row_blocks_as_numpy_computes_it(rng, peepholes,
                                                                         masked):
    """Batch 17 on two worker threads: the forward and backward time loops run rows 0-7
    and 8-16 on threads of their own (the peephole gradients summed over both); a row
    masked in the second block, and the uneven split, must give the unsplit values."""
    tol = dict(rtol=1e-12, atol=1e-12)
    ins, outputs, args = _lstm_case(rng, "float64", peepholes, masked, steps=4, batch=17,
                                    units=11)
    if masked:
        args[-1][1:, 12] = 0
    _assert_c_equals_numpy(ins, outputs, args, tol)
    ins, outputs, args = _gru_case(rng, "float64", masked, steps=4, batch=17, units=11)
    if masked:
        args[-1][2:, 15] = 0
    _assert_c_equals_numpy(ins, outputs, args, tol)


@pytest.mark.parametrize("mode", [pytest.param("CVM", marks=needs_cxx), NUMPY_MODE],
                         ids=["c", "numpy"])
def test_lstm_without_stored_gates_gives_the_same_states(rng, mode):
    (x, W, c0, h0), peeps, mask = _values(rng)
    inputs = [x, W, *peeps, c0, h0, mask]
    symbols = [pt.tensor(dtype="float64", shape=(None,) * v.ndim) for v in inputs]
    kept = LSTMSequence(True, True)(*symbols)
    skipped = LSTMSequence(True, True, store_gates=False)(*symbols)
    assert skipped[2].type.shape == (0, 4, None, None)
    fn = pytensor.function(symbols, list(kept) + list(skipped), mode=mode)
    hid, cell, gates, hid_skipped, cell_skipped, no_gates = fn(*inputs)
    assert gates.shape == (STEPS, 4, BATCH, UNITS)
    assert no_gates.shape == (0, 4, BATCH, UNITS)
    np.testing.assert_array_equal(hid_skipped, hid)
    np.testing.assert_array_equal(cell_skipped, cell)
    with pytest.raises(NotImplementedError, match="without stored gates"):
        pytensor.grad(skipped[0].sum(), symbols[1])


def test_cpu_mode_skips_the_gates_only_where_nothing_reads_them(rng):
    l_in = InputLayer((None, STEPS, 5))
    layer = LSTMLayer(l_in, UNITS)
    out = get_output(layer)
    grads = pytensor.grad(out.sum(), get_all_params(layer, trainable=True))
    forward = fcompile.function([l_in.input_var], out, device="cpu")
    both = fcompile.function([l_in.input_var], [out] + grads, device="cpu")
    plain = pytensor.function([l_in.input_var], out)

    def store_gates(fn):
        return [node.op.store_gates for node in fn.maker.fgraph.toposort()
                if isinstance(node.op, LSTMSequence)]

    assert store_gates(forward) == [False]
    assert store_gates(both) == [True]
    assert store_gates(plain) == [True]  # the rewrite is in the CPU mode only
    x = rng.standard_normal((BATCH, STEPS, 5)).astype(pytensor.config.floatX)
    np.testing.assert_array_equal(forward(x), plain(x))
    np.testing.assert_array_equal(both(x)[0], plain(x))


@needs_cxx
def test_c_float32_nonlinearities_are_accurate_over_a_wide_range():
    """One step from zero states: hid = sigmoid(a_o) * tanh(sigmoid(a_i) * tanh(a_c)),
    cell = sigmoid(a_i) * tanh(a_c), checked against float64 NumPy on [-100, 100]."""
    a = np.concatenate([np.linspace(-100, 100, 2001), [-1e-6, 1e-6, 0.0, -0.624, 0.626]])
    units = a.size
    x = np.zeros((1, 1, 4 * units), "float32")
    x[0, 0, :units] = 3.0  # input gate
    x[0, 0, 2 * units:3 * units] = a  # cell input: tanh over the range
    x[0, 0, 3 * units:] = a  # output gate: sigmoid over the range
    xv, Wv, c0 = pt.tensor3(dtype="float32"), pt.matrix(dtype="float32"), pt.matrix(
        dtype="float32")
    hid, cell = lstm_sequence(xv, Wv, c0, c0)
    fn = pytensor.function([xv, Wv, c0], [hid, cell], mode="CVM")
    got_h, got_c = fn(x, np.zeros((units, 4 * units), "float32"),
                      np.zeros((1, units), "float32"))
    a32 = a.astype("float32").astype(np.float64)
    sig = ref.sigmoid
    exp_c = sig(3.0) * np.tanh(a32)
    exp_h = sig(a32) * np.tanh(exp_c)
    np.testing.assert_allclose(got_c[0, 0], exp_c, rtol=3e-7, atol=1e-12)
    tiny = a32 < -80  # down to there sigmoid keeps its relative accuracy, then flushes
    np.testing.assert_allclose(got_h[0, 0][~tiny], exp_h[~tiny], rtol=5e-7, atol=0)
    assert np.all(np.abs(got_h[0, 0][tiny]) < 1e-34)


@pytest.mark.parametrize("masked", [False, True])
def test_numpy_kernels_gradients_match_finite_differences(rng, masked):
    (x, W, c0, h0), peeps, mask = _values(rng)
    weights = rng.standard_normal((STEPS, BATCH, UNITS))

    def lstm_cost(x, W, c0, h0, *p):
        hid, cell = lstm_sequence(x, W, c0, h0, peepholes=p,
                                  mask=pt.constant(mask) if masked else None)
        return (hid * weights).sum() + cell.sum()

    def gru_cost(x, W, h0):
        return (gru_sequence(x, W, h0, mask=pt.constant(mask) if masked else None)
                * weights).sum()

    verify_grad(lstm_cost, [x, W, c0, h0] + peeps, rng=rng, mode=NUMPY_MODE,
                abs_tol=1e-6, rel_tol=1e-6)
    verify_grad(gru_cost, [x[:, :, :3 * UNITS], W[:, :3 * UNITS], h0], rng=rng,
                mode=NUMPY_MODE, abs_tol=1e-6, rel_tol=1e-6)


# ---------------------------------------------------------------------------------------
# GRUSequence
# ---------------------------------------------------------------------------------------

def _gru_values(rng, dtype="float64"):
    (x, W, _, h0), _, mask = _values(rng, dtype)
    return x[:, :, :3 * UNITS], W[:, :3 * UNITS], h0, mask


@pytest.mark.parametrize("masked", [False, True])
def test_gru_forward_matches_numpy_loop(rng, masked):
    x, W, h0, mask = _gru_values(rng, "float32")
    xv, Wv, hv = pt.tensor3(dtype="float32"), pt.matrix(dtype="float32"), pt.matrix(
        dtype="float32")
    mv = pt.matrix(dtype="float32")
    hid = gru_sequence(xv, Wv, hv, mask=mv if masked else None)
    fn = pytensor.function([xv, Wv, hv] + ([mv] if masked else []), hid, mode="CVM")
    got = fn(x, W, h0, *([mask] if masked else []))
    expected = ref.gru_sequence(x, W, h0, mask if masked else None)
    assert got.dtype == "float32" and got.shape == (STEPS, BATCH, UNITS)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    if masked:
        np.testing.assert_array_equal(got[2:, 1], np.broadcast_to(got[1, 1], (2, UNITS)))
        np.testing.assert_array_equal(got[1, 2], got[0, 2])


@pytest.mark.parametrize("masked", [False, True])
def test_gru_gradients_match_finite_differences(rng, masked):
    x, W, h0, mask = _gru_values(rng)
    weights = rng.standard_normal((STEPS, BATCH, UNITS))

    def cost(x, W, h0):
        hid = gru_sequence(x, W, h0, mask=pt.constant(mask) if masked else None)
        return (hid * weights).sum()

    verify_grad(cost, [x, W, h0], rng=rng, mode="CVM", abs_tol=1e-6, rel_tol=1e-6)


@pytest.mark.parametrize("masked", [False, True])
def test_gru_jax_agrees_with_c(rng, masked):
    pytest.importorskip("jax")
    x, W, h0, mask = _gru_values(rng, "float32")
    xv, Wv, hv = pt.tensor3(dtype="float32"), pt.matrix(dtype="float32"), pt.matrix(
        dtype="float32")
    mv = pt.matrix(dtype="float32")
    hid = gru_sequence(xv, Wv, hv, mask=mv if masked else None)
    outputs = [hid] + pytensor.grad((hid ** 2).sum() + hid.sum(), [xv, Wv, hv])
    ins = [xv, Wv, hv] + ([mv] if masked else [])
    args = [x, W, h0] + ([mask] if masked else [])
    c_results = pytensor.function(ins, outputs, mode="CVM")(*args)
    jax_results = fcompile.function(ins, outputs, device="jax")(*args)
    for c_value, jax_value in zip(c_results, jax_results):
        np.testing.assert_allclose(np.asarray(jax_value), c_value, rtol=2e-4, atol=2e-5)


def test_gru_infer_shape_and_bad_inputs():
    x = pt.tensor3(dtype="float32", shape=(5, None, 9))
    W, h0 = pt.matrix(dtype="float32", shape=(3, 9)), pt.matrix(dtype="float32")
    hid, gates = GRUSequence()(x, W, h0)
    assert hid.type.shape == (5, None, 3) and gates.type.shape == (5, 4, None, 3)
    fn = pytensor.function([x, W, h0], [hid.shape, gates.shape], mode="CVM")
    assert "GRUSequence" not in _ops_of(fn)
    s_h, s_g = fn(np.zeros((5, 2, 9), "float32"), np.zeros((3, 9), "float32"),
                  np.zeros((2, 3), "float32"))
    assert tuple(s_h) == (5, 2, 3) and tuple(s_g) == (5, 4, 2, 3)
    with pytest.raises(TypeError, match="expected 4 inputs, got 3"):
        GRUSequence(masked=True)(x, W, h0)
    with pytest.raises(ValueError, match="multiple of 3"):
        GRUSequence()(pt.tensor3(shape=(2, 2, 8)), pt.matrix(), pt.matrix())
    with pytest.raises(NotImplementedError, match="gates output has no gradient"):
        pytensor.grad(gates.sum(), W)
    xv, Wv, hv, mv = pt.tensor3(), pt.matrix(), pt.matrix(), pt.matrix()
    floatX = pytensor.config.floatX
    for mode in ["CVM", NUMPY_MODE]:
        fn = pytensor.function([xv, Wv, hv, mv], gru_sequence(xv, Wv, hv, mask=mv),
                               mode=mode)
        good = [np.zeros((3, 4, 6), floatX), np.zeros((2, 6), floatX),
                np.zeros((4, 2), floatX), np.ones((3, 4), floatX)]
        assert fn(*good).shape == (3, 4, 2)
        with pytest.raises(ValueError, match=r"h0 has shape \(2, 2\), expected"):
            fn(*good[:2], np.zeros((2, 2), floatX), good[3])
        with pytest.raises(ValueError, match=r"expected .steps, batch, 3 . units"):
            fn(good[0], np.zeros((3, 6), floatX), *good[2:])
        with pytest.raises(ValueError, match=r"the mask has shape \(4, 3\), expected"):
            fn(*good[:3], np.ones((4, 3), floatX))
    assert GRUSequenceGrad(True) != GRUSequenceGrad(False)


GRU_CONFIGS = {
    "default": {},
    "mask": {"masked": True},
    "backwards-mask": {"backwards": True, "masked": True},
    "final-backwards": {"only_return_final": True, "backwards": True},
    "learn_init": {"learn_init": True},
    "no-precompute-mask": {"precompute_input": False, "masked": True},
    "init-layers": {"init_layers": True, "only_return_final": True},
}


@pytest.mark.parametrize("config", list(GRU_CONFIGS))
def test_gru_layer_fused_path_equals_scan_path(rng, config):
    fused_fn, fused = _lstm_results(rng, True, GRU_CONFIGS[config], cls=GRULayer)
    scan_fn, scanned = _lstm_results(rng, False, GRU_CONFIGS[config], mode=FAST_MODE,
                                     cls=GRULayer)
    assert {"GRUSequence", "GRUSequenceGrad"} <= _ops_of(fused_fn)
    assert "Scan" not in _ops_of(fused_fn) and "GRUSequence" not in _ops_of(scan_fn)
    assert len(fused) == len(scanned)
    for f_value, s_value in zip(fused, scanned):
        np.testing.assert_allclose(f_value, s_value, rtol=1e-4, atol=1e-5)


def test_gru_layer_fused_path_equals_scan_path_in_float64_and_jax(rng):
    with pytensor.config.change_flags(floatX="float64"):
        _, fused = _lstm_results(rng, True, GRU_CONFIGS["backwards-mask"], dtype="float64",
                                 cls=GRULayer)
        _, scanned = _lstm_results(rng, False, GRU_CONFIGS["backwards-mask"],
                                   mode=FAST_MODE, dtype="float64", cls=GRULayer)
    for f_value, s_value in zip(fused, scanned):
        assert f_value.dtype == "float64"
        np.testing.assert_allclose(f_value, s_value, rtol=1e-10, atol=1e-12)
    pytest.importorskip("jax")
    _, c_results = _lstm_results(rng, True, GRU_CONFIGS["backwards-mask"], cls=GRULayer)
    _, jax_results = _lstm_results(rng, True, GRU_CONFIGS["backwards-mask"], mode="jax",
                                   cls=GRULayer)
    for c_value, jax_value in zip(c_results, jax_results):
        np.testing.assert_allclose(np.asarray(jax_value), c_value, rtol=2e-4, atol=2e-5)


@pytest.mark.parametrize("kwargs", [
    {"grad_clipping": 1.0},
    {"gradient_steps": 2},
    {"unroll_scan": True},
    {"resetgate": Gate(W_cell=None, nonlinearity=nonlinearities.tanh)},
    {"updategate": Gate(W_cell=None, nonlinearity=nonlinearities.rectify)},
    {"hidden_update": Gate(W_cell=None, nonlinearity=nonlinearities.sigmoid)},
], ids=["grad_clipping", "gradient_steps", "unroll_scan", "resetgate", "updategate",
        "hidden_update"])
def test_other_gru_configurations_keep_the_scan_path(kwargs):
    layer = GRULayer(InputLayer((None, 4, 2)), 3, **kwargs)
    assert not recurrent_layers._gru_fusable(layer)
    assert recurrent_layers._gru_fusable(GRULayer(InputLayer((None, 4, 2)), 3))
