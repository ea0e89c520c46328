"""Tests of the VOC / SBD readers, the synthetic VOC-layout set and the scale-crop transforms,
on tiny trees written here with Pillow."""

import numpy as np
import pytest
from PIL import Image

from fcn8_lasagne.data import BatchIterator, load_dataset
from fcn8_lasagne.data.scale_crop import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    RandomScaleCropFlip,
    ResizeCenterCrop,
    normalize_imagenet,
)
from fcn8_lasagne.data.synthetic_voc import SYNTHETIC_VOC_CLASS_NAMES, SyntheticVOC
from fcn8_lasagne.data.voc import (
    VOC_CLASS_NAMES,
    SBDSegmentation,
    VOCSegmentation,
    find_voc2012,
    voc_palette,
)


def write_palette_png(path, labels):
    image = Image.frombytes("P", (labels.shape[1], labels.shape[0]),
                            labels.astype(np.uint8).tobytes())
    image.putpalette(voc_palette())
    image.save(path)


def make_voc_tree(root, splits=None, size=(6, 8), seed=0):
    """VOCdevkit/VOC2012 with JPEGs, palette label PNGs and the split lists."""
    splits = splits or {"train": ["2007_000001", "2007_000002"], "val": ["2008_000003"]}
    voc = root / "VOCdevkit" / "VOC2012"
    for sub in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation"):
        (voc / sub).mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    labels_of = {}
    for split, names in splits.items():
        (voc / "ImageSets" / "Segmentation" / f"{split}.txt").write_text(
            "".join(f"{name}\n" for name in names))
        for name in names:
            pixels = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(voc / "JPEGImages" / f"{name}.jpg")
            labels = rng.integers(0, 21, size)
            labels[0, :] = 255
            write_palette_png(voc / "SegmentationClass" / f"{name}.png", labels)
            labels_of[name] = labels
    return voc, labels_of


def test_voc_reads_splits_palette_indices_and_void(tmp_path):
    voc, labels_of = make_voc_tree(tmp_path)
    for root in (tmp_path, tmp_path / "VOCdevkit", voc):
        assert find_voc2012(root) == voc
    train = load_dataset("voc", tmp_path / "VOCdevkit", "train")
    assert isinstance(train, VOCSegmentation) and len(train) == 2
    assert train.class_names == VOC_CLASS_NAMES and train.n_classes == 21
    assert train.void_label == 21
    image, labels = train[1]
    assert image.shape == (3, 6, 8) and image.dtype == np.float32
    assert 0 <= image.min() and image.max() <= 1
    expected = labels_of["2007_000002"].copy()
    expected[expected == 255] = 21
    np.testing.assert_array_equal(labels, expected)
    assert train.names == ("2007_000001", "2007_000002")
    valid = VOCSegmentation(tmp_path, "val")
    test = VOCSegmentation(tmp_path, "test")        # VOC's test labels are not public: val
    assert valid.names == test.names == ("2008_000003",)
    assert valid.split == "valid" and test.split == "test"


def test_voc_accepts_grey_level_label_pngs(tmp_path):
    voc, labels_of = make_voc_tree(tmp_path)
    name = "2008_000003"
    Image.fromarray(labels_of[name].astype(np.uint8)).save(
        voc / "SegmentationClass" / f"{name}.png")           # mode L, as SegmentationClassAug
    _, labels = VOCSegmentation(tmp_path, "val")[0]
    assert labels.max() == 21 and labels.min() >= 0


def test_voc_missing_split_list_names_the_file(tmp_path):
    voc, _ = make_voc_tree(tmp_path, splits={"train": ["a"]})
    with pytest.raises(FileNotFoundError) as error:
        VOCSegmentation(tmp_path, "valid")
    message = str(error.value)
    assert message == f"split list not found: {voc / 'ImageSets/Segmentation/val.txt'}"
    (voc / "ImageSets/Segmentation/val.txt").write_text("\n\n")
    with pytest.raises(ValueError, match=r"val\.txt: the split list names no image"):
        VOCSegmentation(tmp_path, "valid")
    with pytest.raises(FileNotFoundError, match="no VOC2012 folder"):
        VOCSegmentation(tmp_path / "VOCdevkit" / "VOC2012" / "JPEGImages", "train")


def test_voc_image_without_label_map_names_both_files(tmp_path):
    voc, _ = make_voc_tree(tmp_path)
    (voc / "SegmentationClass" / "2007_000002.png").unlink()
    with pytest.raises(FileNotFoundError) as error:
        VOCSegmentation(tmp_path, "train")
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith("image without label map: ")
    assert str(voc / "JPEGImages" / "2007_000002.jpg") in message
    assert str(voc / "SegmentationClass" / "2007_000002.png") in message
    assert "train.txt" in message
    (voc / "JPEGImages" / "2007_000001.jpg").unlink()
    with pytest.raises(FileNotFoundError, match=r"image not found: .*2007_000001\.jpg"):
        VOCSegmentation(tmp_path, "train")


