"""Bad input to every reader and loader (issue 18's matrix, the API half).

Corrupt bytes, truncations and shapes are generated with ``hypothesis`` (few examples: the
readers are fast, but the suite runs on two cores). Every reader must fail with its own
error type (``ValueError`` / ``WeightLoadError``) and a message that starts with or names the
file — never with a raw ``KeyError``, ``EOFError`` or ``UnpicklingError``, and never advising
``allow_pickle=True`` or ``weights_only=False``. Loaders refuse non-finite values and
non-float dtypes unless ``allow_nonfinite=True``, and leave the network as it was.
"""

import io
import pickle
import zipfile

import numpy as np
import pytensor.tensor as pt
import pytest
import scipy.io
import tifffile
from PIL import Image

pytest.importorskip("hypothesis")  # in the test extra; a bare environment skips the file

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from fcn8_lasagne.files import (  # noqa: E402
    WeightLoadError,
    check_weight_values,
    read_npz_arrays,
)
from fcn8_lasagne.layers import Conv2DLayer, InputLayer, get_all_param_values  # noqa: E402
from fcn8_lasagne.weights import (  # noqa: E402
    assign_params,
    load_matconvnet,
    load_npz,
    read_caffemodel,
    read_lasagne_vgg16,
    read_matconvnet_params,
    read_npz_shapes,
    read_npz_values,
)

from .weights._tiny_nets import snapshot, tiny_tutorial_fcn  # noqa: E402

FEW = settings(max_examples=12, deadline=None,
               suppress_health_check=[HealthCheck.function_scoped_fixture])
UNSAFE = ("allow_pickle=True", "weights_only=False", "weights_only` set to `False")


def _clean(error, path):
    message = str(error)
    assert str(path) in message, message
    assert "\n" not in message.strip(), message
    assert not any(advice in message for advice in UNSAFE), message
    return message


def _valid_npz_bytes():
    buffer = io.BytesIO()
    np.savez(buffer, np.arange(6, dtype=np.float32).reshape(2, 3), np.ones(3, np.float32))
    return buffer.getvalue()


# ---- .npz (Lasagne arr_i) -------------------------------------------------------------

