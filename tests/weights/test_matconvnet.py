"""MatConvNet DagNN .mat files (the tutorial's pascal=True weights)."""

import numpy as np
import pytest
import scipy.io

from fcn8_lasagne.weights.assign import WeightLoadError
from fcn8_lasagne.weights.matconvnet import load_matconvnet, matconvnet_to_fcn

from ._tiny_nets import assert_unchanged, distinct, param_layers, snapshot, tiny_tutorial_fcn

N_CLASSES = 3
SKIPPED_BY_DEFAULT = ("score_fr", "score2", "score_pool4", "score4", "score_pool3", "upsample")


def layer_shapes(net):
    return {name: net[name].W.get_value().shape for name in param_layers(net)}


def dagnn_values(net):
    """For each layer: (our W, our b, MatConvNet filter, MatConvNet bias)."""
    values = {}
    for index, (name, shape) in enumerate(layer_shapes(net).items()):
        filters = distinct(shape, index)  # our layout before any rotation
        bias = distinct(shape[1] if name in ("score2", "score4", "upsample") else shape[0],
                        index + 50)
        # conv (out, in, kh, kw) -> (kh, kw, in, out); deconv (in, out, kh, kw) -> (kh, kw, out, in)
        mat_filter = np.transpose(filters, (2, 3, 1, 0))
        values[name] = (filters, bias, mat_filter, bias.reshape(-1, 1))
    return values


def write_dagnn(path, entries):
    """``entries``: list of (param name, value) written as the DagNN ``params`` struct."""
    params = np.zeros(
        (1, len(entries)),
        dtype=[("name", object), ("value", object), ("learningRate", object),
               ("weightDecay", object)],
    )
    for index, (name, value) in enumerate(entries):
        params[0, index]["name"] = name
        params[0, index]["value"] = value
        params[0, index]["learningRate"] = 1.0
        params[0, index]["weightDecay"] = 1.0
    scipy.io.savemat(path, {"params": params, "meta": {"normalization": "none"}})


def dagnn_entries(values, filter_suffix="f", bias_suffix="b"):
    entries = []
    for name, (_, _, mat_filter, mat_bias) in values.items():
        entries += [(name + filter_suffix, mat_filter), (name + bias_suffix, mat_bias)]
    return entries


@pytest.fixture
def net():
    return tiny_tutorial_fcn("fcn8", n_classes=N_CLASSES)


@pytest.mark.parametrize("suffixes", [("f", "b"), ("_filter", "_bias")])
def test_loads_the_body_and_skips_the_classifier(tmp_path, net, suffixes):
    values = dagnn_values(net)
    path = tmp_path / "pascal-fcn8s-tvg-dag.mat"
    write_dagnn(path, dagnn_entries(values, *suffixes))
    before = snapshot(net)
    loaded = load_matconvnet(net, path)
    assert loaded == [name for name in values if name not in SKIPPED_BY_DEFAULT]
    for name in loaded:
        filters, bias, mat_filter, _ = values[name]
        np.testing.assert_array_equal(net[name].W.get_value(), filters, err_msg=name)
        np.testing.assert_array_equal(net[name].b.get_value(), bias, err_msg=name)
        # the semantics, element by element: MatConvNet (h, w, in, out) is our [out, in, h, w]
        kh, kw, cin, cout = mat_filter.shape
        for h, w, c, o in [(0, 0, 0, 0), (kh - 1, 0, cin - 1, 0), (0, kw - 1, 0, cout - 1)]:
            assert net[name].W.get_value()[o, c, h, w] == mat_filter[h, w, c, o]
    after = snapshot(net)
    for name in SKIPPED_BY_DEFAULT:
        for old, new in zip(before[name], after[name]):
            np.testing.assert_array_equal(old, new, err_msg=name)


