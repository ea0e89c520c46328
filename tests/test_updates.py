"""Tests of fcn8_lasagne.updates against NumPy optimiser loops written out here.

The test problem is a separable quadratic, loss = sum(0.5 * c * p**2 + o * p)
over the parameters p, whose gradient c * p + o the NumPy loops evaluate.
"""

import inspect

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest

from fcn8_lasagne import updates as upd
from fcn8_lasagne import utils

MODE = "FAST_COMPILE"
SHAPES = {"W": (3, 4), "b": (4,)}


class Quadratic:
    """Shared parameters, their symbolic loss and a NumPy gradient."""

    def __init__(self, seed=0, dtype="float32"):
        rng = np.random.default_rng(seed)
        self.dtype = dtype
        self.initial = [rng.standard_normal(shape).astype(dtype) for shape in SHAPES.values()]
        self.curvatures = [rng.uniform(0.5, 2.0, shape).astype(dtype) for shape in SHAPES.values()]
        self.offsets = [rng.standard_normal(shape).astype(dtype) for shape in SHAPES.values()]
        self.params = [pytensor.shared(value.copy(), name=name)
                       for name, value in zip(SHAPES, self.initial)]
        self.loss = sum(
            pt.sum(0.5 * pt.constant(c) * p ** 2 + pt.constant(o) * p)
            for p, c, o in zip(self.params, self.curvatures, self.offsets))

    def gradients(self, values):
        return [c.astype(np.float64) * v + o for v, c, o in
                zip(values, self.curvatures, self.offsets)]

    def start(self):
        return [value.astype(np.float64) for value in self.initial]

    def values(self):
        return [param.get_value() for param in self.params]


def run(updates, steps):
    step = pytensor.function([], [], updates=updates, mode=MODE)
    for _ in range(steps):
        step()


def assert_params_close(problem, expected, rtol=1e-5, atol=1e-6):
    for actual, wanted in zip(problem.values(), expected):
        assert actual.dtype == problem.dtype
        np.testing.assert_allclose(actual, wanted, rtol=rtol, atol=atol)


# --- NumPy references ------------------------------------------------------


def numpy_adam(problem, steps, lr=0.001, beta1=0.9, beta2=0.999, eps=1e-8,
               torch_style=False):
    values = problem.start()
    m = [np.zeros_like(v) for v in values]
    v2 = [np.zeros_like(v) for v in values]
    for t in range(1, steps + 1):
        grads = problem.gradients(values)
        for i, g in enumerate(grads):
            m[i] = beta1 * m[i] + (1 - beta1) * g
            v2[i] = beta2 * v2[i] + (1 - beta2) * g ** 2
            if torch_style:  # epsilon added to the bias-corrected root
                m_hat = m[i] / (1 - beta1 ** t)
                v_hat = v2[i] / (1 - beta2 ** t)
                values[i] = values[i] - lr * m_hat / (np.sqrt(v_hat) + eps)
            else:  # Lasagne: epsilon added before the correction in a_t
                a_t = lr * np.sqrt(1 - beta2 ** t) / (1 - beta1 ** t)
                values[i] = values[i] - a_t * m[i] / (np.sqrt(v2[i]) + eps)
    return values, m, v2


# --- signatures --------------------------------------------------------------


@pytest.mark.parametrize("function, defaults", [
    (upd.adagrad, {"learning_rate": 1.0, "epsilon": 1e-6}),
    (upd.rmsprop, {"learning_rate": 1.0, "rho": 0.9, "epsilon": 1e-6}),
    (upd.adadelta, {"learning_rate": 1.0, "rho": 0.95, "epsilon": 1e-6}),
    (upd.adam, {"learning_rate": 0.001, "beta1": 0.9, "beta2": 0.999, "epsilon": 1e-8}),
    (upd.adamax, {"learning_rate": 0.002, "beta1": 0.9, "beta2": 0.999, "epsilon": 1e-8}),
    (upd.momentum, {"momentum": 0.9}),
    (upd.nesterov_momentum, {"momentum": 0.9}),
    (upd.apply_momentum, {"params": None, "momentum": 0.9}),
    (upd.apply_nesterov_momentum, {"params": None, "momentum": 0.9}),
    (upd.norm_constraint, {"norm_axes": None, "epsilon": 1e-7}),
    (upd.total_norm_constraint, {"epsilon": 1e-7, "return_norm": False}),
])
def test_lasagne_defaults(function, defaults):
    signature = inspect.signature(function)
    found = {name: parameter.default for name, parameter in signature.parameters.items()
             if parameter.default is not inspect.Parameter.empty}
    assert found == defaults


