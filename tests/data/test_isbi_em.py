"""ISBI 2012 EM stacks reader and the synthetic EM stacks: values, splits, bad input."""

import re

import numpy as np
import pytest
import tifffile

from fcn8_lasagne.data import (
    BatchIterator,
    IsbiEmStacks,
    SyntheticEmStacks,
    load_dataset,
    make_synthetic_em,
)

SIZE = (6, 8)


def _pages(n_pages, size=SIZE, offset=0):
    """Page p is filled with p + offset, so a read-back page says which page it was."""
    return np.stack([np.full(size, p + offset, dtype=np.uint8) for p in range(n_pages)])


def _labels(n_pages, size=SIZE):
    labels = np.zeros((n_pages,) + size, dtype=np.uint8)
    labels[:, :, ::2] = 255
    return labels


def write_stacks(root, n_pages=30, size=SIZE, labels=None, test=True):
    root.mkdir(parents=True, exist_ok=True)
    tifffile.imwrite(root / "train-volume.tif", _pages(n_pages, size), photometric="minisblack")
    tifffile.imwrite(root / "train-labels.tif",
                     _labels(n_pages, size) if labels is None else labels,
                     photometric="minisblack")
    if test:
        tifffile.imwrite(root / "test-volume.tif", _pages(n_pages, size, offset=100),
                         photometric="minisblack")
    return root


def open_split(root, split, **options):
    return IsbiEmStacks(root, split, page_size=SIZE, **options)