def test_skip_nothing_loads_scores_and_rotates_deconvolutions(tmp_path, net):
    values = dagnn_values(net)
    path = tmp_path / "all.mat"
    write_dagnn(path, dagnn_entries(values))
    load_matconvnet(net, path, skip=())
    for name in ("score_fr", "score_pool4", "score_pool3"):
        np.testing.assert_array_equal(net[name].W.get_value(), values[name][0])
    for name in ("score2", "score4", "upsample"):
        mat_filter = values[name][2]  # MatConvNet convt filter (kh, kw, out, in)
        loaded = net[name].W.get_value()  # ours: (in, out, kh, kw), flip_filters=False
        kh, kw, cout, cin = mat_filter.shape
        for h, w, o, c in [(0, 0, 0, 0), (1, 2, cout - 1, 0), (kh - 1, 0, 0, cin - 1)]:
            assert loaded[c, o, kh - 1 - h, kw - 1 - w] == mat_filter[h, w, o, c], name
        np.testing.assert_array_equal(net[name].b.get_value(), values[name][1])


def test_unknown_layer_is_an_error_and_changes_nothing(tmp_path, net):
    entries = dagnn_entries(dagnn_values(net))
    entries.append(("conv6_1f", np.zeros((3, 3, 2, 2), np.float32)))
    path = tmp_path / "unknown.mat"
    write_dagnn(path, entries)
    before = snapshot(net)
    with pytest.raises(WeightLoadError) as error:
        load_matconvnet(net, path)
    assert str(path) in str(error.value) and "'conv6_1'" in str(error.value)
    assert_unchanged(net, before)
    assert "conv6_1" not in load_matconvnet(net, path, strict=False)


def test_shape_mismatch_names_file_layer_and_shapes(tmp_path, net):
    values = dagnn_values(net)
    entries = dagnn_entries(values)
    index = [name for name, _ in entries].index("conv4_2f")
    entries[index] = ("conv4_2f", np.zeros((3, 3, 5, 9), np.float32))
    path = tmp_path / "mismatch.mat"
    write_dagnn(path, entries)
    before = snapshot(net)
    with pytest.raises(WeightLoadError) as error:
        load_matconvnet(net, path)
    message = str(error.value)
    assert str(path) in message and "'conv4_2'" in message
    assert "(5, 5, 3, 3)" in message and "(9, 5, 3, 3)" in message
    assert_unchanged(net, before)


def test_wrong_bias_length_changes_nothing(tmp_path, net):
    entries = dagnn_entries(dagnn_values(net))
    index = [name for name, _ in entries].index("fc7b")
    entries[index] = ("fc7b", np.zeros((4, 1), np.float32))
    path = tmp_path / "bias.mat"
    write_dagnn(path, entries)
    before = snapshot(net)
    with pytest.raises(WeightLoadError, match=r"'fc7'.*b expected shape \(7,\), got \(4,\)"):
        load_matconvnet(net, path)
    assert_unchanged(net, before)


def test_truncated_file(tmp_path, net):
    path = tmp_path / "truncated.mat"
    write_dagnn(path, dagnn_entries(dagnn_values(net)))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 2 // 3])
    before = snapshot(net)
    with pytest.raises(WeightLoadError, match=str(path)):
        load_matconvnet(net, path)
    assert_unchanged(net, before)


def test_not_a_dagnn_file(tmp_path, net):
    path = tmp_path / "simplenn.mat"
    scipy.io.savemat(path, {"layers": np.zeros((1, 2))})
    with pytest.raises(WeightLoadError, match="struct array 'params'"):
        load_matconvnet(net, path)


def test_matlab_drops_trailing_singleton_axes():
    # a filter with one output is stored as (kh, kw, in) and a bias as a scalar
    mat_filter = distinct((3, 3, 2), 1)
    values = matconvnet_to_fcn([("onef", mat_filter), ("oneb", np.array([[5.0]]))], "x.mat")
    filters, bias = values["one"]
    assert filters.shape == (1, 2, 3, 3) and bias.shape == (1,)
    assert filters[0, 1, 2, 0] == mat_filter[2, 0, 1]