# --- gradients ----------------------------------------------------------------


def test_get_or_compute_grads_checks_its_input():
    problem = Quadratic()
    grads = upd.get_or_compute_grads(problem.loss, problem.params)
    values = pytensor.function([], grads, mode=MODE)()
    for actual, expected in zip(values, problem.gradients(problem.start())):
        np.testing.assert_allclose(actual, expected, rtol=1e-5)

    given = [pt.zeros(shape) for shape in SHAPES.values()]
    assert upd.get_or_compute_grads(given, problem.params) == given
    with pytest.raises(ValueError, match="Got 1 gradient expressions for 2 parameters"):
        upd.get_or_compute_grads(given[:1], problem.params)
    with pytest.raises(ValueError, match="shared variables only"):
        upd.get_or_compute_grads(problem.loss, [problem.params[0] * 2])


# --- plain and momentum SGD ---------------------------------------------------


def test_sgd_from_loss_and_from_gradient_list():
    problem = Quadratic()
    run(upd.sgd(problem.loss, problem.params, learning_rate=0.1), steps=2)
    expected = problem.start()
    for _ in range(2):
        expected = [v - 0.1 * g for v, g in zip(expected, problem.gradients(expected))]
    assert_params_close(problem, expected)

    problem = Quadratic()
    constant_grads = [pt.ones(shape) for shape in SHAPES.values()]
    run(upd.sgd(constant_grads, problem.params, learning_rate=0.5), steps=1)
    assert_params_close(problem, [v - 0.5 for v in problem.start()])


def test_momentum_two_steps():
    problem = Quadratic()
    updates = upd.momentum(problem.loss, problem.params, learning_rate=0.1, momentum=0.8)
    run(updates, steps=2)
    values, velocities = problem.start(), [0.0, 0.0]
    for _ in range(2):
        grads = problem.gradients(values)
        velocities = [0.8 * vel - 0.1 * g for vel, g in zip(velocities, grads)]
        values = [v + vel for v, vel in zip(values, velocities)]
    assert_params_close(problem, values)
    state = upd.get_update_state(updates, problem.params)
    assert [s.name for s in state] == ["W_velocity", "b_velocity"]
    for variable, expected in zip(state, velocities):
        np.testing.assert_allclose(variable.get_value(), expected, rtol=1e-5, atol=1e-6)


def test_nesterov_momentum_two_steps():
    problem = Quadratic()
    run(upd.nesterov_momentum(problem.loss, problem.params, learning_rate=0.1,
                              momentum=0.8), steps=2)
    values, velocities = problem.start(), [0.0, 0.0]
    for _ in range(2):
        grads = problem.gradients(values)
        velocities = [0.8 * vel - 0.1 * g for vel, g in zip(velocities, grads)]
        values = [v + 0.8 * vel - 0.1 * g for v, vel, g in zip(values, velocities, grads)]
    assert_params_close(problem, values)


def test_apply_momentum_to_some_params_only():
    problem = Quadratic()
    W, b = problem.params
    updates = upd.apply_momentum(upd.sgd(problem.loss, problem.params, 0.1),
                                 params=[W], momentum=0.5)
    assert len(updates) == 3  # W, b and the velocity of W
    run(updates, steps=2)
    values, velocity = problem.start(), 0.0
    for _ in range(2):
        grads = problem.gradients(values)
        velocity = 0.5 * velocity - 0.1 * grads[0]
        values = [values[0] + velocity, values[1] - 0.1 * grads[1]]
    assert_params_close(problem, values)


# --- adaptive methods ---------------------------------------------------------


def test_adagrad_two_steps():
    problem = Quadratic()
    run(upd.adagrad(problem.loss, problem.params, learning_rate=0.5, epsilon=1e-3), 2)
    values, accus = problem.start(), [0.0, 0.0]
    for _ in range(2):
        grads = problem.gradients(values)
        accus = [a + g ** 2 for a, g in zip(accus, grads)]
        values = [v - 0.5 * g / np.sqrt(a + 1e-3) for v, g, a in zip(values, grads, accus)]
    assert_params_close(problem, values)


