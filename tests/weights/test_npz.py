import numpy as np
import pytensor.tensor as pt
import pytest

from fcn8_lasagne.layers import Conv2DLayer, InputLayer, get_all_param_values
from fcn8_lasagne.weights import load_npz, read_npz_values, save_npz


def _net():
    return Conv2DLayer(Conv2DLayer(InputLayer((None, 2, 8, 8), pt.tensor4()), 3, 3, name="a"),
                       4, 1, name="b")


def test_round_trip_in_lasagne_arr_format(tmp_path):
    net = _net()
    path = tmp_path / "w.npz"
    save_npz(net, path)
    with np.load(path) as archive:
        assert archive.files == ["arr_0", "arr_1", "arr_2", "arr_3"]
        assert archive["arr_2"].shape == (4, 3, 1, 1)
    other = _net()
    load_npz(other, path)
    for got, want in zip(get_all_param_values(other), get_all_param_values(net)):
        np.testing.assert_array_equal(got, want)
    # a file written by the tutorial's np.savez(path, *values) loads the same way
    np.savez(tmp_path / "tutorial.npz", *[v * 2 for v in get_all_param_values(net)])
    load_npz(other, tmp_path / "tutorial.npz")
    np.testing.assert_array_equal(get_all_param_values(other)[0],
                                  2 * get_all_param_values(net)[0])


def test_failed_save_keeps_the_previous_file(tmp_path, monkeypatch):
    net = _net()
    path = tmp_path / "w.npz"
    save_npz(net, path)
    before = path.read_bytes()

    def broken_savez(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", broken_savez)
    with pytest.raises(OSError, match="disk full"):
        save_npz(net, path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["w.npz"]  # no temporary left behind


@pytest.mark.parametrize("content, message", [
    (b"not a zip file", "not an .npz weight file: a text file"),
    (None, "expected arrays arr_0"),
])
def test_bad_files_name_the_file(tmp_path, content, message):
    path = tmp_path / "bad.npz"
    if content is None:
        np.savez(path, weights=np.zeros(3))
    else:
        path.write_bytes(content)
    with pytest.raises(ValueError, match=f"bad.npz.*{message}"):
        read_npz_values(path)


def test_truncated_file_is_an_error_and_net_unchanged(tmp_path):
    net = _net()
    path = tmp_path / "w.npz"
    save_npz(net, path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    before = get_all_param_values(net)
    with pytest.raises(ValueError, match="w.npz"):
        load_npz(net, path)
    for got, want in zip(get_all_param_values(net), before):
        np.testing.assert_array_equal(got, want)
