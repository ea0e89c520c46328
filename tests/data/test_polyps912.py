"""Polyps912 reader: values read back, labellings, and every bad-input error."""

import re

import numpy as np
import pytest
import tifffile
from PIL import Image

from fcn8_lasagne.data import Polyps912

RGB = np.array(
    [[[10, 20, 30], [40, 50, 60], [255, 0, 128]],
     [[0, 0, 0], [1, 2, 3], [200, 100, 50]]],
    dtype=np.uint8,
)
MASK = np.array([[0, 1, 2], [1, 0, 2]], dtype=np.uint8)


def write_pair(root, split, stem, rgb=RGB, mask=MASK, masks="masks2"):
    images, labels = root / split / "images", root / split / masks
    images.mkdir(parents=True, exist_ok=True)
    labels.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rgb).save(images / f"{stem}.bmp")
    tifffile.imwrite(labels / f"{stem}.tif", mask)
    return images / f"{stem}.bmp", labels / f"{stem}.tif"


def test_reads_image_and_labels_back(tmp_path):
    write_pair(tmp_path, "train", "frame")
    dataset = Polyps912(tmp_path, "train")
    assert len(dataset) == 1
    assert dataset.n_classes == 2 and dataset.void_label == 2
    assert dataset.class_names == ("background", "polyp")
    image, label = dataset[0]
    assert image.dtype == np.float32 and image.shape == (3, 2, 3)
    assert label.dtype == np.int32 and label.shape == (2, 3)
    # Pixel (0, 2) is RGB (255, 0, 128): channels first, scaled by 1/255.
    np.testing.assert_array_equal(image[:, 0, 2], np.float32([1.0, 0.0, 128 / 255]))
    np.testing.assert_array_equal(image[:, 1, 1], np.float32([1 / 255, 2 / 255, 3 / 255]))
    np.testing.assert_array_equal(label, [[0, 1, 2], [1, 0, 2]])


def test_train_from_0_255_keeps_pixel_values(tmp_path):
    write_pair(tmp_path, "train", "frame")
    image, _ = Polyps912(tmp_path, "train", train_from_0_255=True)[0]
    assert image.dtype == np.float32
    np.testing.assert_array_equal(image, RGB.transpose(2, 0, 1).astype(np.float32))


def test_files_in_natural_order_and_val_alias(tmp_path):
    for stem in ("10", "2", "1"):
        write_pair(tmp_path, "valid", stem)
    dataset = Polyps912(tmp_path, "val")
    assert dataset.split == "valid"
    assert dataset.names == ("1", "2", "10")
    assert [path.name for path in dataset.mask_paths] == ["1.tif", "2.tif", "10.tif"]


@pytest.mark.parametrize(
    "masks, names",
    [("masks3", ("background", "polyp", "lumen")),
     (4, ("background", "polyp", "lumen", "specularity"))],
)
def test_other_labellings_keep_void_at_n_classes(tmp_path, masks, names):
    folder = masks if isinstance(masks, str) else f"masks{masks}"
    n = len(names)
    mask = np.array([[0, 1, n], [n - 1, 0, n]], dtype=np.uint8)
    write_pair(tmp_path, "test", "frame", mask=mask, masks=folder)
    dataset = Polyps912(tmp_path, "test", masks=masks)
    assert dataset.class_names == names
    assert dataset.void_label == n
    np.testing.assert_array_equal(dataset[0][1], mask)


def test_value_beyond_void_is_an_error_naming_the_mask(tmp_path):
    _, mask_path = write_pair(tmp_path, "train", "frame", mask=np.array([[0, 1, 3], [7, 0, 2]]))
    dataset = Polyps912(tmp_path, "train")
    with pytest.raises(ValueError, match=r"frame\.tif.*3, 7"):
        dataset[0]
    with pytest.raises(ValueError, match=re.escape(str(mask_path))):
        dataset.validate()


def test_unknown_labelling(tmp_path):
    write_pair(tmp_path, "train", "frame")
    with pytest.raises(ValueError, match="masks5"):
        Polyps912(tmp_path, "train", masks="masks5")