def test_name_without_suffix_is_reported():
    with pytest.raises(WeightLoadError, match="'conv1_1_w'"):
        matconvnet_to_fcn([("conv1_1_w", np.zeros((3, 3, 3, 2)))], "x.mat")


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["fcn8", "fcn16", "fcn32"])
def test_tiny_nets_mirror_the_tutorial_builders(kind):
    """The loaders' tests use tiny_tutorial_fcn; it must have the builders' layout."""
    from fcn8_lasagne import models

    builder = {"fcn8": models.buildFCN8, "fcn16": models.buildFCN16,
               "fcn32": models.buildFCN32}[kind]
    full = builder(3, None, n_classes=N_CLASSES)
    tiny = tiny_tutorial_fcn(kind, n_classes=N_CLASSES)
    assert param_layers(full) == param_layers(tiny)
    for name in param_layers(tiny):
        big, small = full[name], tiny[name]
        assert type(big) is type(small), name
        assert big.flip_filters == small.flip_filters, name
        assert big.filter_size == small.filter_size and big.stride == small.stride, name
        assert (big.b is None) == (small.b is None), name


@pytest.mark.parametrize("suffixes", [("f", "b"), ("_filter", "_bias")])
def test_the_builders_pascal_path_sets_what_load_matconvnet_sets(tmp_path, suffixes):
    """``buildFCN8(pascal=True, load_weights=True)`` reads through ``fcn8_lasagne.files``
    and sets through ``set_all_param_values`` (models never import weights): same values."""
    from fcn8_lasagne.models import fcn

    values = dagnn_values(tiny_tutorial_fcn("fcn8", n_classes=N_CLASSES))
    path = tmp_path / "pascal-fcn8s-tvg-dag.mat"
    write_dagnn(path, dagnn_entries(values, *suffixes))
    by_weights = tiny_tutorial_fcn("fcn8", n_classes=N_CLASSES)
    by_builder = tiny_tutorial_fcn("fcn8", n_classes=N_CLASSES)
    for name in param_layers(by_weights):  # the same start, then load each way
        by_builder[name].W.set_value(by_weights[name].W.get_value())
        by_builder[name].b.set_value(by_weights[name].b.get_value())
    by_builder["probs"] = by_builder["upsample"]
    load_matconvnet(by_weights, path)
    fcn._load(by_builder, fcn._read_weights(path, pascal=True), path, pascal=True)
    for name in param_layers(by_weights):
        np.testing.assert_array_equal(by_builder[name].W.get_value(),
                                      by_weights[name].W.get_value(), err_msg=name)
        np.testing.assert_array_equal(by_builder[name].b.get_value(),
                                      by_weights[name].b.get_value(), err_msg=name)
    assert not np.array_equal(by_builder["conv1_1"].W.get_value(),
                              tiny_tutorial_fcn("fcn8", n_classes=N_CLASSES)["conv1_1"]
                              .W.get_value())


def test_the_builders_pascal_path_refuses_a_wrong_shape_and_changes_nothing(tmp_path):
    from fcn8_lasagne.models import fcn

    net = tiny_tutorial_fcn("fcn8", n_classes=N_CLASSES)
    net["probs"] = net["upsample"]
    values = dagnn_values(net)
    entries = dagnn_entries(values)
    entries[2] = ("conv1_2f", np.zeros((3, 3, 2, 9), np.float32))
    write_dagnn(tmp_path / "w.mat", entries)
    before = snapshot(net)
    with pytest.raises(ValueError, match=r"w.mat: mismatch: .*\(value 2\).*\(9, 2, 3, 3\)"):
        fcn._load(net, fcn._read_weights(tmp_path / "w.mat", pascal=True), tmp_path / "w.mat",
                  pascal=True)
    assert_unchanged(net, before)
