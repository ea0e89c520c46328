"""CamVid (SegNet layout) and generic folder readers."""

import re

import numpy as np
import pytest
from PIL import Image

from fcn8_lasagne.data import CamVid, FolderDataset


def write_png(path, pixels):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(pixels, dtype=np.uint8)).save(path)
    return path


def test_camvid_valid_reads_val_folders_and_keeps_void_11(tmp_path):
    rgb = np.arange(2 * 2 * 3, dtype=np.uint8).reshape(2, 2, 3) * 10
    write_png(tmp_path / "val" / "0001TP_008550.png", rgb)
    write_png(tmp_path / "valannot" / "0001TP_008550.png", [[0, 11], [10, 3]])
    dataset = CamVid(tmp_path, "valid")
    assert dataset.n_classes == 11 and dataset.void_label == 11
    assert dataset.class_names[0] == "Sky" and dataset.class_names[10] == "Bicyclist"
    image, label = dataset[0]
    np.testing.assert_array_equal(label, [[0, 11], [10, 3]])
    np.testing.assert_array_equal(image[:, 1, 0] * 255, np.float32([60, 70, 80]))


def test_camvid_value_12_is_an_error(tmp_path):
    write_png(tmp_path / "train" / "a.png", np.zeros((1, 2, 3)))
    mask = write_png(tmp_path / "trainannot" / "a.png", [[12, 0]])
    with pytest.raises(ValueError, match=re.escape(str(mask)) + ".*12"):
        CamVid(tmp_path, "train")[0]


def test_camvid_missing_annotation_folder(tmp_path):
    write_png(tmp_path / "test" / "a.png", np.zeros((1, 2, 3)))
    with pytest.raises(FileNotFoundError, match="testannot"):
        CamVid(tmp_path, "test")


def test_folder_value_mapping_void_and_aliases(tmp_path):
    write_png(tmp_path / "val" / "images" / "cat.png", np.full((2, 3, 3), 200))
    write_png(tmp_path / "val" / "masks" / "cat.png", [[0, 255, 128], [255, 255, 0]])
    dataset = FolderDataset(
        tmp_path, "valid", class_names=["background", "cat"], void_values=[128],
        value_to_class={0: 0, 255: 1},
    )
    assert dataset.root == tmp_path
    np.testing.assert_array_equal(dataset[0][1], [[0, 1, 2], [1, 1, 0]])
    np.testing.assert_array_equal(dataset[0][0], np.full((3, 2, 3), np.float32(200 / 255)))


def test_folder_pairs_by_name_across_suffixes(tmp_path):
    write_png(tmp_path / "train" / "images" / "b.bmp", np.zeros((1, 1, 3)))
    write_png(tmp_path / "train" / "images" / "a.jpg", np.zeros((1, 1, 3)))
    write_png(tmp_path / "train" / "masks" / "a.png", [[1]])
    write_png(tmp_path / "train" / "masks" / "b.tif", [[0]])
    dataset = FolderDataset(tmp_path, "train", class_names=["x", "y"])
    assert dataset.names == ("a", "b")
    assert [dataset[i][1].item() for i in range(2)] == [1, 0]


def test_folder_two_images_with_one_name(tmp_path):
    write_png(tmp_path / "train" / "images" / "a.png", np.zeros((1, 1, 3)))
    write_png(tmp_path / "train" / "images" / "a.bmp", np.zeros((1, 1, 3)))
    write_png(tmp_path / "train" / "masks" / "a.png", [[0]])
    with pytest.raises(ValueError, match="share the name 'a'"):
        FolderDataset(tmp_path, "train", class_names=["x"])


def test_folder_missing_split_names_what_was_tried(tmp_path):
    tmp_path.joinpath("train").mkdir()
    with pytest.raises(FileNotFoundError) as error:
        FolderDataset(tmp_path, "valid", class_names=["x"])
    assert str(tmp_path / "valid") in str(error.value)
    assert str(tmp_path / "val") in str(error.value)
