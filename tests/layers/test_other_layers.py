import copy

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest

from fcn8_lasagne import init
from fcn8_lasagne.layers import (
    BatchNormLayer,
    DenseLayer,
    DimshuffleLayer,
    DropoutLayer,
    FlattenLayer,
    InputLayer,
    MaxPool2DLayer,
    NonlinearityLayer,
    PadLayer,
    Pool2DLayer,
    ReshapeLayer,
    SliceLayer,
    get_output,
)
from fcn8_lasagne.nonlinearities import softmax
from tests import reference
from tests.conftest import FAST_MODE


def _compile(layer, x_var, **kwargs):
    return pytensor.function([x_var], get_output(layer, **kwargs), mode=FAST_MODE)


@pytest.mark.parametrize("mode", ["max", "average_inc_pad", "average_exc_pad"])
@pytest.mark.parametrize("ignore_border", [True, False])
def test_pool_layer_matches_theano_reference(rng, mode, ignore_border):
    x_var = pt.tensor4("x")
    x = rng.standard_normal((2, 3, 7, 9)).astype("float32")
    pad = (1, 1) if ignore_border else (0, 0)
    layer = Pool2DLayer(InputLayer((None, 3, None, None), x_var), 3, stride=2, pad=pad,
                        ignore_border=ignore_border, mode=mode)
    expected = reference.pool2d(x, 3, 2, pad, ignore_border, mode)
    np.testing.assert_allclose(_compile(layer, x_var)(x), expected, rtol=1e-5, atol=1e-6)
    static = Pool2DLayer(InputLayer((2, 3, 7, 9)), 3, stride=2, pad=pad,
                         ignore_border=ignore_border).output_shape
    assert static == expected.shape


def test_max_pool_floors_odd_sizes():
    assert MaxPool2DLayer(InputLayer((1, 1, 423, 422)), 2).output_shape == (1, 1, 211, 211)
    assert MaxPool2DLayer(InputLayer((1, 1, 7, 7)), 2, ignore_border=False).output_shape == \
        (1, 1, 4, 4)
    assert MaxPool2DLayer(InputLayer((1, 1, 8, 8)), 2).mode == "max"


def test_dimshuffle_reshape_softmax_head(rng):
    # the FCN output head: (B, C, H, W) -> (B, H, W, C) -> (BHW, C) -> softmax -> back
    x_var = pt.tensor4("x")
    x = rng.standard_normal((2, 3, 4, 5)).astype("float32")
    shuffled = DimshuffleLayer(InputLayer((None, 3, None, None), x_var), (0, 2, 3, 1))
    size = get_output(shuffled).shape
    flat = ReshapeLayer(shuffled, (pt.prod(size[0:3]), size[3]))
    probs = NonlinearityLayer(flat, softmax)
    back = DimshuffleLayer(ReshapeLayer(probs, (size[0], size[1], size[2], 3)), (0, 3, 1, 2))
    assert shuffled.output_shape == (None, None, None, 3)
    assert flat.output_shape == (None, None)
    out = _compile(back, x_var)(x)
    e = np.exp(x - x.max(axis=1, keepdims=True))
    np.testing.assert_allclose(out, e / e.sum(axis=1, keepdims=True), rtol=1e-5)


def test_reshape_specs_and_errors():
    layer = InputLayer((2, 3, 4, 5))
    assert ReshapeLayer(layer, ([0], -1)).output_shape == (2, 60)
    assert ReshapeLayer(layer, ([0], [1], 20)).output_shape == (2, 3, 20)
    assert ReshapeLayer(InputLayer((None, 3, 4)), ([0], -1)).output_shape == (None, 12)
    with pytest.raises(ValueError, match="total size mismatches"):
        ReshapeLayer(layer, (7, -1))
    with pytest.raises(ValueError, match="multiple -1"):
        ReshapeLayer(layer, (-1, -1))
    with pytest.raises(ValueError, match="collapse dimension 1"):
        DimshuffleLayer(layer, (0, 2, 3))
    assert DimshuffleLayer(layer, (0, "x", 3, 2, 1)).output_shape == (2, 1, 5, 4, 3)
    assert FlattenLayer(layer).output_shape == (2, 60)
    assert SliceLayer(layer, slice(1, 3), axis=1).output_shape == (2, 2, 4, 5)
    assert SliceLayer(layer, 0, axis=-1).output_shape == (2, 3, 4)
    assert PadLayer(layer, 2).output_shape == (2, 3, 8, 9)