def test_reads_pages_and_labels(tmp_path):
    write_stacks(tmp_path)
    train = open_split(tmp_path, "train")
    assert train.n_classes == 2 and train.void_label == 2
    assert train.class_names == ("membrane", "cell") and train.has_labels
    image, labels = train[3]
    assert image.dtype == np.float32 and image.shape == (1,) + SIZE
    np.testing.assert_array_equal(image, np.full((1,) + SIZE, np.float32(3 / 255)))
    assert labels.dtype == np.int32 and labels.shape == SIZE
    np.testing.assert_array_equal(labels, (_labels(1)[0] // 255).astype(np.int32))
    raw_image, _ = train.read_raw(3)
    assert raw_image.dtype == np.uint8 and raw_image.shape == SIZE + (1,)
    in_0_255 = open_split(tmp_path, "train", train_from_0_255=True)
    assert in_0_255[3][0].max() == 3.0
    assert train.class_counts().tolist() == [25 * 24, 25 * 24, 0]


def test_the_original_split_of_30_pages(tmp_path):
    write_stacks(tmp_path)
    # int(0.85 * 30) = 25 training pages; the original's valid read 0 .. 4 by mistake
    assert open_split(tmp_path, "train").pages == tuple(range(25))
    valid = open_split(tmp_path, "val")
    assert valid.pages == (25, 26, 27, 28, 29) and valid.split == "valid"
    assert [valid[i][0][0, 0, 0] * 255 for i in range(5)] == pytest.approx([25, 26, 27, 28, 29])
    assert valid.names[0] == "train-volume-25"
    assert open_split(tmp_path, "valid", reproduce_val_bug=True).pages == (0, 1, 2, 3, 4)
    assert open_split(tmp_path, "train", train_fraction=0.5).pages == tuple(range(15))


def test_test_split_has_no_labels(tmp_path):
    write_stacks(tmp_path)
    test = open_split(tmp_path, "test")
    assert len(test) == 30 and not test.has_labels
    image, labels = test[29]
    assert image[0, 0, 0] * 255 == pytest.approx(129)
    assert (labels == test.void_label).all()


def test_batches_are_single_channel(tmp_path):
    write_stacks(tmp_path)
    images, labels = next(iter(BatchIterator(open_split(tmp_path, "valid"), batch_size=5)))
    assert images.shape == (5, 1) + SIZE and labels.shape == (5,) + SIZE


def test_registry_opens_it(tmp_path):
    write_stacks(tmp_path, n_pages=10)
    dataset = load_dataset("isbi_em", tmp_path, "valid", n_pages=10, page_size=SIZE)
    assert isinstance(dataset, IsbiEmStacks) and dataset.pages == (8, 9)
    with pytest.raises(ValueError, match="needs a root"):
        load_dataset("isbi_em")


# --- bad input: one line naming the file (and page), when the split is opened ---------------

def test_wrong_page_count(tmp_path):
    write_stacks(tmp_path, n_pages=29)
    with pytest.raises(ValueError, match=re.escape(
            f"{tmp_path / 'train-volume.tif'}: expected 30 pages, got 29")):
        open_split(tmp_path, "train")


def test_wrong_page_size(tmp_path):
    write_stacks(tmp_path)
    path = tmp_path / "train-labels.tif"
    path.unlink()
    for page in range(30):
        size = (6, 9) if page == 7 else SIZE
        tifffile.imwrite(path, np.zeros(size, np.uint8), append=True)
    with pytest.raises(ValueError, match=re.escape(
            f"{path}, page 7: expected a 6x8 grey image, got shape (6, 9)")):
        open_split(tmp_path, "valid")
    with pytest.raises(ValueError, match="page 0: expected a 512x512 grey image"):
        IsbiEmStacks(tmp_path, "train")  # the challenge's size is the default


def test_labels_outside_0_and_255(tmp_path):
    labels = _labels(30)
    labels[27, 1, 1] = 128
    write_stacks(tmp_path, labels=labels)
    valid = open_split(tmp_path, "valid")  # the page count and sizes are right
    message = re.escape(f"{tmp_path / 'train-labels.tif'}, page 27: label value(s) 128 are "
                        "neither a class")
    with pytest.raises(ValueError, match=message):
        valid.validate()
    open_split(tmp_path, "train").validate()  # page 27 is not a training page


def test_colour_pages_and_16_bit_pages_and_missing_files(tmp_path):
    write_stacks(tmp_path / "rgb")
    tifffile.imwrite(tmp_path / "rgb" / "train-volume.tif", np.zeros((30,) + SIZE + (3,),
                                                                      np.uint8))
    with pytest.raises(ValueError, match=r"train-volume.tif, page 0: expected a 6x8 grey"):
        open_split(tmp_path / "rgb", "train")
    write_stacks(tmp_path / "deep")
    tifffile.imwrite(tmp_path / "deep" / "train-volume.tif", np.zeros((30,) + SIZE, np.uint16))
    with pytest.raises(ValueError, match="page 0: expected 8-bit pixels, got uint16"):
        open_split(tmp_path / "deep", "train")
    write_stacks(tmp_path / "no_test", test=False)
    with pytest.raises(FileNotFoundError, match="test-volume.tif"):
        open_split(tmp_path / "no_test", "test")
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "train-volume.tif").write_bytes(b"not a tiff")
    with pytest.raises(ValueError, match="cannot read .*train-volume.tif"):
        open_split(tmp_path / "broken", "train")


# --- the synthetic EM stacks ----------------------------------------------------------------

def test_synthetic_em_is_deterministic_and_em_like(tmp_path):
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        make_synthetic_em(tmp_path / name, n_pages=3, page_size=(48, 40), seed=4)
    for stack in ("train-volume.tif", "train-labels.tif", "test-volume.tif"):
        assert (tmp_path / "a" / stack).read_bytes() == (tmp_path / "b" / stack).read_bytes()
    volume = tifffile.imread(tmp_path / "a" / "train-volume.tif")
    labels = tifffile.imread(tmp_path / "a" / "train-labels.tif")
    assert volume.shape == labels.shape == (3, 48, 40) and volume.dtype == np.uint8
    assert set(np.unique(labels)) == {0, 255}
    membrane = labels == 0
    assert 0.08 < membrane.mean() < 0.45
    assert volume[membrane].mean() + 40 < volume[~membrane].mean()  # membranes are dark
    assert not np.array_equal(volume[0], volume[1])


def test_synthetic_em_dataset(tmp_path):
    options = dict(n_pages=4, page_size=(32, 32), seed=1)
    train = SyntheticEmStacks(tmp_path / "em", "train", **options).validate()
    assert train.pages == (0, 1, 2) and train.name == "synthetic_em"
    again = load_dataset("synthetic_em", tmp_path / "em", "valid", **options)
    assert again.pages == (3,)
    with pytest.raises(ValueError, match="other parameters"):
        SyntheticEmStacks(tmp_path / "em", "train", n_pages=5, page_size=(32, 32), seed=1)
