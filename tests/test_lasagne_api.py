"""Measured differences from Lasagne 0.2.dev1 that were fixed: each test failed before the
fix (InputLayer attributes, get_output's checks and warnings, ReshapeLayer on symbolic
sizes, compute_norms, get_or_compute_grads, init.Bilinear on 2-D shapes, create_param,
shared_empty and inspect_kwargs in utils)."""

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest

from fcn8_lasagne import init, utils
from fcn8_lasagne import updates as upd
from fcn8_lasagne.layers import (
    DenseLayer,
    DropoutLayer,
    InputLayer,
    MergeLayer,
    ReshapeLayer,
    get_output,
    get_output_shape,
)
from fcn8_lasagne.layers import base
from tests.conftest import FAST_MODE


# --- InputLayer -------------------------------------------------------------------------

def test_input_layer_has_only_lasagnes_attributes():
    layer = InputLayer((None, 3), name="in")
    assert not hasattr(layer, "input_layer")
    assert not hasattr(layer, "input_shape") and not hasattr(layer, "get_output_kwargs")
    assert layer.output_shape == (None, 3) and layer.input_var.name == "in.input"
    dense = DenseLayer(layer, 2)
    assert get_output(dense) is not None and dense.input_layer is layer


# --- get_output -------------------------------------------------------------------------

def test_get_output_rejects_keys_that_are_not_layers():
    l_in = InputLayer((None, 3))
    dense = DenseLayer(l_in, 2)
    with pytest.raises(TypeError, match="must be lasagne layers not <class 'str'>"):
        get_output(dense, {"input": pt.matrix()})
    with pytest.raises(TypeError, match="layers not"):
        get_output(dense, {l_in.input_var: pt.matrix()})
    assert get_output(dense, {l_in: pt.matrix(), None: pt.matrix()}) is not None


class _Unshaped(MergeLayer):
    """A merge layer that does not define get_output_shape_for."""

    def get_output_for(self, inputs, **kwargs):
        return inputs[0]


def test_free_floating_layer_raises_lasagnes_value_error():
    layer = _Unshaped([(None, 3), (None, 3)])
    assert "output_shape=?" in repr(layer)
    with pytest.raises(ValueError, match="free-floating layer <_Unshaped"):
        get_output(layer)
    with pytest.raises(ValueError, match="free-floating layer <DenseLayer"):
        get_output(DenseLayer((None, 3), 2))


def test_unused_kwarg_warning_suggests_the_closest_name():
    dense = DenseLayer(InputLayer((None, 3)), 2)
    with pytest.warns(UserWarning, match=r"determinstic \(perhaps you meant deterministic\)"):
        get_output(dense, determinstic=True)
    with pytest.warns(UserWarning, match=r"unused kwargs:\n\tzzz$"):
        get_output(dense, zzz=1)


# --- ReshapeLayer -----------------------------------------------------------------------

def test_reshape_output_shape_with_symbolic_input_sizes_is_none():
    n = pt.iscalar("n")
    copy = ReshapeLayer(InputLayer((4, 6)), ([0], 6))
    assert copy.get_output_shape_for((n, 6)) == (None, 6)
    inferred = ReshapeLayer(InputLayer((4, 6)), (-1,))
    assert inferred.get_output_shape_for((n, 6)) == (None,)
    l_in = InputLayer((4, 6))
    assert get_output_shape(ReshapeLayer(l_in, ([1], -1)), {l_in: (n, 6)}) == (6, None)
    assert ReshapeLayer(InputLayer((4, 6)), (n, -1)).output_shape == (None, None)
    with pytest.raises(ValueError, match="total size mismatches"):
        ReshapeLayer(InputLayer((4, 6)), (5, 5))


# --- compute_norms ----------------------------------------------------------------------

def test_compute_norms_numpy_and_symbolic_like_lasagne():
    rng = np.random.default_rng(2)
    arrays = [rng.standard_normal(shape).astype("float32")
              for shape in [(5,), (4, 3), (3, 2, 2), (3, 2, 2, 2), (2, 2, 2, 2, 2)]]
    expected = [np.abs(arrays[0]), np.sqrt((arrays[1] ** 2).sum(0))] + [
        np.sqrt((a ** 2).sum(tuple(range(1, a.ndim)))) for a in arrays[2:]]
    for array, wanted in zip(arrays, expected):
        np.testing.assert_allclose(utils.compute_norms(array), wanted, rtol=1e-6)
        shared = pytensor.shared(array)
        symbolic = utils.compute_norms(shared)
        assert isinstance(symbolic, pytensor.graph.basic.Variable)
        np.testing.assert_allclose(symbolic.eval(mode=FAST_MODE), wanted, rtol=1e-6)
        var = pt.tensor(dtype="float32", shape=(None,) * array.ndim)
        np.testing.assert_allclose(
            pytensor.function([var], utils.compute_norms(var), mode=FAST_MODE)(array),
            wanted, rtol=1e-6)
    matrix = arrays[1]
    np.testing.assert_allclose(utils.compute_norms(matrix, norm_axes=(1,)),
                               np.sqrt((matrix ** 2).sum(1)), rtol=1e-6)
    np.testing.assert_allclose(utils.compute_norms(matrix, norm_axes=[0, 1]),
                               np.sqrt((matrix ** 2).sum()), rtol=1e-6)
    with pytest.raises(RuntimeError, match="Unsupported type"):
        utils.compute_norms([[1.0, 2.0]])
    with pytest.raises(ValueError, match="norm_axes"):
        utils.compute_norms(np.ones((1,) * 6))
    with pytest.raises(ValueError, match="norm_axes"):
        utils.compute_norms(pt.tensor(dtype="float32", shape=(None,) * 6))


