"""Caffe-semantics FCN-8s/16s/32s against an independent PyTorch implementation."""

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest

from fcn8_lasagne.layers import InputLayer, Pool2DLayer, get_output
from fcn8_lasagne.models.caffe_fcn import (
    VGG16_WIDTHS,
    ConstantScaleLayer,
    OffsetCropLayer,
    buildFCN8s_caffe,
    buildFCN16s_caffe,
    buildFCN32s_caffe,
)

WIDTHS = (2, 3, 4, 5, 6, 7)
FLOATX = pytensor.config.floatX
N_CLASSES = 3
COMPILE_MODE = "FAST_COMPILE"


def compile_output(layer, input_var):
    output = get_output(layer, input_var, deterministic=True)
    return pytensor.function([input_var], output, mode=COMPILE_MODE)


# -- an independent PyTorch FCN (written from the Caffe nets' definition) --------------


def torch_fcn(kind, n_classes=N_CLASSES, widths=WIDTHS):
    """A PyTorch FCN with Caffe semantics; returns ``(modules, forward)``."""
    torch = pytest.importorskip("torch")
    nn = torch.nn
    modules = nn.ModuleDict()
    channels = 3
    for block, depth in enumerate((2, 2, 3, 3, 3), start=1):
        for index in range(1, depth + 1):
            name = f"conv{block}_{index}"
            modules[name] = nn.Conv2d(channels, widths[block - 1], 3,
                                      padding=100 if name == "conv1_1" else 1)
            channels = widths[block - 1]
    modules["fc6"] = nn.Conv2d(channels, widths[5], 7)
    modules["fc7"] = nn.Conv2d(widths[5], widths[5], 1)
    modules["score_fr"] = nn.Conv2d(widths[5], n_classes, 1)
    modules["score_pool4"] = nn.Conv2d(widths[3], n_classes, 1)
    modules["score_pool3"] = nn.Conv2d(widths[2], n_classes, 1)
    for name, size in [("upscore2", 4), ("upscore_pool4", 4), ("upscore8", 16),
                       ("upscore16", 32), ("upscore", 64)]:
        modules[name] = nn.ConvTranspose2d(n_classes, n_classes, size, stride=size // 2,
                                           bias=False)
    modules.double()
    relu = torch.relu

    def crop(x, reference, offset):
        return x[:, :, offset:offset + reference.shape[2], offset:offset + reference.shape[3]]

    def forward(image):
        h = image
        pools = {}
        for block, depth in enumerate((2, 2, 3, 3, 3), start=1):
            for index in range(1, depth + 1):
                h = relu(modules[f"conv{block}_{index}"](h))
            h = nn.functional.max_pool2d(h, 2, stride=2, ceil_mode=True)
            pools[block] = h
        h = relu(modules["fc7"](relu(modules["fc6"](h))))  # dropout: eval mode
        score = modules["score_fr"](h)
        if kind == "fcn32s":
            return crop(modules["upscore"](score), image, 19)
        upscore2 = modules["upscore2"](score)
        pool4 = pools[4] * 0.01 if kind == "fcn8s-atonce" else pools[4]
        fuse = upscore2 + crop(modules["score_pool4"](pool4), upscore2, 5)
        if kind == "fcn16s":
            return crop(modules["upscore16"](fuse), image, 27)
        upscore_pool4 = modules["upscore_pool4"](fuse)
        pool3 = pools[3] * 0.0001 if kind == "fcn8s-atonce" else pools[3]
        fuse = upscore_pool4 + crop(modules["score_pool3"](pool3), upscore_pool4, 9)
        return crop(modules["upscore8"](fuse), image, 31)

    return modules, forward


def copy_weights(modules, net):
    """Write the PyTorch weights into ``net`` (deconvolution kernels rotated 180°)."""
    import torch

    generator = torch.Generator().manual_seed(0)
    for name, layer in net.items():
        if getattr(layer, "W", None) is None:
            continue
        module = modules[name]
        with torch.no_grad():  # random, non-symmetric kernels expose orientation errors
            module.weight.copy_(torch.randn(module.weight.shape, generator=generator,
                                            dtype=torch.float64) * 0.3)
        weight = module.weight.detach().numpy().astype(FLOATX)
        if name.startswith("upscore"):
            layer.W.set_value(weight[:, :, ::-1, ::-1].copy())
            assert layer.b is None and module.bias is None
        else:
            layer.W.set_value(weight)
            layer.b.set_value(module.bias.detach().numpy().astype(FLOATX))


BUILDERS = {
    "fcn8s": lambda: buildFCN8s_caffe(3, pt.tensor4("x"), N_CLASSES, widths=WIDTHS),
    "fcn8s-atonce": lambda: buildFCN8s_caffe(3, pt.tensor4("x"), N_CLASSES, at_once=True,
                                             widths=WIDTHS),
    "fcn16s": lambda: buildFCN16s_caffe(3, pt.tensor4("x"), N_CLASSES, widths=WIDTHS),
    "fcn32s": lambda: buildFCN32s_caffe(3, pt.tensor4("x"), N_CLASSES, widths=WIDTHS),
}