def test_rmsprop_two_steps():
    problem = Quadratic()
    run(upd.rmsprop(problem.loss, problem.params, learning_rate=0.01, rho=0.7,
                    epsilon=1e-3), steps=2)
    values, accus = problem.start(), [0.0, 0.0]
    for _ in range(2):
        grads = problem.gradients(values)
        accus = [0.7 * a + 0.3 * g ** 2 for a, g in zip(accus, grads)]
        values = [v - 0.01 * g / np.sqrt(a + 1e-3) for v, g, a in zip(values, grads, accus)]
    assert_params_close(problem, values)


def test_adadelta_two_steps():
    problem = Quadratic()
    updates = upd.adadelta(problem.loss, problem.params, learning_rate=0.9, rho=0.8,
                           epsilon=1e-2)
    run(updates, steps=2)
    values, accus, deltas = problem.start(), [0.0, 0.0], [0.0, 0.0]
    for _ in range(2):
        grads = problem.gradients(values)
        accus = [0.8 * a + 0.2 * g ** 2 for a, g in zip(accus, grads)]
        steps = [g * np.sqrt(d + 1e-2) / np.sqrt(a + 1e-2)
                 for g, d, a in zip(grads, deltas, accus)]
        values = [v - 0.9 * s for v, s in zip(values, steps)]
        deltas = [0.8 * d + 0.2 * s ** 2 for d, s in zip(deltas, steps)]
    assert_params_close(problem, values)
    names = [s.name for s in upd.get_update_state(updates, problem.params)]
    assert names == ["W_adadelta_accu", "W_adadelta_delta_accu",
                     "b_adadelta_accu", "b_adadelta_delta_accu"]
    np.testing.assert_allclose(updates_state_value(updates, "b_adadelta_delta_accu"),
                               deltas[1], rtol=1e-4, atol=1e-7)


def updates_state_value(updates, name):
    return next(variable.get_value() for variable in updates if variable.name == name)


def test_adamax_three_steps():
    problem = Quadratic()
    run(upd.adamax(problem.loss, problem.params, learning_rate=0.05, beta1=0.8,
                   beta2=0.9, epsilon=1e-2), steps=3)
    values, m, u = problem.start(), [0.0, 0.0], [0.0, 0.0]
    for t in range(1, 4):
        grads = problem.gradients(values)
        m = [0.8 * mi + 0.2 * g for mi, g in zip(m, grads)]
        u = [np.maximum(0.9 * ui, np.abs(g)) for ui, g in zip(u, grads)]
        a_t = 0.05 / (1 - 0.8 ** t)
        values = [v - a_t * mi / (ui + 1e-2) for v, mi, ui in zip(values, m, u)]
    assert_params_close(problem, values)


def test_adam_matches_lasagne_formula_over_several_steps():
    problem = Quadratic()
    updates = upd.adam(problem.loss, problem.params)
    run(updates, steps=6)
    values, m, v2 = numpy_adam(problem, steps=6)
    assert_params_close(problem, values)

    state = upd.get_update_state(updates, problem.params)
    assert [s.name for s in state] == ["W_adam_m", "W_adam_v", "b_adam_m", "b_adam_v",
                                       "adam_t"]
    for variable, expected in zip(state, [m[0], v2[0], m[1], v2[1]]):
        np.testing.assert_allclose(variable.get_value(), expected, rtol=1e-4, atol=1e-7)
    assert state[-1].get_value() == 6


def test_adam_epsilon_sits_outside_the_bias_correction():
    # With a large epsilon the two placements give clearly different steps.
    problem = Quadratic()
    run(upd.adam(problem.loss, problem.params, learning_rate=0.01, epsilon=0.1), steps=3)
    lasagne_values, _, _ = numpy_adam(problem, 3, lr=0.01, eps=0.1)
    torch_values, _, _ = numpy_adam(problem, 3, lr=0.01, eps=0.1, torch_style=True)
    assert_params_close(problem, lasagne_values)
    assert not np.allclose(problem.values()[0], torch_values[0], rtol=1e-3)


