"""BilinearResizeLayer (ours): shapes, both corner conventions against the per-pixel NumPy
reference, a reference layer's size, JAX against C, errors."""

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest

from fcn8_lasagne.layers import InputLayer, get_output
from fcn8_lasagne.layers.resize import BilinearResizeLayer
from tests.conftest import FAST_MODE
from tests.reference import resize as reference


@pytest.mark.parametrize("align_corners", [True, False])
def test_resize_to_reference_layer_matches_numpy(rng, align_corners):
    x, image = pt.tensor4("x"), pt.tensor4("image")
    maps = InputLayer((None, 2, None, None), x)
    ref = InputLayer((None, 3, None, None), image)
    layer = BilinearResizeLayer(maps, size_from=ref, align_corners=align_corners)
    assert layer.output_shape == (None, 2, None, None)
    f = pytensor.function([x, image], get_output(layer), mode=FAST_MODE)
    for in_hw, out_hw in [((3, 4), (9, 13)), ((5, 5), (4, 7))]:  # up, mixed
        value = rng.standard_normal((2, 2, *in_hw)).astype("float32")
        out = f(value, np.zeros((1, 3, *out_hw), "float32"))
        expected = reference.bilinear_resize(value, out_hw, align_corners)
        np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)


def test_corner_conventions_differ_and_align_corners_keeps_corners(rng):
    x = pt.tensor4("x")
    value = rng.standard_normal((1, 1, 3, 3)).astype("float32")
    outs = {}
    for corners in (True, False):
        layer = BilinearResizeLayer(InputLayer((None, 1, 3, 3), x), size=7,
                                    align_corners=corners)
        assert layer.output_shape == (None, 1, 7, 7)
        outs[corners] = pytensor.function([x], get_output(layer), mode=FAST_MODE)(value)
    np.testing.assert_allclose(outs[True][0, 0, ::3, ::3], value[0, 0], rtol=1e-6)
    assert np.abs(outs[True] - outs[False]).max() > 1e-2


def test_static_shape_from_reference():
    maps = InputLayer((4, 5, 6, 7))
    ref = InputLayer((4, 3, 50, 60))
    assert BilinearResizeLayer(maps, size_from=ref).output_shape == (4, 5, 50, 60)
    assert BilinearResizeLayer(maps, size=(8, 9)).output_shape == (4, 5, 8, 9)


def test_jax_one_function_for_two_sizes_equals_c(rng):
    pytest.importorskip("jax")
    from fcn8_lasagne.compile import function

    x, image = pt.tensor4("x"), pt.tensor4("image")
    layer = BilinearResizeLayer(InputLayer((None, 2, None, None), x),
                                size_from=InputLayer((None, 3, None, None), image),
                                align_corners=False)
    out = get_output(layer)
    jax_f = function([x, image], out, device="jax")
    c_f = function([x, image], out, mode="CVM")
    for in_hw, out_hw in [((3, 4), (11, 13)), ((4, 4), (16, 16))]:
        value = rng.standard_normal((1, 2, *in_hw)).astype("float32")
        like = np.zeros((1, 3, *out_hw), "float32")
        np.testing.assert_allclose(np.asarray(jax_f(value, like)), c_f(value, like),
                                   rtol=1e-5, atol=1e-6)


def test_errors_name_the_layer():
    maps = InputLayer((None, 2, None, None))
    with pytest.raises(ValueError, match="'up'.*exactly one of size_from"):
        BilinearResizeLayer(maps, name="up")
    with pytest.raises(ValueError, match="exactly one"):
        BilinearResizeLayer(maps, size_from=maps, size=3)
    with pytest.raises(ValueError, match="4-D"):
        BilinearResizeLayer(InputLayer((None, 2, 5)), size=3)
    with pytest.raises(ValueError, match="size must be positive"):
        BilinearResizeLayer(maps, size=(0, 3))
