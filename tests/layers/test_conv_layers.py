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


# --- Lasagne's length helpers ------------------------------------------------------------


def test_conv_output_length_lasagne_values():
    from fcn8_lasagne.layers.conv import conv_output_length

    assert conv_output_length(13, 5, 3, "valid") == 3      # ceil(9 / 3)
    assert conv_output_length(13, 5, 3, 0) == 3
    assert conv_output_length(13, 5, 3, "full") == 6       # ceil(17 / 3)
    assert conv_output_length(13, 5, 3, "same") == 5       # ceil(13 / 3)
    assert conv_output_length(13, 5, 3, 2) == 5            # ceil(13 / 3)
    assert conv_output_length(13, 4, 1, "same") == 13      # 'same' keeps the length, even k
    assert conv_output_length(13, np.int64(5), 1, np.int64(1)) == 11
    assert conv_output_length(None, 5, 3, "full") is None
    length = pt.iscalar("n")
    assert conv_output_length(length, 3, 2, 1).eval({length: 10}) == 5


@pytest.mark.parametrize("pad", ["half", "_nonexistent_mode", (1,), 1.0, None])
def test_conv_output_and_input_length_reject_invalid_pads(pad):
    from fcn8_lasagne.layers.conv import conv_input_length, conv_output_length

    with pytest.raises(ValueError, match=r"^Invalid pad: "):
        conv_output_length(13, 5, 3, pad)
    with pytest.raises(ValueError, match=r"^Invalid pad: "):
        conv_input_length(3, 5, 3, pad)
    assert conv_output_length(None, 5, 3, pad) is None  # Lasagne checks known lengths only


def test_conv_input_length_lasagne_values():
    from fcn8_lasagne.layers.conv import conv_input_length

    # the examples of Dumoulin & Visin's convolution arithmetic
    assert conv_input_length(2, 3, 1, "valid") == 4
    assert conv_input_length(2, 3, 1, 0) == 4
    assert conv_input_length(6, 4, 1, 2) == 5
    assert conv_input_length(2, 3, 2, 0) == 5
    assert conv_input_length(3, 3, 2, "same") == 5
    assert conv_input_length(3, 3, 2, "full") == 3
    assert conv_input_length(None, 3, 2, "full") is None


def test_ops_length_formulas_still_accept_half():
    from fcn8_lasagne.ops import conv_output_length

    assert conv_output_length(13, 5, 3, "half") == 5


# --- BaseConvLayer -----------------------------------------------------------------------


def test_base_conv_layer_infers_dimensionality():
    from fcn8_lasagne.layers import BaseConvLayer

    shape = (10, 20, 30, 40, 50)
    for n in (1, 2, 3):
        layer = BaseConvLayer(shape[:n + 2], 1, 3)
        assert layer.n == n
        assert layer.W.get_value().shape == (1, 20) + (3,) * n
        assert layer.output_shape == (10, 1) + tuple(s - 2 for s in shape[2:n + 2])
    with pytest.raises(NotImplementedError, match="does not implement the convolve"):
        BaseConvLayer((10, 20, 30), 1, 3).convolve(pt.tensor3())


def test_base_conv_layer_rank_errors_name_the_layer():
    from fcn8_lasagne.layers import BaseConvLayer

    with pytest.raises(ValueError, match=r"^BaseConvLayer: Tried to create a 2D convolution "
                                         r"layer with input shape \(10, 20, 30\)\. Expected 4 "
                                         r"input dimensions"):
        BaseConvLayer((10, 20, 30), 1, 3, n=2)
    with pytest.raises(ValueError, match="^BaseConvLayer 'c1': .*Expected 3 input dimensions"):
        BaseConvLayer((10, 20, 30, 40), 1, 3, n=1, name="c1")
    with pytest.raises(ValueError, match="^Conv2DLayer 'c2': .*Expected 4 input dimensions"):
        Conv2DLayer(InputLayer((None, 3, 8, 8, 8)), 4, 3, name="c2")
    with pytest.raises(ValueError, match="at least one spatial dimension"):
        BaseConvLayer((10, 20), 1, 3)


