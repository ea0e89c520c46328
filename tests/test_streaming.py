"""``fcn8 predict`` / ``fcn8 evaluate`` stream: a bounded window of images, a progress bar,
``--on-error skip|fail``, and memory that does not grow with the image count.

The memory and on-error tests replace the network by a stub (``load_model`` and
``predict_function`` monkeypatched): its labels are computable from the pixels (class 1
where the red channel is below one half), which is the reference the written PNGs are
checked against. One test runs the real FCN-8 on a few images.
"""

import io
import json
import os
import sys
import tracemalloc
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from fcn8_lasagne import inference
from fcn8_lasagne.cli import main

SIZE = 28  # above FCN-8's 26x26 minimum input


def _write_images(folder, count, size=SIZE, seed=0, prefix="img"):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for index in range(count):
        path = folder / f"{prefix}{index:05d}.png"
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(path)
        paths.append(path)
    return paths


def _stub_predict(X):
    """Probabilities (B, 2, H, W): class 1 where the red channel is below 0.5."""
    red = X[:, 0]
    return np.stack([red, 1 - red], axis=1).astype(np.float32)


def _expected_labels(path):
    return (np.asarray(Image.open(path).convert("RGB"))[..., 0] / 255.0 < 0.5).astype(np.uint8)


@pytest.fixture
def stub_network(monkeypatch):
    """The CLI's network replaced by :func:`_stub_predict`; records the batch sizes."""
    batches = []

    def predict(X):
        batches.append(len(X))
        return _stub_predict(X)

    monkeypatch.setattr(inference, "load_model", lambda *args, **kwargs: (
        {"upsample": SimpleNamespace(num_filters=2)}, None))
    monkeypatch.setattr(inference, "predict_function", lambda *args, **kwargs: predict)
    monkeypatch.setattr(inference, "check_n_classes", lambda *args, **kwargs: 2)
    return batches


# 1. the window: laziness and batching ------------------------------------------------------

