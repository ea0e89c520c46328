"""Dilated-ResNet FCNs (buildFCNResNet, build_resnet_v1b/v1s) against a PyTorch model with
torchvision's exact structure and keys (tests/reference/torch_resnet.py), Gluon-CV's
``.params`` layout, NumPy resizing and the published parameter counts."""

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest

from fcn8_lasagne.compile import function
from fcn8_lasagne.layers import (
    BatchNormLayer,
    InputLayer,
    PaddedDilatedConv2DLayer,
    Pool2DLayer,
    count_params,
    get_output,
    get_output_shape,
)
from fcn8_lasagne.models.fcn_resnet import buildFCNResNet, fcn_resnet_output_layers
from fcn8_lasagne.models.resnet import (
    build_resnet_v1b,
    build_resnet_v1s,
    stage_output_names,
)
from fcn8_lasagne.weights.fcn_resnet import load_fcn_resnet
from fcn8_lasagne.weights.mxnet_params import write_mxnet_params
from tests.conftest import FAST_MODE
from tests.reference import resize as resize_reference

# Full-size networks: one such module at a time (pytest.ini: --dist loadgroup), so that
# two of them never share the machine's 24 GB.
pytestmark = pytest.mark.xdist_group("large_memory")

SIZES = [(65, 79), (64, 64)]


@pytest.mark.parametrize("variant, backbone, expected", [
    ("torchvision", "resnet50", 35_322_218),
    ("torchvision", "resnet101", 54_314_346),
    ("gluoncv", "resnet50", 35_445_994),
    ("gluoncv", "resnet101", 54_438_122),
])
def test_parameter_counts_match_the_published_ones(variant, backbone, expected):
    net = buildFCNResNet(3, pt.tensor4("x"), 21, backbone, variant)
    assert count_params(fcn_resnet_output_layers(net), trainable=True) == expected


def test_stems_names_and_dilations():
    v1b = build_resnet_v1b(3, None, 50)
    v1s = build_resnet_v1s(3, None, 50)
    assert list(v1b)[:5] == ["input", "conv1", "bn1", "relu", "maxpool"]
    assert list(v1s)[:11] == ["input", "conv1.0", "conv1.1", "conv1.2", "conv1.3", "conv1.4",
                              "conv1.5", "conv1.6", "bn1", "relu", "maxpool"]
    assert v1b["conv1"].W.get_value().shape == (64, 3, 7, 7) and v1b["conv1"].pad == (3, 3)
    assert v1s["conv1.6"].W.get_value().shape == (128, 64, 3, 3)
    assert v1s["layer1.0.downsample.0"].W.get_value().shape == (256, 128, 1, 1)
    assert v1b["layer1.0.downsample.0"].W.get_value().shape == (256, 64, 1, 1)
    for net in (v1b, v1s):
        assert all(getattr(layer, "b", None) is None for layer in net.values())
        assert all(not getattr(layer, "flip_filters", False) for layer in net.values())
        bns = [layer for layer in net.values() if isinstance(layer, BatchNormLayer)]
        assert {(bn.epsilon, bn.alpha) for bn in bns} == {(1e-5, 0.1)}
        pool = net["maxpool"]
        assert isinstance(pool, Pool2DLayer) and (pool.pool_size, pool.stride, pool.pad) \
            == ((3, 3), (2, 2), (1, 1))
        # the stride is on the 3x3 convolution; layer3/4 dilate 2/4 with first blocks 1/2
        assert net["layer2.0.conv2"].stride == (2, 2) and net["layer2.0.conv1"].stride == (1, 1)
        expected = {"layer3.0": (1, 1), "layer3.1": (2, 2), "layer3.5": (2, 2),
                    "layer4.0": (2, 2), "layer4.1": (4, 4), "layer2.0": (1, 1)}
        for block, dilation in expected.items():
            conv = net[f"{block}.conv2"]
            assert getattr(conv, "filter_dilation", (1, 1)) == dilation
            assert conv.pad == dilation
            assert conv.stride == (1, 1) or block == "layer2.0"
        assert net["layer3.0.downsample.0"].stride == (1, 1)
        assert isinstance(net["layer4.1.conv2"], PaddedDilatedConv2DLayer)