def test_base_conv_layer_group_and_stride_errors():
    from fcn8_lasagne.layers import BaseConvLayer

    with pytest.raises(ValueError, match=r"num_groups \(here: 2\) must be positive and evenly "
                                         r"divide the number of input and output channels "
                                         r"\(here: 3 and 1\)"):
        BaseConvLayer((2, 3, 4), 1, 3, num_groups=2)
    with pytest.raises(ValueError, match="^Conv2DLayer 'g': .*evenly divide"):
        Conv2DLayer((2, 4, 5, 5), 3, 3, num_groups=2, name="g")
    with pytest.raises(ValueError, match="must be positive"):
        BaseConvLayer((2, 3, 4), 1, 3, num_groups=-3)
    with pytest.raises(ValueError, match="stride must be >= 1"):
        Conv2DLayer((2, 3, 5, 5), 1, 3, stride=(1, 0))


def test_conv_layers_accept_numpy_integer_sizes():
    from fcn8_lasagne.layers import BaseConvLayer

    BaseConvLayer((2, 3, 4), np.int64(1), np.int64(3))
    layer = Conv2DLayer((2, 3, 4, 5), np.int64(2), np.empty((3, 3)).shape)
    assert layer.W.get_value().shape == (2, 3, 3, 3)


def test_conv2d_invalid_pad_type():
    with pytest.raises(TypeError, match="iterable of int"):
        Conv2DLayer(InputLayer((1, 2, 3, 3)), 16, 3, pad="_nonexistent_mode")
    with pytest.raises(TypeError, match="iterable of int"):
        Conv2DLayer(InputLayer((1, 2, 3, 3)), 16, 3, pad="half")  # the ops' name, not a pad


# --- Conv2DLayer -------------------------------------------------------------------------


@pytest.mark.parametrize("pad, stride, expected", [
    (0, 1, (11, 14)),             # 13 - 3 + 1, 16 - 3 + 1
    ("valid", 2, (6, 7)),         # ceil(11 / 2), ceil(14 / 2)
    ("full", 1, (15, 18)),        # 13 + 3 - 1
    ("full", 3, (5, 6)),          # ceil(15 / 3), ceil(18 / 3)
    ("same", 1, (13, 16)),
    ("same", 2, (7, 8)),          # ceil(13 / 2), ceil(16 / 2)
    (2, 1, (15, 18)),             # 13 + 4 - 3 + 1
    ((1, 0), (2, 3), (7, 5)),     # ceil(13 / 2), ceil(14 / 3)
])
def test_conv2d_output_shapes_by_hand(pad, stride, expected):
    layer = Conv2DLayer(InputLayer((4, 2, 13, 16)), 5, 3, stride=stride, pad=pad)
    assert layer.output_shape == (4, 5) + expected
    assert Conv2DLayer(InputLayer((None, 2, None, 16)), 5, 3, stride=stride,
                       pad=pad).output_shape == (None, 5, None, expected[1])


def test_conv2d_params_names_tags_and_order():
    layer = Conv2DLayer(InputLayer((None, 3, 8, 8)), 4, (3, 2), name="conv")
    assert [p.name for p in layer.get_params()] == ["conv.W", "conv.b"]
    assert layer.get_params() == [layer.W, layer.b]
    assert layer.get_params(regularizable=False) == [layer.b]
    assert layer.get_params(trainable=False) == []
    assert layer.get_params(_nonexistent_tag=False) == [layer.W, layer.b]
    assert layer.W.get_value().shape == (4, 3, 3, 2)
    untied = Conv2DLayer(InputLayer((None, 3, 8, 8)), 4, 3, stride=2, pad=1,
                         untie_biases=True)
    assert untied.b.get_value().shape == (4, 4, 4)
    bare = Conv2DLayer(InputLayer((None, 3, 8, 8)), 4, 3, b=None, nonlinearity=None)
    assert bare.b is None and bare.get_params() == [bare.W]
    from fcn8_lasagne.nonlinearities import identity
    assert bare.nonlinearity is identity