def test_predict_images_holds_at_most_a_window(tmp_path, monkeypatch):
    paths = _write_images(tmp_path / "in", 10)
    reads, writes, held = [], [], []
    real_read, real_save = inference.read_image, inference.save_png

    def counting_read(path, *args, **kwargs):
        reads.append(path)
        return real_read(path, *args, **kwargs)

    def counting_save(array, path):
        writes.append(path)
        return real_save(array, path)

    def predict(X):
        held.append(len(reads) - len(writes) // 2)  # images read but not yet written
        return _stub_predict(X)

    monkeypatch.setattr(inference, "read_image", counting_read)
    monkeypatch.setattr(inference, "save_png", counting_save)
    pulled = []

    def lazily():
        for path in paths:
            pulled.append(path)
            # the generator is not drained ahead: at most a window pulled beyond the writes
            assert len(pulled) - len(writes) // 2 <= 3
            yield str(path)

    lines = []
    written, skipped = inference.predict_images(predict, lazily(), str(tmp_path / "out"), 2,
                                                window=3, log=lines.append)
    assert (written, skipped) == (10, 0)
    assert max(held) <= 3 and sum(held) > 0
    assert len(lines) == 10 and lines[0].startswith(f"{paths[0]}: 28x28, pixels per class")
    for path in paths:  # each file got its own labels (no mix-up inside a batch)
        labels = np.asarray(Image.open(tmp_path / "out" / f"{path.stem}_labels.png"))
        np.testing.assert_array_equal(labels, _expected_labels(path))
        assert np.asarray(Image.open(tmp_path / "out" / f"{path.stem}_overlay.png")).shape == (
            SIZE, SIZE, 3)


def test_a_window_batches_images_of_one_size(tmp_path):
    paths = _write_images(tmp_path / "a", 3) + _write_images(tmp_path / "b", 2, size=30,
                                                             seed=1, prefix="big")
    batches = []

    def predict(X):
        batches.append(X.shape)
        return _stub_predict(X)

    written, _ = inference.predict_images(predict, [str(p) for p in paths],
                                          str(tmp_path / "out"), 2, window=5)
    assert written == 5
    assert sorted(batches) == [(2, 3, 30, 30), (3, 3, 28, 28)]
    for path in paths:
        np.testing.assert_array_equal(
            np.asarray(Image.open(tmp_path / "out" / f"{path.stem}_labels.png")),
            _expected_labels(path))


def test_iter_image_files_is_lazy_and_sorted(tmp_path):
    _write_images(tmp_path / "a", 3)
    (tmp_path / "a" / "notes.txt").write_text("not an image")
    single = _write_images(tmp_path / "b", 1)[0]
    files = inference.iter_image_files([str(tmp_path / "a"), str(single),
                                        str(tmp_path / "nowhere")])
    # the missing path is reached only after the files before it were yielded
    assert [next(files) for _ in range(4)] == [
        str(tmp_path / "a" / f"img0000{i}.png") for i in range(3)] + [str(single)]
    with pytest.raises(ValueError, match="IMAGES: no such file or folder: .*nowhere"):
        next(files)


def test_window_must_be_positive(tmp_path, stub_network, capsys):
    _write_images(tmp_path / "in", 1)
    assert main(["predict", "w.npz", str(tmp_path / "in"), "--out", str(tmp_path / "o"),
                 "--window", "0"]) == 2
    assert "--window must be a positive image count, got 0" in capsys.readouterr().err


class _Terminal(io.StringIO):
    def isatty(self):
        return True


@pytest.mark.parametrize("command", ["predict", "evaluate"])
def test_a_progress_bar_on_a_terminal_unless_no_progress(tmp_path, stub_network, monkeypatch,
                                                         command):
    if command == "predict":
        _write_images(tmp_path / "in", 3)
        argv = ["predict", "w.npz", str(tmp_path / "in"), "--out", str(tmp_path / "out")]
    else:
        _, flags = _folder_split(tmp_path / "data", 3)
        argv = ["evaluate", "w.npz", *flags]
    for extra, shown in (([], True), (["--no-progress"], False)):
        terminal = _Terminal()
        monkeypatch.setattr(sys, "stderr", terminal)
        monkeypatch.setattr(sys, "stdout", io.StringIO())
        assert main(argv + extra) == 0
        bar = terminal.getvalue()
        assert (f"{command}: 100%" in bar and "3/3" in bar) == shown, bar
        assert ("image/s" in bar) == shown


# 2. memory does not grow with the image count ----------------------------------------------

def _peak_bytes(function):
    tracemalloc.start()
    try:
        function()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.fixture
def scratch(tmp_path):
    """A folder in memory (``/dev/shm``) when there is one: thousands of small files are
    written, synced and removed there in a fraction of the time a disk takes."""
    import os
    import shutil
    import tempfile

    if not os.path.isdir("/dev/shm") or not os.access("/dev/shm", os.W_OK):
        yield tmp_path
        return
    folder = tempfile.mkdtemp(prefix="fcn8-streaming-", dir="/dev/shm")
    try:
        yield Path(folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_predict_memory_does_not_grow_with_the_image_count(scratch, stub_network, capsys):
    """200 then 2,000 images through ``fcn8 predict``: the traced peak (NumPy's buffers and
    Python's objects) of the 2,000 is within 1 MB of the 200's, whereas holding the 2,000
    images read takes 2,000 x 28 x 28 x 3 float32 = 18.8 MB (checked: the measure sees it)."""
    warm = scratch / "warm"
    _write_images(warm, 2)
    assert main(["predict", "w.npz", str(warm), "--out", str(scratch / "out_warm")]) == 0
    small, large = scratch / "small", scratch / "large"
    _write_images(small, 200)
    _write_images(large, 2000, seed=1)
    peaks = {}
    for name, folder in (("small", small), ("large", large)):
        out = scratch / f"out_{name}"
        argv = ["predict", "w.npz", str(folder), "--out", str(out), "--window", "4"]
        codes = []
        peaks[name] = _peak_bytes(lambda: codes.append(main(argv)))
        assert codes == [0]
        assert len(list(out.iterdir())) == 2 * (200 if name == "small" else 2000)
    captured = capsys.readouterr()
    assert captured.out.count("pixels per class") == 2202
    assert max(stub_network) == 4
    growth = peaks["large"] - peaks["small"]
    assert growth < 1e6, peaks
    # the same measure sees the 2,000 images held in a list
    held = []
    holding = _peak_bytes(lambda: held.extend(
        inference.read_image(path) for path in inference.iter_image_files([str(large)])))
    assert holding > 18e6, holding
    np.testing.assert_array_equal(  # the outputs are right to the last image
        np.asarray(Image.open(scratch / "out_large" / "img01999_labels.png")),
        _expected_labels(large / "img01999.png"))


# 3. --on-error ----------------------------------------------------------------------------

def _bad_folder(root):
    """Good images, with among them a text file, a truncated PNG and a 10x10 image."""
    good = _write_images(root, 5)
    (root / "img00001b.png").write_text("not an image\n")
    data = good[2].read_bytes()
    (root / "img00002b.png").write_bytes(data[: len(data) // 2])
    Image.fromarray(np.zeros((10, 10, 3), np.uint8)).save(root / "img00003b.png")
    return good, ["img00001b.png", "img00002b.png", "img00003b.png"]


def test_on_error_skip_names_each_bad_image_and_continues(tmp_path, stub_network, capsys):
    good, bad = _bad_folder(tmp_path / "in")
    out = tmp_path / "out"
    code = main(["predict", "w.npz", str(tmp_path / "in"), "--out", str(out), "--on-error",
                 "skip"])
    captured = capsys.readouterr()
    assert code == 1  # some images were skipped: not a complete result
    lines = captured.err.splitlines()
    for name in bad:
        named = [line for line in lines if f"skipped {tmp_path / 'in' / name}: " in line]
        assert len(named) == 1 and named[0].startswith("fcn8 predict: "), lines
    assert any("10x10" in line for line in lines)  # the too-small one says why
    assert lines[-1].startswith("fcn8 predict: 3 of 8 images skipped (named above)")
    assert sorted(p.name for p in out.iterdir()) == sorted(
        f"{p.stem}_{kind}.png" for p in good for kind in ("labels", "overlay"))
    for path in good:
        np.testing.assert_array_equal(
            np.asarray(Image.open(out / f"{path.stem}_labels.png")), _expected_labels(path))
    assert captured.out.count("pixels per class") == 5


def test_on_error_fail_stops_with_one_line_before_writing(tmp_path, stub_network, capsys):
    _bad_folder(tmp_path / "in")
    out = tmp_path / "out"
    code = main(["predict", "w.npz", str(tmp_path / "in"), "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("fcn8 predict: error: ")
    assert str(tmp_path / "in" / "img00001b.png") in err  # the first bad one, in sorted order
    assert not out.exists() and stub_network == []  # found before the network ran


@pytest.mark.parametrize("window", [1, 3])
def test_a_file_spoilt_mid_stream(tmp_path, window):
    """An image that fails only when the stream reaches it (changed after the check):
    ``fail`` writes the images before it and none after; ``skip`` writes all the others."""
    paths = [str(p) for p in _write_images(tmp_path / "in", 6)]
    (tmp_path / "in" / "img00003.png").write_bytes(b"spoilt")
    out = tmp_path / "fail"
    with pytest.raises(ValueError, match="img00003.png"):
        inference.predict_images(_stub_predict, iter(paths), str(out), 2, window=window)
    assert sorted(p.name for p in out.iterdir()) == [
        f"img0000{i}_{kind}.png" for i in range(3) for kind in ("labels", "overlay")]
    skipped = []
    written, count = inference.predict_images(_stub_predict, iter(paths),
                                              str(tmp_path / "skip"), 2, window=window,
                                              on_error="skip", on_skip=skipped.append)
    assert (written, count) == (5, 1)
    assert len(skipped) == 1 and skipped[0].startswith(f"skipped {paths[3]}: cannot read")
    assert len(list((tmp_path / "skip").iterdir())) == 10


def test_on_error_is_checked():
    with pytest.raises(ValueError, match="on_error"):
        inference.predict_images(_stub_predict, [], "out", 2, on_error="ignore")


# 4. evaluate --------------------------------------------------------------------------------

def _folder_split(root, count, bad=()):
    """A 'folder' dataset (classes a, b) with ``count`` pairs; ``bad`` names pairs whose
    image is not an image."""
    images, masks = root / "test" / "images", root / "test" / "masks"
    paths = _write_images(images, count, seed=4)
    masks.mkdir(parents=True)
    rng = np.random.default_rng(5)
    for path in paths:
        Image.fromarray(rng.integers(0, 2, (SIZE, SIZE), dtype=np.uint8)).save(
            masks / path.name)
    for index in bad:
        paths[index].write_bytes(b"not an image")
    return paths, ["--dataset", "folder", "--data-dir", str(root), "--class-names", "a", "b"]


def _reference_matrix(paths, skip=()):
    matrix = np.zeros((2, 2), np.int64)
    for index, path in enumerate(paths):
        if index in skip:
            continue
        truth = np.asarray(Image.open(path.parent.parent / "masks" / path.name)).astype(int)
        predicted = _expected_labels(path).astype(int)
        np.add.at(matrix, (truth.ravel(), predicted.ravel()), 1)
    return matrix


def test_evaluate_streams_pairs_and_skips_a_bad_one(tmp_path, stub_network, capsys):
    paths, flags = _folder_split(tmp_path / "data", 6, bad=[2])
    code = main(["evaluate", "w.npz", *flags, "--json", "--on-error", "skip"])
    captured = capsys.readouterr()
    assert code == 1
    report = json.loads(captured.out)
    assert report["skipped"] == 1
    np.testing.assert_array_equal(report["confusion_matrix"], _reference_matrix(paths, {2}))
    lines = captured.err.splitlines()
    assert lines[0].startswith(f"fcn8 evaluate: skipped {paths[2]}: cannot read")
    assert lines[-1].startswith("fcn8 evaluate: 1 of 6 pairs skipped (named above)")
    assert stub_network == [1] * 5  # one pair at a time
    code = main(["evaluate", "w.npz", *flags, "--json"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and str(paths[2]) in err


def test_evaluate_reads_one_pair_at_a_time(tmp_path, monkeypatch):
    from fcn8_lasagne.data import load_dataset

    paths, _ = _folder_split(tmp_path / "data", 4)
    dataset = load_dataset("folder", tmp_path / "data", "test", class_names=["a", "b"])
    reads, calls = [], []
    real_getitem = type(dataset).__getitem__

    def counting(self, index):
        reads.append(index)
        return real_getitem(self, index)

    def predict(X):
        calls.append(len(reads))
        return _stub_predict(X)

    monkeypatch.setattr(type(dataset), "__getitem__", counting)
    confusion = inference.evaluate(predict, dataset)
    assert calls == [1, 2, 3, 4]  # read, predicted, then the next read
    np.testing.assert_array_equal(confusion.matrix, _reference_matrix(paths))


# 5. the real FCN-8 -------------------------------------------------------------------------

@pytest.mark.slow
def test_fcn8_streaming_matches_one_image_at_a_time(tmp_path):
    """Windows of 3 over 5 images of two sizes, batched by size, give the labels of
    :func:`predict_labels` image by image."""
    import pytensor.tensor as pt

    from fcn8_lasagne.layers import get_all_param_values
    from fcn8_lasagne.models import BUILDERS
    from fcn8_lasagne.weights import atomic_savez

    net = BUILDERS["fcn8"](3, pt.tensor4("input"), n_classes=2)
    weights = tmp_path / "w.npz"
    atomic_savez(weights, *get_all_param_values(net["probs"]))
    paths = _write_images(tmp_path / "in", 3) + _write_images(tmp_path / "in", 2, size=32,
                                                              seed=3, prefix="big")
    net, input_var = inference.load_model(weights, "fcn8")
    predict = inference.predict_function(net, input_var)
    written, _ = inference.predict_images(predict, [str(p) for p in paths],
                                          str(tmp_path / "out"), 2, window=3)
    assert written == 5
    for path in paths:
        expected, _ = inference.predict_labels(predict, inference.read_image(path))
        np.testing.assert_array_equal(
            np.asarray(Image.open(tmp_path / "out" / f"{path.stem}_labels.png")), expected)


def test_outputs_may_not_overwrite_the_weights_or_an_image_of_a_folder(tmp_path, capsys):
    """The lazy output check (a stem and a file identity kept per image) still names the
    input an output would replace: the weight file, or an image listed from a folder."""
    _write_images(tmp_path / "in", 2)
    weights = tmp_path / "in" / "img00001_overlay.npz"
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "img00000_labels.png").symlink_to(tmp_path / "in" / "img00001.png")
    code = main(["predict", str(weights), str(tmp_path / "in"), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert (f"output {tmp_path / 'out' / 'img00000_labels.png'} would overwrite the input "
            f"{tmp_path / 'in' / 'img00001.png'}") in err
    weights.write_bytes(b"weights")
    (tmp_path / "out" / "img00000_labels.png").unlink()
    os.link(weights, tmp_path / "out" / "img00001_overlay.png")
    code = main(["predict", str(weights), str(tmp_path / "in"), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and f"would overwrite the input {weights}" in err
