"""``ThreadedElemwise`` and the CPU rewrite that uses it for Adam's fused updates."""

import pickle

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest

from fcn8_lasagne import compile as fcn8_compile
from fcn8_lasagne import updates
from fcn8_lasagne.ops.elemwise import ThreadedElemwise

WITHOUT_REWRITE = fcn8_compile.mode_for_device("cpu").excluding("threaded_elemwise")


def op_types(function):
    return [type(node.op).__name__ for node in function.maker.fgraph.toposort()]


def adam_reference(w, m, v, g, step, learning_rate, beta1=0.9, beta2=0.999, epsilon=1e-8):
    """One Adam step of Lasagne's formula in float64, the hyperparameters as float32
    constants (``1 - beta2`` is 0.0009999871, as Theano's float32 graph computes it)."""
    beta1, beta2 = np.float32(beta1), np.float32(beta2)
    w, m, v, g = (np.asarray(a, np.float64) for a in (w, m, v, g))
    a_t = learning_rate * np.sqrt(1 - beta2 ** step) / (1 - beta1 ** step)
    m = float(beta1) * m + float(np.float32(1) - beta1) * g
    v = float(beta2) * v + float(np.float32(1) - beta2) * g ** 2
    return w - a_t * m / (np.sqrt(v) + epsilon), m, v


def adam_function(shape, rng, mode=None):
    """An Adam step on one parameter, fed its gradient; returns (function, [m, v, W])."""
    W = pytensor.shared(rng.standard_normal(shape).astype(np.float32), name="W")
    g = pt.tensor(dtype="float32", shape=(None,) * len(shape), name="g")
    step = updates.adam([g], [W], learning_rate=1e-3)
    train = fcn8_compile.function([g], [], updates=step, device="cpu", mode=mode)
    first_moment, second_moment, param, _counter = step.keys()
    assert param is W
    return train, [first_moment, second_moment, W]


@pytest.mark.parametrize("shape", [(7, 5, 3, 3), (301, 97, 7, 7)],
                         ids=["one block", "threads, partial last block"])
def test_adam_update_is_threaded_in_place_and_follows_the_formula(rng, shape):
    """The fused in-place update of m, v and W becomes one ThreadedElemwise whose results
    equal Lasagne's formula (in float64) to float32 rounding, after two steps."""
    train, (m_var, v_var, w_var) = adam_function(shape, rng)
    assert op_types(train).count("ThreadedElemwise") == 1
    (node,) = [n for n in train.maker.fgraph.toposort() if isinstance(n.op, ThreadedElemwise)]
    assert len(node.op.destroy_map) == 3
    w, m, v = w_var.get_value(), np.zeros(shape), np.zeros(shape)
    for t in (1, 2):
        gradient = rng.standard_normal(shape).astype(np.float32)
        train(gradient)
        w, m, v = adam_reference(w, m, v, gradient, t, 1e-3)
    for variable, expected in ((m_var, m), (v_var, v), (w_var, w)):
        np.testing.assert_allclose(variable.get_value(), expected, rtol=1e-6,
                                   atol=1e-6 * np.abs(expected).max())


def test_adam_update_equals_the_c_loop_up_to_fused_multiply_adds(rng):
    """Against PyTensor's C loop on the same values: equal but for the last bits (the C
    compiler contracts ``beta * m + (1 - beta) * g`` into fused multiply-adds; where m
    cancels to near zero, that is a large relative difference of a tiny value)."""
    shape = (64, 300, 3, 3)
    results = {}
    for name, mode in (("ours", None), ("c", WITHOUT_REWRITE)):
        train, variables = adam_function(shape, np.random.default_rng(5), mode=mode)
        assert ("ThreadedElemwise" in op_types(train)) == (name == "ours")
        gradients = np.random.default_rng(6).standard_normal((3,) + shape).astype(np.float32)
        for gradient in gradients:
            train(gradient)
        results[name] = [variable.get_value() for variable in variables]
    for ours, c_loop in zip(results["ours"], results["c"]):
        np.testing.assert_allclose(ours, c_loop, rtol=1e-6, atol=1e-6 * np.abs(c_loop).max())