# --- get_or_compute_grads ---------------------------------------------------------------

def test_get_or_compute_grads_returns_the_given_list_itself():
    W = pytensor.shared(np.zeros(3, dtype="float32"))
    grads = [pt.ones(3)]
    assert upd.get_or_compute_grads(grads, [W]) is grads


# --- init.Bilinear ----------------------------------------------------------------------

@pytest.mark.parametrize("shape", [(3, 4), (3,), (2, 2, 3, 4), (2, 2, 3)])
def test_bilinear_refuses_other_shapes_with_a_value_error(shape):
    with pytest.raises(ValueError, match=r"\(in_channels, out_channels, k, k\)"):
        init.Bilinear()(shape)
    with pytest.raises(RuntimeError):  # still the type of Lasagne's shape errors
        init.Bilinear()(shape)


# --- utils: create_param, shared_empty, inspect_kwargs ----------------------------------

def test_create_param_is_one_implementation_in_utils():
    assert base.create_param is utils.create_param
    param = utils.create_param(init.Constant(2.0), (2, 3), name="W")
    assert param.name == "W" and param.type.shape == (2, 3)
    np.testing.assert_array_equal(param.get_value(), np.full((2, 3), 2, dtype="float32"))
    assert utils.create_param(np.float32(1.5), (), "s").get_value() == 1.5
    named = pytensor.shared(np.zeros((2,)), name="mine")
    assert utils.create_param(named, (2,), "other") is named and named.name == "mine"
    expression = pt.matrix() * 2
    assert utils.create_param(expression, (2, 2), "e") is expression
    assert expression.name == "e"
    with pytest.raises(ValueError, match="non-positive"):
        utils.create_param(init.Constant(0.0), (2, 0))
    with pytest.raises(ValueError, match=r"shape \(2, 2\), expected \(2, 3\)"):
        utils.create_param(np.zeros((2, 2)), (2, 3))
    with pytest.raises(ValueError, match="1 dimensions, expected 2"):
        utils.create_param(pt.vector(), (2, 3))
    with pytest.raises(TypeError, match="callable returned a str"):
        utils.create_param(lambda shape: "zeros", (2,))
    with pytest.raises(TypeError, match="provided spec is a str"):
        utils.create_param("zeros", (2,))


def test_shared_empty_and_inspect_kwargs():
    empty = utils.shared_empty()
    assert empty.get_value().shape == (1, 1) and empty.dtype == pytensor.config.floatX
    three = utils.shared_empty(3, dtype="int32")
    assert three.get_value().shape == (1, 1, 1) and three.dtype == "int32"
    three.set_value(np.zeros((2, 4, 5), dtype="int32"))  # not broadcastable: any shape
    assert three.get_value().shape == (2, 4, 5)

    def f(a, b=1, *args, c=2, d=None, **kwargs):
        pass

    assert utils.inspect_kwargs(f) == ["b", "c", "d"]
    assert utils.inspect_kwargs(DenseLayer((None, 3), 2).get_output_for) == []
    assert utils.inspect_kwargs(DropoutLayer.get_output_for) == ["deterministic"]


def test_set_all_param_values_refuses_nonfinite_and_integer_values():
    from fcn8_lasagne.layers import get_all_param_values, set_all_param_values

    layer = DenseLayer(InputLayer((None, 3)), 2, name="dense")
    before = get_all_param_values(layer)
    bad = [np.full((3, 2), np.nan, dtype="float32"), before[1]]
    with pytest.raises(ValueError, match=r"dense.*6 NaN or infinite.*allow_nonfinite"):
        set_all_param_values(layer, bad)
    for value, kept in zip(get_all_param_values(layer), before):
        np.testing.assert_array_equal(value, kept)
    set_all_param_values(layer, bad, allow_nonfinite=True)
    assert np.isnan(get_all_param_values(layer)[0]).all()
    with pytest.raises(ValueError, match="dtype float32 but value to set has dtype int64"):
        set_all_param_values(layer, [np.ones((3, 2), dtype="int64"), before[1]])
