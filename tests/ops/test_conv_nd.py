"""N-d convolution ops (1, 2, 3 spatial axes, dilation, groups) against tests/reference/conv.py."""

import itertools

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest
from pytensor.gradient import verify_grad

from fcn8_lasagne.ops import _c_build, _conv_c, _conv_cpu, shapes
from fcn8_lasagne.ops.conv import (
    Conv,
    Conv1d,
    Conv2d,
    Conv3d,
    Conv3dGradInputs,
    ConvGradInputs,
    ConvGradWeights,
    conv1d,
    conv1d_grad_wrt_inputs,
    conv1d_grad_wrt_weights,
    conv2d,
    conv2d_grad_wrt_inputs,
    conv2d_grad_wrt_weights,
    conv3d,
    conv3d_grad_wrt_inputs,
    conv3d_grad_wrt_weights,
)
from tests.conftest import FAST_MODE
from tests.reference import conv as reference

FORWARD = {1: conv1d, 2: conv2d, 3: conv3d}
GRAD_INPUTS = {1: conv1d_grad_wrt_inputs, 2: conv2d_grad_wrt_inputs, 3: conv3d_grad_wrt_inputs}
GRAD_WEIGHTS = {1: conv1d_grad_wrt_weights, 2: conv2d_grad_wrt_weights,
                3: conv3d_grad_wrt_weights}
SPATIAL = {1: (11,), 2: (8, 7), 3: (6, 5, 6)}
KERNEL = {1: (3,), 2: (3, 2), 3: (2, 3, 2)}


def tensor(name, n, dtype="float64"):
    return pt.tensor(name, dtype=dtype, shape=(None,) * (n + 2))


def random(rng, shape, dtype="float64"):
    return rng.standard_normal(shape).astype(dtype)


def tuple_of(value, n):
    return (value,) * n if np.isscalar(value) else tuple(value)


CASES = [  # border_mode, stride, dilation, groups, flip
    ("valid", 1, 1, 1, True), ("full", 1, 2, 1, False), ("half", 1, 2, 2, True),
    (1, 2, 1, 2, False), ("full", 2, 2, 1, True), ("half", 3, 1, 1, False),
    (2, 1, 3, 1, True), ("valid", 2, 2, 2, False), (3, 1, 1, 2, True),  # pad > k - 1
]


