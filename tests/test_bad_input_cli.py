"""Bad input to every ``fcn8`` subcommand (issue 18's matrix).

Each case runs ``fcn8_lasagne.cli.main`` in-process in a workspace of deliberately wrong
files and asserts: the exit code, one ``fcn8 <command>: error: ...`` line that names the
file or flag and says what was expected and what was found, no traceback, and that no file
of the workspace changed (their hashes before and after). Every case fails before a network
is compiled (most before one is built), so the whole matrix takes seconds.
"""

import hashlib
import io
import json
import os
import pickle
import zipfile

import numpy as np
import pytest
from PIL import Image

from fcn8_lasagne.cli import main

N_FCN8 = 42


def _fcn8_shaped(n_classes=2):
    """42 small float32 arrays whose last two have upsample's shapes (no network needed)."""
    values = [np.zeros(2, np.float32) for _ in range(N_FCN8 - 2)]
    return values + [np.zeros((n_classes, n_classes, 16, 16), np.float32),
                     np.zeros(n_classes, np.float32)]


def _object_npz(path):
    buffer = io.BytesIO()
    np.save(buffer, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("arr_0.npy", buffer.getvalue())


class _Anything:  # pickled as a class instance: not tensors
    pass


def _folder_dataset(root, bad_label=None):
    for split in ("train", "valid", "test"):
        (root / split / "images").mkdir(parents=True)
        (root / split / "masks").mkdir(parents=True)
        Image.fromarray(np.full((32, 32, 3), 100, np.uint8)).save(root / split / "images" / "a.png")
        labels = np.zeros((32, 32), np.uint8)
        labels[:4, :4] = 1
        if bad_label is not None and split == "train":
            labels[0, 0] = bad_label
        Image.fromarray(labels).save(root / split / "masks" / "a.png")


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad_input")
    (root / "text.npz").write_text("hello, these are not weights\n")
    (root / "empty.npz").write_bytes(b"")
    _object_npz(root / "object.npz")
    np.savez(root / "a41.npz", *_fcn8_shaped()[1:])
    values = _fcn8_shaped()
    values[5] = np.array([np.nan, 1.0], np.float32)
    np.savez(root / "nan.npz", *values)
    values = _fcn8_shaped()
    values[7] = np.array([np.inf, -np.inf], np.float32)
    np.savez(root / "inf.npz", *values)
    values = _fcn8_shaped()
    values[3] = np.zeros(2, np.int64)
    np.savez(root / "int.npz", *values)
    np.savez(root / "keys.npz", weights=np.zeros(3, np.float32))
    np.savez(root / "good2.npz", *_fcn8_shaped(2))
    data = (root / "good2.npz").read_bytes()
    (root / "truncated.npz").write_bytes(data[: len(data) // 2])
    np.save(root / "single.npy", np.zeros(3, np.float32))
    (root / "pickle.pth").write_bytes(pickle.dumps({"a": _Anything()}))
    (root / "random.pth").write_bytes(bytes(range(256)) * 4)
    (root / "text.mat").write_text("not matlab\n")
    (root / "text.caffemodel").write_bytes(b"\xff\xff\xff\xff garbage")
    (root / "weights.xyz").write_bytes(b"?")
    (root / "model.pkl").write_bytes(pickle.dumps({"param values": []}))
    (root / "afile").write_text("a file, not a folder\n")
    (root / "a folder.npz").mkdir()
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(root / "ok.png")
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(root / "small.png")
    Image.fromarray(np.zeros((32, 32), np.uint8)).save(root / "grey.png")
    Image.fromarray(np.zeros((32, 32, 4), np.uint8)).save(root / "rgba.png")
    (root / "text.png").write_text("not an image\n")
    (root / "éèü").mkdir()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(root / "éèü" / "petit.png")
    _folder_dataset(root / "folder")
    _folder_dataset(root / "badlabels", bad_label=7)
    (root / "out").mkdir()
    return root


def _hashes(root):
    hashes = {}
    for folder, _, files in os.walk(root):
        for name in files:
            path = os.path.join(folder, name)
            with open(path, "rb") as stream:
                hashes[path] = hashlib.sha256(stream.read()).hexdigest()
    return hashes


def _run(workspace, monkeypatch, capsys, argv):
    monkeypatch.chdir(workspace)
    monkeypatch.setenv("FCN8_LASAGNE_CACHE", str(workspace / "cache"))
    before = _hashes(workspace)
    code = main([str(arg) for arg in argv])
    after = _hashes(workspace)
    changed = [path for path, digest in before.items() if after.get(path) != digest]
    assert not changed, f"files changed or removed: {changed}"
    return code, capsys.readouterr()


def _error_line(command, captured):
    lines = captured.err.strip().splitlines()
    assert lines, "nothing on stderr"
    assert "Traceback" not in captured.err
    errors = [line for line in lines if line.startswith(f"fcn8 {command}: error: ")]
    assert len(errors) == 1 and errors[0] == lines[-1], captured.err
    return errors[0]


# (argv, substrings of the one error line); every case exits with 2
CASES = {
    # inspect
    "inspect-absurd-size": (["inspect", "--size", "1000000000", "1000000000"],
                            ["--size", "at most 16384", "1000000000x1000000000"]),
    "inspect-tiny-size": (["inspect", "--size", "8", "8"], ["--size", "26x26", "8x8"]),
    "inspect-zero-classes": (["inspect", "--n-classes", "0"], ["--n-classes", "got 0"]),
    "inspect-negative-batch": (["inspect", "--batch", "-1"], ["--batch", "got -1"]),
    # train: datasets and their flags
    "train-folder-without-class-names": (
        ["train", "-dataset", "folder", "--data-dir", "folder"],
        ["-dataset folder needs --class-names"]),
    "train-synthetic-images-with-folder": (
        ["train", "-dataset", "folder", "--data-dir", "folder", "--class-names", "a", "b",
         "--synthetic-images", "2", "2", "2"],
        ["--synthetic-images applies to -dataset synthetic only", "folder"]),
    "train-unknown-dataset": (["train", "-dataset", "bogus"],
                              ["'bogus' is not a known dataset", "polyps912", "synthetic"]),
    "train-sibling-dataset": (["train", "-dataset", "synthetic_em"],
                              ["synthetic_em holds the U-Net or 1-D FCN tutorial's data",
                               "polyps912, camvid, folder, synthetic"]),
    "train-no-data-dir": (["train", "-dataset", "camvid"], ["-dataset camvid needs --data-dir"]),
    "train-zero-synthetic-images": (["train", "--synthetic-images", "0", "0", "0"],
                                    ["--synthetic-images", "positive", "got 0 0 0"]),
    "train-duplicate-class-names": (
        ["train", "-dataset", "folder", "--data-dir", "folder", "--class-names", "a", "a"],
        ["--class-names", "repeated: a"]),
    "train-class-names-for-synthetic": (["train", "--class-names", "a", "b"],
                                        ["--class-names applies to -dataset folder only"]),
    "train-missing-data-dir": (["train", "-dataset", "polyps912", "--data-dir", "nowhere"],
                               ["nowhere"]),
    "train-bad-label-value": (
        ["train", "-dataset", "folder", "--data-dir", "badlabels", "--class-names", "a", "b",
         "--savepath", "runs/bad"],
        ["a.png", "label value(s) 7", "void_values", "--void-values"]),
    # train: hyper-parameters
    "train-nan-learning-rate": (["train", "-learning_rate", "nan"],
                                ["-learning_rate", "finite", "got nan"]),
    "train-inf-learning-rate": (["train", "-learning_rate", "inf"], ["-learning_rate", "got inf"]),
    "train-zero-learning-rate": (["train", "-learning_rate", "0"], ["-learning_rate", "> 0"]),
    "train-negative-penalty": (["train", "-penal_cst", "-1"], ["-penal_cst", ">= 0", "got -1.0"]),
    "train-nan-penalty": (["train", "-penal_cst", "nan"], ["-penal_cst", "got nan"]),
    "train-negative-seed": (["train", "--seed", "-1"], ["--seed", "0..4294967295", "got -1"]),
    "train-huge-seed": (["train", "--seed", str(2 ** 40)], ["--seed", str(2 ** 40)]),
    "train-zero-epochs": (["train", "-num_epochs", "0"], ["-num_epochs", "got 0"]),
    "train-zero-patience": (["train", "-max_patience", "0"], ["-max_patience", "got 0"]),
    "train-zero-batch": (["train", "-batch_size", "0", "1", "1"],
                         ["-batch_size", "train batch size", "got 0"]),
    "train-small-crop": (["train", "-data_augmentation", '{"crop_size": [8, 8]}'],
                         ["crop_size [8, 8]", "26x26"]),
    "train-float-crop": (["train", "-data_augmentation", '{"crop_size": [30.5, 30]}'],
                         ["crop_size", "integers", "[30.5, 30]"]),
    "train-flip-text": (["train", "-data_augmentation", '{"horizontal_flip": "yes"}'],
                        ["horizontal_flip", "[0, 1]", "'yes'"]),
    "train-unknown-augmentation": (["train", "-data_augmentation", '{"zoom_range": 3}'],
                                   ["zoom_range", "crop_size"]),
    "train-fill-mode": (["train", "-data_augmentation", '{"fill_mode": "mirror"}'],
                        ["fill_mode", "'mirror'", "'constant'"]),
    "train-savepath-is-a-file": (["train", "--savepath", "afile"],
                                 ["--savepath afile is a file", "folder"]),
    "train-resume-nothing": (["train", "--resume", "--savepath", "runs/none"],
                             ["--resume", "training_state.npz", "runs/none"]),
    "train-nan-init-weights": (["train", "--init-weights", "nan.npz", "--savepath", "runs/x"],
                               ["nan.npz", "arr_5", "1 NaN", "--allow-nonfinite"]),
    "train-text-init-weights": (["train", "--init-weights", "text.npz", "--savepath", "runs/x"],
                                ["text.npz", "not an .npz weight file", "a text file"]),
    # evaluate
    "evaluate-folder-without-class-names": (
        ["evaluate", "good2.npz", "--dataset", "folder", "--data-dir", "folder"],
        ["--dataset folder needs --class-names"]),
    "evaluate-unknown-dataset": (["evaluate", "good2.npz", "--dataset", "bogus"],
                                 ["'bogus' is not a known dataset"]),
    "evaluate-folder-without-data-dir": (
        ["evaluate", "good2.npz", "--dataset", "folder", "--class-names", "a", "b"],
        ["--dataset folder needs --data-dir"]),
    "evaluate-class-count": (
        ["evaluate", "good2.npz", "--dataset", "folder", "--data-dir", "folder",
         "--class-names", "a", "b", "c"],
        ["good2.npz", "2 classes", "3 classes"]),
    "evaluate-unknown-split": (
        ["evaluate", "good2.npz", "--dataset", "folder", "--data-dir", "folder",
         "--class-names", "a", "b", "--split", "nosuch"],
        ["nosuch"]),
    "evaluate-41-arrays": (
        ["evaluate", "a41.npz", "--dataset", "folder", "--data-dir", "folder",
         "--class-names", "a", "b"],
        ["a41.npz", "41 arrays", "fcn8 has 42"]),
    "evaluate-nan": (["evaluate", "nan.npz", "--dataset", "folder", "--data-dir", "folder",
                      "--class-names", "a", "b"], ["nan.npz", "arr_5", "NaN"]),
    "evaluate-text": (["evaluate", "text.npz", "--dataset", "folder", "--data-dir", "folder",
                       "--class-names", "a", "b"], ["text.npz", "a text file"]),
    # predict: weight files
    "predict-text-weights": (["predict", "text.npz", "ok.png", "--out", "out"],
                             ["text.npz", "not an .npz weight file", "a text file"]),
    "predict-empty-weights": (["predict", "empty.npz", "ok.png", "--out", "out"],
                              ["empty.npz", "empty file (0 bytes)"]),
    "predict-object-weights": (["predict", "object.npz", "ok.png", "--out", "out"],
                               ["object.npz", "arr_0 holds pickled (object) data"]),
    "predict-truncated-weights": (["predict", "truncated.npz", "ok.png", "--out", "out"],
                                  ["truncated.npz", "truncated or corrupt"]),
    "predict-41-arrays": (["predict", "a41.npz", "ok.png", "--out", "out"],
                          ["a41.npz", "41 arrays", "fcn8 has 42"]),
    "predict-41-arrays-fcn16": (["predict", "a41.npz", "ok.png", "--out", "out", "--model",
                                 "fcn16"], ["a41.npz", "41 arrays", "fcn16 has 38"]),
    "predict-nan-weights": (["predict", "nan.npz", "ok.png", "--out", "out"],
                            ["nan.npz", "arr_5", "1 NaN and 0 infinite", "--allow-nonfinite"]),
    "predict-inf-weights": (["predict", "inf.npz", "ok.png", "--out", "out"],
                            ["inf.npz", "arr_7", "0 NaN and 2 infinite"]),
    "predict-int-weights": (["predict", "int.npz", "ok.png", "--out", "out"],
                            ["int.npz", "arr_3", "dtype int64", "floating point"]),
    "predict-wrong-keys": (["predict", "keys.npz", "ok.png", "--out", "out"],
                           ["keys.npz", "expected arrays arr_0", "weights"]),
    "predict-npy": (["predict", "single.npy", "ok.png", "--out", "out"],
                    ["single.npy", "a single .npy array"]),
    "predict-missing-weights": (["predict", "missing.npz", "ok.png", "--out", "out"],
                                ["missing.npz"]),
    "predict-folder-weights": (["predict", "a folder.npz", "ok.png", "--out", "out"],
                               ["a folder.npz", "is a folder"]),
    # predict: images and outputs
    "predict-small-image": (["predict", "good2.npz", "small.png", "--out", "out"],
                            ["small.png", "26x26", "8x8"]),
    "predict-non-ascii-small-image": (["predict", "good2.npz", "éèü", "--out", "out"],
                                      ["éèü/petit.png", "26x26"]),
    "predict-text-image": (["predict", "good2.npz", "text.png", "--out", "out"], ["text.png"]),
    "predict-missing-image": (["predict", "good2.npz", "nowhere.png", "--out", "out"],
                              ["nowhere.png"]),
    "predict-out-is-a-file": (["predict", "good2.npz", "ok.png", "--out", "afile"],
                              ["--out afile is a file"]),
    "predict-out-is-the-input": (["predict", "good2.npz", "ok.png", "ok.png", "--out", "out"],
                                 ["same name", "ok_labels.png"]),
    # convert
    "convert-torch-text": (["convert", "text.npz", "out.npz", "--from", "torch"],
                           ["text.npz", "not a PyTorch file", "a text file"]),
    "convert-torch-npz": (["convert", "good2.npz", "out.npz", "--from", "torch"],
                          ["good2.npz", "not a readable PyTorch state dict"]),
    "convert-torch-pickle": (["convert", "pickle.pth", "out.npz"],
                             ["pickle.pth", "not loaded", "state_dict()"]),
    "convert-torch-random": (["convert", "random.pth", "out.npz"], ["random.pth"]),
    "convert-mat-text": (["convert", "text.mat", "out.npz"],
                         ["text.mat", "not a MATLAB .mat file", "a text file"]),
    "convert-caffe-garbage": (["convert", "text.caffemodel", "out.npz"], ["text.caffemodel"]),
    "convert-pickle-untrusted": (["convert", "model.pkl", "out.npz"],
                                 ["model.pkl", "--trust-pickle"]),
    "convert-unknown-extension": (["convert", "weights.xyz", "out.npz"],
                                  ["weights.xyz", "cannot tell the weight format", "'.xyz'"]),
    "convert-missing": (["convert", "missing.pth", "out.npz"], ["missing.pth"]),
    "convert-onto-itself": (["convert", "random.pth", "random.pth"],
                            ["random.pth", "refusing to overwrite"]),
    "convert-zero-classes": (["convert", "random.pth", "out.npz", "--n-classes", "0"],
                             ["--n-classes", "got 0"]),
    # dump-activations
    "dump-nan-weights": (["dump-activations", "nan.npz", "ok.png", "acts.npz"],
                         ["nan.npz", "NaN"]),
    "dump-small-size": (["dump-activations", "good2.npz", "ok.png", "acts.npz", "--size", "5",
                         "5"], ["--size 5 5", "26x26", "5x5"]),
    "dump-absurd-size": (["dump-activations", "good2.npz", "ok.png", "acts.npz", "--size",
                          "99999", "99999"], ["--size", "at most 16384"]),
    "dump-onto-weights": (["dump-activations", "good2.npz", "ok.png", "good2.npz"],
                          ["good2.npz", "refusing to overwrite"]),
    "dump-missing-image": (["dump-activations", "good2.npz", "nowhere.png", "acts.npz"],
                           ["nowhere.png"]),
    "dump-text-image": (["dump-activations", "good2.npz", "text.png", "acts.npz"],
                        ["text.png"]),
}

#: Cases whose file passes the first-bytes check, so that only torch can tell.
NEED_TORCH = {"convert-torch-npz", "convert-torch-pickle"}

UNSAFE_ADVICE = ("allow_pickle=True", "weights_only=False", "weights_only` set to `False")


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_input_fails_with_one_clear_line(name, workspace, monkeypatch, capsys):
    argv, expected = CASES[name]
    if name in NEED_TORCH:
        pytest.importorskip("torch")
    code, captured = _run(workspace, monkeypatch, capsys, argv)
    line = _error_line(argv[0], captured)
    assert code == 2, (code, captured.err)
    for text in expected:
        assert text in line, (text, line)
    assert not any(advice in captured.err for advice in UNSAFE_ADVICE), line


def test_a_grey_image_is_noted(workspace, monkeypatch, capsys):
    code, captured = _run(workspace, monkeypatch, capsys,
                          ["predict", "nan.npz", "grey.png", "rgba.png", "--out", "out"])
    assert code == 2
    notes = [line for line in captured.err.splitlines() if "note:" in line]
    assert any("grey.png is a mode L image, read as RGB" in line for line in notes), notes
    assert any("rgba.png is a mode RGBA image" in line and "alpha" in line
               for line in notes), notes


def test_the_matrix_covers_every_subcommand():
    from fcn8_lasagne.cli import _COMMANDS

    assert {argv[0] for argv, _ in CASES.values()} == set(_COMMANDS)


def test_nan_weights_pass_with_allow_nonfinite(workspace, monkeypatch, capsys):
    """The escape hatch: the file is read; what then fails is the (tiny) image size."""
    code, captured = _run(workspace, monkeypatch, capsys,
                          ["dump-activations", "nan.npz", "small.png", "acts.npz",
                           "--allow-nonfinite"])
    assert code == 2 and "small.png" in _error_line("dump-activations", captured)
    from fcn8_lasagne.weights import read_npz_values

    values = read_npz_values(workspace / "nan.npz", allow_nonfinite=True)
    assert np.isnan(values[5][0])


def test_a_stale_temporary_is_removed_when_a_run_starts(workspace, monkeypatch, capsys,
                                                        tmp_path):
    """``kill -9`` during a save leaves ``.tmp-*``; a run starting there removes them and
    says so (here the run then stops on the bad label value, before building a network)."""
    savepath = tmp_path / "run"
    savepath.mkdir()
    stale = savepath / ".tmp-abc123.npz"
    stale.write_bytes(b"x" * 2048)
    other = savepath / "notes.txt"
    other.write_text("mine")
    monkeypatch.chdir(workspace)
    code = main(["train", "-dataset", "folder", "--data-dir", str(workspace / "badlabels"),
                 "--class-names", "a", "b", "--savepath", str(savepath)])
    captured = capsys.readouterr()
    assert code == 2 and "label value(s) 7" in captured.err
    assert not stale.exists() and other.read_text() == "mine"
    assert f"removed 1 stale temporary file(s) of an interrupted save in {savepath}" in (
        captured.out)
    assert ".tmp-abc123.npz" in captured.out


def test_remove_stale_temporaries(tmp_path):
    from fcn8_lasagne.files import remove_stale_temporaries

    (tmp_path / ".tmp-a1.npz").write_bytes(b"12345")
    (tmp_path / ".tmp-folder").mkdir()
    (tmp_path / "new_fcn8_model_last.npz").write_bytes(b"keep")
    (tmp_path / "tmp-not-ours.npz").write_bytes(b"keep")
    removed = remove_stale_temporaries(tmp_path)
    assert removed == [(str(tmp_path / ".tmp-a1.npz"), 5)]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        ".tmp-folder", "new_fcn8_model_last.npz", "tmp-not-ours.npz"]
    assert remove_stale_temporaries(tmp_path) == []
