"""Dilated-ResNet FCNs (buildFCNResNet, build_resnet_v1b/v1s) against torchvision's
``fcn_resnet50`` / ``fcn_resnet101`` (random weights, every stage, eval and training),
Gluon-CV's ``.params`` layout (torchvision's modules given the V1s deep stem), NumPy resizing
and the published parameter counts."""

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
from fcn8_lasagne.weights.fcn_resnet import fcn_resnet_keys, load_fcn_resnet
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


# ---- numerical comparisons against torchvision -------------------------------------------

N_CLASSES = 5
IGNORE_INDEX = 255
STAGE_TO_LAYER = {"head": "{main}.4", "out": "out", "auxhead": "{aux}.4", "aux": "aux"}


def _compare_names(depth, variant):
    """Stage -> our layer: stem, layer1-4, head, out, auxhead, aux."""
    main, aux = (("head.block", "auxlayer.block") if variant == "gluoncv"
                 else ("classifier", "aux_classifier"))
    names = dict(stage_output_names(depth))
    names.update({k: v.format(main=main, aux=aux) for k, v in STAGE_TO_LAYER.items()})
    return names


def _randomize_batch_norm(model, seed):
    """Non-trivial BN: running means/vars and affine parameters drawn at random."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                n = module.num_features
                module.running_mean.copy_(torch.randn(n, generator=generator) * 0.1)
                module.running_var.copy_(torch.rand(n, generator=generator) * 0.5 + 0.75)
                module.weight.copy_(torch.rand(n, generator=generator) * 0.5 + 0.75)
                module.bias.copy_(torch.randn(n, generator=generator) * 0.1)
                module.num_batches_tracked.fill_(7)


def _give_deep_stem(model):
    """Gluon-CV's V1s body from torchvision's modules: the stem three 3x3 convolutions
    (64/64/128, the first with stride 2), ``bn1`` of 128 channels, layer1.0 reading 128."""
    from torch import nn

    backbone = model.backbone
    backbone.conv1 = nn.Sequential(
        nn.Conv2d(3, 64, 3, 2, 1, bias=False), nn.BatchNorm2d(64), nn.ReLU(),
        nn.Conv2d(64, 64, 3, 1, 1, bias=False), nn.BatchNorm2d(64), nn.ReLU(),
        nn.Conv2d(64, 128, 3, 1, 1, bias=False))
    backbone.bn1 = nn.BatchNorm2d(128)
    backbone.layer1[0].conv1 = nn.Conv2d(128, 64, 1, bias=False)
    backbone.layer1[0].downsample[0] = nn.Conv2d(128, 256, 1, bias=False)


def _torchvision_fcn(depth, seed, deep_stem=False):
    """``torchvision.models.segmentation.fcn_resnet{depth}`` with random weights, eval mode."""
    torch = pytest.importorskip("torch")
    segmentation = pytest.importorskip("torchvision.models.segmentation")
    torch.manual_seed(seed)
    model = getattr(segmentation, f"fcn_resnet{depth}")(
        weights=None, weights_backbone=None, aux_loss=True, num_classes=N_CLASSES)
    if deep_stem:
        _give_deep_stem(model)
    _randomize_batch_norm(model, seed)
    return model.eval()


def _state_arrays(model):
    return {k: v.detach().numpy().copy() for k, v in model.state_dict().items()}


_GLUON_BN = {"weight": "gamma", "bias": "beta", "running_mean": "running_mean",
             "running_var": "running_var"}


def _gluon_keys(model):
    """A deep-stem model's state dict under Gluon-CV's ``FCN`` names (written from
    docs/gluoncv-fcn.md: no ``backbone.``, ``head.block`` / ``auxlayer.block``, BN
    gamma / beta, no batch counters)."""
    import torch

    batch_norms = {name for name, m in model.named_modules()
                   if isinstance(m, torch.nn.BatchNorm2d)}
    arrays = {}
    for key, value in _state_arrays(model).items():
        module, _, kind = key.rpartition(".")
        if kind == "num_batches_tracked":
            continue
        kind = _GLUON_BN[kind] if module in batch_norms else kind
        module = module.removeprefix("backbone.")
        for theirs, gluon in (("aux_classifier.", "auxlayer.block."),
                              ("classifier.", "head.block.")):
            if module.startswith(theirs):
                module = gluon + module[len(theirs):]
        arrays[f"{module}.{kind}"] = value.astype(np.float32)
    return arrays


def _torch_stages(model, image, align_corners=False):
    """Every stage of torchvision's own forward (forward hooks on the modules); with
    ``align_corners=True`` the two outputs are resized from the heads as MXNet does."""
    import torch
    import torch.nn.functional as F

    backbone = model.backbone
    modules = {"stem": backbone.maxpool, "layer1": backbone.layer1, "layer2": backbone.layer2,
               "layer3": backbone.layer3, "layer4": backbone.layer4,
               "head": model.classifier, "auxhead": model.aux_classifier}
    stages = {}
    hooks = [module.register_forward_hook(
        lambda _m, _i, output, name=name: stages.__setitem__(name, output.detach().clone()))
        for name, module in modules.items()]
    try:
        with torch.no_grad():
            result = model(torch.from_numpy(image))
    finally:
        for hook in hooks:
            hook.remove()
    stages["out"], stages["aux"] = result["out"], result["aux"]
    if align_corners:
        for head, name in (("head", "out"), ("auxhead", "aux")):
            stages[name] = F.interpolate(stages[head], size=image.shape[-2:], mode="bilinear",
                                         align_corners=True)
    return {name: value.numpy() for name, value in stages.items()}


class _Compared:
    """A torchvision model, our network with its weights and a compiled function of every
    named stage (and the probs head)."""

    def __init__(self, depth, variant="torchvision", device="cpu", seed=0,
                 dtype="float32"):
        self.model = _torchvision_fcn(depth, seed, deep_stem=variant == "gluoncv")
        self.variant, self.device, self.dtype = variant, device, dtype
        self.names = _compare_names(depth, variant)
        with pytensor.config.change_flags(floatX=dtype):
            self.x = pt.tensor4("x", dtype=dtype)
            self.net = buildFCNResNet(3, self.x, N_CLASSES, f"resnet{depth}", variant)
        if dtype == "float64":
            self.model.double()

    def load(self):
        state = (_gluon_keys(self.model) if self.variant == "gluoncv"
                 else _state_arrays(self.model))
        return load_fcn_resnet(self.net, state)

    def compile(self):
        layers = [self.net[n] for n in self.names.values()] + [self.net["probs_dimshuffle"]]
        with pytensor.config.change_flags(floatX=self.dtype):
            outputs = get_output(layers, deterministic=True)
            mode = "CVM" if self.device == "cpu" else None
            self.f = function([self.x], outputs, device=self.device, mode=mode)
        return self

    def check(self, hw, tolerance=1e-4, seed=1):
        """Every stage within ``tolerance`` of its largest value; returns the outputs."""
        image = np.random.default_rng(seed).standard_normal((1, 3, *hw)).astype(self.dtype)
        *outs, probs = self.f(image)
        expected = _torch_stages(self.model, image, align_corners=self.variant == "gluoncv")
        for (stage, layer), value in zip(self.names.items(), outs):
            want = expected[stage]
            assert np.shape(value) == want.shape, (stage, layer)
            assert np.asarray(value).dtype == self.dtype, (stage, layer)
            error = np.abs(np.asarray(value) - want).max() / np.abs(want).max()
            assert error <= tolerance, f"{stage} ({layer}) at {hw}: relative error {error:.2e}"
        out = np.asarray(outs[list(self.names).index("out")], np.float64)
        softmax = np.exp(out - out.max(axis=1, keepdims=True))
        softmax /= softmax.sum(axis=1, keepdims=True)
        np.testing.assert_allclose(probs, softmax, rtol=1e-4, atol=1e-6)  # the probs head
        return dict(zip(self.names, outs))


@pytest.fixture(scope="module")
def torchvision_r50():
    compared = _Compared(50)
    assert len(compared.model.state_dict()) == 334  # with num_batches_tracked
    assert len(compared.load()) == 279
    return compared.compile()


@pytest.mark.parametrize("hw", SIZES)
def test_torchvision_r50_every_stage_matches_c_backend(torchvision_r50, hw):
    torchvision_r50.check(hw)


def test_torchvision_r101_every_stage_matches_on_tiny_inputs():
    compared = _Compared(101, seed=2)
    assert len(compared.model.state_dict()) == 640
    assert len(compared.load()) == 640 - 106  # 106 batch norms, each with a batch counter
    compared.compile()
    for hw in ((33, 27), (32, 32)):
        compared.check(hw)


@pytest.mark.slow
def test_torchvision_r50_float64_matches_tighter():
    compared = _Compared(50, dtype="float64", seed=4)
    compared.load()
    compared.compile()
    for hw in SIZES:
        compared.check(hw, tolerance=1e-10)


@pytest.mark.slow
@pytest.mark.parametrize("depth, sizes", [(50, SIZES), (101, [(33, 27), (32, 32)])])
def test_torchvision_jax_backend_matches(depth, sizes):
    pytest.importorskip("jax")
    compared = _Compared(depth, device="jax", seed=5)
    compared.load()
    compared.compile()
    for hw in sizes:
        compared.check(hw)


def test_gluoncv_params_file_matches_with_align_corners(tmp_path):
    """torchvision's modules given Gluon-CV's deep stem, saved under Gluon-CV's keys in
    MXNet's layout, load and match; the resize is MXNet's BilinearResize2D
    (align_corners=True, checked against torch and a per-pixel NumPy reference)."""
    compared = _Compared(50, variant="gluoncv", seed=6)
    arrays = _gluon_keys(compared.model)
    assert len(arrays) == 289
    assert {"conv1.0.weight", "conv1.4.running_var", "bn1.beta", "layer1.0.downsample.1.gamma",
            "head.block.4.bias", "auxlayer.block.0.weight"} <= set(arrays)
    path = tmp_path / "fcn_resnet50_voc.params"
    write_mxnet_params(path, arrays)
    assert len(load_fcn_resnet(compared.net, path)) == 289
    outs = compared.compile().check((65, 79))
    expected = resize_reference.bilinear_resize(np.asarray(outs["head"], np.float64),
                                                (65, 79), True)
    np.testing.assert_allclose(outs["out"], expected, rtol=1e-4,
                               atol=1e-4 * np.abs(expected).max())


def _cross_entropy(scores, y):
    """Mean cross-entropy of (B, C, H, W) scores over the pixels whose label is not
    IGNORE_INDEX (``F.cross_entropy(..., ignore_index=255)``)."""
    from pytensor.tensor.special import log_softmax

    flat = scores.dimshuffle(0, 2, 3, 1).reshape((-1, N_CLASSES))
    target = y.flatten()
    valid = pt.neq(target, IGNORE_INDEX)
    picked = log_softmax(flat, axis=1)[pt.arange(target.shape[0]), pt.switch(valid, target, 0)]
    return -(picked * valid).sum() / valid.sum()


@pytest.mark.slow
def test_training_step_gradients_and_running_averages_match_torch():
    """One training step in float64 (train-mode BN, dropout off, CE(out) + 0.5 CE(aux) with
    an ignore index): the loss and every parameter's gradient against torch autograd, and
    the running mean; Lasagne averages inv_std where torch averages the unbiased variance
    (docs/fcn-resnet.md), checked from torch's own update. Float64, because training-mode
    BN over a small batch makes the deep gradients sums of large cancelling terms: in
    float32 torch's own gradients are up to 5e-2 (of their largest value) off its float64
    ones."""
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    model = _torchvision_fcn(50, seed=3).train().double()
    model.classifier[3].p = model.aux_classifier[3].p = 0.0
    with pytensor.config.change_flags(floatX="float64"):
        x, y = pt.tensor4("x", dtype="float64"), pt.itensor3("y")
        net = buildFCNResNet(3, x, N_CLASSES, "resnet50", "torchvision", dropout=0.0)
        load_fcn_resnet(net, _state_arrays(model))
        keys = [(key, layer, attr) for key, (layer, attr) in fcn_resnet_keys(net).items()
                if attr in ("W", "b", "gamma", "beta")]
        params = [getattr(net[layer], attr) for _, layer, attr in keys]
        out, aux = get_output([net["out"], net["aux"]])
        loss = _cross_entropy(out, y) + 0.5 * _cross_entropy(aux, y)
        # the loss is an output, so the running averages' default updates run
        f = function([x, y], [loss] + pytensor.grad(loss, params), mode="CVM")
    old_inv_std = net["bn1"].inv_std.get_value().copy()
    rng = np.random.default_rng(4)
    image = rng.standard_normal((2, 3, 33, 41))
    labels = rng.integers(0, N_CLASSES, (2, 33, 41)).astype("int32")
    labels[rng.random(labels.shape) < 0.2] = IGNORE_INDEX
    our_loss, *grads = f(image, labels)

    result = model(torch.from_numpy(image))
    target = torch.from_numpy(labels.astype(np.int64))
    total = (F.cross_entropy(result["out"], target, ignore_index=IGNORE_INDEX)
             + 0.5 * F.cross_entropy(result["aux"], target, ignore_index=IGNORE_INDEX))
    total.backward()
    np.testing.assert_allclose(our_loss, total.item(), rtol=1e-10)
    named = dict(model.named_parameters())
    assert len(keys) == len(named)
    for (key, _, _), grad in zip(keys, grads):
        want = named[key].grad.numpy()
        error = np.abs(grad - want).max() / np.abs(want).max()
        assert error <= 1e-7, f"{key}: relative gradient error {error:.2e}"
    bn = model.backbone.bn1
    np.testing.assert_allclose(net["bn1"].mean.get_value(), bn.running_mean.detach().numpy(),
                               rtol=1e-10, atol=1e-12)
    n = 2 * 17 * 21  # samples per channel at bn1
    old_var = 1 / old_inv_std ** 2 - 1e-5
    unbiased = (bn.running_var.detach().numpy() - 0.9 * old_var) / 0.1
    batch_inv_std = 1 / np.sqrt(unbiased * (n - 1) / n + 1e-5)
    np.testing.assert_allclose(net["bn1"].inv_std.get_value(),
                               0.9 * old_inv_std + 0.1 * batch_inv_std, rtol=1e-9)