@pytest.mark.parametrize("n", [1, 2, 3])
@pytest.mark.parametrize("border_mode, stride, dilation, groups, flip", CASES)
def test_forward_and_gradients_match_reference(rng, n, border_mode, stride, dilation,
                                               groups, flip):
    """Values and static shapes of the three ops for every pad/stride/dilation/group mode."""
    x_shape, w_shape = (2, 4) + SPATIAL[n], (6, 4 // groups) + KERNEL[n]
    x_value, w_value = random(rng, x_shape), random(rng, w_shape)
    expected = reference.conv(x_value, w_value, stride, border_mode, dilation, groups, flip)
    kwargs = dict(border_mode=border_mode, subsample=tuple_of(stride, n), filter_flip=flip,
                  filter_dilation=tuple_of(dilation, n), num_groups=groups)
    x = pt.tensor("x", dtype="float64", shape=x_shape)
    w = pt.tensor("w", dtype="float64", shape=w_shape)
    y = FORWARD[n](x, w, **kwargs)
    assert y.type.shape == expected.shape
    gy_value = random(rng, expected.shape)
    gy = pt.tensor("gy", dtype="float64", shape=expected.shape)
    gx = GRAD_INPUTS[n](gy, w, x_shape, **kwargs)
    gw = GRAD_WEIGHTS[n](x, gy, w_shape, **kwargs)
    assert gx.type.shape == x_shape and gw.type.shape == w_shape
    out, gx_out, gw_out = pytensor.function([x, w, gy], [y, gx, gw], mode=FAST_MODE)(
        x_value, w_value, gy_value)
    np.testing.assert_allclose(out, expected, atol=1e-10)
    np.testing.assert_allclose(gx_out, reference.conv_transpose(
        gy_value, w_value, x_shape[2:], stride, border_mode, dilation, groups, flip), atol=1e-10)
    np.testing.assert_allclose(gw_out, reference.conv_grad_weights(
        x_value, gy_value, w_shape[2:], stride, border_mode, dilation, groups, flip),
        atol=1e-10)


def test_reference_is_the_definition(rng):
    """The reference against one hand-written sum: 1-D, stride 2, pad 1, dilation 2, 2 groups."""
    x, w = rng.standard_normal((1, 2, 7)), rng.standard_normal((2, 1, 2))
    xp = np.pad(x, ((0, 0), (0, 0), (1, 1)))
    expected = np.zeros((1, 2, 4))  # (7 + 2 - 3) // 2 + 1 outputs
    for f, o in itertools.product(range(2), range(4)):
        expected[0, f, o] = sum(xp[0, f, 2 * o + 2 * t] * w[f, 0, 1 - t] for t in range(2))
    np.testing.assert_allclose(reference.conv(x, w, 2, 1, 2, 2, True), expected)


@pytest.mark.parametrize("n, x_shape, w_shape, kwargs", [
    (1, (1, 2, 40), (96, 2, 5), dict(border_mode="half", filter_dilation=3)),  # shifted
    (2, (1, 4, 20, 18), (6, 2, 3, 3), dict(border_mode=2, filter_dilation=(2, 3),
                                           num_groups=2)),
    (2, (2, 6, 9, 9), (6, 1, 3, 3), dict(border_mode="half", num_groups=6)),  # depthwise
    (3, (2, 3, 7, 8, 6), (4, 3, 3, 2, 3), dict(border_mode="half")),        # 3-D shifted
    (3, (1, 4, 9, 7, 8), (4, 2, 3, 3, 2), dict(border_mode=1, subsample=(2, 1, 3),
                                               num_groups=2)),
    (3, (1, 2, 3, 3, 3), (70, 2, 1, 1, 1), {}),                             # 3-D 1x1x1
])
def test_kernel_paths_match_reference(rng, n, x_shape, w_shape, kwargs):
    """Shapes that take the shifted-view, unfolded and grouped paths of the CPU kernels."""
    x_value, w_value = random(rng, x_shape, "float32"), random(rng, w_shape, "float32")
    x, w = tensor("x", n, "float32"), tensor("w", n, "float32")
    ref_args = (kwargs.get("subsample", 1), kwargs.get("border_mode", "valid"),
                kwargs.get("filter_dilation", 1), kwargs.get("num_groups", 1))
    expected = reference.conv(x_value, w_value, *ref_args)
    y = FORWARD[n](x, w, **kwargs)
    cost = (y * pt.constant(random(rng, expected.shape, "float32"))).sum()
    outputs = [y, *pytensor.grad(cost, [x, w])]
    out, gx, gw = pytensor.function([x, w], outputs, mode="CVM")(x_value, w_value)
    np.testing.assert_allclose(out, expected, atol=1e-4, rtol=1e-4)
    assert gx.shape == x_shape and gw.shape == w_shape


@pytest.mark.parametrize("n", [1, 2, 3])
def test_verify_grad_every_op(rng, n):
    """Finite differences through the forward op and both gradient ops (second order)."""
    spatial = {1: (7,), 2: (5, 4), 3: (4, 3, 4)}[n]
    kernel = {1: (2,), 2: (2, 2), 3: (2, 1, 2)}[n]
    family = {1: Conv1d, 2: Conv2d, 3: Conv3d}[n]
    op = family("half", 2, True, 2, 2)
    x_value, w_value = rng.standard_normal((2, 4) + spatial), rng.standard_normal((2, 2) + kernel)
    verify_grad(op, [x_value, w_value], rng=rng, mode=FAST_MODE)
    gy_value = rng.standard_normal(op(x_value, w_value).eval().shape)
    grad_inputs = op._grad_inputs()
    verify_grad(lambda gy, w: grad_inputs(gy, w, pt.constant(np.array(spatial))),
                [gy_value, w_value], rng=rng, mode=FAST_MODE)
    grad_weights = op._grad_weights()
    verify_grad(lambda x, gy: grad_weights(x, gy, pt.constant(np.array(kernel))),
                [x_value, gy_value], rng=rng, mode=FAST_MODE)


@pytest.mark.parametrize("n", [1, 3])
def test_transposed_with_larger_input_shape(rng, n):
    """Strided transposed convolutions to every size the forward maps to the same output."""
    kwargs = dict(border_mode=1, subsample=3, filter_dilation=2)
    w_value = random(rng, (4, 2) + KERNEL[n])
    gy = tensor("gy", n)
    w = tensor("w", n)
    minimal = tuple(shapes.conv_input_length(o, k, 3, 1, 2) for o, k in zip((3,) * n, KERNEL[n]))
    gy_value = random(rng, (1, 4) + (3,) * n)
    for extra in range(3):
        size = tuple(m + extra for m in minimal)
        out = GRAD_INPUTS[n](gy, w, (None, None) + size, **kwargs)
        result = pytensor.function([gy, w], out, mode=FAST_MODE)(gy_value, w_value)
        np.testing.assert_allclose(result, reference.conv_transpose(
            gy_value, w_value, size, 3, 1, 2), atol=1e-10)
    # None is the minimal size; one more than stride - 1 is refused
    out = GRAD_INPUTS[n](gy, w, (None,) * (n + 2), **kwargs)
    assert pytensor.function([gy, w], out, mode=FAST_MODE)(gy_value, w_value).shape[2:] == minimal
    with pytest.raises(ValueError, match="gives outputs of size"):
        GRAD_INPUTS[n](gy, w, (None, None) + tuple(m + 3 for m in minimal), **kwargs).eval(
            {gy: gy_value, w: w_value})


@pytest.mark.parametrize("n", [1, 2, 3])
def test_jax_matches_cvm(rng, n):
    pytest.importorskip("jax")
    x, w = tensor("x", n, "float32"), tensor("w", n, "float32")
    y = FORWARD[n](x, w, border_mode="half", subsample=2, filter_dilation=2, num_groups=2)
    z = GRAD_INPUTS[n](y, w, (None, None) + SPATIAL[n], border_mode="half", subsample=2,
                       filter_dilation=2, num_groups=2, filter_flip=False)
    cost = (y ** 2).sum() + (z * x).sum()
    outputs = [y, z, *pytensor.grad(cost, [x, w])]
    x_value = random(rng, (2, 4) + SPATIAL[n], "float32")
    w_value = random(rng, (6, 2) + KERNEL[n], "float32")
    expected = pytensor.function([x, w], outputs, mode="CVM")(x_value, w_value)
    result = pytensor.function([x, w], outputs, mode="JAX")(x_value, w_value)
    for got, want in zip(result, expected):
        np.testing.assert_allclose(np.asarray(got), want, atol=2e-4, rtol=2e-4)


def test_infer_shape_without_computing(rng):
    x, w = tensor("x", 3, "float32"), tensor("w", 3, "float32")
    outputs = [
        conv3d(x, w, border_mode="half", subsample=(2, 1, 3), filter_dilation=(1, 2, 2),
               num_groups=2),
        conv3d_grad_wrt_inputs(x, w, (None,) * 5, border_mode=1, subsample=2,
                               filter_dilation=2, num_groups=2),
        conv3d_grad_wrt_weights(x, x, (4, 2, 3, 1, 2), border_mode="half", filter_dilation=2,
                                num_groups=2),
    ]
    fn = pytensor.function([x, w], [o.shape for o in outputs], mode="CVM")
    assert not any(isinstance(node.op, (Conv, ConvGradInputs, ConvGradWeights))
                   for node in fn.maker.fgraph.apply_nodes)
    x_value, w_value = random(rng, (1, 4, 9, 8, 7), "float32"), random(rng, (4, 2, 3, 1, 2),
                                                                        "float32")
    actual = pytensor.function([x, w], outputs, mode=FAST_MODE)(x_value, w_value)
    assert [tuple(s) for s in fn(x_value, w_value)] == [a.shape for a in actual]


def test_conv2d_with_singleton_axis_equals_conv1d(rng):
    """Lasagne's 1-D helpers run conv2d on (B, C, 1, L): the same numbers as conv1d."""
    x_value, w_value = random(rng, (2, 3, 30), "float32"), random(rng, (5, 3, 4), "float32")
    x, w = tensor("x", 1, "float32"), tensor("w", 1, "float32")
    one = conv1d(x, w, border_mode=2, subsample=2, filter_dilation=3)
    two = conv2d(x.dimshuffle(0, 1, "x", 2), w.dimshuffle(0, 1, "x", 2), border_mode=(0, 2),
                 subsample=(1, 2), filter_dilation=(1, 3))[:, :, 0]
    a, b = pytensor.function([x, w], [one, two], mode="CVM")(x_value, w_value)
    np.testing.assert_allclose(a, b, atol=1e-5)
    np.testing.assert_allclose(a, reference.conv(x_value, w_value, 2, 2, 3), atol=1e-4)


def test_op_props_and_argument_errors():
    assert Conv(3, "same", 2) == Conv(3, "half", (2, 2, 2))
    assert Conv2d(1, 1, True, 1, 1) == Conv2d((1, 1), (1, 1), True, (1, 1), 1)
    assert Conv2d(filter_dilation=2) != Conv2d()
    assert Conv3dGradInputs().ndim == 3
    with pytest.raises(ValueError, match="filter_dilation"):
        Conv2d(filter_dilation=0)
    with pytest.raises(ValueError, match="num_groups"):
        Conv2d(num_groups=0)
    with pytest.raises(ValueError, match="border_mode"):
        Conv3d((1, 1))
    with pytest.raises(ValueError, match="border_mode"):
        Conv1d("wide")
    with pytest.raises(ValueError, match="1, 2 or 3"):
        Conv(4)


def test_static_errors_name_shapes():
    def t(name, shape):
        return pt.tensor(name, dtype="float32", shape=shape)

    with pytest.raises(TypeError, match="5-D.*depth"):
        conv3d(t("x", (1, 2, 3, 3)), t("w", (1, 2, 1, 1)))
    with pytest.raises(ValueError, match=r"num_groups=2.*3 input channels.*\(1, 3, 5\)"):
        conv1d(t("x", (1, 3, 5)), t("w", (4, 1, 2)), num_groups=2)
    with pytest.raises(ValueError, match=r"num_groups=2.*5 filters"):
        conv1d(t("x", (1, 4, 5)), t("w", (5, 2, 2)), num_groups=2)
    with pytest.raises(ValueError, match=r"per group.*\(1, 4, 5\).*\(4, 3, 2\)"):
        conv1d(t("x", (1, 4, 5)), t("w", (4, 3, 2)), num_groups=2)
    with pytest.raises(ValueError, match=r"dilated by 3: 7\) exceeds the padded input size 6"):
        conv2d(t("x", (1, 2, 6, 6)), t("w", (1, 2, 3, 3)), filter_dilation=3)
    conv2d(t("x", (1, 2, 6, 6)), t("w", (1, 2, 3, 3)), filter_dilation=3, border_mode=1)
    with pytest.raises(ValueError, match="4 entries"):
        conv2d_grad_wrt_weights(t("x", (1, 2, 6, 6)), t("y", (1, 2, 4, 4)), (2, 2, 3))


def test_run_time_errors_name_the_layer(rng):
    x, w = tensor("x", 3, "float32"), tensor("w", 3, "float32")
    y = conv3d(x, w, filter_dilation=2, num_groups=2)
    y.name = "conv3"
    fn = pytensor.function([x, w], y, mode=FAST_MODE)
    with pytest.raises(ValueError, match=r"layer 'conv3'.*dilated.*\(1, 4, 4, 4, 4\)"):
        fn(random(rng, (1, 4, 4, 4, 4), "float32"), random(rng, (2, 2, 3, 3, 3), "float32"))
    with pytest.raises(ValueError, match=r"layer 'conv3'.*num_groups=2"):
        fn(random(rng, (1, 3, 6, 6, 6), "float32"), random(rng, (2, 2, 1, 1, 1), "float32"))


def test_length_formulas_with_dilation():
    assert shapes.dilated_filter_size(3, 4) == 9
    assert shapes.conv_output_length(20, 3, 1, "valid", dilation=4) == 12
    assert shapes.conv_output_length(20, 3, 2, "half", dilation=2) == 10
    assert shapes.conv_output_length(20, 3, 1, "full", dilation=3) == 26
    assert shapes.conv_input_length(12, 3, 1, 0, dilation=4) == 20
    assert shapes.conv_input_length(10, 3, 2, "same", dilation=2) == 19
    assert shapes.border_pads("half", (3, 2), (2, 3)) == (2, 2)
    assert shapes.normalize_border_mode("valid", 3) == (0, 0, 0)
    with pytest.raises(ValueError, match=">= 0"):
        shapes.normalize_border_mode((1, -1), 2)


@pytest.mark.parametrize("x_shape, w_shape, pad, dilation", [
    ((2, 3, 6, 7, 5), (5, 3, 3, 2, 3), (1, 0, 2), (1, 1, 1)),
    ((1, 4, 12, 11), (6, 4, 3, 3), (2, 4), (2, 3)),
])
def test_channels_last_and_channels_first_kernels_agree(rng, monkeypatch, x_shape, w_shape,
                                                       pad, dilation):
    """The channels-last shifted views and the folded weight gradient (small channel counts)
    against the channels-first kernels and the reference."""
    monkeypatch.setattr(_conv_c, "library", lambda: None)  # the BLAS kernels
    x, w = random(rng, x_shape), random(rng, w_shape)
    n = len(pad)
    results = []
    for limit in (64, 0):
        monkeypatch.setattr(_conv_cpu, "_CHANNELS_LAST_MAX", limit)
        y = _conv_cpu.conv_forward(x, w, pad, (1,) * n, True, dilation)
        results.append((y, _conv_cpu.conv_backward_input(y, w, x_shape[2:], pad, (1,) * n,
                                                         False, dilation),
                        _conv_cpu.conv_backward_weights(x, y, w_shape[2:], pad, (1,) * n,
                                                        True, dilation)))
    (y_last, gx_last, gw_folded), (y_first, gx_first, gw_first) = results
    np.testing.assert_allclose(gw_folded, gw_first, atol=1e-10)
    np.testing.assert_allclose(gw_folded, reference.conv_grad_weights(
        x, y_last, w_shape[2:], 1, pad, dilation), atol=1e-10)
    assert y_last.strides[1] == y_last.itemsize  # channels-last buffer
    assert y_first.flags.c_contiguous or y_first.strides[-1] == y_first.itemsize
    np.testing.assert_allclose(y_last, y_first, atol=1e-12)
    np.testing.assert_allclose(gx_last, gx_first, atol=1e-12)
    np.testing.assert_allclose(y_last, reference.conv(x, w, 1, pad, dilation), atol=1e-10)
    np.testing.assert_allclose(gx_last, reference.conv_transpose(
        y_last, w, x_shape[2:], 1, pad, dilation, flip=False), atol=1e-10)


def test_cpu_kernels_1d_through_2d(rng):
    """The 1-D kernels equal the 2-D ones on images one pixel high (Lasagne's Conv1DLayer
    layout), bit for bit, forward and both gradients."""
    x, w = random(rng, (3, 4, 50), "float32"), random(rng, (6, 2, 5), "float32")
    gy = random(rng, (3, 6, 23), "float32")
    args = dict(flip=True, groups=2)
    one = _conv_cpu.conv_forward(x, w, (2,), (2,), dilation=(2,), **args)
    two = _conv_cpu.conv_forward(x[:, :, None], w[:, :, None], (0, 2), (1, 2),
                                 dilation=(1, 2), **args)
    np.testing.assert_array_equal(one, two[:, :, 0])
    one = _conv_cpu.conv_backward_input(gy, w, (50,), (2,), (2,), dilation=(2,), **args)
    two = _conv_cpu.conv_backward_input(gy[:, :, None], w[:, :, None], (1, 50), (0, 2), (1, 2),
                                        dilation=(1, 2), **args)
    np.testing.assert_array_equal(one, two[:, :, 0])
    one = _conv_cpu.conv_backward_weights(x, gy, (5,), (2,), (2,), dilation=(2,), **args)
    two = _conv_cpu.conv_backward_weights(x[:, :, None], gy[:, :, None], (1, 5), (0, 2),
                                          (1, 2), dilation=(1, 2), **args)
    np.testing.assert_array_equal(one, two[:, :, 0])


@pytest.mark.parametrize("dilation", [1, 3])
def test_cpu_kernels_batch_of_rows_equal_single_rows(rng, dilation):
    """A batch of short rows runs as one image of rows: each row's result equals that row
    convolved alone (stride 1, where the GEMMs span the whole batch)."""
    x, w, gy = random(rng, (5, 8, 30)), random(rng, (7, 8, 9)), random(rng, (5, 7, 30))
    pad, kernel = (4 * dilation,), (9,)  # "same" padding: outputs of 30 samples
    y = _conv_cpu.conv_forward(x, w, pad, (1,), True, (dilation,))
    gx = _conv_cpu.conv_backward_input(gy, w, (30,), pad, (1,), True, (dilation,))
    gw = _conv_cpu.conv_backward_weights(x, gy, kernel, pad, (1,), True, (dilation,))
    gw_rows = 0
    for b in range(5):
        row = slice(b, b + 1)
        np.testing.assert_allclose(y[row], _conv_cpu.conv_forward(
            x[row], w, pad, (1,), True, (dilation,)), rtol=1e-12)
        np.testing.assert_allclose(gx[row], _conv_cpu.conv_backward_input(
            gy[row], w, (30,), pad, (1,), True, (dilation,)), rtol=1e-12)
        gw_rows = gw_rows + _conv_cpu.conv_backward_weights(x[row], gy[row], kernel, pad, (1,),
                                                            True, (dilation,))
    np.testing.assert_allclose(gw, gw_rows, rtol=1e-12)


@pytest.mark.parametrize("n", [1, 2, 3])
def test_matches_torch(rng, n):
    torch = pytest.importorskip("torch")
    functional = torch.nn.functional
    conv = {1: functional.conv1d, 2: functional.conv2d, 3: functional.conv3d}[n]
    transpose = {1: functional.conv_transpose1d, 2: functional.conv_transpose2d,
                 3: functional.conv_transpose3d}[n]
    x_value, w_value = random(rng, (2, 4) + SPATIAL[n]), random(rng, (6, 2) + KERNEL[n])
    x, w = tensor("x", n), tensor("w", n)
    kwargs = dict(subsample=2, filter_dilation=2, num_groups=2, filter_flip=False)
    y = FORWARD[n](x, w, border_mode=1, **kwargs)
    out = pytensor.function([x, w], y, mode="CVM")(x_value, w_value)
    want = conv(torch.from_numpy(x_value), torch.from_numpy(w_value), stride=2, padding=1,
                dilation=2, groups=2).numpy()
    np.testing.assert_allclose(out, want, atol=1e-10)
    # conv_transpose with output_padding 1: a non-minimal input size
    gy_value = random(rng, out.shape)
    minimal = tuple(shapes.conv_input_length(o, k, 2, 1, 2) for o, k in zip(out.shape[2:],
                                                                            KERNEL[n]))
    size = tuple(m + 1 for m in minimal)
    gy = tensor("gy", n)
    gx = GRAD_INPUTS[n](gy, w, (None, None) + size, border_mode=1, **kwargs)
    got = pytensor.function([gy, w], gx, mode="CVM")(gy_value, w_value)
    want = transpose(torch.from_numpy(gy_value), torch.from_numpy(w_value), stride=2,
                     padding=1, output_padding=1, dilation=2, groups=2).numpy()
    np.testing.assert_allclose(got, want, atol=1e-10)


@pytest.mark.parametrize("n", [2, 3])
def test_grouped_shifted_views_equal_the_group_loop(rng, monkeypatch, n):
    """Small groups run as one grouped correlation; larger ones loop over ungrouped
    convolutions: both give the reference's values, forward and both gradients."""
    spatial, kernel = {2: ((9, 10), (3, 2)), 3: ((5, 6, 4), (2, 3, 2))}[n]
    x, w = random(rng, (2, 8) + spatial), random(rng, (12, 2) + kernel)
    pad, dilation = (1,) * n, (2,) + (1,) * (n - 1)
    monkeypatch.setattr(_conv_c, "library", lambda: None)  # the BLAS kernels
    results = []
    for limit in (16, 0):
        monkeypatch.setattr(_conv_cpu, "_GROUPED_MAX", limit)
        y = _conv_cpu.conv_forward(x, w, pad, (1,) * n, True, dilation, 4)
        results.append([y, _conv_cpu.conv_backward_input(y, w, spatial, pad, (1,) * n, True,
                                                         dilation, 4),
                        _conv_cpu.conv_backward_weights(x, y, kernel, pad, (1,) * n, False,
                                                        dilation, 4)])
    expected = [reference.conv(x, w, 1, pad, dilation, 4)]
    expected.append(reference.conv_transpose(expected[0], w, spatial, 1, pad, dilation, 4))
    expected.append(reference.conv_grad_weights(x, expected[0], kernel, 1, pad, dilation, 4,
                                                flip=False))
    for grouped, looped, want in zip(*results, expected):
        np.testing.assert_allclose(grouped, want, atol=1e-10)
        np.testing.assert_allclose(looped, want, atol=1e-10)


C_KERNEL_CASES = [  # x shape, w shape, pad, dilation, groups
    ((2, 5, 4, 6, 19), (7, 5, 3, 2, 3), (1, 0, 2), (1, 1, 1), 1),  # 3-D, partial row tiles
    ((1, 6, 11, 40), (9, 6, 3, 3), (2, 4), (2, 3), 1),  # dilated, 9 filters: partial blocks
    ((2, 12, 7, 23), (12, 3, 3, 2), (1, 0), (1, 1), 4),  # grouped
    ((1, 4, 6, 20), (4, 2, 2, 2), (3, 1), (2, 1), 2),  # pad > extent - 1: the transposed crops
]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("x_shape, w_shape, pad, dilation, groups", C_KERNEL_CASES)
def test_compiled_kernels_match_reference_and_blas(rng, monkeypatch, dtype, x_shape, w_shape,
                                                   pad, dilation, groups):
    """The compiled direct kernels (3-D, dilated, grouped stride-1 convolutions) against the
    reference and against the BLAS kernels, forward and both gradients, both flips."""
    if _conv_c.library() is None:
        pytest.skip("no C++ compiler: the compiled kernels are not built")
    x, w = random(rng, x_shape, dtype), random(rng, w_shape, dtype)
    n, stride = len(pad), (1,) * len(pad)
    tolerance = dict(atol=1e-10) if dtype == "float64" else dict(atol=2e-4, rtol=2e-4)
    for flip in (True, False):
        y = reference.conv(x, w, 1, pad, dilation, groups, flip=flip).astype(dtype)
        expected = [y, reference.conv_transpose(y, w, x_shape[2:], 1, pad, dilation, groups,
                                                flip=flip),
                    reference.conv_grad_weights(x, y, w_shape[2:], 1, pad, dilation, groups,
                                                flip=flip)]

        def kernels():
            return [_conv_cpu.conv_forward(x, w, pad, stride, flip, dilation, groups),
                    _conv_cpu.conv_backward_input(y, w, x_shape[2:], pad, stride, flip,
                                                  dilation, groups),
                    _conv_cpu.conv_backward_weights(x, y, w_shape[2:], pad, stride, flip,
                                                    dilation, groups)]

        assert _conv_cpu._use_c_kernels(x.dtype, w_shape[2:], stride, dilation, groups,
                                        w_shape[0], x_shape[0], y.shape[2:])
        compiled = kernels()
        with monkeypatch.context() as patch:
            patch.setattr(_conv_c, "library", lambda: None)
            blas = kernels()
        for got, other, want in zip(compiled, blas, expected):
            assert got.dtype == np.dtype(dtype) and got.shape == want.shape
            np.testing.assert_allclose(got, want, **tolerance)
            np.testing.assert_allclose(got, other, **tolerance)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_every_compiled_tile_shape(rng, dtype):
    """Each compiled (filter block, row tile) variant and weight-gradient block gives the
    reference's values, on rows that end in a partial tile and filters in a partial block."""
    library = _conv_c.library()
    if library is None:
        pytest.skip("no C++ compiler: the compiled kernels are not built")
    x, w = random(rng, (2, 6, 5, 37), dtype), random(rng, (10, 3, 3, 2), dtype)
    y_want = reference.conv(x, w, 1, (1, 2), (2, 1), 2, flip=False)
    w_want = reference.conv_grad_weights(x, y_want, (3, 2), 1, (1, 2), (2, 1), 2, flip=False)
    atol = 1e-10 if dtype == "float64" else 2e-4
    for tile in library.correlate[np.dtype(dtype)]:
        got = _conv_c.conv_correlation(x, w, (1, 2), y_want.shape[2:], False, (2, 1), 2, tile)
        np.testing.assert_allclose(got, y_want, atol=atol, err_msg=str(tile))
    original = _conv_c.weight_grad
    for block in library.weight_grad[np.dtype(dtype)]:
        def with_block(*args, block=block, **kwargs):
            return original(*args, block=block, **kwargs)

        _conv_c.weight_grad = with_block
        try:
            got = _conv_c.conv_weight_grad(x, y_want.astype(dtype), (3, 2), (1, 2), (2, 1), 2)
        finally:
            _conv_c.weight_grad = original
        np.testing.assert_allclose(got, w_want, atol=atol, rtol=1e-5, err_msg=str(block))


FALLBACK_SCRIPT = """
import numpy as np
from fcn8_lasagne.ops import _conv_c, _conv_cpu
from tests.reference import conv as reference
assert _conv_c.library() is None
rng = np.random.default_rng(0)
x, w = rng.standard_normal((2, 4, 5, 6, 9)), rng.standard_normal((6, 2, 2, 3, 2))
got = _conv_cpu.conv_forward(x, w, (1, 1, 1), (1, 1, 1), True, (2, 1, 1), 2)
np.testing.assert_allclose(got, reference.conv(x, w, 1, 1, (2, 1, 1), 2), atol=1e-10)
print("fallback ok")
"""


@pytest.mark.parametrize("environment", [{"PYTENSOR_FLAGS": "cxx="},
                                         {"FCN8_LASAGNE_C_KERNELS": "0"}])
def test_without_a_compiler_the_blas_kernels_run(environment):
    """No C++ compiler configured (PyTensor's ``cxx=``), or the kernels turned off: nothing
    is compiled and the convolutions run on their BLAS kernels."""
    import os
    import subprocess
    import sys

    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = {**os.environ, **environment}
    result = subprocess.run([sys.executable, "-c", FALLBACK_SCRIPT], cwd=root, env=env,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "fallback ok" in result.stdout


def test_a_failing_compiler_warns_and_falls_back(monkeypatch, tmp_path):
    """A compiler that fails: one warning naming it, and no compiled kernels."""
    failing = tmp_path / "failing-cxx"
    failing.write_text("#!/bin/sh\necho 'cc1plus: fatal error: broken' >&2\nexit 1\n")
    failing.chmod(0o755)
    monkeypatch.setattr(_c_build, "_compiler", lambda: str(failing))
    monkeypatch.setattr(_c_build, "_cache_dir", lambda: str(tmp_path / "cache"))
    monkeypatch.setitem(_conv_c._state, "loaded", False)
    monkeypatch.setitem(_conv_c._state, "library", "not loaded")
    with pytest.warns(RuntimeWarning, match="failing-cxx into .* failed .*broken"):
        assert _conv_c.library() is None
    import shutil

    if shutil.which("g++") is None:
        return
    # a compile directory that cannot be created
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setattr(_c_build, "_compiler", lambda: "g++")
    monkeypatch.setattr(_c_build, "_cache_dir", lambda: str(blocker / "cache"))
    monkeypatch.setitem(_conv_c._state, "loaded", False)
    with pytest.warns(RuntimeWarning, match="a-file/cache failed"):
        assert _conv_c.library() is None
    assert not _conv_cpu._use_c_kernels(np.dtype("float32"), (3, 3, 3), (1, 1, 1), (1, 1, 1),
                                        1, 8, 2, (16, 16, 16))