def _stage_shapes(net, hw, depth=50):
    stages = stage_output_names(depth)
    names = list(stages.values())
    shapes = get_output_shape([net[n] for n in names], {net["input"]: (2, 3, *hw)})
    return dict(zip(stages, shapes))


def test_output_stride_8_and_32():
    dilated = _stage_shapes(build_resnet_v1s(3, None, 50), (480, 480))
    assert dilated["stem"] == (2, 128, 120, 120)
    assert [dilated[f"layer{i}"][1:] for i in range(1, 5)] == [
        (256, 120, 120), (512, 60, 60), (1024, 60, 60), (2048, 60, 60)]
    plain = _stage_shapes(build_resnet_v1b(3, None, 50, dilated=False), (65, 79))
    assert [plain[f"layer{i}"][2:] for i in range(1, 5)] == [(17, 20), (9, 10), (5, 5), (3, 3)]


def test_heads_outputs_and_probs_shapes():
    x = pt.tensor4("x")
    for variant, main, aux in [("gluoncv", "head.block", "auxlayer.block"),
                               ("torchvision", "classifier", "aux_classifier")]:
        net = buildFCNResNet(3, x, 5, variant=variant)
        assert net[f"{main}.0"].W.get_value().shape == (512, 2048, 3, 3)
        assert net[f"{main}.0"].b is None and net[f"{main}.4"].b.get_value().shape == (5,)
        assert net[f"{aux}.0"].W.get_value().shape == (256, 1024, 3, 3)
        assert net[f"{main}.3"].p == 0.1
        assert net["out"].align_corners is (variant == "gluoncv")
        shapes = get_output_shape([net["out"], net["aux"], net["probs"]],
                                  {net["input"]: (2, 3, 65, 79)})
        assert shapes[:2] == [(2, 5, 65, 79)] * 2
    no_aux = buildFCNResNet(3, x, 5, aux=False)
    assert "aux" not in no_aux and "auxlayer.block.0" not in no_aux


def test_skip_fusion_shapes_and_centre_crops():
    net = buildFCNResNet(3, pt.tensor4("x"), 4, variant="torchvision", skip=True)
    assert not isinstance(net["layer4.1.conv2"], PaddedDilatedConv2DLayer)
    names = ["classifier.4", "score_c3", "up_to_c3", "fuse_c3", "score_c2", "up_to_c2",
             "fuse_c2", "out"]
    shapes = get_output_shape([net[n] for n in names], {net["input"]: (1, 3, 65, 79)})
    got = {n: s[2:] for n, s in zip(names, shapes)}
    assert got == {"classifier.4": (3, 3), "score_c3": (5, 5), "up_to_c3": (6, 6),
                   "fuse_c3": (5, 5), "score_c2": (9, 10), "up_to_c2": (10, 10),
                   "fuse_c2": (9, 10), "out": (65, 79)}
    with pytest.raises(ValueError, match="dilated=False"):
        buildFCNResNet(3, None, 4, skip=True, dilated=True)
    with pytest.raises(ValueError, match="variant"):
        buildFCNResNet(3, None, 4, variant="mxnet")
    with pytest.raises(ValueError, match="backbone"):
        buildFCNResNet(3, None, 4, backbone="resnet18")


def test_maxpool_padding_equals_torch_minus_infinity(rng):
    torch = pytest.importorskip("torch")
    x = pt.tensor4("x")
    pool = Pool2DLayer(InputLayer((None, 2, None, None), x), 3, stride=2, pad=1, mode="max")
    f = pytensor.function([x], get_output(pool), mode=FAST_MODE)
    for value in (rng.standard_normal((2, 2, 9, 8)).astype("float32") - 3,  # all < 0
                  np.maximum(rng.standard_normal((1, 2, 7, 7)), 0).astype("float32")):
        expected = torch.nn.functional.max_pool2d(torch.from_numpy(value), 3, 2, 1).numpy()
        np.testing.assert_array_equal(f(value), expected)


# ---- numerical comparisons against the PyTorch reference ---------------------------------

STAGE_TO_LAYER = {"head": "{main}.4", "out": "out", "auxhead": "{aux}.4", "aux": "aux"}


def _compare_names(depth, variant):
    main, aux = (("head.block", "auxlayer.block") if variant == "gluoncv"
                 else ("classifier", "aux_classifier"))
    names = dict(stage_output_names(depth))
    names.update({k: v.format(main=main, aux=aux) for k, v in STAGE_TO_LAYER.items()})
    return names


