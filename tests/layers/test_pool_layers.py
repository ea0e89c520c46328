"""Lasagne's pooling and upscaling layers: defaults, output shapes and values against the
NumPy references of ``tests/reference/pool.py`` and hand-written NumPy."""

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest

from fcn8_lasagne import layers
from fcn8_lasagne.layers import pool as pool_layers
from tests.conftest import FAST_MODE
from tests.reference import pool as reference

FLOAT = "float64"


def _output(layer, value):
    x = pt.tensor(dtype=FLOAT, shape=(None,) * value.ndim)
    return layer.get_output_for(x).eval({x: value}, mode=FAST_MODE)


def test_lasagne_defaults():
    layer = layers.Pool2DLayer((None, 3, 8, 8), 3)
    assert (layer.pool_size, layer.stride, layer.pad) == ((3, 3), (3, 3), (0, 0))
    assert layer.ignore_border is True and layer.mode == "max"
    layer = layers.Pool1DLayer((None, 3, 8), 2)
    assert (layer.pool_size, layer.stride, layer.pad) == ((2,), (2,), (0,))
    assert layer.ignore_border is True and layer.mode == "max"
    layer = layers.Pool3DLayer((None, 3, 8, 8, 8), (2, 3, 1), stride=1)
    assert (layer.pool_size, layer.stride, layer.pad) == ((2, 3, 1), (1, 1, 1), (0, 0, 0))
    for cls, shape in [(layers.MaxPool1DLayer, (1, 2, 5)), (layers.MaxPool2DLayer, (1, 2, 5, 5)),
                       (layers.MaxPool3DLayer, (1, 2, 5, 5, 5))]:
        layer = cls(shape, 2)
        assert layer.mode == "max" and layer.ignore_border is True
        assert isinstance(layer, getattr(layers, cls.__name__[3:]))
    for cls, n in [(layers.Upscale1DLayer, 1), (layers.Upscale2DLayer, 2),
                   (layers.Upscale3DLayer, 3)]:
        layer = cls((1, 2) + (3,) * n, 2)
        assert layer.mode == "repeat" and layer.scale_factor == (2,) * n
    spp = layers.SpatialPyramidPoolingLayer((None, 3, None, None))
    assert spp.pool_dims == [4, 2, 1] and spp.mode == "max" and spp.implementation == "fast"
    assert layers.GlobalPoolLayer((2, 3, 4)).pool_function is pt.mean
    assert layers.FeaturePoolLayer((2, 4), 2).axis == 1


@pytest.mark.parametrize("mode", ["max", "average_inc_pad", "average_exc_pad", "sum"])
@pytest.mark.parametrize("n, kwargs", [
    (1, dict(pool_size=3, stride=2, pad=1)),
    (1, dict(pool_size=2, stride=3, ignore_border=False)),
    (2, dict(pool_size=(3, 2), stride=(1, 2), ignore_border=False)),
    (2, dict(pool_size=3, stride=2, pad=(1, 2))),
    (3, dict(pool_size=(2, 2, 3), stride=(1, 3, 2), pad=(1, 0, 1))),
    (3, dict(pool_size=2, ignore_border=False)),
])
def test_pool_layers_shapes_and_values(n, kwargs, mode):
    rng = np.random.default_rng(1)
    shape = (2, 3) + (7, 6, 5)[:n]
    cls = {1: layers.Pool1DLayer, 2: layers.Pool2DLayer, 3: layers.Pool3DLayer}[n]
    layer = cls(shape, mode=mode, **kwargs)
    value = rng.standard_normal(shape)
    got = _output(layer, value)
    size = kwargs["pool_size"]
    ws = (size,) * n if np.ndim(size) == 0 else size
    stride = kwargs.get("stride")
    stride = ws if stride is None else ((stride,) * n if np.ndim(stride) == 0 else stride)
    pad = kwargs.get("pad", 0)
    pad = (pad,) * n if np.ndim(pad) == 0 else pad
    expected = reference.pool(value, ws, stride, pad, kwargs.get("ignore_border", True), mode)
    assert layer.output_shape == expected.shape == got.shape
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)
    # unknown spatial sizes give None, as Lasagne
    assert cls((None, 3) + (None,) * n, mode=mode, **kwargs).output_shape == (None, 3) + (None,) * n


