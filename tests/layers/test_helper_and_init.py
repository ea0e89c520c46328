import numpy as np
import pytensor.tensor as pt
import pytest

from fcn8_lasagne import init
from fcn8_lasagne.layers import (
    Conv2DLayer,
    DenseLayer,
    ElemwiseSumLayer,
    InputLayer,
    count_params,
    get_all_layers,
    get_all_param_values,
    get_all_params,
    get_output_shape,
    set_all_param_values,
)
from fcn8_lasagne.random import get_rng, set_rng


def _diamond():
    x = InputLayer((None, 2, 8, 8), name="in")
    left = Conv2DLayer(x, 3, 3, pad=1, name="left")
    right = Conv2DLayer(x, 3, 1, name="right")
    top = ElemwiseSumLayer((left, right), name="sum")
    return x, left, right, top


def test_layer_order_visits_first_merge_input_first():
    x, left, right, top = _diamond()
    assert get_all_layers(top) == [x, left, right, top]
    assert get_all_layers(ElemwiseSumLayer((right, left))) [:3] == [x, right, left]
    assert get_all_params(top) == [left.W, left.b, right.W, right.b]
    assert get_all_params(top, regularizable=True) == [left.W, right.W]
    assert [p.name for p in get_all_params(top)] == ["left.W", "left.b", "right.W", "right.b"]
    assert count_params(top) == 3 * 2 * 9 + 3 + 3 * 2 + 3


def test_shared_parameters_appear_once():
    x = InputLayer((None, 2, 8, 8))
    first = Conv2DLayer(x, 2, 3, pad=1)
    second = Conv2DLayer(first, 2, 3, pad=1, W=first.W)
    assert get_all_params(second) == [first.W, first.b, second.b]


def test_get_output_shape_with_input_shapes():
    x, left, right, top = _diamond()
    assert get_output_shape(top, (5, 2, 8, 8)) == (5, 3, 8, 8)
    assert get_output_shape(top) == (None, 3, 8, 8)


def test_set_all_param_values_round_trip_and_validation():
    x, left, right, top = _diamond()
    values = [np.full(v.shape, i, dtype=v.dtype) for i, v in
              enumerate(get_all_param_values(top))]
    set_all_param_values(top, values)
    for got, want in zip(get_all_param_values(top), values):
        np.testing.assert_array_equal(got, want)
    before = get_all_param_values(top)
    bad = [v.copy() for v in values]
    bad[3] = np.zeros((4,), dtype="float32")  # right.b has shape (3,)
    with pytest.raises(ValueError, match=r"'right'.*right\.b.*\(3,\).*\(4,\)"):
        set_all_param_values(top, bad)
    with pytest.raises(ValueError, match="got 3 values to set 4 parameters"):
        set_all_param_values(top, values[:3])
    for got, want in zip(get_all_param_values(top), before):
        np.testing.assert_array_equal(got, want)  # nothing was half-set


def test_glorot_uniform_bounds_and_seeding():
    np.random.seed(3)
    w = init.GlorotUniform()((64, 32, 3, 3))
    bound = np.sqrt(3) * np.sqrt(2.0 / ((64 + 32) * 9))
    assert w.dtype == np.float32
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.95 * bound
    np.random.seed(3)
    np.testing.assert_array_equal(init.GlorotUniform()((64, 32, 3, 3)), w)
    np.testing.assert_allclose(w.std(), bound / np.sqrt(3), rtol=0.05)
    relu = init.GlorotUniform(gain="relu")((100, 100))
    relu_bound = np.sqrt(2) * np.sqrt(3) * np.sqrt(2.0 / 200)  # gain "relu" is sqrt(2)
    assert relu_bound * 0.95 < np.abs(relu).max() <= relu_bound


def test_he_normal_std_and_constant():
    np.random.seed(0)
    w = init.HeNormal()((256, 128, 3, 3))
    np.testing.assert_allclose(w.std(), np.sqrt(1.0 / (128 * 9)), rtol=0.02)
    assert np.all(init.Constant(0.5)((2, 3)) == 0.5)
    with pytest.raises(RuntimeError, match="length >= 2"):
        init.GlorotUniform()((5,))


def test_bilinear_is_caffe_upsample_filt_on_the_diagonal():
    w = init.Bilinear()((3, 3, 4, 4))
    taps = np.array([0.25, 0.75, 0.75, 0.25])  # upsample_filt(4): factor 2, center 1.5
    np.testing.assert_allclose(w[1, 1], np.outer(taps, taps))
    assert np.all(w[0, 1] == 0) and np.all(w[2, 0] == 0)
    odd = init.Bilinear()((1, 1, 3, 3))[0, 0]
    np.testing.assert_allclose(odd[1], [0.5, 1.0, 0.5])


def test_set_rng_replaces_the_generator():
    original = get_rng()
    try:
        set_rng(np.random.RandomState(5))
        a = init.Normal()((10,  10))
        set_rng(np.random.RandomState(5))
        np.testing.assert_array_equal(init.Normal()((10, 10)), a)
    finally:
        set_rng(original)


def test_create_param_errors_and_broadcastable_size_one():
    with pytest.raises(ValueError, match="expected"):
        DenseLayer(InputLayer((None, 4)), 3, W=np.zeros((4, 2), dtype="float32"))
    layer = Conv2DLayer(InputLayer((None, 2, 5, 5)), 1, 3)
    assert layer.b.type.shape == (1,)
    symbolic = pt.matrix("W")
    assert DenseLayer(InputLayer((None, 4)), 3, W=symbolic).W is symbolic


def test_created_params_have_a_static_shape():
    layer = Conv2DLayer(InputLayer((None, 2, 5, 5)), 4, 3)
    assert layer.W.type.shape == (4, 2, 3, 3) and layer.b.type.shape == (4,)
    value = np.arange(4 * 2 * 3 * 3, dtype=layer.W.dtype).reshape(4, 2, 3, 3)
    layer.W.set_value(value)
    np.testing.assert_array_equal(layer.W.get_value(), value)
    with pytest.raises(TypeError, match="not compatible"):
        layer.W.set_value(np.zeros((4, 2, 1, 1), dtype=layer.W.dtype))
