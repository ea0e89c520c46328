"""``CompiledElemwise``: PyTensor's elementwise expressions in compiled, threaded loops.

Every result is compared bit for bit with PyTensor's own C loop (the same mode without the
rewrite), and for the simple expressions with NumPy or a formula, on shapes that take each
path: rows shared out to the threads, one long row split into columns, broadcast operands,
strided (transposed) inputs, in-place updates.
"""

import pickle

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest

from fcn8_lasagne import compile as fcn8_compile
from fcn8_lasagne import updates
from fcn8_lasagne.ops import _c_build, _elemwise_c
from fcn8_lasagne.ops.elemwise import CompiledElemwise

pytestmark = pytest.mark.skipif(not _c_build._compiler(), reason="no C++ compiler")

MODE = fcn8_compile.mode_for_device("cpu")
PYTENSOR_LOOP = MODE.excluding("compiled_elemwise")


def compiled_nodes(function):
    return [node for node in function.maker.fgraph.toposort()
            if isinstance(node.op, CompiledElemwise)]


def both(inputs, outputs):
    """The function with the rewrite (checked to use it) and without."""
    ours = pytensor.function(inputs, outputs, mode=MODE)
    assert compiled_nodes(ours)
    return ours, pytensor.function(inputs, outputs, mode=PYTENSOR_LOOP)


def assert_same(ours, theirs, *values):
    got, expected = ours(*values), theirs(*values)
    for a, b in zip(got if isinstance(got, list) else [got],
                    expected if isinstance(expected, list) else [expected]):
        assert a.dtype == b.dtype and a.shape == b.shape
        np.testing.assert_array_equal(a, b)


def channel(name, dtype="float32"):
    return pt.tensor(name, dtype=dtype, shape=(1, None, 1, 1))


def adam_reference(w, m, v, g, step, learning_rate, beta1=0.9, beta2=0.999, epsilon=1e-8):
    """One Adam step of Lasagne's formula in float64, the hyperparameters as float32
    constants (``1 - beta2`` is 0.0009999871, as Theano's float32 graph computes it)."""
    beta1, beta2 = np.float32(beta1), np.float32(beta2)
    w, m, v, g = (np.asarray(a, np.float64) for a in (w, m, v, g))
    a_t = learning_rate * np.sqrt(1 - beta2 ** step) / (1 - beta1 ** step)
    m = float(beta1) * m + float(np.float32(1) - beta1) * g
    v = float(beta2) * v + float(np.float32(1) - beta2) * g ** 2
    return w - a_t * m / (np.sqrt(v) + epsilon), m, v
 

def adam_function(shape, rng, mode=MODE):
    """An Adam step on one parameter, fed its gradient; returns (function, [m, v, W])."""
    W = pytensor.shared(rng.standard_normal(shape).astype(np.float32), name="W")
    g = pt.tensor(dtype="float32", shape=(None,) * len(shape), name="g")
    step = updates.adam([g], [W], learning_rate=1e-3)
    train = pytensor.function([g], [], updates=step, mode=mode)
    first_moment, second_moment, param, _counter = step.keys()
    assert param is W
    return train, [first_moment, second_moment, W]


@pytest.mark.parametrize("shape", [(7, 5, 3, 3), (301, 97, 7, 7), (300, 700), (5,)],
                         ids=["serial", "threads", "a matrix", "a vector"])
def test_adam_update_is_one_loop_in_place_and_equals_pytensors(rng, shape):
    """The fused in-place update of m, v and W (of any shape: an update of shared
    variables) is one CompiledElemwise; after two steps its values equal PyTensor's loop
    bit for bit, and Lasagne's formula (in float64) to float32 rounding."""
    results = {}
    for name, mode in (("ours", MODE), ("pytensor", PYTENSOR_LOOP)):
        train, variables = adam_function(shape, np.random.default_rng(5), mode=mode)
        nodes = compiled_nodes(train)
        if name == "ours":
            assert len(nodes) == 1 and len(nodes[0].op.destroy_map) == 3
        else:
            assert not nodes
        w, m, v = variables[2].get_value(), np.zeros(shape), np.zeros(shape)
        for t, gradient in enumerate(np.random.default_rng(6).standard_normal(
                (2,) + shape).astype(np.float32), start=1):
            train(gradient)
            w, m, v = adam_reference(w, m, v, gradient, t, 1e-3)
        results[name] = [variable.get_value() for variable in variables]
        for variable, expected in zip(variables, (m, v, w)):
            np.testing.assert_allclose(variable.get_value(), expected, rtol=1e-6,
                                       atol=1e-6 * np.abs(expected).max())
    for ours, theirs in zip(results["ours"], results["pytensor"]):
        np.testing.assert_array_equal(ours, theirs)


