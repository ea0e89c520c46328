"""Cortical layers profiles reader and the synthetic profiles: values, the seeded split,
channels, bad input."""

import re

import numpy as np
import pytest

from fcn8_lasagne.data import (
    BatchIterator,
    CorticalLayers,
    SyntheticCorticalProfiles,
    load_dataset,
    make_synthetic_profiles,
)


def _rows(n, scale):
    """Line i holds i * scale + position / 1000 at each of its 200 positions."""
    return np.array([[i * scale + t / 1000 for t in range(200)] for i in range(n)])


def write_profiles(root, n=20, raw=None, smooth=None, labels=None):
    folder = root / "6layers_segmentation"
    folder.mkdir(parents=True, exist_ok=True)
    raw = _rows(n, 1.0) if raw is None else raw
    smooth = _rows(n, -1.0) if smooth is None else smooth
    labels = np.array([[(i + t) % 7 for t in range(200)] for i in range(n)]) \
        if labels is None else labels
    for name, rows, form in (("training_raw.txt", raw, "{:.3f}"),
                             ("training_geo.txt", smooth, "{:.3f}"),
                             ("training_cls.txt", labels, "{:d}"),
                             ("training_regions.txt", np.zeros((n, 200), int), "{:d}")):
        text = "".join(" ".join(form.format(v) for v in row) + "\n" for row in rows)
        (folder / name).write_text(text)
    return folder


def _original_permutation(n):
    """What the original did: shuffle range(n) with NumPy's global generator seeded 1609."""
    state = np.random.get_state()
    try:
        np.random.seed(1609)
        lines = list(range(n))
        np.random.shuffle(lines)
        return lines
    finally:
        np.random.set_state(state)


def test_the_seeded_split_is_the_originals(tmp_path):
    write_profiles(tmp_path, n=20)
    state = np.random.get_state()[1].copy()
    train = CorticalLayers(tmp_path, "train")
    valid = CorticalLayers(tmp_path, "valid")
    test = CorticalLayers(tmp_path, "test")
    order = _original_permutation(20)
    assert list(train.lines) == order[:17]  # int(20 * 0.85) = 17
    assert list(valid.lines) == order[17:]
    assert list(test.lines) == order and sorted(order) == list(range(20))
    assert order != list(range(20))
    np.testing.assert_array_equal(np.random.get_state()[1], state)  # global generator untouched
    assert list(CorticalLayers(tmp_path, "val", train_fraction=0.5).lines) == order[10:]


def test_values_channels_and_labels(tmp_path):
    write_profiles(tmp_path, n=20)
    both = CorticalLayers(tmp_path / "6layers_segmentation", "train")  # the folder itself
    line = both.lines[2]
    profile, labels = both[2]
    assert profile.dtype == np.float32 and profile.shape == (2, 200)
    # channel 0 is the smooth (geo) file, channel 1 the raw file, as the original
    np.testing.assert_allclose(profile[0], -line + np.arange(200) / 1000, atol=1e-3)
    np.testing.assert_allclose(profile[1], line + np.arange(200) / 1000, atol=1e-3)
    assert labels.dtype == np.int32 and labels.tolist() == [(line + t) % 7 for t in range(200)]
    raw = CorticalLayers(tmp_path, "train", smooth_or_raw="raw")
    smooth = CorticalLayers(tmp_path, "train", smooth_or_raw="smooth")
    assert raw.n_channels == smooth.n_channels == 1 and both.n_channels == 2
    np.testing.assert_array_equal(raw[2][0][0], profile[1])
    np.testing.assert_array_equal(smooth[2][0][0], profile[0])
    assert both.n_classes == 7 and both.void_label == 7 and both.class_names[0] == "padding"
    assert both.class_counts().sum() == 17 * 200 and both.class_counts()[7] == 0
    images, targets = next(iter(BatchIterator(both, batch_size=4)))
    assert images.shape == (4, 2, 200) and targets.shape == (4, 200)
    with pytest.raises(ValueError, match="smooth_or_raw"):
        CorticalLayers(tmp_path, "train", smooth_or_raw="geo")


def test_registry_opens_it(tmp_path):
    write_profiles(tmp_path, n=20)
    dataset = load_dataset("cortical_layers", tmp_path, "valid", smooth_or_raw="raw")
    assert isinstance(dataset, CorticalLayers) and len(dataset) == 3


# --- bad input: one line naming the file and the line, when the split is opened -------------