def test_adam_with_a_shared_learning_rate_changed_between_steps():
    problem = Quadratic()
    learning_rate = pytensor.shared(np.float32(0.01), name="learning_rate")
    step = pytensor.function([], [], mode=MODE, updates=upd.adam(
        problem.loss, problem.params, learning_rate=learning_rate, beta1=0.5))
    step()
    learning_rate.set_value(np.float32(0.1))
    step()

    values, m, v2 = problem.start(), [0.0, 0.0], [0.0, 0.0]
    for t, lr in ((1, 0.01), (2, 0.1)):
        grads = problem.gradients(values)
        m = [0.5 * mi + 0.5 * g for mi, g in zip(m, grads)]
        v2 = [0.999 * vi + 0.001 * g ** 2 for vi, g in zip(v2, grads)]
        a_t = lr * np.sqrt(1 - 0.999 ** t) / (1 - 0.5 ** t)
        values = [v - a_t * mi / (np.sqrt(vi) + 1e-8) for v, mi, vi in zip(values, m, v2)]
    assert_params_close(problem, values)


def test_float64_params_keep_their_precision():
    problem = Quadratic(dtype="float64")
    updates = upd.adam(problem.loss, problem.params, learning_rate=0.01)
    assert all(expression.dtype == variable.dtype for variable, expression in updates.items())
    run(updates, steps=3)
    values, _, _ = numpy_adam(problem, 3, lr=0.01)
    assert_params_close(problem, values, rtol=1e-12, atol=1e-14)


def test_state_keeps_the_broadcast_pattern_of_its_param():
    column = pytensor.shared(np.ones((3, 1), dtype="float32"), name="column", shape=(None, 1))
    updates = upd.rmsprop(pt.sum(column ** 2), [column])
    (accu,) = upd.get_update_state(updates, [column])
    assert accu.type.shape == (None, 1) and accu.dtype == "float32"
    unnamed = pytensor.shared(np.ones(2, dtype="float32"))
    assert upd.get_update_state(upd.adagrad(pt.sum(unnamed), [unnamed]),
                                [unnamed])[0].name == "adagrad_accu"


def test_adam_updates_conv_params_and_state_in_place():
    """The compiled step writes each parameter and moment into its own buffer.

    PyTensor updates a shared variable in place only when the update expression's type is
    the variable's: parameters and their state have static shapes, like the convolution's
    weight gradient. Otherwise the fused Adam node overwrites the gradient (also a
    destroy_map) and every step allocates new arrays.
    """
    from fcn8_lasagne import layers

    x = pt.tensor4("x")
    conv = layers.Conv2DLayer(layers.InputLayer((2, 3, 6, 6), input_var=x), 4, 3, name="c")
    params = layers.get_all_params(conv, trainable=True)
    updates = upd.adam(layers.get_output(conv).mean(), params)
    fn = pytensor.function([x], [], updates=updates, mode="CVM")
    state = upd.get_update_state(updates, params)
    assert [variable.name for variable in state] == [
        "c.W_adam_m", "c.W_adam_v", "c.b_adam_m", "c.b_adam_v", "adam_t"]
    W, b = params
    assert W.type.shape == (4, 3, 3, 3) and b.type.shape == (4,)
    assert [variable.type for variable in state[:4]] == [W.type, W.type, b.type, b.type]
    fgraph = fn.maker.fgraph
    updated = {fgraph.inputs[i]: fgraph.outputs[o] for o, i in fgraph.update_mapping.items()}
    for variable in [W, b] + state[:4]:
        output = updated[variable]
        node = output.owner
        destroyed = node.op.destroy_map.get(node.outputs.index(output), [])
        assert [node.inputs[i] for i in destroyed] == [variable], (variable, node)


def test_optimiser_state_can_be_saved_and_restored():
    problem = Quadratic()
    updates = upd.adam(problem.loss, problem.params, learning_rate=0.05)
    step = pytensor.function([], [], updates=updates, mode=MODE)
    for _ in range(3):
        step()
    saved_params = problem.values()
    saved_state = upd.get_update_state_values(updates, problem.params)
    for _ in range(2):
        step()
    continued = problem.values()

    # A fresh optimiser (new state variables) restored from the saved values.
    for param, value in zip(problem.params, saved_params):
        param.set_value(value)
    updates = upd.adam(problem.loss, problem.params, learning_rate=0.05)
    upd.set_update_state_values(updates, problem.params, saved_state)
    run(updates, steps=2)
    for actual, expected in zip(problem.values(), continued):
        np.testing.assert_array_equal(actual, expected)

    # Restarting without the state gives another trajectory.
    for param, value in zip(problem.params, saved_params):
        param.set_value(value)
    run(upd.adam(problem.loss, problem.params, learning_rate=0.05), steps=2)
    assert not np.allclose(problem.values()[0], continued[0], rtol=1e-4)