@pytest.mark.parametrize("flip_filters", [True, False])
def test_conv2d_groups_match_reference(rng, flip_filters):
    from tests.reference import conv_layers

    x_var = pt.tensor4("x")
    x = rng.standard_normal((2, 6, 7, 6)).astype("float32")
    layer = Conv2DLayer(InputLayer((None, 6, None, None), x_var), 9, 3, stride=(2, 1),
                        pad=(1, 2), num_groups=3, flip_filters=flip_filters,
                        nonlinearity=linear, b=init.Normal(1.0))
    assert layer.num_groups == 3
    assert layer.W.get_value().shape == (9, 2, 3, 3)
    expected = conv_layers.convolve(x, layer.W.get_value(), (2, 1), (1, 2), groups=3,
                                    flip=flip_filters) + layer.b.get_value()[None, :, None, None]
    np.testing.assert_allclose(_run(layer, x_var, x), expected, rtol=1e-4, atol=1e-4)


def test_conv2d_jax_equals_c(rng):
    pytest.importorskip("jax")
    x_var = pt.tensor4("x")
    x = rng.standard_normal((2, 4, 9, 8)).astype("float32")
    layer = Conv2DLayer(InputLayer((None, 4, None, None), x_var), 4, 3, stride=2, pad="same",
                        untie_biases=False, num_groups=2, b=init.Normal(1.0))
    output = get_output(layer)
    c_out = pytensor.function([x_var], output, mode="CVM")(x)
    jax_out = np.asarray(pytensor.function([x_var], output, mode="JAX")(x))
    np.testing.assert_allclose(jax_out, c_out, rtol=1e-5, atol=1e-5)


# --- TransposedConv2DLayer (beyond FCN-8's use) ------------------------------------------


def test_transposed_conv2d_untied_biases_params_and_tags(rng):
    from tests.reference import conv_layers

    x_var = pt.tensor4("x")
    x = rng.standard_normal((2, 3, 4, 3)).astype("float32")
    layer = TransposedConv2DLayer(InputLayer((None, 3, 4, 3), x_var), 2, (3, 2), stride=2,
                                  crop=(1, 0), untie_biases=True, b=init.Normal(1.0),
                                  nonlinearity=linear, name="up")
    # (4 - 1) * 2 - 2 + 3, (3 - 1) * 2 - 0 + 2
    assert layer.output_shape == (None, 2, 7, 6)
    assert layer.b.get_value().shape == (2, 7, 6)
    assert [p.name for p in layer.get_params()] == ["up.W", "up.b"]
    assert layer.get_params(regularizable=True) == [layer.W]
    assert not hasattr(layer, "pad") and layer.crop == (1, 0)
    expected = conv_layers.transposed_convolve(x, layer.W.get_value(), 2, (1, 0))
    np.testing.assert_allclose(_run(layer, x_var, x), expected + layer.b.get_value()[None],
                               rtol=1e-4, atol=1e-4)


def test_transposed_conv2d_symbolic_output_size(rng):
    from tests.reference import conv_layers

    x_var, size = pt.tensor4("x"), pt.ivector("size")
    x = rng.standard_normal((1, 2, 4, 4)).astype("float32")
    layer = TransposedConv2DLayer(InputLayer((None, 2, 4, 4), x_var), 3, 3, stride=2,
                                  output_size=size, nonlinearity=linear)
    assert layer.output_shape == (None, 3, None, None)
    out = pytensor.function([x_var, size], get_output(layer), mode=FAST_MODE)(
        x, np.array([10, 9], dtype="int32"))
    expected = conv_layers.transposed_convolve(x, layer.W.get_value(), 2, 0,
                                               output_size=(10, 9))
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-4)


def test_transposed_conv2d_refuses_groups():
    with pytest.raises(NotImplementedError, match="num_groups"):
        TransposedConv2DLayer(InputLayer((None, 4, 5, 5)), 2, 3, num_groups=2)


def test_transposed_conv2d_jax_equals_c(rng):
    pytest.importorskip("jax")
    x_var = pt.tensor4("x")
    x = rng.standard_normal((2, 3, 5, 4)).astype("float32")
    layer = Deconv2DLayer(InputLayer((None, 3, None, None), x_var), 2, 4, stride=2, crop=1,
                          b=init.Normal(1.0))
    output = get_output(layer)
    c_out = pytensor.function([x_var], output, mode="CVM")(x)
    jax_out = np.asarray(pytensor.function([x_var], output, mode="JAX")(x))
    np.testing.assert_allclose(jax_out, c_out, rtol=1e-5, atol=1e-5)


# --- DilatedConv2DLayer ------------------------------------------------------------------