def test_non_contiguous_inputs_broadcast_values_and_fresh_outputs(rng):
    """A transposed (strided) input, a broadcast scalar and a float64 expression; the
    output is a new array, the inputs are left as they were."""
    x, y, s = pt.dmatrix("x"), pt.dmatrix("y"), pt.dscalar("s")
    expression = pt.sqrt(x.T * x.T + y) / s - 1.5
    function = fcn8_compile.function([x, y, s], expression, device="cpu")
    assert "ThreadedElemwise" in op_types(function)
    x_value = rng.uniform(0.1, 2.0, (1500, 1300))
    y_value = rng.uniform(0.1, 2.0, (1300, 1500))
    inputs = (x_value.copy(), y_value.copy())
    result = function(x_value, y_value, 3.0)
    np.testing.assert_array_equal(result, np.sqrt(x_value.T ** 2 + y_value) / 3.0 - 1.5)
    np.testing.assert_array_equal(x_value, inputs[0])
    np.testing.assert_array_equal(y_value, inputs[1])
    assert not np.shares_memory(result, x_value) and not np.shares_memory(result, y_value)


def test_nans_and_infinities_propagate_as_in_the_c_loop():
    x, y = pt.vectors("x", "y")
    expression = pt.sqrt(x) / y + y
    ours = fcn8_compile.function([x, y], expression, device="cpu")
    c_loop = fcn8_compile.function([x, y], expression, mode=WITHOUT_REWRITE)
    assert "ThreadedElemwise" in op_types(ours)
    assert "ThreadedElemwise" not in op_types(c_loop)
    x_value = np.array([-1.0, 0.0, 4.0, np.inf, np.nan, 1.0], dtype=pytensor.config.floatX)
    y_value = np.array([1.0, 0.0, -0.0, 2.0, 1.0, np.inf], dtype=pytensor.config.floatX)
    np.testing.assert_array_equal(ours(x_value, y_value), c_loop(x_value, y_value))


def _left_alone_cases():
    x, y = pt.tensor4("x"), pt.tensor4("y")
    b, i, d = pt.vector("b"), pt.itensor4("i"), pt.dtensor4("d")
    return {
        # the ReLU gradient: one fast pass in C
        "additions and products only": ([x, y], 0.5 * x + 0.5 * x * pt.sign(y)),
        "per-channel bias": ([x, b], pt.sqrt(x + b.dimshuffle("x", 0, "x", "x"))),
        "integers": ([i], pt.sqrt(i * 3 + 1)),
        "mixed float dtypes": ([x, d], pt.sqrt(x + d)),
        # NumPy's vectorised exp rounds differently from the C library's
        "a transcendental function": ([x], pt.sqrt(pt.exp(x))),
    }


@pytest.mark.parametrize("case", sorted(_left_alone_cases()))
def test_expressions_the_c_loop_does_better_are_left_alone(case):
    inputs, expression = _left_alone_cases()[case]
    function = fcn8_compile.function(inputs, expression, device="cpu")
    assert "ThreadedElemwise" not in op_types(function)
    assert "Elemwise" in op_types(function)


def test_the_op_pickles_and_computes_after_unpickling(rng):
    x = pt.dvector("x")
    function = fcn8_compile.function([x], pt.sqrt(x) * 2.0, device="cpu")
    (node,) = [n for n in function.maker.fgraph.toposort()
               if isinstance(n.op, ThreadedElemwise)]
    value = rng.uniform(0, 4, 10)
    node.op.perform(node, [value], [[None]])  # builds and caches its NumPy program
    op = pickle.loads(pickle.dumps(node.op))
    assert op == node.op
    storage = [[None]]
    op.perform(node, [value], storage)
    np.testing.assert_array_equal(storage[0][0], np.sqrt(value) * 2.0)