@pytest.mark.parametrize("kind", list(BUILDERS))
def test_matches_independent_pytorch_network(kind):
    torch = pytest.importorskip("torch")
    net = BUILDERS[kind]()
    modules, forward = torch_fcn(kind)
    copy_weights(modules, net)
    compute = compile_output(net["score"], net["input"].input_var)
    for shape in [(1, 3, 40, 48), (2, 3, 37, 29)]:
        image = np.random.default_rng(sum(shape)).uniform(-1, 1, shape).astype(FLOATX)
        expected = forward(torch.from_numpy(image).double()).detach().numpy()
        got = compute(image)
        assert got.shape == (shape[0], N_CLASSES) + shape[2:]
        assert np.abs(expected).max() > 0
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-4 * np.abs(expected).max())


def test_layer_names_and_parameters():
    net = buildFCN8s_caffe(3, None, n_classes=N_CLASSES, at_once=True, widths=WIDTHS)
    with_params = [name for name, layer in net.items() if getattr(layer, "W", None) is not None]
    assert [n for n in with_params if not n.startswith("conv")] == [
        "fc6", "fc7", "score_fr", "upscore2", "score_pool4", "upscore_pool4", "score_pool3",
        "upscore8"]
    for name in ("upscore2", "upscore_pool4", "upscore8"):
        assert net[name].b is None
        kernel = net[name].W.get_value()
        size = kernel.shape[2]
        taps = 1 - np.abs(np.arange(size) - (size - 1) / 2) / (size // 2)  # upsample_filt
        np.testing.assert_allclose(kernel[1, 1], np.outer(taps, taps))
        assert kernel[0, 1].max() == 0
    assert net["scale_pool4"].scale == 0.01 and net["scale_pool3"].scale == 0.0001
    assert "scale_pool4" not in buildFCN8s_caffe(3, None, widths=WIDTHS)
    assert list(buildFCN32s_caffe(3, None, widths=WIDTHS))[-3:] == ["score_fr", "upscore",
                                                                   "score"]
    assert list(buildFCN16s_caffe(3, None, widths=WIDTHS))[-7:] == [
        "score_fr", "upscore2", "score_pool4", "score_pool4c", "fuse_pool4", "upscore16",
        "score"]


def test_ceil_pooling_equals_caffe():
    torch = pytest.importorskip("torch")
    layer = Pool2DLayer(InputLayer((None, 2, None, None)), 2, ignore_border=False)
    x = pt.tensor4("x")
    compute = pytensor.function([x], get_output(layer, x), mode=COMPILE_MODE)
    for size in range(2, 12):
        caffe_length = -(-(size - 2) // 2) + 1  # ceil((H + 2 pad - k) / s) + 1, pad 0
        assert layer.get_output_shape_for((1, 2, size, size + 1))[2:] == (
            caffe_length, -(-(size - 1) // 2) + 1)
        image = np.random.default_rng(size).standard_normal((1, 2, size, size + 1))
        image = image.astype(FLOATX)
        expected = torch.nn.functional.max_pool2d(torch.from_numpy(image), 2, ceil_mode=True)
        np.testing.assert_array_equal(compute(image), expected.numpy())


def test_offset_crop_and_constant_scale():
    source = InputLayer((None, 2, 10, 12))
    reference = InputLayer((None, 5, 4, 6))
    crop = OffsetCropLayer(source, reference, 3)
    assert crop.output_shape == (None, 2, 4, 6)
    x, r = pt.tensor4("x"), pt.tensor4("r")
    image = np.arange(2 * 10 * 12, dtype=FLOATX).reshape(1, 2, 10, 12)
    out = pytensor.function([x, r], get_output(crop, {source: x, reference: r}),
                            mode=COMPILE_MODE)(image, np.zeros((1, 5, 4, 6), FLOATX))
    np.testing.assert_array_equal(out, image[:, :, 3:7, 3:9])
    with pytest.raises(ValueError, match="cannot crop 8 from 10 at offset 3"):
        OffsetCropLayer(source, InputLayer((None, 1, 8, 6)), 3).output_shape
    scale = ConstantScaleLayer(source, 0.01)
    assert scale.get_params() == [] and scale.output_shape == source.output_shape
    np.testing.assert_allclose(
        pytensor.function([x], get_output(scale, x), mode=COMPILE_MODE)(image), image * 0.01)


@pytest.mark.slow
def test_full_size_parameter_shapes():
    net = buildFCN8s_caffe(3, None, n_classes=21)
    assert VGG16_WIDTHS == (64, 128, 256, 512, 512, 4096)
    assert net["fc6"].W.get_value(borrow=True).shape == (4096, 512, 7, 7)
    assert net["upscore8"].W.get_value(borrow=True).shape == (21, 21, 16, 16)
    total = sum(p.get_value(borrow=True).size for layer in net.values()
                for p in layer.get_params())
    # the tutorial's FCN-8 with n_classes=21 has 134,489,822 (fcn8-semantics.md section 3);
    # the Caffe net lacks its three deconvolution biases (3 x 21)
    assert total == 134_489_822 - 3 * 21