@FEW
@given(data=st.binary(max_size=300))
def test_npz_readers_refuse_random_bytes(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("npz") / "w.npz"
    path.write_bytes(data)
    for reader in (read_npz_values, read_npz_shapes):
        with pytest.raises(ValueError) as error:
            reader(path)
        _clean(error.value, path)


@FEW
@given(cut=st.integers(min_value=0, max_value=len(_valid_npz_bytes()) - 1))
def test_a_truncated_npz_is_an_error(tmp_path_factory, cut):
    path = tmp_path_factory.mktemp("npz") / "w.npz"
    path.write_bytes(_valid_npz_bytes()[:cut])
    with pytest.raises(ValueError) as error:
        read_npz_values(path)
    _clean(error.value, path)


@FEW
@given(position=st.integers(min_value=30, max_value=len(_valid_npz_bytes()) - 30),
       byte=st.integers(min_value=0, max_value=255))
def test_a_flipped_byte_is_an_error_or_reads_floats(tmp_path_factory, position, byte):
    """A changed byte in the data may still read (zip stores, not checksums, .npy data) —
    then as float arrays; anything else is a ValueError naming the file."""
    data = bytearray(_valid_npz_bytes())
    data[position] = byte
    path = tmp_path_factory.mktemp("npz") / "w.npz"
    path.write_bytes(bytes(data))
    try:
        values = read_npz_values(path, allow_nonfinite=True)
    except ValueError as error:
        _clean(error, path)
    else:
        # (a damaged central directory can hide a member: the count check then catches it)
        assert 1 <= len(values) <= 2 and all(v.dtype.kind == "f" for v in values)


@pytest.mark.parametrize("content, expected", [
    (b"", "an empty file (0 bytes)"),
    (b"hello weights\n", "a text file"),
    (pickle.dumps({"a": 1}), "a Python pickle"),
    (b"\x93NUMPY\x01\x00", "a single .npy array"),
    (b"\x00\x01\x02\xff" * 10, "binary data that is not a zip archive"),
])
def test_what_a_non_npz_file_is_is_said(tmp_path, content, expected):
    path = tmp_path / "w.npz"
    path.write_bytes(content)
    with pytest.raises(ValueError, match="not an .npz weight file") as error:
        read_npz_values(path)
    assert expected in _clean(error.value, path)


def test_pickled_object_arrays_are_named_and_not_loaded(tmp_path):
    path = tmp_path / "w.npz"
    buffer = io.BytesIO()
    np.save(buffer, np.array([1, "x", None], dtype=object), allow_pickle=True)
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("arr_0.npy", buffer.getvalue())
    with pytest.raises(ValueError, match="arr_0 holds pickled \\(object\\) data") as error:
        read_npz_values(path)
    _clean(error.value, path)


@FEW
@given(shape=st.lists(st.integers(1, 4), min_size=1, max_size=3),
       kind=st.sampled_from(["nan", "inf", "-inf"]),
       where=st.integers(0, 63))
def test_nonfinite_values_are_refused_unless_allowed(tmp_path_factory, shape, kind, where):
    values = np.ones(shape, np.float32)
    values.reshape(-1)[where % values.size] = float(kind)
    path = tmp_path_factory.mktemp("npz") / "w.npz"
    np.savez(path, np.zeros(2, np.float32), values)
    with pytest.raises(ValueError, match="arr_1") as error:
        read_npz_values(path)
    message = _clean(error.value, path)
    assert ("1 NaN" in message) == (kind == "nan") and "allow_nonfinite=True" in message
    read = read_npz_values(path, allow_nonfinite=True)
    np.testing.assert_array_equal(read[1], values)


@pytest.mark.parametrize("dtype", [np.int64, np.int8, np.uint8, np.bool_, np.complex64])
def test_non_float_arrays_are_refused(tmp_path, dtype):
    path = tmp_path / "w.npz"
    np.savez(path, np.zeros(3, dtype))
    with pytest.raises(ValueError, match=f"arr_0 has dtype {np.dtype(dtype)}, expected "
                                         "floating point"):
        read_npz_values(path)


def _net():
    return Conv2DLayer(InputLayer((None, 2, 8, 8), pt.tensor4()), 3, 3, name="a")


def test_load_npz_refuses_nan_and_leaves_the_net(tmp_path):
    net = _net()
    before = get_all_param_values(net)
    bad = [v.copy() for v in before]
    bad[0].flat[4] = np.nan
    np.savez(tmp_path / "w.npz", *bad)
    with pytest.raises(ValueError, match="1 NaN"):
        load_npz(net, tmp_path / "w.npz")
    for got, want in zip(get_all_param_values(net), before):
        np.testing.assert_array_equal(got, want)
    load_npz(net, tmp_path / "w.npz", allow_nonfinite=True)
    assert np.isnan(get_all_param_values(net)[0].flat[4])


@pytest.mark.parametrize("count", [1, 3])
def test_a_wrong_count_names_both_counts(tmp_path, count):
    net = _net()
    np.savez(tmp_path / "w.npz", *[np.zeros(3, np.float32)] * count)
    with pytest.raises(ValueError, match=f"w.npz: mismatch: got {count} values to set 2"):
        load_npz(net, tmp_path / "w.npz")


def test_folders_and_missing_files(tmp_path):
    with pytest.raises(ValueError, match="is a folder"):
        read_npz_values(tmp_path)
    with pytest.raises(FileNotFoundError):
        read_npz_values(tmp_path / "missing.npz")
    with pytest.raises(FileNotFoundError):
        read_npz_arrays(tmp_path / "ñon-ascii ü.npz")


# ---- validate-then-set of the foreign formats -------------------------------------------

@pytest.fixture
def tiny():
    return tiny_tutorial_fcn("fcn8", n_classes=3)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_assign_params_refuses_nonfinite(tiny, bad):
    weight = tiny["conv1_1"].W.get_value().copy()
    weight.flat[0] = bad
    before = snapshot(tiny)
    with pytest.raises(WeightLoadError, match="src.bin: layer 'conv1_1' W .* expected finite"):
        assign_params(tiny, {"conv1_1": [weight, None]}, "src.bin", convention="lasagne")
    for name, values in snapshot(tiny).items():
        for old, new in zip(before[name], values):
            np.testing.assert_array_equal(old, new)
    assign_params(tiny, {"conv1_1": [weight, None]}, "src.bin", convention="lasagne",
                  allow_nonfinite=True)
    assert not np.isfinite(tiny["conv1_1"].W.get_value().flat[0])


def test_assign_params_refuses_integer_arrays(tiny):
    shape = tiny["conv1_1"].W.get_value().shape
    with pytest.raises(WeightLoadError, match="dtype int64, expected floating point"):
        assign_params(tiny, {"conv1_1": [np.zeros(shape, np.int64), None]}, "src.bin",
                      convention="lasagne")


def test_check_weight_values_counts():
    values = np.array([np.nan, np.inf, -np.inf, 1.0])
    with pytest.raises(ValueError, match=r"src: x \(4,\) holds 1 NaN and 2 infinite"):
        check_weight_values([values], "src", ["x"])
    check_weight_values([values], "src", ["x"], allow_nonfinite=True)
    check_weight_values([np.zeros(2, np.int32)], "src", ["x"], check_dtype=False)


# ---- MatConvNet, Lasagne Recipes pickle, PyTorch, Caffe --------------------------------

@FEW
@given(data=st.binary(max_size=200))
def test_matconvnet_refuses_random_bytes(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("mat") / "w.mat"
    path.write_bytes(data)
    with pytest.raises(WeightLoadError) as error:
        read_matconvnet_params(path)
    _clean(error.value, path)


def test_matconvnet_text_file_and_missing_params(tmp_path):
    path = tmp_path / "w.mat"
    path.write_text("% a MATLAB script, not a model\n")
    with pytest.raises(WeightLoadError, match="not a MATLAB .mat file: a text file"):
        read_matconvnet_params(path)
    scipy.io.savemat(path, {"weights": np.zeros(3)})
    with pytest.raises(WeightLoadError, match="struct array 'params'.*weights"):
        read_matconvnet_params(path)


def test_matconvnet_nonfinite_is_refused(tmp_path, tiny):
    params = np.zeros((1, 2), dtype=[("name", object), ("value", object)])
    filters = np.full((3, 3, 3, 2), np.nan, np.float32)
    params[0, 0]["name"], params[0, 0]["value"] = "conv1_1f", filters
    params[0, 1]["name"], params[0, 1]["value"] = "conv1_1b", np.zeros((2, 1), np.float32)
    scipy.io.savemat(tmp_path / "w.mat", {"params": params})
    with pytest.raises(WeightLoadError, match="w.mat: layer 'conv1_1' W .* 54 NaN"):
        load_matconvnet(tiny, tmp_path / "w.mat")


@FEW
@given(data=st.binary(min_size=1, max_size=200))
def test_vgg16_pickle_refuses_random_bytes(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("pkl") / "vgg16.pkl"
    path.write_bytes(data)
    with pytest.raises(PermissionError, match="--trust-pickle"):
        read_lasagne_vgg16(path)  # not trusted: not even opened
    with pytest.raises(WeightLoadError) as error:
        read_lasagne_vgg16(path, trust=True)
    _clean(error.value, path)


@FEW
@given(data=st.binary(max_size=200))
def test_caffe_refuses_random_bytes(tmp_path_factory, data):
    pytest.importorskip("google.protobuf")
    path = tmp_path_factory.mktemp("caffe") / "w.caffemodel"
    path.write_bytes(data)
    with pytest.raises(WeightLoadError) as error:
        read_caffemodel(path)
    assert str(path) in str(error.value)


def _torch_bytes():
    torch = pytest.importorskip("torch")
    buffer = io.BytesIO()
    torch.save({"conv1_1.weight": torch.zeros(2, 3, 3, 3), "conv1_1.bias": torch.zeros(2)},
               buffer)
    return buffer.getvalue()


@FEW
@given(data=st.binary(max_size=200), cut=st.floats(0, 1, exclude_max=True))  # 1 = whole file
def test_torch_refuses_random_and_truncated_files(tmp_path_factory, data, cut):
    from fcn8_lasagne.weights import read_torch_state_dict

    whole = _torch_bytes()
    folder = tmp_path_factory.mktemp("torch")
    for name, content in (("random.pth", data), ("cut.pth", whole[:int(cut * len(whole))])):
        path = folder / name
        path.write_bytes(content)
        with pytest.raises(WeightLoadError) as error:
            read_torch_state_dict(path)
        _clean(error.value, path)


def test_torch_pickled_objects_are_not_loaded_and_no_unsafe_advice(tmp_path):
    pytest.importorskip("torch")
    from fcn8_lasagne.weights import read_torch_state_dict

    path = tmp_path / "model.pth"
    path.write_bytes(pickle.dumps({"model": ValueError("not a tensor")}))
    with pytest.raises(WeightLoadError, match="not loaded: it holds Python objects") as error:
        read_torch_state_dict(path)
    _clean(error.value, path)


def test_torch_nonfinite_is_refused_before_a_model_is_built(tmp_path, monkeypatch):
    torch = pytest.importorskip("torch")
    from fcn8_lasagne.weights import convert as converting

    path = tmp_path / "w.pth"
    torch.save({"conv1_1.weight": torch.full((2, 3, 3, 3), float("inf"))}, path)

    def no_build(*args, **kwargs):
        raise AssertionError("the model was built before the file was checked")

    monkeypatch.setattr(converting, "build_model", no_build)
    with pytest.raises(WeightLoadError, match="conv1_1.weight .* 54 infinite"):
        converting.convert(path, tmp_path / "out.npz")
    assert not (tmp_path / "out.npz").exists()


# ---- images, label maps, TIFF ---------------------------------------------------------

@FEW
@given(data=st.binary(max_size=200), suffix=st.sampled_from([".png", ".bmp", ".jpg", ".tif"]))
def test_image_readers_refuse_random_bytes(tmp_path_factory, data, suffix):
    from fcn8_lasagne.data import read_label_map, read_rgb_image

    path = tmp_path_factory.mktemp("img") / f"frame{suffix}"
    path.write_bytes(data)
    for reader in (read_rgb_image, read_label_map):
        with pytest.raises(ValueError) as error:
            reader(path)
        assert "frame" in str(error.value)


@FEW
@given(cut=st.floats(0.05, 0.9))
def test_truncated_tiff_and_png_are_errors(tmp_path_factory, cut):
    from fcn8_lasagne.data import read_label_map, read_rgb_image

    folder = tmp_path_factory.mktemp("img")
    tifffile.imwrite(folder / "whole.tif", np.arange(64 * 64, dtype=np.uint16).reshape(64, 64))
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), np.uint8)).save(
        folder / "whole.png")
    for name, reader in (("whole.tif", read_label_map), ("whole.png", read_rgb_image)):
        data = (folder / name).read_bytes()
        path = folder / f"cut{name[5:]}"
        path.write_bytes(data[:int(cut * len(data))])
        with pytest.raises(ValueError) as error:
            reader(path)
        assert "cut" in str(error.value)