def test_set_update_state_values_rejects_mismatches():
    problem = Quadratic()
    updates = upd.adam(problem.loss, problem.params)
    values = upd.get_update_state_values(updates, problem.params)
    with pytest.raises(ValueError, match="got 4 values to set 5"):
        upd.set_update_state_values(updates, problem.params, values[:-1])
    values[0] = np.zeros((4, 3))
    with pytest.raises(ValueError, match="W_adam_m has shape"):
        upd.set_update_state_values(updates, problem.params, values)


# --- norm constraints ---------------------------------------------------------


@pytest.mark.parametrize("shape, norm_axes, numpy_axes", [
    ((5, 4), None, (0,)),              # dense weights: per output column
    ((3, 2, 4, 4), None, (1, 2, 3)),   # conv filters: per filter
    ((5, 4), (1,), (1,)),
])
def test_norm_constraint(shape, norm_axes, numpy_axes):
    rng = np.random.default_rng(3)
    x = rng.standard_normal(shape).astype("float32")
    norms = np.sqrt(np.sum(x ** 2, axis=numpy_axes, keepdims=True))
    max_norm = float(np.median(norms))  # some vectors above, some below
    variable = pt.tensor(dtype="float32", shape=(None,) * len(shape))
    constrained = pytensor.function(
        [variable], upd.norm_constraint(variable, max_norm, norm_axes=norm_axes),
        mode=MODE)(x)
    expected = x * np.minimum(norms, max_norm) / (1e-7 + norms)
    np.testing.assert_allclose(constrained, expected, rtol=1e-5)
    new_norms = np.sqrt(np.sum(constrained ** 2, axis=numpy_axes))
    assert new_norms.max() <= max_norm * (1 + 1e-5)


def test_norm_constraint_needs_axes_for_other_ranks():
    with pytest.raises(ValueError, match="norm_axes"):
        upd.norm_constraint(pt.vector(), 1.0)


def test_total_norm_constraint():
    rng = np.random.default_rng(4)
    arrays = [rng.standard_normal((3, 4)).astype("float32"),
              rng.standard_normal(5).astype("float32")]
    variables = [pt.matrix(), pt.vector()]
    total_norm = np.sqrt(sum(np.sum(a.astype(np.float64) ** 2) for a in arrays))

    for max_norm in (0.5 * total_norm, 2.0 * total_norm):
        scaled, norm = upd.total_norm_constraint(variables, max_norm, return_norm=True)
        results = pytensor.function(variables, scaled + [norm], mode=MODE)(*arrays)
        np.testing.assert_allclose(results[-1], total_norm, rtol=1e-5)
        factor = min(total_norm, max_norm) / (1e-7 + total_norm)
        for actual, array in zip(results[:-1], arrays):
            np.testing.assert_allclose(actual, array * factor, rtol=1e-5)
            assert actual.dtype == array.dtype

    assert len(upd.total_norm_constraint(variables, 1.0)) == 2
    with pytest.raises(ValueError, match="at least one"):
        upd.total_norm_constraint([], 1.0)


# --- fcn8_lasagne.utils helpers the updates rely on -----------------------------
# (kept here because this module's owner has no tests/test_utils.py of its own)


def test_compute_norms_uses_the_norm_constraint_axes():
    rng = np.random.default_rng(8)
    dense = rng.standard_normal((5, 4))
    conv = rng.standard_normal((3, 2, 4, 4))
    np.testing.assert_allclose(utils.compute_norms(dense), np.sqrt((dense ** 2).sum(0)))
    np.testing.assert_allclose(utils.compute_norms(dense, norm_axes=(1,)),
                               np.sqrt((dense ** 2).sum(1)))
    np.testing.assert_allclose(utils.compute_norms(conv), np.sqrt((conv ** 2).sum((1, 2, 3))))
    with pytest.raises(ValueError, match="norm_axes"):  # 1-D gives abs (Lasagne), 6-D fails
        utils.compute_norms(np.ones((1,) * 6))