def test_nans_and_infinities_propagate_as_in_pytensors_loop():
    x, y = pt.tensor4("x"), pt.tensor4("y")
    ours, theirs = both([x, y], pt.sqrt(x) / y + y)
    x_value = np.array([-1.0, 0.0, 4.0, np.inf, np.nan, 1.0], "float32").reshape(1, 1, 2, 3)
    y_value = np.array([1.0, 0.0, -0.0, 2.0, 1.0, np.inf], "float32").reshape(1, 1, 2, 3)
    assert_same(ours, theirs, x_value, y_value)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("shape", [(2, 3, 5, 7), (5, 16, 96, 90), (1, 2, 400, 300)],
                         ids=["serial", "rows on threads", "columns on threads"])
def test_batch_norm_and_elu_equal_pytensors_loop(rng, dtype, shape):
    """(x - mean) * scale + shift, then ELU (expm1 on one branch): per-channel broadcast
    operands, a transcendental function, a switch."""
    x = pt.tensor("x", dtype=dtype, shape=(None,) * 4)
    mean, scale, shift = channel("mean", dtype), channel("scale", dtype), channel("shift", dtype)
    z = (x - mean) * scale + shift
    ours, theirs = both([x, mean, scale, shift], pt.switch(z > 0, z, pt.expm1(z)))
    values = [rng.standard_normal(shape).astype(dtype)] + [
        rng.standard_normal((1, shape[1], 1, 1)).astype(dtype) for _ in range(3)]
    assert_same(ours, theirs, *values)
    x_value, m, s, b = (v.astype(np.float64) for v in values)
    z_value = (x_value - m) * s + b
    np.testing.assert_allclose(ours(*values), np.where(z_value > 0, z_value,
                                                       np.expm1(z_value)),
                               rtol=1e-5 if dtype == "float32" else 1e-12, atol=1e-6)


def test_strided_and_broadcast_inputs(rng):
    """A transposed input (no unit stride) and a row vector broadcast over the rows."""
    x = pt.tensor4("x")
    row = pt.tensor("row", shape=(1, 1, 1, None))
    ours, theirs = both([x, row], pt.maximum(x * row, 0.5 * x))
    value = rng.standard_normal((3, 4, 90, 120)).astype("float32")
    transposed = value.transpose(0, 1, 3, 2)  # (3, 4, 120, 90), last-axis stride 120
    row_value = rng.standard_normal((1, 1, 1, 90)).astype("float32")
    assert_same(ours, theirs, transposed, row_value)
    np.testing.assert_array_equal(ours(transposed, row_value),
                                  np.maximum(transposed * row_value, np.float32(0.5) * transposed))
    # a broadcast row read with a stride: every other element of a longer row
    assert_same(ours, theirs, transposed, rng.standard_normal((1, 1, 1, 180)).astype(
        "float32")[..., ::2])


def test_comparisons_give_bool_and_several_outputs(rng):
    """A mask (bool output), and a Composite with two outputs (a value and its mask)."""
    x, y = pt.tensor4("x"), pt.tensor4("y")
    ours, theirs = both([x, y], [x > y, pt.switch(x > y, x, y) * 2, (x > y) * x])
    values = [rng.standard_normal((2, 8, 100, 100)).astype("float32") for _ in range(2)]
    assert_same(ours, theirs, *values)
    assert ours(*values)[0].dtype == np.bool_


def test_in_place_outputs(rng):
    """A shared variable updated in place (x <- relu(x + 1)): the output is the input."""
    value = rng.standard_normal((2, 4, 150, 150)).astype("float32")
    shared = pytensor.shared(value.copy())
    step = pytensor.function([], [], updates={shared: pt.maximum(shared + 1, 0)}, mode=MODE)
    (node,) = compiled_nodes(step)
    assert node.op.destroy_map == {0: [0]}
    step()
    np.testing.assert_array_equal(shared.get_value(), np.maximum(value + 1, 0))