@pytest.mark.parametrize("mode, conversion", [("L", "grey level repeated"),
                                              ("RGBA", "alpha channel dropped"),
                                              ("P", "palette")])
def test_non_rgb_images_are_converted_with_a_note(tmp_path, mode, conversion):
    from fcn8_lasagne.data import read_rgb_image

    path = tmp_path / "x.png"
    Image.new(mode, (30, 28)).save(path)
    notes = []
    assert read_rgb_image(path, notes=notes).shape == (28, 30, 3)
    assert len(notes) == 1 and f"{path} is a mode {mode} image" in notes[0]
    assert conversion in notes[0]
    notes.clear()
    Image.new("RGB", (30, 28)).save(path)
    read_rgb_image(path, notes=notes)
    assert notes == []


def test_a_16_bit_tiff_image_is_refused(tmp_path):
    from fcn8_lasagne.data import read_rgb_image

    tifffile.imwrite(tmp_path / "x.tif", np.zeros((30, 30, 3), np.uint16))
    with pytest.raises(ValueError, match="x.tif: expected an 8-bit image, got pixels of "
                                         "type uint16"):
        read_rgb_image(tmp_path / "x.tif")


# ---- datasets --------------------------------------------------------------------------

def _pair(root, split, labels, image_suffix=".png", mask_folder="masks", mask_suffix=".png"):
    (root / split / "images").mkdir(parents=True, exist_ok=True)
    (root / split / mask_folder).mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.zeros(labels.shape + (3,), np.uint8)).save(
        root / split / "images" / f"a{image_suffix}")
    if mask_suffix == ".tif":
        tifffile.imwrite(root / split / mask_folder / f"a{mask_suffix}", labels)
    else:
        Image.fromarray(labels).save(root / split / mask_folder / f"a{mask_suffix}")


