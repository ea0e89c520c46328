import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest

from fcn8_lasagne import init
from fcn8_lasagne.layers import (
    Conv2DLayer,
    Deconv2DLayer,
    InputLayer,
    TransposedConv2DLayer,
    get_output,
)
from fcn8_lasagne.nonlinearities import linear
from tests import reference
from tests.conftest import FAST_MODE


def _run(layer, x_var, x):
    return pytensor.function([x_var], get_output(layer), mode=FAST_MODE)(x)


@pytest.mark.parametrize("pad", [0, 1, 100, "valid", "full", "same", (2, 1)])
@pytest.mark.parametrize("flip_filters", [True, False])
def test_conv2d_layer_matches_reference(rng, pad, flip_filters):
    x_var = pt.tensor4("x")
    x = rng.standard_normal((2, 3, 9, 8)).astype("float32")
    layer = Conv2DLayer(InputLayer((None, 3, None, None), x_var), 4, 3, pad=pad,
                        flip_filters=flip_filters, nonlinearity=linear,
                        b=init.Normal(1.0))
    expected = reference.conv2d(x, layer.W.get_value(), 1, pad, flip=flip_filters)
    expected += layer.b.get_value()[None, :, None, None]
    out = _run(layer, x_var, x)
    assert out.shape == expected.shape
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-4)
    static = Conv2DLayer(InputLayer((2, 3, 9, 8)), 4, 3, pad=pad).output_shape
    assert static == expected.shape


def test_conv2d_layer_defaults_shapes_and_tags():
    layer = Conv2DLayer(InputLayer((None, 3, 32, 31)), 16, (3, 5), stride=2)
    assert layer.W.get_value().shape == (16, 3, 3, 5)
    assert layer.b.get_value().shape == (16,)
    assert layer.flip_filters is True
    assert layer.output_shape == (None, 16, 15, 14)  # ceil((32-3+1)/2), ceil((31-5+1)/2)
    assert layer.get_params(regularizable=True) == [layer.W]
    assert layer.get_params(trainable=True) == [layer.W, layer.b]
    assert np.all(layer.b.get_value() == 0)
    assert layer.W.dtype == "float32"


def test_conv2d_relu_default_and_untied_biases(rng):
    x_var = pt.tensor4("x")
    x = rng.standard_normal((1, 2, 5, 5)).astype("float32")
    layer = Conv2DLayer(InputLayer((None, 2, 5, 5), x_var), 3, 3, untie_biases=True,
                        b=init.Normal(1.0))
    assert layer.b.get_value().shape == (3, 3, 3)
    expected = reference.conv2d(x, layer.W.get_value(), 1, 0, flip=True)
    expected = np.maximum(expected + layer.b.get_value()[None], 0)
    np.testing.assert_allclose(_run(layer, x_var, x), expected, rtol=1e-4, atol=1e-4)


def test_conv2d_same_padding_rejects_even_filters():
    with pytest.raises(NotImplementedError, match="odd filter size"):
        Conv2DLayer(InputLayer((None, 3, 8, 8)), 4, 2, pad="same")


def test_conv2d_layer_errors_name_the_problem():
    with pytest.raises(ValueError, match="Expected 4 input dimensions"):
        Conv2DLayer(InputLayer((None, 3, 8)), 4, 3)
    with pytest.raises(ValueError, match="input channels must be known"):
        Conv2DLayer(InputLayer((None, None, 8, 8)), 4, 3, name="conv_x")


@pytest.mark.parametrize("crop", [0, 1, "valid", "full", "same"])
@pytest.mark.parametrize("stride", [1, 2, 3])
@pytest.mark.parametrize("flip_filters", [False, True])
def test_transposed_conv_layer_matches_reference(rng, crop, stride, flip_filters):
    x_var = pt.tensor4("x")
    x = rng.standard_normal((2, 3, 5, 4)).astype("float32")
    layer = TransposedConv2DLayer(InputLayer((None, 3, None, None), x_var), 2, 3,
                                  stride=stride, crop=crop, flip_filters=flip_filters,
                                  nonlinearity=linear, b=init.Normal(1.0))
    assert layer.W.get_value().shape == (3, 2, 3, 3)
    # the layer's W is the forward convolution's kernel; filter_flip = not flip_filters
    expected = reference.conv2d_transpose(x, layer.W.get_value(), stride, crop,
                                          flip=not flip_filters)
    expected += layer.b.get_value()[None, :, None, None]
    out = _run(layer, x_var, x)
    assert out.shape == expected.shape
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-4)
    static = TransposedConv2DLayer(InputLayer((2, 3, 5, 4)), 2, 3, stride=stride,
                                   crop=crop).output_shape
    assert static == expected.shape


def test_deconv_fcn_upsampling_sizes():
    # k4/s2 gives 2n + 2 and k16/s8 gives 8n + 8 (the FCN-8 deconvolutions)
    assert Deconv2DLayer(InputLayer((1, 2, 7, 9)), 2, 4, stride=2).output_shape == (1, 2, 16, 20)
    assert Deconv2DLayer(InputLayer((1, 2, 34, 5)), 2, 16, stride=8).output_shape == \
        (1, 2, 280, 48)
    assert Deconv2DLayer is TransposedConv2DLayer
    assert Deconv2DLayer(InputLayer((1, 2, 3, 3)), 2, 4).flip_filters is False


def test_transposed_conv_explicit_output_size(rng):
    x_var = pt.tensor4("x")
    x = rng.standard_normal((1, 2, 4, 4)).astype("float32")
    layer = TransposedConv2DLayer(InputLayer((None, 2, None, None), x_var), 3, 3, stride=2,
                                  output_size=(10, 9), nonlinearity=linear)
    assert layer.output_shape == (None, 3, 10, 9)
    expected = reference.conv2d_transpose(x, layer.W.get_value(), 2, 0, flip=True,
                                          output_size=(10, 9))
    np.testing.assert_allclose(_run(layer, x_var, x), expected, rtol=1e-4, atol=1e-4)


def test_transposed_conv_equals_torch_rotated_kernel(rng):
    torch = pytest.importorskip("torch")
    x_var = pt.tensor4("x")
    x = rng.standard_normal((2, 3, 6, 5)).astype("float32")
    layer = Deconv2DLayer(InputLayer((None, 3, None, None), x_var), 4, 4, stride=2,
                          nonlinearity=linear)
    w = layer.W.get_value()
    expected = torch.nn.functional.conv_transpose2d(
        torch.from_numpy(x), torch.from_numpy(w[:, :, ::-1, ::-1].copy()), stride=2).numpy()
    np.testing.assert_allclose(_run(layer, x_var, x), expected, rtol=1e-4, atol=1e-5)
