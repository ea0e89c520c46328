import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest

from fcn8_lasagne.layers import (
    ConcatLayer,
    ElemwiseMergeLayer,
    ElemwiseSumLayer,
    InputLayer,
    autocrop_array_shapes,
    crop_offsets,
    get_output,
)
from tests.conftest import FAST_MODE


def _two_inputs(shape_a, shape_b):
    a, b = pt.tensor4("a"), pt.tensor4("b")
    la = InputLayer((None,) * 4 if shape_a is None else shape_a, a)
    lb = InputLayer((None,) * 4 if shape_b is None else shape_b, b)
    return a, b, la, lb


def test_center_crop_odd_difference_drops_the_extra_element_at_the_end(rng):
    # 7 -> 4: offset (7 - 4) // 2 = 1, keeps indices 1:5
    a, b, la, lb = _two_inputs(None, None)
    xa = rng.standard_normal((2, 3, 7, 6)).astype("float32")
    xb = rng.standard_normal((2, 3, 4, 6)).astype("float32")
    layer = ElemwiseSumLayer((la, lb), cropping=[None, None, "center", "center"])
    out = pytensor.function([a, b], get_output(layer), mode=FAST_MODE)(xa, xb)
    np.testing.assert_allclose(out, xa[:, :, 1:5, :] + xb, rtol=1e-6)
    assert crop_offsets([7, 4], "center") == [1, 0]
    assert crop_offsets([280, 224], "center") == [28, 0]
    assert crop_offsets([7, 4, 5], "upper") == [3, 0, 1]
    assert crop_offsets([7, 4], "lower") == [0, 0]


@pytest.mark.parametrize("mode, slc", [("lower", slice(0, 3)), ("upper", slice(2, 5)),
                                       ("center", slice(1, 4))])
def test_crop_modes(rng, mode, slc):
    a, b, la, lb = _two_inputs(None, None)
    xa = rng.standard_normal((1, 2, 5, 5)).astype("float32")
    xb = rng.standard_normal((1, 2, 3, 3)).astype("float32")
    layer = ElemwiseMergeLayer((la, lb), pt.mul, cropping=[None, None, mode, mode])
    out = pytensor.function([a, b], get_output(layer), mode=FAST_MODE)(xa, xb)
    np.testing.assert_allclose(out, xa[:, :, slc, slc] * xb, rtol=1e-6)


def test_elemwise_sum_coefficients_and_shapes(rng):
    a, b, la, lb = _two_inputs((None, 2, 4, 4), (None, 2, 4, 4))
    layer = ElemwiseSumLayer((la, lb), coeffs=[2, -1])
    xa, xb = (rng.standard_normal((1, 2, 4, 4)).astype("float32") for _ in range(2))
    out = pytensor.function([a, b], get_output(layer), mode=FAST_MODE)(xa, xb)
    np.testing.assert_allclose(out, 2 * xa - xb, rtol=1e-6)
    assert layer.output_shape == (None, 2, 4, 4)
    with pytest.raises(ValueError, match="2 coeffs for 3 incomings"):
        ElemwiseSumLayer((la, lb, la), coeffs=[1, 2])
    with pytest.raises(ValueError, match="not all input shapes are the same"):
        ElemwiseSumLayer((la, InputLayer((None, 3, 4, 4))), name="fuse").output_shape


def test_merge_function_folds_left_to_right(rng):
    x = [pt.tensor4(n) for n in "abc"]
    layers = [InputLayer((None, 1, 2, 2), v) for v in x]
    layer = ElemwiseMergeLayer(layers, lambda u, v: u - v)
    values = [rng.standard_normal((1, 1, 2, 2)).astype("float32") for _ in x]
    out = pytensor.function(x, get_output(layer), mode=FAST_MODE)(*values)
    np.testing.assert_allclose(out, (values[0] - values[1]) - values[2], rtol=1e-6)


def test_autocrop_shapes_pad_short_cropping_lists_with_none():
    shapes = [(1, 3, 7, 9), (1, 3, 4, 5)]
    assert autocrop_array_shapes(shapes, ["center", None, "center"]) == \
        [(1, 3, 4, 9), (1, 3, 4, 5)]
    assert autocrop_array_shapes([(None, 3, None, 9), (1, 3, 4, 5)],
                                 [None, None, "center", "center"]) == \
        [(None, 3, None, 5), (1, 3, None, 5)]
    with pytest.raises(ValueError, match="Unknown crop mode"):
        autocrop_array_shapes(shapes, [None, None, "middle"])


def test_concat_never_crops_its_axis(rng):
    a, b, la, lb = _two_inputs(None, None)
    layer = ConcatLayer((la, lb), axis=1, cropping=[None, "center", "center", "center"])
    assert layer.cropping[1] is None
    xa = rng.standard_normal((1, 2, 6, 6)).astype("float32")
    xb = rng.standard_normal((1, 3, 4, 4)).astype("float32")
    out = pytensor.function([a, b], get_output(layer), mode=FAST_MODE)(xa, xb)
    np.testing.assert_allclose(out, np.concatenate([xa[:, :, 1:5, 1:5], xb], axis=1))
    assert ConcatLayer((InputLayer((1, 2, 6, 6)), InputLayer((1, 3, 4, 4))),
                       cropping=[None, None, "center", "center"]).output_shape == (1, 5, 4, 4)