def test_short_row(tmp_path):
    folder = write_profiles(tmp_path, n=5)
    path = folder / "training_raw.txt"
    lines = path.read_text().splitlines()
    lines[2] = " ".join(lines[2].split()[:199])
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=re.escape(
            f"{path}, line 3: expected 200 values, got 199")):
        CorticalLayers(tmp_path, "train")
    CorticalLayers(tmp_path, "train", smooth_or_raw="smooth")  # the raw file is not read


def test_mismatched_line_counts(tmp_path):
    folder = write_profiles(tmp_path, n=5)
    write_profiles(tmp_path / "other", n=4)
    (folder / "training_raw.txt").write_bytes(
        (tmp_path / "other" / "6layers_segmentation" / "training_raw.txt").read_bytes())
    with pytest.raises(ValueError, match=re.escape(
            f"{folder / 'training_raw.txt'} has 4 lines but {folder / 'training_cls.txt'} "
            f"has 5: line 5 of {folder / 'training_cls.txt'} has no counterpart in "
            f"{folder / 'training_raw.txt'}")):
        CorticalLayers(tmp_path, "train", smooth_or_raw="raw")
    # More profiles than labels: the first extra line of the profile file is named.
    write_profiles(tmp_path / "more", n=6)
    (folder / "training_geo.txt").write_bytes(
        (tmp_path / "more" / "6layers_segmentation" / "training_geo.txt").read_bytes())
    with pytest.raises(ValueError, match=re.escape(
            f"has 5: line 6 of {folder / 'training_geo.txt'} has no counterpart in "
            f"{folder / 'training_cls.txt'}")):
        CorticalLayers(tmp_path, "train", smooth_or_raw="smooth")


def test_bad_values_and_labels_and_missing_files(tmp_path):
    folder = write_profiles(tmp_path, n=5)
    path = folder / "training_geo.txt"
    lines = path.read_text().splitlines()
    fields = lines[3].split()
    fields[10] = "1.2.3"
    lines[3] = " ".join(fields)
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=re.escape(f"{path}, line 4: '1.2.3' is not a number")):
        CorticalLayers(tmp_path, "train")
    labels = np.zeros((5, 200), int)
    labels[4, 7] = 7
    write_profiles(tmp_path / "labels", n=5, labels=labels)
    with pytest.raises(ValueError, match=r"training_cls.txt, line 5: label 7 is not a class"):
        CorticalLayers(tmp_path / "labels", "train")
    (tmp_path / "labels" / "6layers_segmentation" / "training_cls.txt").write_text("")
    with pytest.raises(ValueError, match="training_cls.txt: the file holds no profile"):
        CorticalLayers(tmp_path / "labels", "train")
    (folder / "training_cls.txt").unlink()
    with pytest.raises(FileNotFoundError, match="training_cls.txt"):
        CorticalLayers(tmp_path, "train")
    with pytest.raises(FileNotFoundError, match="6layers_segmentation"):
        CorticalLayers(tmp_path / "nowhere", "train")


# --- the synthetic profiles -------------------------------------------------------------------

def test_synthetic_profiles_are_deterministic_and_layered(tmp_path):
    make_synthetic_profiles(tmp_path / "a", n_profiles=12, seed=3)
    make_synthetic_profiles(tmp_path / "b", n_profiles=12, seed=3)
    for name in ("training_raw.txt", "training_geo.txt", "training_cls.txt",
                 "training_regions.txt"):
        first = (tmp_path / "a" / "6layers_segmentation" / name).read_bytes()
        assert first == (tmp_path / "b" / "6layers_segmentation" / name).read_bytes()
    dataset = CorticalLayers(tmp_path / "a", "test")
    for index in range(len(dataset)):
        profile, labels = dataset[index]
        inside = np.flatnonzero(labels)
        # padding, then the six layers in order without gaps, then padding
        assert inside[0] > 0 and inside[-1] < 199  # padding on both sides
        assert np.array_equal(np.unique(labels[inside[0]:inside[-1] + 1]), np.arange(1, 7))
        assert (np.diff(labels[inside[0]:inside[-1] + 1]) >= 0).all()
        # the smooth channel varies less from sample to sample than the raw one
        assert np.abs(np.diff(profile[0])).mean() < np.abs(np.diff(profile[1])).mean()


def test_synthetic_profiles_dataset(tmp_path):
    train = SyntheticCorticalProfiles(tmp_path / "p", "train", n_profiles=20, seed=0)
    assert len(train) == 17 and train.name == "synthetic_profiles"
    valid = load_dataset("synthetic_profiles", tmp_path / "p", "valid", n_profiles=20, seed=0,
                         smooth_or_raw="raw")
    assert len(valid) == 3 and valid.n_channels == 1
    assert not set(train.lines) & set(valid.lines)
