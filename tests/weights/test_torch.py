"""PyTorch state dicts: torchvision vgg16 and pytorch-fcn FCN8s/16s/32s."""

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest

from fcn8_lasagne.layers import InputLayer, TransposedConv2DLayer, get_output
from fcn8_lasagne.models.caffe_fcn import buildFCN8s_caffe
from fcn8_lasagne.nonlinearities import linear
from fcn8_lasagne.weights.assign import WeightLoadError
from fcn8_lasagne.weights.torch_state import load_torch

from ._tiny_nets import (
    BLOCK_OF,
    CONV_NAMES,
    TINY_WIDTHS,
    assert_unchanged,
    distinct,
    param_layers,
    snapshot,
    tiny_tutorial_fcn,
)

torch = pytest.importorskip("torch")

N_CLASSES = 3
FEATURE_INDICES = (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)


def tensor(shape, index):
    return torch.from_numpy(distinct(shape, index))


def torchvision_vgg16_state(widths=TINY_WIDTHS, n_imagenet=10):
    """Keys and layouts of torchvision's ``vgg16().state_dict()`` with small widths."""
    state = {}
    channels = 3
    for index, (feature, name) in enumerate(zip(FEATURE_INDICES, CONV_NAMES)):
        width = widths[BLOCK_OF[name]]
        state[f"features.{feature}.weight"] = tensor((width, channels, 3, 3), index)
        state[f"features.{feature}.bias"] = tensor((width,), index + 50)
        channels = width
    linear_shapes = {0: (widths[5], channels * 49), 3: (widths[5], widths[5]),
                     6: (n_imagenet, widths[5])}
    for index, (position, shape) in enumerate(linear_shapes.items(), start=20):
        state[f"classifier.{position}.weight"] = tensor(shape, index)
        state[f"classifier.{position}.bias"] = tensor(shape[:1], index + 50)
    return state


def pytorch_fcn_state(kind="fcn8s", n_classes=N_CLASSES, widths=TINY_WIDTHS):
    """Keys and layouts of pytorch-fcn's FCN8s / FCN16s / FCN32s ``state_dict()``."""
    state = {}
    channels = 3
    for index, name in enumerate(CONV_NAMES):
        width = widths[BLOCK_OF[name]]
        state[f"{name}.weight"] = tensor((width, channels, 3, 3), index)
        state[f"{name}.bias"] = tensor((width,), index + 50)
        channels = width
    convs = {"fc6": (widths[5], widths[4], 7, 7), "fc7": (widths[5], widths[5], 1, 1),
             "score_fr": (n_classes, widths[5], 1, 1)}
    deconvs = {"fcn32s": {"upscore": 64}, "fcn16s": {"upscore2": 4, "upscore16": 32},
               "fcn8s": {"upscore2": 4, "upscore8": 16, "upscore_pool4": 4}}[kind]
    if kind != "fcn32s":
        convs["score_pool4"] = (n_classes, widths[3], 1, 1)
    if kind == "fcn8s":
        convs["score_pool3"] = (n_classes, widths[2], 1, 1)
    for index, (name, shape) in enumerate(convs.items(), start=20):
        state[f"{name}.weight"] = tensor(shape, index)
        state[f"{name}.bias"] = tensor(shape[:1], index + 50)
    for index, (name, size) in enumerate(deconvs.items(), start=30):
        state[f"{name}.weight"] = tensor((n_classes, n_classes, size, size), index)
    return state