def test_voc_rgb_label_png_is_refused_naming_the_file(tmp_path):
    voc, labels_of = make_voc_tree(tmp_path)
    path = voc / "SegmentationClass" / "2008_000003.png"
    palette = np.array(voc_palette(), dtype=np.uint8).reshape(256, 3)
    Image.fromarray(palette[labels_of["2008_000003"]]).save(path)   # the colours, mode RGB
    dataset = VOCSegmentation(tmp_path, "val")
    with pytest.raises(ValueError) as error:
        dataset.validate()
    message = str(error.value)
    assert "\n" not in message and message.startswith(f"{path}: label PNG in mode RGB")
    assert "palette (mode P)" in message


def test_voc_label_values_outside_the_classes_are_refused(tmp_path):
    voc, labels_of = make_voc_tree(tmp_path)
    labels = labels_of["2008_000003"].copy()
    labels[2, 3] = 40
    path = voc / "SegmentationClass" / "2008_000003.png"
    write_palette_png(path, labels)
    with pytest.raises(ValueError) as error:
        VOCSegmentation(tmp_path, "val")[0]
    message = str(error.value)
    assert "\n" not in message and message.startswith(f"{path}: label value(s) 40 are neither")
    assert "void (255)" in message


def test_voc_size_mismatch_names_both_files(tmp_path):
    voc, _ = make_voc_tree(tmp_path)
    write_palette_png(voc / "SegmentationClass" / "2008_000003.png", np.zeros((5, 8)))
    with pytest.raises(ValueError, match=r"size mismatch: image .*2008_000003\.jpg is 6x8 "
                                         r"\(HxW\) but label map .*2008_000003\.png is 5x8"):
        VOCSegmentation(tmp_path, "val")[0]


def test_sbd_reads_mat_labels(tmp_path):
    scipy_io = pytest.importorskip("scipy.io")
    folder = tmp_path / "benchmark_RELEASE" / "dataset"
    (folder / "img").mkdir(parents=True)
    (folder / "cls").mkdir()
    labels = np.arange(20, dtype=np.uint8).reshape(4, 5)
    labels[0, 0] = 255
    Image.fromarray(np.zeros((4, 5, 3), np.uint8)).save(folder / "img" / "x.jpg")
    scipy_io.savemat(folder / "cls" / "x.mat", {"GTcls": {
        "Segmentation": labels, "Boundaries": np.zeros(1), "CategoriesPresent": np.arange(3)}})
    (folder / "train.txt").write_text("x\n")
    dataset = load_dataset("sbd", tmp_path / "benchmark_RELEASE", "train")
    assert isinstance(dataset, SBDSegmentation)
    expected = labels.astype(np.int32)
    expected[0, 0] = 21
    np.testing.assert_array_equal(dataset[0][1], expected)
    scipy_io.savemat(folder / "cls" / "x.mat", {"other": np.zeros(2)})
    with pytest.raises(ValueError, match=r"x\.mat: no GTcls\.Segmentation in the file"):
        dataset[0]


def test_synthetic_voc_is_generated_once_and_read_as_voc(tmp_path):
    train = load_dataset("synthetic_voc", tmp_path / "s", "train", n_train=3, n_val=2,
                         image_size=(32, 40), seed=1)
    assert isinstance(train, SyntheticVOC) and isinstance(train, VOCSegmentation)
    assert len(train) == 3 and train.class_names == SYNTHETIC_VOC_CLASS_NAMES
    valid = SyntheticVOC(tmp_path / "s", "valid", n_train=3, n_val=2, image_size=(32, 40),
                         seed=1)
    assert len(valid) == 2 and not set(valid.names) & set(train.names)
    image, labels = train[0]
    assert image.shape == (3, 32, 40)
    with Image.open(train.mask_paths[0]) as label_png:
        assert label_png.mode == "P"
    counts = train.class_counts()
    assert counts[0] > 0 and counts[-1] > 0          # background and void outlines
    assert (counts[1:-1] > 0).sum() >= 2             # several shape classes
    again = SyntheticVOC(tmp_path / "s", "train", n_train=3, n_val=2, image_size=(32, 40),
                         seed=1)
    np.testing.assert_array_equal(again[0][1], labels)
    with pytest.raises(ValueError, match="other parameters"):
        SyntheticVOC(tmp_path / "s", "train", n_train=4, n_val=2, image_size=(32, 40), seed=1)


def test_normalize_imagenet():
    image = np.stack([np.full((2, 3), value, np.float32) for value in (0.0, 0.5, 1.0)])
    normalized = normalize_imagenet(image)
    expected = (np.array([0.0, 0.5, 1.0]) - IMAGENET_MEAN) / IMAGENET_STD
    np.testing.assert_allclose(normalized[:, 0, 0], expected, rtol=1e-6)
    assert normalized.dtype == np.float32
    with pytest.raises(ValueError, match="expected an RGB image"):
        normalize_imagenet(np.zeros((1, 4, 4)))


