"""GaussianNoiseLayer, dropout_channels / spatial_dropout / dropout_locations, and
DropoutLayer on integer input and without PyTensor deprecation warnings."""

import copy
import inspect
import warnings

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest

from fcn8_lasagne import compile as fcompile
from fcn8_lasagne.layers import (
    DropoutLayer,
    GaussianNoiseLayer,
    InputLayer,
    dropout_channels,
    dropout_locations,
    get_output,
    spatial_dropout,
)
from tests.conftest import FAST_MODE


def _compile(layer, x_var, **kwargs):
    return pytensor.function([x_var], get_output(layer, **kwargs), mode=FAST_MODE)


# --- GaussianNoiseLayer -----------------------------------------------------------------

def test_gaussian_noise_signature_and_identity_cases(rng):
    assert {n: p.default for n, p in inspect.signature(GaussianNoiseLayer.__init__)
            .parameters.items() if p.default is not p.empty} == {"sigma": 0.1}
    x_var = pt.matrix("x")
    x = rng.standard_normal((3, 4)).astype("float32")
    layer = GaussianNoiseLayer(InputLayer((None, 4), x_var))
    assert layer.output_shape == (None, 4) and layer.get_params() == []
    np.testing.assert_array_equal(_compile(layer, x_var, deterministic=True)(x), x)
    silent = GaussianNoiseLayer(InputLayer((None, 4), x_var), sigma=0)
    np.testing.assert_array_equal(_compile(silent, x_var)(x), x)


def test_gaussian_noise_is_normal_with_sigma_and_redrawn():
    x_var = pt.tensor3("x")
    layer = GaussianNoiseLayer(InputLayer((None, 10, None), x_var), sigma=0.5)
    generator = copy.deepcopy(layer._rng.get_value())
    f = _compile(layer, x_var)
    x = np.full((20, 10, 50), 3.0, dtype="float32")
    first, second = f(x), f(x)
    assert first.dtype == np.float32
    noise = first - 3.0
    assert abs(noise.mean()) < 0.02 and abs(noise.std() - 0.5) < 0.02
    assert not np.array_equal(first, second)
    expected = generator.normal(np.zeros(x.shape, dtype="float32"),
                                np.float32(0.5)).astype("float32")
    np.testing.assert_allclose(first, x + expected, rtol=1e-6, atol=1e-6)


def test_gaussian_noise_seeded_from_numpy_and_runs_under_jax():
    x_var = pt.matrix("x")
    x = np.zeros((4, 5), dtype="float32")
    outs = []
    for _ in range(2):
        np.random.seed(5)
        layer = GaussianNoiseLayer(InputLayer((None, 5), x_var))
        outs.append(_compile(layer, x_var)(x))
    np.testing.assert_array_equal(outs[0], outs[1])
    np.random.seed(5)
    layer = GaussianNoiseLayer(InputLayer((None, 5), x_var))
    f = fcompile.function([x_var], get_output(layer), device="jax")
    a, b = np.asarray(f(x)), np.asarray(f(x))
    assert a.shape == (4, 5) and 0.03 < a.std() < 0.3 and not np.array_equal(a, b)


# --- dropout_channels, spatial_dropout, dropout_locations -------------------------------

def test_dropout_variants_set_shared_axes():
    assert spatial_dropout is dropout_channels
    layer = dropout_channels(InputLayer((None, 3, 4, 5)), p=0.3)
    assert isinstance(layer, DropoutLayer) and layer.shared_axes == (2, 3) and layer.p == 0.3
    assert dropout_channels((2, 3, 4, 5, 6)).shared_axes == (2, 3, 4)
    assert dropout_channels((2, 3)).shared_axes == ()
    located = dropout_locations(InputLayer((None, 3, 4, 5)), 0.2, rescale=False)
    assert located.shared_axes == (1,) and located.p == 0.2 and located.rescale is False
    # shared_axes is theirs to set
    assert dropout_locations((2, 3, 4), shared_axes=(0,)).shared_axes == (1,)


@pytest.mark.parametrize("make, constant_axes", [
    (dropout_channels, (2, 3)), (dropout_locations, (1,))])
def test_dropout_variants_drop_whole_maps_or_locations(make, constant_axes):
    x_var = pt.tensor4("x")
    layer = make(InputLayer((None, 4, None, None), x_var), p=0.5)
    out = _compile(layer, x_var)(np.ones((3, 4, 6, 6), dtype="float32"))
    assert np.all(out.min(axis=constant_axes) == out.max(axis=constant_axes))
    assert set(np.unique(out)) == {0.0, 2.0}


# --- DropoutLayer fixes -----------------------------------------------------------------

def test_dropout_builds_without_deprecation_warnings():
    x_var = pt.tensor4("x")
    layers = [DropoutLayer(InputLayer((None, 3, None, None), x_var)),
              dropout_channels(InputLayer((None, 3, None, None), x_var)),
              GaussianNoiseLayer(InputLayer((None, 3, None, None), x_var))]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        outputs = [get_output(layer) for layer in layers]
    assert len(outputs) == 3


@pytest.mark.parametrize("dtype", ["int32", "int64", "uint8"])
def test_dropout_without_rescale_keeps_an_integer_dtype(dtype):
    x_var = pt.tensor("x", dtype=dtype, shape=(None, None))
    layer = DropoutLayer(InputLayer((None, 50), x_var), p=0.4, rescale=False)
    generator = copy.deepcopy(layer._rng.get_value())
    out_var = get_output(layer)
    assert out_var.dtype == dtype
    x = np.full((40, 50), 7, dtype=dtype)
    out = pytensor.function([x_var], out_var, mode=FAST_MODE)(x)
    assert out.dtype == dtype and set(np.unique(out)) == {0, 7}
    uniform = generator.uniform(np.zeros(x.shape, dtype=pytensor.config.floatX), 1.0)
    keep = uniform.astype(pytensor.config.floatX) < np.float32(0.6)
    np.testing.assert_array_equal(out, np.where(keep, x, 0))


def test_dropout_rescaling_an_integer_input_divides_in_floatx():
    x_var = pt.imatrix("x")
    layer = DropoutLayer(InputLayer((None, 3), x_var), p=0.5)
    out = pytensor.function([x_var], get_output(layer), mode=FAST_MODE)(
        np.full((200, 3), 3, dtype="int32"))
    assert out.dtype.kind == "f" and set(np.unique(out)) == {0.0, 6.0}


def test_dropout_with_a_symbolic_probability():
    p = pytensor.shared(np.float32(0.25))
    x_var = pt.matrix("x")
    layer = DropoutLayer(InputLayer((None, 100), x_var), p=p)
    f = _compile(layer, x_var)
    out = f(np.ones((100, 100), dtype="float32"))
    assert set(np.unique(out)) == {0.0, np.float32(1 / 0.75)}
    assert abs((out == 0).mean() - 0.25) < 0.03
    p.set_value(np.float32(0.75))
    assert abs((f(np.ones((100, 100), dtype="float32")) == 0).mean() - 0.75) < 0.03