@FEW
@given(bad=st.integers(2, 255))
def test_folder_label_out_of_range_says_how_to_declare_void(tmp_path_factory, bad):
    from fcn8_lasagne.data import load_dataset

    root = tmp_path_factory.mktemp("folder")
    labels = np.zeros((30, 30), np.uint8)
    labels[3, 4] = bad
    _pair(root, "train", labels)
    dataset = load_dataset("folder", root, "train", class_names=["a", "b"])
    with pytest.raises(ValueError) as error:
        dataset.validate()
    message = str(error.value)
    assert f"label value(s) {bad} are neither a class" in message and "a.png" in message
    assert "void_values=[...]" in message and "--void-values" in message
    valid = load_dataset("folder", root, "train", class_names=["a", "b"], void_values=[bad])
    valid.validate()
    assert valid[0][1][3, 4] == valid.void_label


@pytest.mark.parametrize("name, options", [
    ("folder", {"class_names": ["a", "b"]}),
    ("camvid", {}),
    ("polyps912", {}),
])
def test_datasets_name_a_missing_root(tmp_path, name, options):
    from fcn8_lasagne.data import load_dataset

    with pytest.raises((ValueError, OSError)) as error:
        load_dataset(name, tmp_path / "nowhere", "train", **options)
    assert "nowhere" in str(error.value)


