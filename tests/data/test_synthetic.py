"""The synthetic polyp generator: determinism, the Polyps912 layout, caching, registry."""

import inspect
import json

import numpy as np
import pytest

from fcn8_lasagne.data import (
    DATASETS,
    SYNTHETIC_DEFAULTS,
    Polyps912,
    SyntheticPolyps,
    ensure_synthetic_polyps,
    load_dataset,
    make_synthetic_polyps,
)
from fcn8_lasagne.data import synthetic

SMALL = {"n_train": 3, "n_valid": 2, "n_test": 2, "image_size": (32, 40)}


def all_files(root):
    return {path.relative_to(root): path.read_bytes()
            for path in sorted(root.rglob("*")) if path.is_file()}


def test_same_seed_same_bytes_other_seed_other_pictures(tmp_path):
    first = all_files(make_synthetic_polyps(tmp_path / "a", seed=4, **SMALL))
    second = all_files(make_synthetic_polyps(tmp_path / "b", seed=4, **SMALL))
    other = all_files(make_synthetic_polyps(tmp_path / "c", seed=5, **SMALL))
    assert len(first) == 2 * (3 + 2 + 2)
    assert first == second
    assert set(other) == set(first)
    assert all(other[name] != first[name] for name in first if name.suffix == ".bmp")


def test_a_frame_does_not_depend_on_how_many_are_made(tmp_path):
    few = make_synthetic_polyps(tmp_path / "few", **{**SMALL, "n_train": 1})
    many = make_synthetic_polyps(tmp_path / "many", **{**SMALL, "n_train": 3})
    name = "train/images/0001.bmp"
    assert (few / name).read_bytes() == (many / name).read_bytes()


def test_polyps912_reader_sees_both_classes_and_void(tmp_path):
    root = make_synthetic_polyps(tmp_path, seed=0, **SMALL)
    for split, count in (("train", 3), ("valid", 2), ("test", 2)):
        dataset = Polyps912(root, split).validate()
        assert len(dataset) == count
        for index in range(count):
            image, label = dataset[index]
            assert image.shape == (3, 32, 40) and label.shape == (32, 40)
            assert set(np.unique(label)) == {0, 1, 2}
            # Void: the frame corners and border, drawn (near) black.
            assert label[0, 0] == label[-1, -1] == label[0, 20] == 2
            assert image[:, label == 2].max() < 6 / 255 + 1e-6
            assert 0.0 <= image.min() and image.max() <= 1.0


def test_polyps_are_a_large_minority_told_by_colour_but_not_perfectly(tmp_path):
    root = make_synthetic_polyps(tmp_path, seed=0, n_train=12, n_valid=1, n_test=1,
                                 image_size=(48, 48))
    dataset = Polyps912(root, "train")
    pixels, labels = [], []
    for image, label in (dataset[i] for i in range(len(dataset))):
        keep = label < 2
        pixels.append(image[:, keep])
        labels.append(label[keep])
        assert 0 < (label == 1).sum() < keep.sum()  # every frame holds a polyp
    pixels, labels = np.concatenate(pixels, axis=1), np.concatenate(labels)
    polyp_share = labels.mean()
    assert 0.15 < polyp_share < 0.4
    # Polyps are darker in green than the mucosa on average...
    assert pixels[1, labels == 1].mean() < pixels[1, labels == 0].mean() - 0.15
    # ...so that a threshold on green alone gets most pixels right, but none gets them all
    # (folds, vignetting, highlights and the lit side of a dome overlap).
    best_errors = []
    for channel in pixels:
        order = np.argsort(channel)
        sorted_labels = labels[order]
        polyps_below = np.cumsum(sorted_labels == 1)
        background_below = np.cumsum(sorted_labels == 0)
        errors = background_below + (polyps_below[-1] - polyps_below)
        best_errors.append(errors.min() / labels.size)
    assert 0.03 * polyp_share < best_errors[1] < 0.2 * polyp_share
    assert min(best_errors) > 0.03 * polyp_share


def test_ensure_generates_once_then_reuses(tmp_path, monkeypatch):
    root = ensure_synthetic_polyps(tmp_path / "data", seed=1, **SMALL)
    assert root == tmp_path / "data"
    marker = json.loads((root / "synthetic.json").read_text())
    assert marker["parameters"]["seed"] == 1
    assert sorted(path.name for path in tmp_path.iterdir()) == ["data"]  # no temp folder left

    def must_not_run(*args, **kwargs):
        raise AssertionError("regenerated an existing dataset")

    monkeypatch.setattr(synthetic, "make_synthetic_polyps", must_not_run)
    assert ensure_synthetic_polyps(tmp_path / "data", seed=1, **SMALL) == root
    with pytest.raises(ValueError, match="other parameters"):
        ensure_synthetic_polyps(tmp_path / "data", seed=2, **SMALL)


def test_ensure_refuses_a_folder_that_is_not_its_own(tmp_path):
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "holiday.png").write_bytes(b"")
    with pytest.raises(FileExistsError, match="photos"):
        ensure_synthetic_polyps(tmp_path / "photos", **SMALL)


def test_ensure_default_root_is_in_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("FCN8_LASAGNE_CACHE", str(tmp_path / "cache"))
    root = ensure_synthetic_polyps(**SMALL)
    assert root.parent == tmp_path / "cache" and root.name.startswith("synthetic-")
    assert ensure_synthetic_polyps(**{**SMALL, "seed": 3}) != root


def test_load_dataset_synthetic_without_root(tmp_path, monkeypatch):
    monkeypatch.setenv("FCN8_LASAGNE_CACHE", str(tmp_path))
    dataset = load_dataset("synthetic", split="valid", train_from_0_255=True, **SMALL)
    assert isinstance(dataset, SyntheticPolyps) and dataset.name == "synthetic"
    assert len(dataset) == 2 and dataset.n_classes == 2 and dataset.void_label == 2
    assert dataset[0][0].max() > 1.0


def test_load_dataset_other_names(tmp_path):
    root = make_synthetic_polyps(tmp_path / "p", **SMALL)
    dataset = load_dataset("polyps912", root, "test")
    assert isinstance(dataset, Polyps912) and len(dataset) == 2
    folder = load_dataset("folder", root, "valid", class_names=["bg", "polyp"], void_values=[2],
                          masks_folder="masks2")
    assert len(folder) == 2
    np.testing.assert_array_equal(folder[1][1], Polyps912(root, "valid")[1][1])
    assert {"polyps912", "camvid", "folder", "synthetic"} <= set(DATASETS)
    with pytest.raises(ValueError, match="needs a root"):
        load_dataset("camvid", None, "train")
    with pytest.raises(ValueError, match="unknown dataset 'pascal'"):
        load_dataset("pascal", root)


def test_published_defaults_match_the_signatures():
    for function in (make_synthetic_polyps, ensure_synthetic_polyps, SyntheticPolyps):
        parameters = inspect.signature(function).parameters
        for name, value in SYNTHETIC_DEFAULTS.items():
            assert parameters[name].default == value, (function, name)


def test_bad_parameters(tmp_path):
    with pytest.raises(ValueError, match="image_size"):
        make_synthetic_polyps(tmp_path, image_size=(8, 8))
    with pytest.raises(ValueError, match="n_valid"):
        make_synthetic_polyps(tmp_path, n_valid=0)
