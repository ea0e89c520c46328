"""Bad input to the fcn8 command: clear one-line errors, no lost or corrupted files."""

import os
import stat
import zipfile

import numpy as np
import pytest
from PIL import Image

from fcn8_lasagne.cli import main
from fcn8_lasagne.inference import save_png
from fcn8_lasagne.weights import atomic_savez, read_npz_shapes, read_npz_values


def _fake_weights(path, n_classes, n_arrays=6):
    """An ``arr_i`` file whose last arrays look like upsample.W / upsample.b (tiny body)."""
    arrays = [np.zeros((2, 2), np.float32)] * (n_arrays - 2)
    arrays += [np.zeros((n_classes, n_classes, 4, 4), np.float32),
               np.zeros(n_classes, np.float32)]
    np.savez(path, *arrays)
    return path


def _image(path, shape=(8, 8, 3)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.zeros(shape, np.uint8)).save(path)
    return path


def _folder_dataset(root, class_names=("a", "b", "c")):
    """A 'folder' dataset whose only image is not an image: reading it would fail."""
    for sub in ("images", "masks"):
        (root / "test" / sub).mkdir(parents=True)
    (root / "test" / "images" / "x.png").write_bytes(b"not a png")
    (root / "test" / "masks" / "x.png").write_bytes(b"not a png")
    return ["--dataset", "folder", "--data-dir", str(root), "--class-names", *class_names]


# 1. evaluate checks the class count of the weights against the dataset -------------------

def test_evaluate_refuses_weights_for_another_class_count(tmp_path, capsys):
    weights = _fake_weights(tmp_path / "two_class.npz", 2, n_arrays=34)  # fcn32's count
    code = main(["evaluate", str(weights), "--model", "fcn32",
                 *_folder_dataset(tmp_path / "data")])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("fcn8 evaluate: error: ") and err.count("\n") == 1
    assert "two_class.npz" in err
    assert "for 2 classes" in err and "upsample.b (2,)" in err
    assert "3 classes ['a', 'b', 'c']" in err


def test_weight_shapes_are_read_from_the_headers(tmp_path):
    weights = _fake_weights(tmp_path / "w.npz", 5)
    assert read_npz_shapes(weights) == [(2, 2)] * 4 + [(5, 5, 4, 4), (5,)]


# 2. corrupt archives and unwritable outputs: one line naming the file ---------------------

def _truncated(path):
    np.savez(path, np.arange(1000.0), np.arange(10.0))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def _bad_crc(path):
    np.savez(path, np.arange(1000.0), np.arange(10.0))
    data = bytearray(path.read_bytes())
    data[400] ^= 0xFF  # inside arr_0's data
    path.write_bytes(bytes(data))
    return path


@pytest.mark.parametrize("corrupt", [_truncated, _bad_crc])
def test_corrupt_weight_files_are_named(tmp_path, corrupt, capsys):
    weights = corrupt(tmp_path / "broken.npz")
    with pytest.raises(ValueError, match="broken.npz"):
        read_npz_values(weights)
    if corrupt is _truncated:
        with pytest.raises(ValueError, match="broken.npz"):
            read_npz_shapes(weights)
    code = main(["evaluate", str(weights), *_folder_dataset(tmp_path / "data")])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("fcn8 evaluate: error: ") and "broken.npz" in err


@pytest.mark.parametrize("error", [zipfile.BadZipFile("Bad CRC-32 for file 'arr_0.npy'"),
                                   EOFError("unexpected end"),
                                   PermissionError(13, "Permission denied", "/x/out.npz"),
                                   IsADirectoryError(21, "Is a directory", "/x/out.npz"),
                                   OSError(28, "No space left on device")])