def test_torchvision_vgg16_places_every_array(tmp_path):
    state = torchvision_vgg16_state()
    path = tmp_path / "vgg16.pth"
    torch.save(state, path)
    net = tiny_tutorial_fcn("fcn8", n_classes=N_CLASSES)
    before = snapshot(net)
    loaded = load_torch(net, path)
    assert loaded == list(CONV_NAMES) + ["fc6", "fc7"]
    for feature, name in zip(FEATURE_INDICES, CONV_NAMES):
        np.testing.assert_array_equal(net[name].W.get_value(),
                                      state[f"features.{feature}.weight"].numpy())
        np.testing.assert_array_equal(net[name].b.get_value(),
                                      state[f"features.{feature}.bias"].numpy())
    fc6 = net["fc6"].W.get_value()
    linear6 = state["classifier.0.weight"].numpy()
    assert fc6.shape == (7, 6, 7, 7)
    for o, c, i, j in [(0, 0, 0, 0), (2, 5, 3, 6), (6, 1, 6, 0)]:
        assert fc6[o, c, i, j] == linear6[o, c * 49 + i * 7 + j]
    # as a computation: Linear on the flattened pool5 equals the 7x7 valid convolution
    pool5 = torch.randn(1, 6, 7, 7, dtype=torch.float64)
    expected = torch.nn.functional.linear(pool5.flatten(1), torch.from_numpy(linear6).double())
    got = torch.nn.functional.conv2d(pool5, torch.from_numpy(fc6).double())
    np.testing.assert_allclose(got.flatten().numpy(), expected.flatten().numpy(), rtol=1e-10)
    np.testing.assert_array_equal(net["fc7"].W.get_value()[:, :, 0, 0],
                                  state["classifier.3.weight"].numpy())
    after = snapshot(net)
    for name in ("score_fr", "score2", "score_pool4", "score4", "score_pool3", "upsample"):
        for old, new in zip(before[name], after[name]):
            np.testing.assert_array_equal(old, new, err_msg=name)


@pytest.mark.parametrize(
    "kind, tutorial, renames",
    [
        ("fcn8s", "fcn8", {"upscore2": "score2", "upscore_pool4": "score4",
                           "upscore8": "upsample"}),
        ("fcn16s", "fcn16", {"upscore2": "score2", "upscore16": "upsample"}),
        ("fcn32s", "fcn32", {"upscore": "upsample"}),
    ],
)
def test_pytorch_fcn_into_tutorial_names(tmp_path, kind, tutorial, renames):
    state = pytorch_fcn_state(kind)
    path = tmp_path / f"{kind}_from_caffe.pth"
    torch.save(state, path)
    net = tiny_tutorial_fcn(tutorial, n_classes=N_CLASSES)
    deconvolution = net["score2" if "score2" in net else "upsample"]
    deconvolution.b.set_value(np.ones(N_CLASSES, deconvolution.b.dtype))
    loaded = load_torch(net, path)
    assert sorted(loaded) == sorted(param_layers(net))
    for name in param_layers(net):
        source = next((k for k, v in renames.items() if v == name), name)
        weight = state[f"{source}.weight"].numpy()
        if source in renames:  # bias-free ConvTranspose2d: rotated kernel, zero bias
            np.testing.assert_array_equal(net[name].W.get_value(), weight[:, :, ::-1, ::-1])
            np.testing.assert_array_equal(net[name].b.get_value(), np.zeros(N_CLASSES))
        else:
            np.testing.assert_array_equal(net[name].W.get_value(), weight, err_msg=name)
            np.testing.assert_array_equal(net[name].b.get_value(),
                                          state[f"{source}.bias"].numpy())


def test_loaded_deconvolution_computes_conv_transpose2d():
    kernel = torch.randn(3, 2, 4, 4, dtype=torch.float64)
    x = torch.randn(1, 3, 5, 6, dtype=torch.float64)
    expected = torch.nn.functional.conv_transpose2d(x, kernel, stride=2)
    input_var = pt.tensor4("x")
    net = {"input": InputLayer((None, 3, 5, 6), input_var)}
    net["up"] = TransposedConv2DLayer(net["input"], 2, 4, stride=2, b=None,
                                      nonlinearity=linear)
    load_torch(net, {"up.weight": kernel})
    compute = pytensor.function([input_var], get_output(net["up"]), mode="FAST_COMPILE")
    got = compute(x.numpy().astype(net["up"].W.dtype))
    np.testing.assert_allclose(got, expected.numpy(), rtol=0, atol=1e-5)


def test_pytorch_fcn_into_caffe_semantics_net():
    state = pytorch_fcn_state("fcn8s")
    net = buildFCN8s_caffe(3, None, n_classes=N_CLASSES, widths=TINY_WIDTHS)
    load_torch(net, state)
    np.testing.assert_array_equal(net["upscore_pool4"].W.get_value(),
                                  state["upscore_pool4.weight"].numpy()[:, :, ::-1, ::-1])
    assert net["upscore8"].b is None
    np.testing.assert_array_equal(net["score_pool3"].W.get_value(),
                                  state["score_pool3.weight"].numpy())