def test_folder_dataset_needs_class_names(tmp_path):
    from fcn8_lasagne.data import load_dataset

    with pytest.raises(TypeError, match="class_names"):
        load_dataset("folder", tmp_path, "train")


def test_polyps912_tiff_mask_out_of_range(tmp_path):
    from fcn8_lasagne.data import load_dataset

    labels = np.zeros((30, 30), np.uint8)
    labels[0, 0] = 9
    _pair(tmp_path, "train", labels, image_suffix=".bmp", mask_folder="masks2",
          mask_suffix=".tif")
    dataset = load_dataset("polyps912", tmp_path, "train")
    with pytest.raises(ValueError, match=r"a.tif: label value\(s\) 9 are neither a class"):
        dataset.validate()


# ---- hyper-parameters and builder arguments (no network built) --------------------------

@FEW
@given(rate=st.one_of(st.just(float("nan")), st.just(float("inf")), st.floats(max_value=0)))
def test_check_settings_refuses_bad_learning_rates(rate):
    from fcn8_lasagne.training import TrainingConfig, check_settings

    with pytest.raises(ValueError, match="-learning_rate must be a finite number > 0"):
        check_settings(TrainingConfig(learning_rate=rate))


@pytest.mark.parametrize("temperature", [0, -1.0, float("nan"), float("inf"), "2"])
def test_build_refuses_a_bad_temperature_before_building(tmp_path, temperature):
    from fcn8_lasagne.models import buildFCN8

    with pytest.raises(ValueError, match="temperature must be a finite number > 0"):
        buildFCN8(3, pt.tensor4(), path_weights=tmp_path / "w.npz", load_weights=True,
                  temperature=temperature)


def test_build_reads_the_weight_file_before_building(tmp_path):
    from fcn8_lasagne.models import buildFCN8

    (tmp_path / "w.npz").write_text("text")
    with pytest.raises(ValueError, match="w.npz: not an .npz weight file: a text file"):
        buildFCN8(3, pt.tensor4(), path_weights=tmp_path / "w.npz", load_weights=True)
    values = [np.zeros(2, np.float32)] * 42
    values[0] = np.array([np.nan, 0], np.float32)
    np.savez(tmp_path / "n.npz", *values)
    with pytest.raises(ValueError, match="n.npz: arr_0 .* 1 NaN"):
        buildFCN8(3, pt.tensor4(), path_weights=tmp_path / "n.npz", load_weights=True)