def test_main_reports_corrupt_archives_and_os_errors(monkeypatch, error, capsys):
    from fcn8_lasagne import cli

    def fail(args):
        raise error

    monkeypatch.setitem(cli._COMMANDS, "inspect", fail)
    assert main(["inspect"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("fcn8 inspect: error: ") and err.count("\n") == 1
    assert str(error) in err


def test_main_still_shows_real_bugs(monkeypatch):
    from fcn8_lasagne import cli

    def fail(args):
        raise TypeError("a bug")

    monkeypatch.setitem(cli._COMMANDS, "inspect", fail)
    with pytest.raises(TypeError, match="a bug"):
        main(["inspect"])


def _no_temporaries(folder):
    return [name for name in os.listdir(folder) if name.startswith(".tmp-")] == []


def test_atomic_savez_names_the_target_when_it_is_a_folder(tmp_path):
    target = tmp_path / "out.npz"
    target.mkdir()
    with pytest.raises(IsADirectoryError, match="out.npz") as caught:
        atomic_savez(target, np.zeros(3))
    assert ".tmp-" not in str(caught.value)
    assert _no_temporaries(tmp_path)


def test_atomic_savez_names_the_target_when_a_parent_is_a_file(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(OSError, match="file/out.npz"):
        atomic_savez(tmp_path / "file" / "out.npz", np.zeros(3))


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_atomic_savez_names_the_target_in_a_read_only_folder(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        with pytest.raises(PermissionError, match="ro/out.npz") as caught:
            atomic_savez(folder / "out.npz", np.zeros(3))
        assert ".tmp-" not in str(caught.value)
    finally:
        folder.chmod(0o700)


def test_atomic_savez_on_a_full_disk_names_the_target_and_keeps_the_old_file(tmp_path,
                                                                              monkeypatch):
    target = tmp_path / "out.npz"
    atomic_savez(target, np.arange(3.0))

    def full(*args, **kwds):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np, "savez", full)
    with pytest.raises(OSError, match="out.npz: No space left on device") as caught:
        atomic_savez(target, np.zeros(5))
    assert isinstance(caught.value.__cause__, OSError)   # the original stays chained
    monkeypatch.undo()
    np.testing.assert_array_equal(read_npz_values(target)[0], np.arange(3.0))
    assert _no_temporaries(tmp_path)


def test_save_png_names_the_target_when_it_is_a_folder(tmp_path):
    (tmp_path / "x.png").mkdir()
    with pytest.raises(IsADirectoryError, match="x.png") as caught:
        save_png(np.zeros((4, 4), np.uint8), tmp_path / "x.png")
    assert ".tmp-" not in str(caught.value)
    assert _no_temporaries(tmp_path)


# 3. saved files get the mode the umask gives -----------------------------------------------

@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_atomic_savez_mode_follows_the_umask(tmp_path, umask):
    old = os.umask(umask)
    try:
        atomic_savez(tmp_path / "w.npz", np.zeros(3))
        with open(tmp_path / "plain", "w"):
            pass
    finally:
        os.umask(old)
    mode = stat.S_IMODE(os.stat(tmp_path / "w.npz").st_mode)
    assert mode == 0o666 & ~umask == stat.S_IMODE(os.stat(tmp_path / "plain").st_mode)


# 4. outputs that would overwrite each other or an input ------------------------------------

def test_predict_refuses_images_with_the_same_name(tmp_path, capsys):
    files = [_image(tmp_path / "a" / "x.png"), _image(tmp_path / "b" / "x.png"),
             _image(tmp_path / "a" / "x.jpg"), _image(tmp_path / "a" / "y.png")]
    out = tmp_path / "out"
    code = main(["predict", str(tmp_path / "missing.npz"), *map(str, files), "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("fcn8 predict: error: ")
    for path in files[:3]:
        assert str(path) in err
    assert str(files[3]) not in err
    assert not out.exists()


def test_predict_refuses_to_overwrite_an_input_image(tmp_path, capsys):
    image = _image(tmp_path / "x.png")
    previous = _image(tmp_path / "x_labels.png")
    before = previous.read_bytes()
    code = main(["predict", str(tmp_path / "missing.npz"), str(image), str(previous),
                 "--out", str(tmp_path)])
    assert code == 2 and "x_labels.png" in capsys.readouterr().err
    assert previous.read_bytes() == before


@pytest.mark.parametrize("which", ["weights", "image"])
def test_dump_activations_refuses_to_overwrite_an_input(tmp_path, which, capsys):
    weights = _fake_weights(tmp_path / "w.npz", 2)
    image = _image(tmp_path / "img.png")
    target = weights if which == "weights" else image
    before = target.read_bytes()
    code = main(["dump-activations", str(weights), str(image), str(target)])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("fcn8 dump-activations: error: ")
    assert str(target) in err and "overwrite" in err
    assert target.read_bytes() == before


# 5. convert refuses a partial match unless --no-strict -------------------------------------

def _torch_state(path, layers):
    """A torchvision-vgg16-style state dict with the given ``features.N`` / ``classifier.N``
    entries (zeros of the right shapes)."""
    torch = pytest.importorskip("torch")
    shapes = {"features.0": (64, 3, 3, 3), "classifier.0": (4096, 25088),
              "classifier.3": (4096, 4096)}
    channels = [(3, 64), (64, 64), (64, 128), (128, 128), (128, 256), (256, 256), (256, 256),
                (256, 512), (512, 512), (512, 512), (512, 512), (512, 512), (512, 512)]
    for index, (c_in, c_out) in zip((0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28),
                                    channels):
        shapes[f"features.{index}"] = (c_out, c_in, 3, 3)
    state = {}
    for name in layers:
        state[f"{name}.weight"] = torch.zeros(shapes[name])
        state[f"{name}.bias"] = torch.zeros(shapes[name][0])
    torch.save(state, path)
    return path


def test_convert_refuses_a_file_that_covers_part_of_the_model(tmp_path, capsys):
    source = _torch_state(tmp_path / "partial.pth", ["features.0"])
    out = tmp_path / "out.npz"
    code = main(["convert", str(source), str(out), "--model", "fcn32", "--n-classes", "2"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("fcn8 convert: error: ")
    assert "partial.pth" in err and "covers 1 of the 17" in err
    assert "conv1_2" in err and "upsample" in err and "--no-strict" in err
    assert not out.exists()
    with pytest.warns(UserWarning, match="no weights for conv1_2"):
        code = main(["convert", str(source), str(out), "--model", "fcn32", "--n-classes", "2",
                     "--no-strict"])
    assert code == 0 and out.exists()


def test_convert_help_says_what_no_strict_does(capsys):
    with pytest.raises(SystemExit):
        main(["convert", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "by default both are errors and nothing is written" in help_text


@pytest.mark.slow
def test_convert_takes_a_whole_imagenet_vgg16_without_no_strict(tmp_path):
    names = [f"features.{i}" for i in (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)]
    source = _torch_state(tmp_path / "vgg16.pth", names + ["classifier.0", "classifier.3"])
    out = tmp_path / "out.npz"
    with pytest.warns(UserWarning, match="no weights for score_fr, upsample"):
        assert main(["convert", str(source), str(out), "--model", "fcn32",
                     "--n-classes", "2"]) == 0
    assert out.exists()


def test_predict_refuses_an_out_that_is_a_file(tmp_path, capsys):
    image = _image(tmp_path / "x.png")
    out = tmp_path / "out"
    out.write_text("keep me")
    code = main(["predict", str(tmp_path / "missing.npz"), str(image), "--out", str(out)])
    assert code == 2 and "is a file, not a folder" in capsys.readouterr().err
    assert out.read_text() == "keep me"


def test_atomic_savez_permission_error_names_the_target_not_the_temporary(tmp_path,
                                                                         monkeypatch):
    import tempfile

    def denied(dir=None, prefix="", suffix=""):
        raise PermissionError(13, "Permission denied",
                              os.path.join(dir, prefix + "abcd" + suffix))

    monkeypatch.setattr(tempfile, "mkstemp", denied)
    with pytest.raises(PermissionError, match="cannot write .*out.npz: Permission denied") \
            as caught:
        atomic_savez(tmp_path / "out.npz", np.zeros(3))
    assert ".tmp-" not in str(caught.value)
    assert isinstance(caught.value.__cause__, PermissionError)
