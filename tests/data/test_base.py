"""Image and label-map readers, and the value -> class mapping of SegmentationDataset."""

import re

import numpy as np
import pytest
import tifffile
from PIL import Image

from fcn8_lasagne.data import SegmentationDataset, canonical_split, read_label_map, read_rgb_image


def test_grey_image_becomes_three_equal_channels(tmp_path):
    grey = np.array([[0, 7], [128, 255]], dtype=np.uint8)
    Image.fromarray(grey).save(tmp_path / "grey.png")
    rgb = read_rgb_image(tmp_path / "grey.png")
    assert rgb.shape == (2, 2, 3) and rgb.dtype == np.uint8
    for channel in range(3):
        np.testing.assert_array_equal(rgb[:, :, channel], grey)


def test_alpha_channel_is_dropped(tmp_path):
    rgba = np.array([[[1, 2, 3, 4], [5, 6, 7, 0]]], dtype=np.uint8)
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    tifffile.imwrite(tmp_path / "a.tif", rgba)
    expected = [[[1, 2, 3], [5, 6, 7]]]
    np.testing.assert_array_equal(read_rgb_image(tmp_path / "a.png"), expected)
    np.testing.assert_array_equal(read_rgb_image(tmp_path / "a.tif"), expected)


def test_sixteen_bit_image_is_refused(tmp_path):
    tifffile.imwrite(tmp_path / "deep.tif", np.zeros((2, 2, 3), np.uint16))
    with pytest.raises(ValueError, match=r"deep\.tif.*8-bit.*uint16"):
        read_rgb_image(tmp_path / "deep.tif")


def test_palette_label_map_gives_indices(tmp_path):
    indices = np.array([[0, 3], [11, 1]], dtype=np.uint8)
    palette_image = Image.fromarray(indices, "P")
    palette_image.putpalette([value for index in range(256) for value in (index, 255 - index, 9)])
    palette_image.save(tmp_path / "p.png")
    np.testing.assert_array_equal(read_label_map(tmp_path / "p.png"), indices)


def test_label_map_saved_in_grey_rgb_is_accepted_colour_is_not(tmp_path):
    grey = np.array([[0, 1], [2, 1]], dtype=np.uint8)
    Image.fromarray(np.repeat(grey[:, :, None], 3, axis=2)).save(tmp_path / "grey.png")
    np.testing.assert_array_equal(read_label_map(tmp_path / "grey.png"), grey)
    colour = np.zeros((2, 2, 3), np.uint8)
    colour[0, 0] = (1, 2, 3)
    Image.fromarray(colour).save(tmp_path / "colour.png")
    with pytest.raises(ValueError, match=r"colour\.png.*single-channel"):
        read_label_map(tmp_path / "colour.png")


def test_tiff_label_map_with_leading_page_axis(tmp_path):
    labels = np.array([[[2, 0], [1, 1]]], dtype=np.uint16)
    tifffile.imwrite(tmp_path / "m.tif", labels)
    read = read_label_map(tmp_path / "m.tif")
    assert read.shape == (2, 2)
    np.testing.assert_array_equal(read, labels[0])


def test_missing_file_stays_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_rgb_image(tmp_path / "absent.png")
    with pytest.raises(FileNotFoundError):
        read_label_map(tmp_path / "absent.tif")


def test_text_file_is_not_an_image(tmp_path):
    (tmp_path / "notes.png").write_text("hello")
    with pytest.raises(ValueError, match=re.escape(str(tmp_path / "notes.png"))):
        read_label_map(tmp_path / "notes.png")


def make_dataset(tmp_path, raw_labels, **options):
    Image.fromarray(np.zeros(raw_labels.shape + (3,), np.uint8)).save(tmp_path / "x.png")
    Image.fromarray(raw_labels.astype(np.uint8)).save(tmp_path / "y.png")
    return SegmentationDataset([tmp_path / "x.png"], [tmp_path / "y.png"], **options)


def test_explicit_value_mapping_and_several_void_values(tmp_path):
    raw = np.array([[0, 255, 128], [64, 0, 255]])
    dataset = make_dataset(
        tmp_path, raw, class_names=["sky", "road"], label_values={0: 1, 255: 0},
        void_values=[128, 64],
    )
    assert dataset.void_label == 2
    np.testing.assert_array_equal(dataset[0][1], [[1, 0, 2], [2, 1, 0]])


def test_unknown_value_lists_classes_and_void(tmp_path):
    raw = np.array([[0, 5]])
    dataset = make_dataset(tmp_path, raw, class_names=["a", "b"], void_values=[9])
    with pytest.raises(ValueError) as error:
        dataset[0]
    message = str(error.value)
    assert str(tmp_path / "y.png") in message
    assert "5" in message and "0: a, 1: b" in message and "(9)" in message


def test_inconsistent_mapping_is_refused(tmp_path):
    raw = np.array([[0, 1]])
    with pytest.raises(ValueError, match="both a class and void"):
        make_dataset(tmp_path, raw, class_names=["a", "b"], void_values=[1])
    with pytest.raises(ValueError, match="outside 0..1"):
        make_dataset(tmp_path, raw, class_names=["a", "b"], label_values={0: 0, 1: 2})


def test_channel_mean_std_by_hand(tmp_path):
    pixels = np.array([[[0, 51, 255], [255, 51, 0]]], dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "x.png")
    Image.fromarray(np.zeros((1, 2), np.uint8)).save(tmp_path / "y.png")
    dataset = SegmentationDataset([tmp_path / "x.png"], [tmp_path / "y.png"], ["only"])
    mean, std = dataset.channel_mean_std()
    np.testing.assert_allclose(mean, [0.5, 0.2, 0.5], rtol=1e-6)
    np.testing.assert_allclose(std, [0.5, 0.0, 0.5], rtol=1e-6, atol=1e-7)


def test_negative_index_and_out_of_range(tmp_path):
    dataset = make_dataset(tmp_path, np.array([[0]]), class_names=["a"])
    assert dataset[-1][1].tolist() == [[0]]
    with pytest.raises(IndexError):
        dataset[1]


@pytest.mark.parametrize(
    "name, expected",
    [("training", "train"), ("val", "valid"), ("validation", "valid"), ("testing", "test")],
)
def test_split_aliases(name, expected):
    assert canonical_split(name) == expected