def gradient_pair(height, width):
    rows, columns = np.mgrid[0:height, 0:width]
    image = np.stack([rows / (height - 1), columns / (width - 1),
                      np.full((height, width), 0.5)]).astype(np.float32)
    image = np.round(image * 255) / 255
    labels = (columns * 3 // width).astype(np.int32)
    return image.astype(np.float32), labels


def test_gluoncv_val_transform_short_side_to_crop_then_centre_crop():
    image, labels = gradient_pair(20, 30)       # short side 20 -> 16, long 30 -> int(24.0)
    out_image, out_labels = ResizeCenterCrop(base_size=20, crop_size=16, normalize=False)(
        image, labels)
    assert out_image.shape == (3, 16, 16) and out_labels.shape == (16, 16)
    # the resized 24-wide labels, nearest neighbour, then columns 4 .. 19 (round((24-16)/2))
    resized = np.asarray(Image.fromarray(labels).resize((24, 16), Image.NEAREST))
    np.testing.assert_array_equal(out_labels, resized[:, 4:20])
    expected = np.asarray(Image.fromarray(np.round(image.transpose(1, 2, 0) * 255)
                                          .astype(np.uint8)).resize((24, 16), Image.BILINEAR))
    np.testing.assert_allclose(out_image, expected[:, 4:20].transpose(2, 0, 1) / 255,
                               atol=1e-6)


def test_torchvision_eval_transform_short_side_to_base_whole_image():
    image, labels = gradient_pair(20, 30)
    out_image, out_labels = ResizeCenterCrop(base_size=10, crop_size=8,
                                             convention="torchvision")(image, labels)
    assert out_image.shape == (3, 10, 15) and out_labels.shape == (10, 15)
    resized = Image.fromarray(np.round(image.transpose(1, 2, 0) * 255).astype(np.uint8))
    resized = np.asarray(resized.resize((15, 10), Image.BILINEAR)) / np.float32(255)
    np.testing.assert_allclose(out_image, normalize_imagenet(resized.transpose(2, 0, 1)),
                               atol=1e-5)


@pytest.mark.parametrize("convention", ["gluoncv", "torchvision"])
def test_random_scale_crop_flip_sizes_padding_and_labels(convention):
    image, labels = gradient_pair(12, 18)
    transform = RandomScaleCropFlip(base_size=10, crop_size=16, convention=convention,
                                    void_label=3, normalize=False)
    assert transform.size_range == (5, 20)
    rng = np.random.default_rng(0)
    pad_labels = set()
    flipped = kept = 0
    for _ in range(40):
        out_image, out_labels = transform(image, labels, rng)
        assert out_image.shape == (3, 16, 16) and out_labels.shape == (16, 16)
        assert out_labels.dtype == np.int32 and out_image.dtype == np.float32
        padded = np.all(out_image == 0, axis=0)
        pad_labels |= set(np.unique(out_labels[padded]).tolist())
        # every pixel that is not padding keeps a label of the input's classes
        assert set(np.unique(out_labels[~padded]).tolist()) <= {0, 1, 2}
        # the green channel grows to the right unless the image was flipped (the blue one
        # is 0.5 everywhere, so only padding is black)
        whole_rows = out_image[1][~padded.any(axis=1)]
        if len(whole_rows):
            trend = np.diff(whole_rows[0]).sum()
            flipped += trend < 0
            kept += trend > 0
    # Gluon-CV pads labels with background (0), torchvision with void
    assert pad_labels == ({0} if convention == "gluoncv" else {3})
    assert flipped and kept


def test_random_scale_crop_flip_is_reproducible_and_plugs_into_batch_iterator(tmp_path):
    dataset = SyntheticVOC(tmp_path / "s", "train", n_train=4, n_val=1, image_size=(24, 24))
    transform = RandomScaleCropFlip(base_size=24, crop_size=20, void_label=dataset.void_label)
    first = list(BatchIterator(dataset, 2, shuffle=True, seed=3, augmentation=transform))
    second = list(BatchIterator(dataset, 2, shuffle=True, seed=3, augmentation=transform))
    for (x1, y1), (x2, y2) in zip(first, second):
        assert x1.shape == (2, 3, 20, 20) and y1.shape == (2, 20, 20)
        np.testing.assert_array_equal(x1, x2)
        np.testing.assert_array_equal(y1, y2)
    assert x1.min() < -1.5          # normalised (black is about -2)


def test_transforms_refuse_bad_settings_and_inputs():
    with pytest.raises(ValueError, match="crop_size must be a positive integer"):
        RandomScaleCropFlip(10, 0)
    with pytest.raises(ValueError, match="convention must be one of gluoncv, torchvision"):
        ResizeCenterCrop(10, 8, convention="caffe")
    with pytest.raises(ValueError, match="no void_label was given"):
        RandomScaleCropFlip(10, 8, convention="torchvision")(
            *gradient_pair(8, 8), np.random.default_rng(0))
    with pytest.raises(ValueError, match=r"expected image values in \[0, 1\]"):
        ResizeCenterCrop(10, 8)(np.full((3, 8, 8), 255.0, np.float32),
                                np.zeros((8, 8), np.int32))
    with pytest.raises(ValueError, match="of the same size"):
        ResizeCenterCrop(10, 8)(np.zeros((3, 8, 8), np.float32), np.zeros((8, 7), np.int32))