def test_dropout_layer_masks_rescales_and_redraws(rng):
    x_var = pt.tensor4("x")
    x = np.ones((4, 8, 16, 16), dtype="float32")
    layer = DropoutLayer(InputLayer((None, 8, None, None), x_var), p=0.25)
    f = _compile(layer, x_var)
    first, second = f(x), f(x)
    assert set(np.unique(first)) <= {0.0, np.float32(1 / 0.75)}
    assert abs((first == 0).mean() - 0.25) < 0.03
    assert not np.array_equal(first, second)  # a fresh mask per call
    np.testing.assert_array_equal(_compile(layer, x_var, deterministic=True)(x), x)
    np.testing.assert_array_equal(
        _compile(DropoutLayer(InputLayer((None, 8, None, None), x_var), p=0.0), x_var)(x), x)
    shared = DropoutLayer(InputLayer((4, 8, 16, 16), x_var), p=0.5, shared_axes=(2, 3))
    out = _compile(shared, x_var)(x)
    assert np.all(out.min(axis=(2, 3)) == out.max(axis=(2, 3)))


def test_dropout_mask_is_uniform_below_the_retain_probability():
    """Theano's MRG rule: keep where a uniform draw from the layer's generator is < 1 - p."""
    x_var = pt.tensor4("x")
    x = np.full((2, 3, 5, 7), 2.0, dtype="float32")
    layer = DropoutLayer(InputLayer((None, 3, None, None), x_var), p=0.3)
    generator = copy.deepcopy(layer._rng.get_value())
    out = _compile(layer, x_var)(x)
    uniform = generator.uniform(np.zeros(x.shape, dtype="float32"), 1.0).astype("float32")
    expected = np.where(uniform < np.float32(0.7), x / np.float32(0.7), 0)
    np.testing.assert_array_equal(out, expected)


def test_dropout_seeded_from_numpy_global_rng():
    x_var = pt.tensor4("x")
    x = np.ones((1, 4, 8, 8), dtype="float32")
    outputs = []
    for _ in range(2):
        np.random.seed(7)
        layer = DropoutLayer(InputLayer((None, 4, None, None), x_var))
        outputs.append(_compile(layer, x_var)(x))
    np.testing.assert_array_equal(outputs[0], outputs[1])


def test_dense_layer(rng):
    x_var = pt.tensor4("x")
    x = rng.standard_normal((3, 2, 2, 2)).astype("float32")
    layer = DenseLayer(InputLayer((None, 2, 2, 2), x_var), 5, b=init.Normal(1.0))
    assert layer.W.get_value().shape == (8, 5)
    expected = np.maximum(x.reshape(3, 8) @ layer.W.get_value() + layer.b.get_value(), 0)
    np.testing.assert_allclose(_compile(layer, x_var)(x), expected, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="fixed input shape"):
        DenseLayer(InputLayer((None, 3, None)), 4)


def test_batch_norm_layer_statistics_and_running_averages(rng):
    x_var = pt.tensor4("x")
    x = rng.standard_normal((4, 3, 5, 5)).astype("float32") * 3 + 2
    layer = BatchNormLayer(InputLayer((None, 3, None, None), x_var))
    train = _compile(layer, x_var)
    out = train(x)
    mean = x.mean(axis=(0, 2, 3), keepdims=True)
    inv_std = 1 / np.sqrt(x.var(axis=(0, 2, 3), keepdims=True) + 1e-4)
    np.testing.assert_allclose(out, (x - mean) * inv_std, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(layer.mean.get_value(), 0.1 * mean.ravel(), rtol=1e-4)
    np.testing.assert_allclose(layer.inv_std.get_value(), 0.9 + 0.1 * inv_std.ravel(),
                               rtol=1e-4)
    test = _compile(layer, x_var, deterministic=True)
    stored_mean = layer.mean.get_value()[None, :, None, None]
    stored_inv_std = layer.inv_std.get_value()[None, :, None, None]
    np.testing.assert_allclose(test(x), (x - stored_mean) * stored_inv_std, rtol=1e-4,
                               atol=1e-4)
    assert [p.name for p in layer.get_params(trainable=True)] == ["beta", "gamma"]


def test_bias_and_scale_layers_share_over_all_but_channels(rng):
    from fcn8_lasagne.layers import BiasLayer, ScaleLayer

    x_var = pt.tensor4("x")
    bias = BiasLayer(InputLayer((None, 3, None, None), x_var), b=init.Normal(1.0))
    scale = ScaleLayer(bias, scales=init.Normal(1.0))
    assert bias.b.get_value().shape == (3,) and scale.scales.get_value().shape == (3,)
    x = rng.standard_normal((2, 3, 4, 5)).astype("float32")
    expected = (x + bias.b.get_value()[None, :, None, None]) \
        * scale.scales.get_value()[None, :, None, None]
    np.testing.assert_allclose(_compile(scale, x_var)(x), expected, rtol=1e-6)
    per_pixel = BiasLayer(InputLayer((None, 3, 4, 5)), shared_axes=(0, 1))
    assert per_pixel.b.get_value().shape == (4, 5)
    with pytest.raises(ValueError, match="ScaleLayer needs specified input sizes"):
        ScaleLayer(InputLayer((None, None, 4, 5)))