def test_collect_shared_vars_keeps_left_to_right_order():
    W, b, c = (pytensor.shared(np.zeros(2), name=name) for name in "Wbc")
    assert utils.collect_shared_vars([W, b, c]) == [W, b, c]
    assert utils.collect_shared_vars([W * b + c, c, b]) == [W, b, c]
    assert utils.collect_shared_vars(b * 2) == [b]
    with pytest.raises(TypeError, match="PyTensor variables"):
        utils.collect_shared_vars([W, 3])


def test_small_utils():
    assert utils.floatX([1, 2]).dtype == pytensor.config.floatX
    assert utils.as_tuple(3, 2) == (3, 3)
    assert utils.as_tuple([1, 2], 2, utils.int_types) == (1, 2)
    with pytest.raises(ValueError, match="length 3"):
        utils.as_tuple((1, 2), 3)
    with pytest.raises(TypeError, match="iterable of int"):
        utils.as_tuple((1, 2.5), 2, utils.int_types)
    assert utils.unique([3, 1, 3, 2, 1]) == [3, 1, 2]
    labels = pt.ivector()
    encoded = pytensor.function([labels], utils.one_hot(labels, 3), mode=MODE)
    np.testing.assert_array_equal(encoded(np.array([2, 0], dtype="int32")),
                                  [[0, 0, 1], [1, 0, 0]])


# --- amsgrad ------------------------------------------------------------------------------


def test_amsgrad_defaults_and_export():
    signature = inspect.signature(upd.amsgrad)
    found = {name: parameter.default for name, parameter in signature.parameters.items()
             if parameter.default is not inspect.Parameter.empty}
    assert found == {"learning_rate": 0.001, "beta1": 0.9, "beta2": 0.999, "epsilon": 1e-8}
    assert "amsgrad" in upd.__all__


def test_amsgrad_matches_reference_and_names_its_state():
    from tests.reference import lasagne_extras as ref

    problem = Quadratic(dtype="float64")  # float64: the reference's precision over 8 steps
    updates = upd.amsgrad(problem.loss, problem.params, learning_rate=0.05, beta1=0.8,
                          beta2=0.95, epsilon=1e-3)
    assert list(updates)[:4] == [*list(updates)[:3], problem.params[0]]
    run(updates, steps=8)
    values, m, v2, v_hat = ref.amsgrad(problem.initial, problem.gradients, steps=8, lr=0.05,
                                       beta1=0.8, beta2=0.95, eps=1e-3)
    assert_params_close(problem, values, rtol=1e-9, atol=1e-12)
    state = upd.get_update_state(updates, problem.params)
    assert [s.name for s in state] == ["W_amsgrad_m", "W_amsgrad_v", "W_amsgrad_v_hat",
                                       "b_amsgrad_m", "b_amsgrad_v", "b_amsgrad_v_hat",
                                       "amsgrad_t"]
    for variable, expected in zip(state, [m[0], v2[0], v_hat[0], m[1], v2[1], v_hat[1]]):
        np.testing.assert_allclose(variable.get_value(), expected, rtol=1e-9, atol=1e-12)
    assert state[-1].get_value() == 8
    # the maximum matters: somewhere v fell below its running maximum
    assert any((vh > vv + 1e-9).any() for vh, vv in zip(v_hat, v2))


def test_amsgrad_differs_from_adam_once_v_decreases():
    amsgrad_problem, adam_problem = Quadratic(), Quadratic()
    run(upd.amsgrad(amsgrad_problem.loss, amsgrad_problem.params, learning_rate=0.1), 20)
    run(upd.adam(adam_problem.loss, adam_problem.params, learning_rate=0.1), 20)
    assert not np.allclose(amsgrad_problem.values()[0], adam_problem.values()[0])


def test_amsgrad_jax_matches_c():
    from fcn8_lasagne import compile as fcompile

    results = []
    for device in ("cpu", "jax"):
        problem = Quadratic(seed=3)
        step = fcompile.function([], [], updates=upd.amsgrad(
            problem.loss, problem.params, learning_rate=0.05), device=device)
        for _ in range(5):
            step()
        results.append([utils.host_value(p) for p in problem.params])
    # float32 steps of 0.05 through m / sqrt(v_hat): XLA's and C's roundings differ by a
    # few 1e-6 after 5 steps (a wrong formula differs by ~1e-2)
    for c_value, jax_value in zip(*results):
        np.testing.assert_allclose(jax_value, c_value, rtol=1e-5, atol=1e-5)


