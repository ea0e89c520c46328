import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest

from fcn8_lasagne.ops.crop import AutoCrop, crop_offsets, crop_to_smallest
from fcn8_lasagne.ops.fill import full_like
from tests.conftest import FAST_MODE


def _crop_fn(modes, mode=FAST_MODE):
    a, b = pt.tensor4("a"), pt.tensor4("b")
    cropped = crop_to_smallest([a, b], modes)
    return a, b, cropped, pytensor.function([a, b], cropped, mode=mode)


@pytest.mark.parametrize("mode, rows", [("lower", slice(0, 4)), ("center", slice(1, 5)),
                                        ("upper", slice(3, 7))])
def test_crop_to_smallest_against_slices(rng, mode, rows):
    _, _, _, f = _crop_fn([None, None, mode, mode])
    xa = rng.standard_normal((2, 3, 7, 6)).astype("float32")
    xb = rng.standard_normal((2, 3, 4, 9)).astype("float32")
    cropped_a, cropped_b = f(xa, xb)
    cols_b = {"lower": slice(0, 6), "center": slice(1, 7), "upper": slice(3, 9)}[mode]
    np.testing.assert_array_equal(cropped_a, xa[:, :, rows, :])
    np.testing.assert_array_equal(cropped_b, xb[:, :, :, cols_b])


def test_crop_offsets_rule():
    assert crop_offsets([7, 4], "center") == [1, 0]   # odd difference: extra at the end
    assert crop_offsets([280, 224], "center") == [28, 0]
    assert crop_offsets([9, 4, 6], "upper") == [5, 0, 2]
    with pytest.raises(ValueError, match="Unknown crop mode"):
        crop_offsets([3, 2], "middle")
    with pytest.raises(ValueError, match="Unknown crop mode"):
        AutoCrop((None, "middle"))


def test_crop_gradient_places_values_back(rng):
    a, b, cropped, _ = _crop_fn([None, None, "center", "center"])
    weights = pt.tensor4("w")
    cost = pt.sum(cropped[0] * weights)
    grad = pytensor.function([a, b, weights], pytensor.grad(cost, a), mode=FAST_MODE)
    xa = rng.standard_normal((1, 2, 7, 8)).astype("float32")
    xb = rng.standard_normal((1, 2, 4, 4)).astype("float32")
    w = rng.standard_normal((1, 2, 4, 4)).astype("float32")
    expected = np.zeros_like(xa)
    expected[:, :, 1:5, 2:6] = w
    np.testing.assert_array_equal(grad(xa, xb, w), expected)
    pytensor.gradient.verify_grad(
        lambda x: AutoCrop((None, None, "center", "upper"))(x, pt.constant(xb)),
        [xa.astype("float64")], rng=np.random.default_rng(0), mode=FAST_MODE)


def test_crop_infer_shape_without_computing():
    a, b, cropped, _ = _crop_fn([None, None, "center", "center"])
    shape = pytensor.function([a, b], cropped[0].shape, mode="FAST_RUN")
    # the shape comes from infer_shape: no crop runs
    assert not any(isinstance(node.op, AutoCrop) for node in shape.maker.fgraph.apply_nodes)
    assert tuple(shape(np.zeros((1, 2, 9, 5), "float32"), np.zeros((1, 2, 6, 8), "float32"))) \
        == (1, 2, 6, 5)


def test_crop_and_fill_jax_match_cpu_at_two_sizes(rng):
    pytest.importorskip("jax")
    a, b = pt.tensor4("a"), pt.tensor4("b")
    cropped = crop_to_smallest([a, b], [None, None, "center", "center"])
    cost = pt.sum(cropped[0] ** 2) + pt.sum(full_like(a, 0.25) * a)
    outputs = [cropped[0], pytensor.grad(cost, a), full_like(b, 2.0)]
    f_jax = pytensor.function([a, b], outputs, mode="JAX")
    f_cpu = pytensor.function([a, b], outputs, mode="CVM")
    for shape_a, shape_b in [((1, 2, 9, 7), (1, 2, 5, 5)), ((2, 1, 6, 10), (2, 1, 3, 4))]:
        xa = rng.standard_normal(shape_a).astype("float32")
        xb = rng.standard_normal(shape_b).astype("float32")
        for got, want in zip(f_jax(xa, xb), f_cpu(xa, xb)):
            np.testing.assert_allclose(got, want, rtol=1e-6)


def test_full_like_values_and_no_gradient(rng):
    x = pt.matrix("x")
    filled = full_like(x, 0.75)
    f = pytensor.function([x], filled, mode=FAST_MODE)
    value = f(np.zeros((3, 5), dtype="float32"))
    assert value.shape == (3, 5) and value.dtype == np.float32 and np.all(value == 0.75)
    grad = pytensor.grad(pt.sum(filled * x), x, disconnected_inputs="ignore")
    np.testing.assert_array_equal(
        pytensor.function([x], grad, mode=FAST_MODE)(np.ones((2, 2), "float32")),
        np.full((2, 2), 0.75, "float32"))


def test_uncropped_output_is_not_overwritten_by_a_later_inplace_sum(rng):
    # regression: when nothing is cut, the crop returned its input buffer, and the in-place
    # add of an ElemwiseSum after it overwrote a layer output asked for in the same function
    a, b = pt.tensor4("a"), pt.tensor4("b")
    small_input = pt.exp(a)  # already the smallest: its crop cuts nothing
    small, large = crop_to_smallest([small_input, pt.exp(b)], [None, None, "center", "center"])
    fused = small + large
    f = pytensor.function([a, b], [small_input, fused], mode="CVM")
    xa = rng.standard_normal((1, 2, 4, 4)).astype("float32")
    xb = rng.standard_normal((1, 2, 6, 6)).astype("float32")
    got_small, got_fused = f(xa, xb)
    np.testing.assert_allclose(got_small, np.exp(xa), rtol=1e-6)
    np.testing.assert_allclose(got_fused, np.exp(xa) + np.exp(xb)[:, :, 1:5, 1:5], rtol=1e-6)