@pytest.mark.parametrize("dilation", [1, 2, (2, 3), (3, 1)])
def test_dilated_conv2d_matches_reference(rng, dilation):
    from fcn8_lasagne.layers import DilatedConv2DLayer
    from tests.reference import conv_layers

    x_var = pt.tensor4("x")
    x = rng.standard_normal((2, 3, 9, 10)).astype("float32")
    layer = DilatedConv2DLayer(InputLayer((None, 3, None, None), x_var), 4, (3, 2),
                               dilation=dilation, nonlinearity=linear, b=init.Normal(1.0))
    d = layer.dilation
    assert layer.W.get_value().shape == (3, 4, 3, 2)  # (in_channels, num_filters, ...)
    # the correlation with W[c, f] spread d apart: y[f, o] = sum_c,t x[c, o + t d] W[c, f, t]
    expected = conv_layers.convolve(x, layer.W.get_value().transpose(1, 0, 2, 3), 1, 0, d,
                                    flip=False) + layer.b.get_value()[None, :, None, None]
    out = _run(layer, x_var, x)
    assert out.shape == (2, 4, 9 - 2 * d[0], 10 - d[1])
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-4)
    static = DilatedConv2DLayer(InputLayer((2, 3, 9, 10)), 4, (3, 2), dilation=dilation)
    assert static.output_shape == out.shape
    assert not hasattr(static, "stride")


def test_dilated_conv2d_params_untied_and_errors():
    from fcn8_lasagne.layers import DilatedConv2DLayer

    layer = DilatedConv2DLayer(InputLayer((None, 2, 11, 12)), 3, 3, dilation=(2, 4),
                               untie_biases=True, name="dil")
    assert layer.output_shape == (None, 3, 7, 4)
    assert layer.b.get_value().shape == (3, 7, 4)
    assert layer.flip_filters is False
    assert [p.name for p in layer.get_params()] == ["dil.W", "dil.b"]
    assert layer.get_params(regularizable=True) == [layer.W]
    for pad in (1, (0, 1), "same", "full"):
        with pytest.raises(NotImplementedError, match="requires pad=0"):
            DilatedConv2DLayer(InputLayer((None, 2, 11, 12)), 3, 3, pad=pad)
    with pytest.raises(NotImplementedError, match="requires flip_filters=False"):
        DilatedConv2DLayer(InputLayer((None, 2, 11, 12)), 3, 3, flip_filters=True)
    with pytest.raises(ValueError, match=r"^DilatedConv2DLayer 'd0': dilation must be >= 1"):
        DilatedConv2DLayer(InputLayer((None, 2, 11, 12)), 3, 3, dilation=(1, 0), name="d0")
    with pytest.raises(ValueError, match="Expected 4 input dimensions"):
        DilatedConv2DLayer(InputLayer((None, 2, 11)), 3, 3)


def test_dilated_conv2d_jax_equals_c_with_unknown_sizes(rng):
    pytest.importorskip("jax")
    from fcn8_lasagne.layers import DilatedConv2DLayer

    x_var = pt.tensor4("x")
    x = rng.standard_normal((2, 3, 9, 8)).astype("float32")
    layer = DilatedConv2DLayer(InputLayer((None, 3, None, None), x_var), 2, 3, dilation=2,
                               b=init.Normal(1.0))
    output = get_output(layer)
    c_out = pytensor.function([x_var], output, mode="CVM")(x)
    jax_out = np.asarray(pytensor.function([x_var], output, mode="JAX")(x))
    np.testing.assert_allclose(jax_out, c_out, rtol=1e-5, atol=1e-5)


def test_dilated_conv2d_gradients_match_finite_differences(rng):
    from fcn8_lasagne.layers import DilatedConv2DLayer

    def output(x, w):
        layer = DilatedConv2DLayer(InputLayer((None, 2, None, None), x), 3, (2, 3),
                                   dilation=(2, 1), W=w, b=None, nonlinearity=linear)
        return get_output(layer)

    pytensor.gradient.verify_grad(output, [rng.standard_normal((2, 2, 6, 5)),
                                           rng.standard_normal((2, 3, 2, 3))],
                                  rng=np.random.default_rng(1), eps=1e-6, mode=FAST_MODE)