# --- SGD with weight decay, lr multipliers and the poly schedule (dilated-ResNet FCNs) ------

def torch_sgd_poly_run(problem, steps, base_lr, momentum, weight_decay, head_mult, power):
    """torchvision's reference optimiser: SGD param groups + LambdaLR poly, per step."""
    torch = pytest.importorskip("torch")
    tensors = [torch.tensor(value.astype(np.float64), requires_grad=True)
               for value in problem.initial]
    optimizer = torch.optim.SGD(
        [{"params": [tensors[0]]}, {"params": [tensors[1]], "lr": base_lr * head_mult}],
        lr=base_lr, momentum=momentum, weight_decay=weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: (1 - step / steps) ** power)
    for _ in range(steps):
        optimizer.zero_grad()
        loss = sum(torch.sum(0.5 * torch.tensor(c, dtype=torch.float64) * p ** 2
                             + torch.tensor(o, dtype=torch.float64) * p)
                   for p, c, o in zip(tensors, problem.curvatures, problem.offsets))
        loss.backward()
        optimizer.step()
        scheduler.step()
    return [tensor.detach().numpy() for tensor in tensors]


def run_sgd_weight_decay(problem, steps, schedule, **options):
    updates = upd.sgd_weight_decay(problem.loss, problem.params, schedule.variable, **options)
    step = pytensor.function([], [], updates=updates, mode=MODE)
    for iteration in range(steps):
        schedule.set_iteration(iteration)
        step()
    return problem.values(), updates


def test_sgd_weight_decay_with_poly_and_head_multiplier_matches_torch_sgd():
    problem = Quadratic(seed=3, dtype="float64")
    schedule = upd.PolyLearningRate(0.05, max_iterations=7, power=0.9, dtype="float64")
    ours, updates = run_sgd_weight_decay(
        problem, 7, schedule, momentum=0.9, weight_decay=1e-2,
        lr_multipliers={problem.params[1]: 10.0})
    expected = torch_sgd_poly_run(problem, 7, 0.05, 0.9, 1e-2, 10.0, 0.9)
    for value, reference in zip(ours, expected):
        np.testing.assert_allclose(value, reference, rtol=1e-12, atol=1e-14)
    assert [v.name for v in upd.get_update_state(updates, problem.params)] == [
        "W_velocity", "b_velocity"]
    # the multiplier and the decay matter: without them the result differs
    plain = Quadratic(seed=3, dtype="float64")
    other, _ = run_sgd_weight_decay(
        plain, 7, upd.PolyLearningRate(0.05, 7, dtype="float64"), momentum=0.9,
        weight_decay=0.0)
    assert not np.allclose(other[1], expected[1], rtol=1e-3)


def numpy_mxnet_sgd(problem, rates, momentum, weight_decay, multipliers, decay_multipliers):
    """MXNet's sgd_mom_update: v = m v - lr (g + wd w); w += v (rescale_grad 1, no clip)."""
    values = [value.astype(np.float64) for value in problem.initial]
    velocities = [np.zeros_like(value) for value in values]
    for rate in rates:
        grads = problem.gradients(values)
        for k, grad in enumerate(grads):
            velocities[k] = momentum * velocities[k] - rate * multipliers[k] * (
                grad + weight_decay * decay_multipliers[k] * values[k])
            values[k] = values[k] + velocities[k]
    return values


def test_sgd_weight_decay_mxnet_convention_matches_numpy_and_differs_under_a_schedule():
    problem = Quadratic(seed=5, dtype="float64")
    schedule = upd.PolyLearningRate(0.1, max_iterations=6, convention="gluoncv",
                                    dtype="float64")
    ours, _ = run_sgd_weight_decay(
        problem, 6, schedule, momentum=0.9, weight_decay=1e-2, convention="mxnet",
        lr_multipliers={problem.params[0]: 10.0},
        weight_decay_multipliers={problem.params[1]: 0.0})
    rates = [schedule.value(i) for i in range(6)]
    expected = numpy_mxnet_sgd(problem, rates, 0.9, 1e-2, [10.0, 1.0], [1.0, 0.0])
    for value, reference in zip(ours, expected):
        np.testing.assert_allclose(value, reference, rtol=1e-12)
    torch_convention = Quadratic(seed=5, dtype="float64")
    other, _ = run_sgd_weight_decay(
        torch_convention, 6, upd.PolyLearningRate(0.1, 6, convention="gluoncv",
                                                  dtype="float64"),
        momentum=0.9, weight_decay=1e-2, lr_multipliers={torch_convention.params[0]: 10.0},
        weight_decay_multipliers={torch_convention.params[1]: 0.0})
    assert not np.allclose(other[0], expected[0], rtol=1e-6)