def test_wrong_rank_errors_name_the_layer_and_the_shape():
    with pytest.raises(ValueError, match=r"Pool2DLayer 'p2': Tried to create a 2D pooling "
                                         r"layer with input shape \(1, 3, 8\)"):
        layers.Pool2DLayer((1, 3, 8), 2, name="p2")
    with pytest.raises(ValueError, match=r"MaxPool1DLayer: .*\(1, 3, 8, 8\).*Expected 3"):
        layers.MaxPool1DLayer((1, 3, 8, 8), 2)
    with pytest.raises(ValueError, match=r"Pool3DLayer 'p3'.*Expected 5 input dimensions"):
        layers.Pool3DLayer((1, 3, 8, 8), 2, name="p3")
    with pytest.raises(ValueError, match=r"Upscale3DLayer 'u'.*\(1, 3, 8, 8\).*Expected 5"):
        layers.Upscale3DLayer((1, 3, 8, 8), 2, name="u")
    with pytest.raises(ValueError, match=r"SpatialPyramidPoolingLayer 's'.*\(1, 3, 8\)"):
        layers.SpatialPyramidPoolingLayer((1, 3, 8), name="s")
    with pytest.raises(ValueError, match="Scale factor must be >= 1"):
        layers.Upscale2DLayer((1, 3, 8, 8), (2, 0))
    with pytest.raises(ValueError, match="Mode must be either 'repeat' or 'dilate'"):
        layers.Upscale1DLayer((1, 3, 8), 2, mode="nearest")
    with pytest.raises(ValueError, match=r"not a multiple of the pool size \(pool_size=3\)"):
        layers.FeaturePoolLayer((2, 4), 3)
    with pytest.raises(ValueError, match=r"not a multiple of the region size"):
        layers.FeatureWTALayer((2, 5, 3), 2)


@pytest.mark.parametrize("mode", ["repeat", "dilate"])
def test_upscale_layers(mode):
    rng = np.random.default_rng(2)
    for cls, shape, factor in [(layers.Upscale1DLayer, (2, 3, 4), 3),
                               (layers.Upscale2DLayer, (1, 2, 3, 4), (2, 3)),
                               (layers.Upscale3DLayer, (1, 2, 2, 3, 2), (2, 1, 3))]:
        layer = cls(shape, factor, mode=mode)
        value = rng.standard_normal(shape)
        got = _output(layer, value)
        expected = reference.upscale(value, layer.scale_factor, mode)
        assert layer.output_shape == expected.shape == got.shape
        np.testing.assert_array_equal(got, expected)
        assert cls((None, 2) + (None,) * len(layer.scale_factor), factor).output_shape == \
            (None, 2) + (None,) * len(layer.scale_factor)
    # factor 1 everywhere: the input itself, as Lasagne
    x = pt.tensor4()
    assert layers.Upscale2DLayer((1, 2, 3, 4), 1, mode=mode).get_output_for(x) is x


def test_global_feature_and_wta_layers():
    rng = np.random.default_rng(3)
    value = rng.standard_normal((2, 6, 3, 4))
    got = _output(layers.GlobalPoolLayer((2, 6, 3, 4)), value)
    np.testing.assert_allclose(got, value.mean(axis=(2, 3)))
    assert layers.GlobalPoolLayer((2, 6, 3, 4)).output_shape == (2, 6)
    got = _output(layers.GlobalPoolLayer((2, 6, 3, 4), pool_function=pt.max), value)
    np.testing.assert_allclose(got, value.max(axis=(2, 3)))

    maxout = layers.FeaturePoolLayer((2, 6, 3, 4), 3)
    assert maxout.output_shape == (2, 2, 3, 4)
    np.testing.assert_allclose(_output(maxout, value), value.reshape(2, 2, 3, 3, 4).max(2))
    mean_last = layers.FeaturePoolLayer((2, 6, 3, 4), 2, axis=3, pool_function=pt.mean)
    assert mean_last.output_shape == (2, 6, 3, 2)
    np.testing.assert_allclose(_output(mean_last, value),
                               value.reshape(2, 6, 3, 2, 2).mean(4))

    tied = np.array([[1.0, 3.0, 3.0, -1.0, 0.0, 2.0]])
    wta = layers.FeatureWTALayer((1, 6), 3)
    np.testing.assert_array_equal(_output(wta, tied), [[0.0, 3.0, 0.0, 0.0, 0.0, 2.0]])
    wta = layers.FeatureWTALayer((2, 6, 3, 4), 2, axis=1)
    groups = value.reshape(2, 3, 2, 3, 4)
    expected = (groups * (np.arange(2)[None, None, :, None, None]
                          == groups.argmax(2)[:, :, None])).reshape(value.shape)
    assert wta.output_shape == value.shape
    np.testing.assert_array_equal(_output(wta, value), expected)