def test_checkpoint_dict_and_data_parallel_prefix(tmp_path):
    state = {f"module.{key}": value for key, value in pytorch_fcn_state("fcn32s").items()}
    path = tmp_path / "checkpoint.pth.tar"
    torch.save({"epoch": 3, "model_state_dict": state, "optim_state_dict": {}}, path)
    net = tiny_tutorial_fcn("fcn32", n_classes=N_CLASSES)
    load_torch(net, path)
    np.testing.assert_array_equal(net["fc7"].W.get_value(),
                                  state["module.fc7.weight"].numpy())


def test_exclude_takes_only_the_body():
    state = pytorch_fcn_state("fcn8s", n_classes=21)
    net = tiny_tutorial_fcn("fcn8", n_classes=N_CLASSES)
    loaded = load_torch(net, state, exclude=("score", "upscore"))
    assert loaded == list(CONV_NAMES) + ["fc6", "fc7"]


def test_shape_mismatch_changes_nothing(tmp_path):
    state = pytorch_fcn_state("fcn8s", n_classes=21)
    path = tmp_path / "fcn8s_21.pth"
    torch.save(state, path)
    net = tiny_tutorial_fcn("fcn8", n_classes=N_CLASSES)
    before = snapshot(net)
    with pytest.raises(WeightLoadError) as error:
        load_torch(net, path)
    message = str(error.value)
    assert str(path) in message and "'score_fr'" in message
    assert "(3, 7, 1, 1)" in message and "(21, 7, 1, 1)" in message
    assert_unchanged(net, before)


def test_nonzero_bias_for_bias_free_layer_is_refused():
    state = pytorch_fcn_state("fcn8s")
    state["upscore8.bias"] = torch.ones(N_CLASSES)
    net = buildFCN8s_caffe(3, None, n_classes=N_CLASSES, widths=TINY_WIDTHS)
    before = snapshot(net)
    with pytest.raises(WeightLoadError, match="'upscore8' has no bias"):
        load_torch(net, state)
    assert_unchanged(net, before)


def test_unknown_module_and_layouts():
    net = tiny_tutorial_fcn("fcn8", n_classes=N_CLASSES)
    before = snapshot(net)
    state = pytorch_fcn_state("fcn8s")
    state["aux_head.weight"] = torch.zeros(2, 2, 1, 1)
    with pytest.raises(WeightLoadError, match="<state dict>: layer 'aux_head' is not in"):
        load_torch(net, state)
    with pytest.raises(WeightLoadError, match="layer 'encoder.0' is not in the network"):
        load_torch(net, {"encoder.0.weight": torch.zeros(2)})
    batchnorm = torchvision_vgg16_state()
    batchnorm["features.1.running_mean"] = torch.zeros(2)
    with pytest.raises(WeightLoadError, match="vgg16_bn"):
        load_torch(net, batchnorm)
    assert_unchanged(net, before)
    assert "aux_head" not in load_torch(net, state, strict=False)


def test_truncated_file(tmp_path):
    path = tmp_path / "truncated.pth"
    torch.save(pytorch_fcn_state("fcn32s"), path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    net = tiny_tutorial_fcn("fcn32", n_classes=N_CLASSES)
    before = snapshot(net)
    with pytest.raises(WeightLoadError, match=str(path)):
        load_torch(net, path)
    assert_unchanged(net, before)


class _NotATensor:
    pass


def test_arbitrary_objects_are_not_unpickled(tmp_path):
    path = tmp_path / "object.pth"
    torch.save({"conv1_1.weight": _NotATensor()}, path)
    with pytest.raises(WeightLoadError, match="not loaded: it holds Python objects") as error:
        load_torch(tiny_tutorial_fcn(), path)
    assert "weights_only" not in str(error.value)  # torch's advice would run the file's code


def test_linear_weights_into_a_dense_layer_are_transposed():
    from fcn8_lasagne.layers import DenseLayer

    net = {"input": InputLayer((None, 5))}
    net["classifier"] = DenseLayer(net["input"], 3)
    weight = torch.from_numpy(distinct((3, 5), 1))  # torch.nn.Linear: (out, in)
    load_torch(net, {"classifier.weight": weight, "classifier.bias": torch.ones(3)})
    np.testing.assert_array_equal(net["classifier"].W.get_value(), weight.numpy().T)
    with pytest.raises(WeightLoadError, match=r"expected shape \(3, 5\), got \(5, 3\)"):
        load_torch(net, {"classifier.weight": weight.T})