def test_shapes_that_do_not_broadcast_are_refused(rng):
    x, y = pt.tensor4("x"), pt.tensor4("y")
    ours = pytensor.function([x, y], x + y, mode=MODE)
    assert compiled_nodes(ours)
    with pytest.raises(ValueError, match="do not agree on axis 3"):
        ours(np.ones((2, 3, 4, 5), "float32"), np.ones((2, 3, 4, 6), "float32"))
    with pytest.raises(ValueError, match="do not agree on axis 1"):
        ours(np.ones((2, 3, 4, 5), "float32"), np.ones((2, 1, 4, 5), "float32"))


def test_empty_outputs_and_pickling(rng):
    x = pt.tensor4("x")
    ours = pytensor.function([x], pt.exp(x) + 1, mode=MODE)
    assert ours(np.ones((0, 3, 4, 5), "float32")).shape == (0, 3, 4, 5)
    (node,) = compiled_nodes(ours)
    clone = pickle.loads(pickle.dumps(node.op))
    assert clone == node.op and clone.kernel(node) is not None


def test_small_and_unsupported_nodes_stay_with_pytensor():
    small = pt.tensor("small", shape=(3, 4, 5))  # static and small
    vector = pt.vector("vector")  # too few dimensions
    ints = pt.tensor("ints", dtype="int64", shape=(None,) * 4)  # integer division
    function = pytensor.function([small, vector, ints],
                                 [pt.exp(small), pt.exp(vector), ints // 3], mode=MODE)
    assert not compiled_nodes(function)


@pytest.mark.parametrize("shape, strides, expected", [
    ((2, 3, 4), [(12, 4, 1), (12, 4, 1)], ([24], [[1], [1]])),  # contiguous: one row
    ((2, 3, 4), [(12, 4, 1), (0, 1, 0)], ([2, 3, 4], [[12, 4, 1], [0, 1, 0]])),
    ((2, 1, 4), [(4, 4, 1), (0, 0, 0)], ([8], [[1], [0]])),  # length-1 axis dropped
    ((1, 1), [(1, 1)], ([1], [[1]])),
])
def test_collapse(shape, strides, expected):
    result = _elemwise_c.collapse(shape, strides)
    assert result == (expected[0], expected[1])


def _every_scalar_op(x, y):
    """One expression per operation of ``SCALAR_OPS`` (with the comparisons and logic
    feeding switches or casts)."""
    return {
        "arithmetic": (x + y) * (x - y) / (y * y + 1) - (-x) + pt.sqr(x),
        "max, min, abs, sign": pt.maximum(x, y) + pt.minimum(x, y) + abs(x) * pt.sign(y),
        "exp, expm1, log, log1p, sqrt, tanh": (pt.exp(x) + pt.expm1(y) + pt.log(abs(x) + 1)
                                               + pt.log1p(abs(y)) + pt.sqrt(abs(x))
                                               + pt.tanh(y)),
        "comparisons and switch": pt.switch((x > y) & (x >= 0), x, y)
        + pt.switch((x < y) | (x <= -1), 1.0, 0.0) + pt.switch(pt.eq(x, y), 2.0, 0.0)
        + pt.switch(pt.neq(x, 0) & ~(y > 2), 3.0, 0.0),
        "casts": pt.cast(x * 100, "int32").astype("float32") + pt.cast(x > 0, "float32")
        + pt.cast(pt.cast(y, "float64") * 3, "float32"),
    }


@pytest.mark.parametrize("case", sorted(_every_scalar_op(pt.tensor4(), pt.tensor4())))
def test_every_supported_scalar_operation_compiles_and_equals_pytensors_loop(rng, case):
    x, y = pt.tensor4("x"), pt.tensor4("y")
    ours, theirs = both([x, y], _every_scalar_op(x, y)[case])
    values = [rng.standard_normal((2, 3, 40, 50)).astype("float32") for _ in range(2)]
    values[1][0, 0, :5] = values[0][0, 0, :5]  # some ties for the comparisons
    assert_same(ours, theirs, *values)