def test_image_without_mask(tmp_path):
    write_pair(tmp_path, "train", "a")
    lonely = tmp_path / "train" / "images" / "b.bmp"
    Image.fromarray(RGB).save(lonely)
    with pytest.raises(FileNotFoundError, match=re.escape(str(lonely))):
        Polyps912(tmp_path, "train")


def test_mask_without_image(tmp_path):
    write_pair(tmp_path, "train", "a")
    lonely = tmp_path / "train" / "masks2" / "b.tif"
    tifffile.imwrite(lonely, MASK)
    with pytest.raises(FileNotFoundError, match=re.escape(str(lonely))):
        Polyps912(tmp_path, "train")


def test_a_mask_with_a_suffix_the_dataset_does_not_read_is_named(tmp_path):
    """A mask saved as .png (Polyps912 reads .tif) is not reported as simply missing."""
    write_pair(tmp_path, "train", "a")
    Image.fromarray(RGB).save(tmp_path / "train" / "images" / "b.bmp")
    Image.fromarray(MASK).save(tmp_path / "train" / "masks2" / "b.png")
    with pytest.raises(FileNotFoundError,
                       match=r"b\.png has the name, but this dataset reads label maps only "
                             r"with the suffixes \.tif, \.tiff"):
        Polyps912(tmp_path, "train")


def test_an_image_with_a_suffix_the_dataset_does_not_read_is_named(tmp_path):
    write_pair(tmp_path, "train", "a")
    Image.fromarray(RGB).save(tmp_path / "train" / "images" / "b.png")
    tifffile.imwrite(tmp_path / "train" / "masks2" / "b.tif", MASK)
    with pytest.raises(FileNotFoundError,
                       match=r"b\.png has the name, but this dataset reads images only "
                             r"with the suffixes \.bmp\)"):
        Polyps912(tmp_path, "train")


def test_size_mismatch_names_both_files_and_sizes(tmp_path):
    image_path, mask_path = write_pair(tmp_path, "train", "a", mask=np.zeros((3, 3), np.uint8))
    dataset = Polyps912(tmp_path, "train")
    with pytest.raises(ValueError) as error:
        dataset[0]
    message = str(error.value)
    assert str(image_path) in message and str(mask_path) in message
    assert "2x3" in message and "3x3" in message


def test_empty_split(tmp_path):
    (tmp_path / "train" / "images").mkdir(parents=True)
    (tmp_path / "train" / "masks2").mkdir(parents=True)
    with pytest.raises(ValueError, match=r"empty split.*images"):
        Polyps912(tmp_path, "train")


def test_missing_root_split_and_mask_folder(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(FileNotFoundError, match=re.escape(str(missing))):
        Polyps912(missing, "train")
    write_pair(tmp_path, "train", "a")
    with pytest.raises(FileNotFoundError, match=re.escape(str(tmp_path / "test"))):
        Polyps912(tmp_path, "test")
    with pytest.raises(FileNotFoundError, match=re.escape(str(tmp_path / "train" / "masks3"))):
        Polyps912(tmp_path, "train", masks="masks3")


def test_unknown_split_name(tmp_path):
    with pytest.raises(ValueError, match="'dev'"):
        Polyps912(tmp_path, "dev")


def test_corrupt_image_and_mask_name_the_file(tmp_path):
    image_path, mask_path = write_pair(tmp_path, "train", "a")
    image_path.write_bytes(b"BM this is not a bitmap")
    dataset = Polyps912(tmp_path, "train")
    with pytest.raises(ValueError, match=re.escape(str(image_path))):
        dataset[0]
    write_pair(tmp_path, "train", "a")
    mask_path.write_bytes(b"II*\x00 truncated")
    with pytest.raises(ValueError, match=re.escape(str(mask_path))):
        dataset[0]


def test_class_counts(tmp_path):
    write_pair(tmp_path, "train", "a")
    write_pair(tmp_path, "train", "b", mask=np.array([[1, 1, 1], [1, 1, 0]]).astype(np.uint8))
    counts = Polyps912(tmp_path, "train").class_counts()
    # a: 2 background, 2 polyp, 2 void; b: 1 background, 5 polyp.
    np.testing.assert_array_equal(counts, [3, 7, 2])