def test_sgd_weight_decay_constant_rate_conventions_agree_in_float32():
    results = []
    for convention in ("torch", "mxnet"):
        problem = Quadratic(seed=1)
        updates = upd.sgd_weight_decay(problem.loss, problem.params, 0.01, momentum=0.9,
                                       weight_decay=1e-4, convention=convention)
        step = pytensor.function([], [], updates=updates, mode=MODE)
        for _ in range(4):
            step()
        results.append(problem.values())
        assert all(value.dtype == np.float32 for value in results[-1])
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)


def test_poly_learning_rate_hand_computed():
    # torch: base * (1 - i / N) ** 0.9
    assert upd.poly_learning_rate(0.01, 0, 10) == 0.01
    assert upd.poly_learning_rate(0.01, 5, 10) == pytest.approx(0.01 * 0.5 ** 0.9, rel=1e-15)
    assert upd.poly_learning_rate(0.01, 9, 10) == pytest.approx(0.01 * 0.1 ** 0.9, rel=1e-15)
    assert upd.poly_learning_rate(0.01, 10, 10) == 0.0
    assert upd.poly_learning_rate(0.01, 12, 10) == 0.0        # clamped past the end
    assert upd.poly_learning_rate(1.0, 1, 4, power=2) == pytest.approx(0.5625)
    # gluoncv: T = min(i + 1, N - 1), base * (1 - T / (N - 1)) ** 0.9
    assert upd.poly_learning_rate(0.01, 0, 11, convention="gluoncv") == pytest.approx(
        0.01 * 0.9 ** 0.9, rel=1e-15)
    assert upd.poly_learning_rate(0.01, 9, 11, convention="gluoncv") == 0.0
    assert upd.poly_learning_rate(0.01, 10, 11, convention="gluoncv") == 0.0


def test_poly_schedule_sets_the_shared_rate_and_refuses_bad_settings():
    schedule = upd.PolyLearningRate(0.02, max_iterations=4)
    assert schedule.variable.dtype == pytensor.config.floatX
    assert [round(schedule.set_iteration(i), 12) for i in range(4)] == [
        round(0.02 * (1 - i / 4) ** 0.9, 12) for i in range(4)]
    assert schedule.variable.get_value() == np.float32(0.02 * 0.25 ** 0.9)
    with pytest.raises(ValueError, match="max_iterations must be an integer >= 1"):
        upd.poly_learning_rate(0.1, 0, 0)
    with pytest.raises(ValueError, match="max_iterations must be an integer >= 2"):
        upd.poly_learning_rate(0.1, 0, 1, convention="gluoncv")
    with pytest.raises(ValueError, match="iteration must be an integer >= 0"):
        upd.poly_learning_rate(0.1, -1, 5)
    with pytest.raises(ValueError, match="convention must be one of"):
        upd.poly_learning_rate(0.1, 0, 5, convention="caffe")


def test_sgd_weight_decay_refuses_bad_multipliers():
    problem = Quadratic()
    stranger = pytensor.shared(np.zeros(2, "float32"), name="stranger")
    with pytest.raises(ValueError, match="lr_multipliers names 1 variable.*stranger"):
        upd.sgd_weight_decay(problem.loss, problem.params, 0.1,
                             lr_multipliers={stranger: 2.0})
    with pytest.raises(ValueError, match="multiplier of W must be a finite number"):
        upd.sgd_weight_decay(problem.loss, problem.params, 0.1,
                             lr_multipliers={problem.params[0]: -1.0})
    with pytest.raises(ValueError, match="convention must be one of"):
        upd.sgd_weight_decay(problem.loss, problem.params, 0.1, convention="keras")