def _spp_reference(value, pool_dims, implementation):
    """He et al.'s bins (floor/ceil) or the 'fast' windows, in NumPy."""
    batch, channels, h, w = value.shape
    levels = []
    for n in pool_dims:
        if implementation == "kaiming":
            bins = [value[:, :, int(np.floor(r / n * h)):int(np.ceil((r + 1) / n * h)),
                          int(np.floor(c / n * w)):int(np.ceil((c + 1) / n * w))].max((2, 3))
                    for r in range(n) for c in range(n)]
            levels.append(np.stack(bins, axis=2))
        else:
            ws = (-(-h // n), -(-w // n))
            levels.append(reference.pool(value, ws, (h // n, w // n), None, True,
                                         "max").reshape(batch, channels, -1))
    return np.concatenate(levels, axis=2)


@pytest.mark.parametrize("implementation", ["fast", "kaiming"])
def test_spatial_pyramid_pooling_gives_a_fixed_size_for_variable_inputs(implementation):
    rng = np.random.default_rng(4)
    net = layers.InputLayer((None, 3, None, None))
    spp = layers.SpatialPyramidPoolingLayer(net, [4, 2, 1], implementation=implementation)
    assert spp.output_shape == (None, 3, 21)
    x = net.input_var
    f = pytensor.function([x], layers.get_output(spp), mode=FAST_MODE)
    sizes = [(8, 12), (16, 8), (4, 4)] + ([(7, 9), (5, 11)] if implementation == "kaiming"
                                          else [])
    for h, w in sizes:
        value = rng.standard_normal((2, 3, h, w)).astype(x.dtype)
        got = f(value)
        assert got.shape == (2, 3, 21), (h, w)
        np.testing.assert_allclose(got, _spp_reference(value, [4, 2, 1], implementation),
                                   rtol=1e-6)
    # a known size gives constant windows (so the layer also compiles for JAX)
    fixed = layers.SpatialPyramidPoolingLayer((2, 3, 8, 12), [2, 1])
    value = rng.standard_normal((2, 3, 8, 12))
    np.testing.assert_allclose(_output(fixed, value), _spp_reference(value, [2, 1], "fast"))
    assert pool_layers.pool_2d_nxn_regions(pt.tensor4(), 2)[0].ndim == 3
    with pytest.raises(ValueError, match="Mode must be either"):
        pool_layers.pool_2d_nxn_regions(pt.tensor4(), 2, mode="sum")


def test_pool_output_length_is_lasagnes():
    f = pool_layers.pool_output_length
    assert f(None, 2, 2, 0, True) is None and f(5, None, 2, 0, True) is None
    assert f(5, 2, 2, 0, True) == 2 and f(5, 2, 2, 0, False) == 3
    assert f(5, 3, 1, 1, True) == 5 and f(5, 3, 2, 0, False) == 2
    assert f(6, 3, 2, 0, False) == 3
    assert f(7, 2, 3, 0, False) == 3


@pytest.mark.slow
def test_pool_and_upscale_layers_on_jax_match_c():
    pytest.importorskip("jax")
    net = layers.InputLayer((None, 2, 4, 6, 6))
    pooled = layers.MaxPool3DLayer(net, 2)
    averaged = layers.Pool1DLayer(layers.InputLayer((None, 2, 9)), 3, stride=2, pad=1,
                                  mode="average_exc_pad")
    up = layers.Upscale3DLayer(pooled, (2, 3, 3), mode="dilate")
    outputs = [layers.get_output(up), layers.get_output(averaged)]
    x5, x3 = net.input_var, averaged.input_layer.input_var
    outputs.append(pytensor.grad((outputs[0] ** 2).sum() + outputs[1].sum(), x5))
    rng = np.random.default_rng(5)
    values = (np.maximum(rng.integers(-2, 3, (2, 2, 4, 6, 6)), 0).astype(x5.dtype),
              rng.standard_normal((2, 2, 9)).astype(x3.dtype))
    c, j = (pytensor.function([x5, x3], outputs, mode=m)(*values) for m in ("CVM", "JAX"))
    for c_value, jax_value in zip(c, j):
        np.testing.assert_allclose(np.asarray(jax_value), c_value, rtol=1e-6, atol=1e-6)