def _reference_model(depth, variant, seed):
    torch = pytest.importorskip("torch")
    from tests.reference import torch_resnet

    torch.manual_seed(seed)
    model = torch_resnet.FCN(depth, num_classes=5, deep_stem=variant == "gluoncv",
                             align_corners=variant == "gluoncv")
    torch_resnet.randomize_batch_norm(model, torch.Generator().manual_seed(seed))
    return model.eval()


def _assert_stages_close(ours, model, image, names):
    torch = pytest.importorskip("torch")
    with torch.no_grad():
        expected = model.forward_stages(torch.from_numpy(image))
    for (stage, layer), value in zip(names.items(), ours):
        want = expected[stage].numpy()
        assert np.shape(value) == want.shape, (stage, layer)
        error = np.abs(np.asarray(value) - want).max() / np.abs(want).max()
        assert error <= 1e-4, f"{stage} ({layer}): relative error {error:.2e}"


class _Compared:
    """One network, its reference and a compiled function of every named stage."""

    def __init__(self, depth, variant, device="cpu", seed=0):
        pytest.importorskip("torch")
        from tests.reference import torch_resnet

        self.model = _reference_model(depth, variant, seed)
        self.x = pt.tensor4("x")
        self.net = buildFCNResNet(3, self.x, 5, f"resnet{depth}", variant)
        self.names = _compare_names(depth, variant)
        self.torch_resnet = torch_resnet
        self.depth, self.variant, self.device = depth, variant, device

    def compile(self):
        layers = [self.net[n] for n in self.names.values()] + [self.net["probs_dimshuffle"]]
        outputs = get_output(layers, deterministic=True)
        mode = "CVM" if self.device == "cpu" else None
        self.f = function([self.x], outputs, device=self.device, mode=mode)
        return self

    def check(self, hw, seed=1):
        image = np.random.default_rng(seed).standard_normal((1, 3, *hw)).astype("float32")
        *outs, probs = self.f(image)
        _assert_stages_close(outs, self.model, image, self.names)
        out = np.asarray(outs[list(self.names).index("out")], np.float64)
        softmax = np.exp(out - out.max(axis=1, keepdims=True))
        softmax /= softmax.sum(axis=1, keepdims=True)
        np.testing.assert_allclose(probs, softmax, rtol=1e-4, atol=1e-6)  # the probs head
        return image, outs


@pytest.fixture(scope="module")
def torchvision_r50():
    compared = _Compared(50, "torchvision")
    state = compared.torch_resnet.state_arrays(compared.model)
    assert len(state) == 334  # with num_batches_tracked
    assert len(load_fcn_resnet(compared.net, state)) == 279
    return compared.compile()


@pytest.mark.parametrize("hw", SIZES)
def test_torchvision_r50_every_stage_matches_torch_c_backend(torchvision_r50, hw):
    torchvision_r50.check(hw)


@pytest.mark.slow
def test_torchvision_r50_jax_matches_torch():
    pytest.importorskip("jax")
    compared = _Compared(50, "torchvision", device="jax")
    load_fcn_resnet(compared.net, compared.torch_resnet.state_arrays(compared.model))
    compared.compile()
    for hw in SIZES:
        compared.check(hw)


def test_gluoncv_params_file_matches_torch_with_align_corners(tmp_path):
    """A V1s model saved under Gluon-CV's keys in MXNet's layout loads and matches, and its
    resize is MXNet's BilinearResize2D (align_corners=True, checked in NumPy)."""
    compared = _Compared(50, "gluoncv")
    arrays = compared.torch_resnet.gluon_keys(compared.model)
    assert len(arrays) == 289
    assert {"conv1.0.weight", "conv1.4.running_var", "bn1.beta", "layer1.0.downsample.1.gamma",
            "head.block.4.bias", "auxlayer.block.0.weight"} <= set(arrays)
    path = tmp_path / "fcn_resnet50_voc.params"
    write_mxnet_params(path, arrays)
    assert len(load_fcn_resnet(compared.net, path)) == 289
    compared.compile()
    image, outs = compared.check((65, 79))
    names = list(compared.names)
    head, out = outs[names.index("head")], outs[names.index("out")]
    expected = resize_reference.bilinear_resize(np.asarray(head, np.float64), (65, 79), True)
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())


