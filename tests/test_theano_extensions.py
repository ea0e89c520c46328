"""fcn8_lasagne.theano_extensions: the 1-D convolutions and pad() against NumPy."""

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest

from fcn8_lasagne.theano_extensions import conv, padding
from tests.conftest import FAST_MODE
from tests.reference import conv_layers as reference

ALL = ["conv1d_sc", "conv1d_mc0", "conv1d_mc1", "conv1d_unstrided", "conv1d_sd", "conv1d_md"]
VALID_ONLY = ["conv1d_sc", "conv1d_unstrided", "conv1d_sd", "conv1d_md"]


def _numpy_conv1d(x, w, stride=1, flip=True):
    """Valid 1-D convolution from np.convolve (a true convolution), per batch item,
    filter and channel."""
    if not flip:
        w = w[:, :, ::-1]
    y = np.array([[sum(np.convolve(x[b, c], w[f, c], mode="valid") for c in range(x.shape[1]))
                   for f in range(w.shape[0])] for b in range(x.shape[0])])
    return y[:, :, ::stride]


def _eval(expression, inputs, values):
    return pytensor.function(inputs, expression, mode=FAST_MODE)(*values)


@pytest.mark.parametrize("impl", ALL)
@pytest.mark.parametrize("filter_flip", [True, False])
@pytest.mark.parametrize("stride", [1, 2, 3])
@pytest.mark.parametrize("length", [12, 13])
def test_conv1d_matches_numpy(rng, impl, filter_flip, stride, length):
    x_var, w_var = pt.tensor3("x"), pt.tensor3("w")
    x = rng.standard_normal((2, 3, length)).astype("float32")
    w = rng.standard_normal((4, 3, 6)).astype("float32")
    out = _eval(getattr(conv, impl)(x_var, w_var, x.shape, w.shape, subsample=(stride,),
                                    filter_flip=filter_flip), [x_var, w_var], [x, w])
    expected = _numpy_conv1d(x.astype(np.float64), w.astype(np.float64), stride, filter_flip)
    assert out.shape == expected.shape == (2, 4, (length - 6) // stride + 1)
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("impl", ["conv1d_sc", "conv1d_mc0", "conv1d_mc1"])
def test_conv1d_without_shape_hints(rng, impl):
    x_var, w_var = pt.tensor3("x"), pt.tensor3("w")
    x = rng.standard_normal((2, 2, 12)).astype("float32")
    w = rng.standard_normal((3, 2, 3)).astype("float32")
    out = _eval(getattr(conv, impl)(x_var, w_var, None, None), [x_var, w_var], [x, w])
    np.testing.assert_allclose(out, _numpy_conv1d(x, w), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("impl", ["conv1d_mc0", "conv1d_mc1"])
@pytest.mark.parametrize("border_mode, amount", [(1, 1), ((2,), 2), ("full", 2), ("half", 1),
                                                 ("valid", 0)])
def test_conv1d_mc_padding(rng, impl, border_mode, amount):
    x_var, w_var = pt.tensor3("x"), pt.tensor3("w")
    x = rng.standard_normal((1, 2, 9)).astype("float32")
    w = rng.standard_normal((3, 2, 3)).astype("float32")
    out = _eval(getattr(conv, impl)(x_var, w_var, x.shape, w.shape, border_mode=border_mode,
                                    subsample=(2,)), [x_var, w_var], [x, w])
    padded = np.pad(x, [(0, 0), (0, 0), (amount, amount)])
    np.testing.assert_allclose(out, _numpy_conv1d(padded, w, 2), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("impl", ["conv1d_mc0", "conv1d_mc1"])
def test_conv1d_mc_groups(rng, impl):
    x_var, w_var = pt.tensor3("x"), pt.tensor3("w")
    x = rng.standard_normal((2, 4, 8)).astype("float32")
    w = rng.standard_normal((6, 2, 3)).astype("float32")
    out = _eval(getattr(conv, impl)(x_var, w_var, x.shape, w.shape, num_groups=2),
                [x_var, w_var], [x, w])
    expected = reference.convolve(x, w, groups=2)
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-4)
    # the groups do not mix: filters 0-2 see channels 0-1 only
    np.testing.assert_allclose(out[:, :3], _numpy_conv1d(x[:, :2], w[:3]), rtol=1e-4,
                               atol=1e-4)


@pytest.mark.parametrize("impl", ALL)
def test_conv1d_invalid_border_mode(impl):
    x_var, w_var = pt.tensor3("x"), pt.tensor3("w")
    error = RuntimeError if impl in VALID_ONLY else ValueError
    with pytest.raises(error):
        getattr(conv, impl)(x_var, w_var, (1, 1, 10), (2, 1, 3), border_mode=None)


@pytest.mark.parametrize("impl", VALID_ONLY)
def test_conv1d_valid_only_implementations_refuse_padding(impl):
    x_var, w_var = pt.tensor3("x"), pt.tensor3("w")
    with pytest.raises(RuntimeError, match=f"Unsupported border_mode for {impl}: full"):
        getattr(conv, impl)(x_var, w_var, (1, 1, 10), (2, 1, 4), border_mode="full")


@pytest.mark.parametrize("impl", ["conv1d_unstrided", "conv1d_sd", "conv1d_md"])
def test_conv1d_stride_must_divide_filter_length(impl):
    x_var, w_var = pt.tensor3("x"), pt.tensor3("w")
    with pytest.raises(RuntimeError, match=r"Filter length \(3\) is not a multiple of the "
                                           r"stride \(2\)"):
        getattr(conv, impl)(x_var, w_var, (1, 1, 10), (2, 1, 3), subsample=(2,))


def test_conv1d_unstrided_with_mc0_implementation(rng):
    x_var, w_var = pt.tensor3("x"), pt.tensor3("w")
    x = rng.standard_normal((2, 3, 11)).astype("float32")
    w = rng.standard_normal((2, 3, 4)).astype("float32")
    for flip in (True, False):
        out = _eval(conv.conv1d_unstrided(x_var, w_var, x.shape, w.shape, subsample=(2,),
                                          filter_flip=flip, implementation=conv.conv1d_mc0),
                    [x_var, w_var], [x, w])
        np.testing.assert_allclose(out, _numpy_conv1d(x, w, 2, flip), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("impl", ["conv1d_sd", "conv1d_md", "conv1d_unstrided"])
def test_conv1d_static_implementations_need_shapes(impl):
    x_var, w_var = pt.tensor3("x"), pt.tensor3("w")
    with pytest.raises(ValueError, match="needs"):
        getattr(conv, impl)(x_var, w_var, (1, None, 10), (2, 1, 4))


def test_conv1d_mc0_jax_equals_c(rng):
    pytest.importorskip("jax")
    x_var, w_var = pt.tensor3("x"), pt.tensor3("w")
    x = rng.standard_normal((2, 3, 10)).astype("float32")
    w = rng.standard_normal((4, 3, 3)).astype("float32")
    expression = conv.conv1d_mc0(x_var, w_var, (None, 3, None), w.shape, border_mode=1,
                                 subsample=(2,))
    c_out = pytensor.function([x_var, w_var], expression, mode="CVM")(x, w)
    jax_out = np.asarray(pytensor.function([x_var, w_var], expression, mode="JAX")(x, w))
    np.testing.assert_allclose(jax_out, c_out, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(c_out, reference.convolve(x, w, 2, 1), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("val", [0, 7])
@pytest.mark.parametrize("batch_ndim", [1, 2])
def test_pad_constant_width(rng, batch_ndim, val):
    x_var = pt.tensor4("x")
    x = rng.standard_normal((2, 3, 4, 5)).astype("float32")
    out = _eval(padding.pad(x_var, 3, val, batch_ndim), [x_var], [x])
    widths = [(0, 0)] * batch_ndim + [(3, 3)] * (4 - batch_ndim)
    np.testing.assert_array_equal(out, np.pad(x, widths, constant_values=val))
    assert out.dtype == np.float32


@pytest.mark.parametrize("batch_ndim", [1, 2])
def test_pad_width_per_axis_and_per_border(rng, batch_ndim):
    x_var = pt.tensor4("x")
    x = rng.standard_normal((2, 3, 4, 5)).astype("float32")
    per_axis = (1, 2, 3, 4)[batch_ndim:]
    out = _eval(padding.pad(x_var, per_axis, batch_ndim=batch_ndim), [x_var], [x])
    widths = [(0, 0)] * batch_ndim + [(w, w) for w in per_axis]
    np.testing.assert_array_equal(out, np.pad(x, widths))
    per_border = [(1, 2), (3, 0), (0, 2), (3, 4)][batch_ndim:]
    out = _eval(padding.pad(x_var, per_border, -1.5, batch_ndim), [x_var], [x])
    widths = [(0, 0)] * batch_ndim + per_border
    np.testing.assert_array_equal(out, np.pad(x, widths, constant_values=-1.5))


def test_pad_fewer_widths_than_axes(rng):
    x_var = pt.tensor3("x")
    x = rng.standard_normal((2, 3, 4)).astype("float32")
    out = _eval(padding.pad(x_var, [2]), [x_var], [x])
    np.testing.assert_array_equal(out, np.pad(x, [(0, 0), (2, 2), (0, 0)]))


def test_served_as_lasagne_theano_extensions_to_legacy_scripts(tmp_path):
    import subprocess
    import sys

    script = tmp_path / "script.py"
    script.write_text(
        "import lasagne.theano_extensions.conv\n"
        "from lasagne.theano_extensions import padding\n"
        "import fcn8_lasagne.theano_extensions as ours\n"
        "assert lasagne.theano_extensions.conv is ours.conv and padding is ours.padding\n"
        "from lasagne.layers import Conv1DLayer\n"
        "assert Conv1DLayer((1, 2, 9), 3, 3).convolution is ours.conv.conv1d_mc0\n"
        "print('served')\n")
    result = subprocess.run([sys.executable, "-m", "fcn8_lasagne.legacy", str(script)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("served")