@pytest.mark.slow
def test_torchvision_r101_every_stage_matches_torch():
    compared = _Compared(101, "torchvision")
    load_fcn_resnet(compared.net, compared.torch_resnet.state_arrays(compared.model))
    compared.compile().check((64, 64))


@pytest.mark.slow
def test_training_step_gradients_and_running_averages_match_torch():
    """Training mode: batch statistics in both (biased variance), gradients of a few
    parameters (against torch in float64), and the running mean; Lasagne averages inv_std
    where torch averages the unbiased variance (docs/fcn-resnet.md), checked from torch's
    own update."""
    torch = pytest.importorskip("torch")
    model = _reference_model(50, "torchvision", seed=3).train()
    model.classifier[3].p = model.aux_classifier[3].p = 0.0
    x = pt.tensor4("x")
    net = buildFCNResNet(3, x, 5, "resnet50", "torchvision", dropout=0.0)
    from tests.reference import torch_resnet

    load_fcn_resnet(net, torch_resnet.state_arrays(model))
    old_inv_std = net["bn1"].inv_std.get_value().copy()
    rng = np.random.default_rng(4)
    image = rng.standard_normal((2, 3, 33, 41)).astype("float32")
    weights = [rng.standard_normal((2, 5, 33, 41)).astype("float32") for _ in range(2)]
    r_out, r_aux = pt.tensor4("r_out"), pt.tensor4("r_aux")
    out, aux = get_output([net["out"], net["aux"]])
    loss = (out * r_out).sum() + 0.5 * (aux * r_aux).sum()
    checked = [("conv1", "W", "backbone.conv1.weight"),
               ("bn1", "gamma", "backbone.bn1.weight"),
               ("layer3.1.conv2", "W", "backbone.layer3.1.conv2.weight"),
               ("layer4.2.bn3", "beta", "backbone.layer4.2.bn3.bias"),
               ("classifier.4", "b", "classifier.4.bias"),
               ("aux_classifier.0", "W", "aux_classifier.0.weight")]
    params = [getattr(net[layer], attr) for layer, attr, _ in checked]
    # the loss is an output too, so the running averages' default updates run
    f = function([x, r_out, r_aux], [loss] + pytensor.grad(loss, params), mode="CVM")
    grads = f(image, *weights)[1:]
    # Training-mode BN makes these sums of large cancelling terms: torch's own float32
    # gradients are 1e-2 off its float64 ones. Ours must be about as close
    # to float64 as torch's.
    import copy

    truth = {}
    for dtype, copy_of in ((torch.float64, copy.deepcopy(model).double()),
                           (torch.float32, model)):
        result = copy_of(torch.from_numpy(image).to(dtype))
        terms = [(result[k] * torch.from_numpy(w).to(dtype)).sum() for k, w
                 in zip(("out", "aux"), weights)]
        (terms[0] + 0.5 * terms[1]).backward()
        named = dict(copy_of.named_parameters())
        truth[dtype] = [named[key].grad.double().numpy() for _, _, key in checked]
    for (layer, attr, _), grad, want, torch32 in zip(checked, grads, truth[torch.float64],
                                                     truth[torch.float32]):
        scale = np.abs(want).max()
        error = np.abs(grad - want).max() / scale
        torch_error = np.abs(torch32 - want).max() / scale
        assert error <= max(3 * torch_error, 1e-4), (
            f"{layer}.{attr}: relative gradient error {error:.2e} (torch float32: "
            f"{torch_error:.2e})")
    bn = model.backbone.bn1
    np.testing.assert_allclose(net["bn1"].mean.get_value(), bn.running_mean.numpy(),
                               rtol=1e-5, atol=1e-6)
    n = 2 * 17 * 21  # samples per channel at bn1
    old_var = 1 / old_inv_std.astype(np.float64) ** 2 - 1e-5
    unbiased = (bn.running_var.numpy() - 0.9 * old_var) / 0.1
    batch_inv_std = 1 / np.sqrt(unbiased * (n - 1) / n + 1e-5)
    np.testing.assert_allclose(net["bn1"].inv_std.get_value(),
                               0.9 * old_inv_std + 0.1 * batch_inv_std, rtol=1e-4)
