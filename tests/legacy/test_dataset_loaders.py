"""The dataset_loaders adapters on a tiny folder in the Polyps912 layout."""

import numpy as np
import pytest
import tifffile
from PIL import Image

N_TRAIN = 3
HEIGHT, WIDTH = 4, 5


def _frame(index):
    rgb = np.arange(HEIGHT * WIDTH * 3, dtype=np.uint8).reshape(HEIGHT, WIDTH, 3) + 10 * index
    mask = np.zeros((HEIGHT, WIDTH), dtype=np.uint8)
    mask[1:3, 1:4] = 1  # polyp
    mask[0, :] = 2  # void border
    mask[3, index] = 1
    return rgb, mask


def write_polyps(root, counts=(("train", N_TRAIN), ("valid", 1), ("test", 2))):
    for split, count in counts:
        (root / split / "images").mkdir(parents=True)
        (root / split / "masks2").mkdir(parents=True)
        for index in range(count):
            rgb, mask = _frame(index)
            Image.fromarray(rgb).save(root / split / "images" / f"{index + 1}.bmp")
            tifffile.imwrite(root / split / "masks2" / f"{index + 1}.tif", mask)
    return root


@pytest.fixture
def polyps(installed, tmp_path, monkeypatch):
    root = write_polyps(tmp_path / "polyps")
    monkeypatch.setenv("FCN8_LEGACY_DATA_DIR", str(root))
    from dataset_loaders.images.polyps912 import Polyps912Dataset

    return Polyps912Dataset


def _expected(index):
    rgb, mask = _frame(index)
    return rgb.astype(np.float32) / np.float32(255), mask.astype(np.int32)


def test_attributes_the_tutorial_reads(polyps):
    train = polyps(which_set="train", batch_size=1, seq_per_subset=0, seq_length=0,
                   data_augm_kwargs={}, return_one_hot=False, return_01c=False, overlap=0,
                   use_threads=False, shuffle_at_each_epoch=True, return_list=True,
                   return_0_255=False)
    assert train.nbatches == N_TRAIN and train.get_n_batches() == N_TRAIN
    assert train.nsamples == N_TRAIN
    assert train.non_void_nclasses == 2 and train.nclasses == 3
    assert train.void_labels == [2] and polyps.void_labels == [2]
    assert train.data_shape == [3, None, None]  # channels first, sizes vary
    assert train.which_set == "train" and train.filenames == ["1", "2", "3"]
    np.testing.assert_allclose(train.cmap, [[0, 0, 0], [1, 1, 1], [128 / 255] * 3])
    assert list(train.mask_labels) == ["Background", "Polyp", "Void"]
    cropped = polyps(which_set="valid", batch_size=2, data_augm_kwargs={"crop_size": (3, 3)},
                     return_01c=True)
    assert cropped.data_shape == [3, 3, 3] and cropped.which_set == "valid"


def test_batches_hold_the_images_and_labels(polyps):
    dataset = polyps(which_set="test", batch_size=1, shuffle_at_each_epoch=False,
                     return_list=True)
    for index in (0, 1, 0):  # the iterator starts a new epoch by itself
        images, labels = dataset.next()
        image, label = _expected(index)
        assert images.shape == (1, 3, HEIGHT, WIDTH) and images.dtype == np.float32
        assert labels.shape == (1, HEIGHT, WIDTH) and labels.dtype == np.int32
        np.testing.assert_array_equal(images[0], image.transpose(2, 0, 1))
        np.testing.assert_array_equal(labels[0], label)


def test_output_formats(polyps):
    dataset = polyps(which_set="test", batch_size=2, shuffle_at_each_epoch=False,
                     data_augm_kwargs={"crop_size": (HEIGHT, WIDTH)}, return_one_hot=True,
                     return_01c=True, return_0_255=True)
    batch = dataset.next()
    assert set(batch) >= {"data", "labels", "filenames", "subset", "raw_data"}
    image, label = _expected(1)
    assert batch["data"].shape == (2, HEIGHT, WIDTH, 3) and batch["data"].dtype == np.uint8
    np.testing.assert_array_equal(batch["data"][1], (image * 255).astype(np.uint8))
    np.testing.assert_array_equal(batch["raw_data"][1], image)
    assert batch["labels"].shape == (2, HEIGHT, WIDTH, 3)  # one-hot, channels last
    np.testing.assert_array_equal(batch["labels"][1].argmax(axis=-1), label)
    assert batch["labels"].sum(axis=-1).min() == 1
    assert batch["filenames"].tolist() == [["1"], ["2"]]
    channels_first = polyps(which_set="test", batch_size=1, shuffle_at_each_epoch=False,
                            return_one_hot=True, return_list=True)
    _, labels = channels_first.next()
    assert labels.shape == (1, 3, HEIGHT, WIDTH)


def test_epochs_shuffle_and_end(polyps):
    dataset = polyps(which_set="train", batch_size=2, data_augm_kwargs={"crop_size": (2, 2)},
                     shuffle_at_each_epoch=True, infinite_iterator=False, return_list=True)
    assert dataset.nbatches == 2
    sizes = [len(dataset.next()[0]) for _ in range(2)]
    assert sizes == [2, 1]  # the last batch holds the remainder
    with pytest.raises(StopIteration):
        dataset.next()
    assert len(dataset.next()[0]) == 2  # a new epoch
    seen = []
    ordered = polyps(which_set="train", batch_size=1, shuffle_at_each_epoch=True,
                     return_list=True, rng=np.random.RandomState(3))
    for _ in range(N_TRAIN):
        images, _ = ordered.next()
        seen.append(int(round(images[0, 0, 0, 0] * 255 - 0)) // 10)
    assert sorted(seen) == [0, 1, 2]  # every image once per epoch
    expected_order = np.arange(N_TRAIN)
    np.random.RandomState(3).shuffle(expected_order)
    assert seen == expected_order.tolist()  # shuffled by rng, as the original did
    filled = polyps(which_set="train", batch_size=2, data_augm_kwargs={"crop_size": (2, 2)},
                    shuffle_at_each_epoch=False, fill_last_batch=True, return_list=True)
    filled.next()
    last, _ = filled.next()
    assert len(last) == 2 and np.array_equal(last[0], last[1])


def test_crop_and_flip_as_the_original(polyps):
    dataset = polyps(which_set="valid", batch_size=1, return_list=True,
                     data_augm_kwargs={"crop_size": (6, 5), "horizontal_flip": True,
                                       "fill_mode": "constant"})
    images, labels = dataset.next()
    image, label = _expected(0)
    # 4 rows padded to 6, centred: one row of zeros / void before and after
    assert images.shape == (1, 3, 6, 5)
    np.testing.assert_array_equal(images[0, :, 0], 0)
    np.testing.assert_array_equal(labels[0, 0], 2)
    np.testing.assert_array_equal(labels[0, 5], 2)
    # horizontal_flip=True flipped every image in the original (random() < True)
    np.testing.assert_array_equal(images[0, :, 1:5], image.transpose(2, 0, 1)[:, :, ::-1])
    np.testing.assert_array_equal(labels[0, 1:5], label[:, ::-1])


def test_refusals(polyps):
    with pytest.raises(ValueError, match="batch_size = 1"):
        polyps(which_set="train", batch_size=2)
    with pytest.raises(NotImplementedError, match="rotation_range"):
        polyps(which_set="train", data_augm_kwargs={"rotation_range": 10})
    with pytest.raises(NotImplementedError, match="seq_length"):
        polyps(which_set="train", seq_length=3)
    with pytest.raises(ValueError, match="Unknown set"):
        polyps(which_set="holdout")


def test_data_dir_argument_and_dataset_subfolder(installed, tmp_path, monkeypatch):
    monkeypatch.delenv("FCN8_LEGACY_DATA_DIR", raising=False)
    write_polyps(tmp_path / "all" / "polyps912", counts=(("test", 2),))
    from dataset_loaders.images.polyps912 import Polyps912Dataset

    dataset = Polyps912Dataset(which_set="test", data_dir=tmp_path / "all")
    assert dataset.nbatches == 2 and dataset.path == str(tmp_path / "all" / "polyps912")
    monkeypatch.setenv("FCN8_LEGACY_DATA_DIR", str(tmp_path / "missing"))
    with pytest.raises(FileNotFoundError, match="FCN8_LEGACY_DATA_DIR"):
        Polyps912Dataset(which_set="test")


def test_default_is_the_built_in_synthetic_data(installed, tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("FCN8_LEGACY_DATA_DIR", raising=False)
    monkeypatch.setenv("FCN8_LASAGNE_CACHE", str(tmp_path / "cache"))
    import fcn8_lasagne.data.synthetic as synthetic

    made = {}

    def tiny(root=None, **kwargs):  # the defaults would render 72 frames
        made["root"] = synthetic.ensure_synthetic_polyps(
            tmp_path / "synthetic", n_train=2, n_valid=1, n_test=1, image_size=(16, 16))
        return made["root"]

    from dataset_loaders.images import polyps912

    monkeypatch.setattr(polyps912, "ensure_synthetic_polyps", tiny)
    dataset = polyps912.Polyps912Dataset(which_set="train", batch_size=1, return_list=True)
    assert dataset.nbatches == 2 and dataset.path == str(made["root"])
    assert "FCN8_LEGACY_DATA_DIR is not set" in capsys.readouterr().err
    images, labels = dataset.next()
    assert images.shape == (1, 3, 16, 16) and set(np.unique(labels)) <= {0, 1, 2}


def test_isbi_em_stacks_adapter(installed, tmp_path):
    from dataset_loaders.images.isbi_em_stacks import IsbiEmStacksDataset
    from dataset_loaders.parallel_loader import ThreadedDataset

    pages = np.stack([np.full((512, 512), page, np.uint8) for page in range(30)])
    labels = np.zeros((30, 512, 512), np.uint8)
    labels[:, :, 256:] = 255
    root = tmp_path / "isbi_em_stacks"
    root.mkdir()
    for name, stack in (("train-volume", pages), ("train-labels", labels),
                        ("test-volume", pages)):
        tifffile.imwrite(root / f"{name}.tif", stack, photometric="minisblack")
    assert issubclass(IsbiEmStacksDataset, ThreadedDataset)
    train = IsbiEmStacksDataset(which_set="train", batch_size=5, data_dir=tmp_path,
                                shuffle_at_each_epoch=False)
    assert train.nsamples == 25 and train.nbatches == 5 and train.nclasses == 2
    first = train.next()
    assert first["data"].shape == (5, 1, 512, 512)
    assert first["filenames"].ravel().tolist() == [0, 1, 2, 3, 4]
    batch = IsbiEmStacksDataset(which_set="val", batch_size=5, data_dir=tmp_path,
                                return_list=True).next()
    assert batch[0].shape == (5, 1, 512, 512) and batch[0].dtype == np.float32
    assert sorted(np.round(batch[0][:, 0, 0, 0] * 255).tolist()) == [25, 26, 27, 28, 29]
    assert batch[1].shape == (5, 512, 512) and set(np.unique(batch[1])) == {0, 1}
    test = IsbiEmStacksDataset(which_set="test", batch_size=1, data_dir=tmp_path)
    assert test.nsamples == 30 and not test.set_has_GT
    with pytest.raises(ValueError, match="Unknown set"):
        IsbiEmStacksDataset(which_set="holdout", data_dir=tmp_path)


def test_cortical_layers_adapter(installed, tmp_path):
    from data_loader.cortical_layers import Cortical6LayersDataset

    folder = tmp_path / "6layers_segmentation"
    folder.mkdir()
    n = 20
    rows = {"raw": [[i + t / 1000 for t in range(200)] for i in range(n)],
            "geo": [[-i - t / 1000 for t in range(200)] for i in range(n)],
            "cls": [[t % 7 for t in range(200)] for i in range(n)],
            "regions": [[0] * 200 for i in range(n)]}
    for kind, values in rows.items():
        (folder / f"training_{kind}.txt").write_text(
            "".join(" ".join(str(v) for v in row) + "\n" for row in values))
    train = Cortical6LayersDataset(which_set="train", batch_size=4, data_dir=tmp_path,
                                   shuffle_at_each_epoch=False, return_list=False)
    assert train.nsamples == 17 and train.nbatches == 5 and train.nclasses == 7
    assert train.data_shape == (200, 2) and train.void_labels == []
    batch = train.next()
    assert batch["data"].shape == (4, 2, 200) and batch["labels"].shape == (4, 200)
    line = batch["filenames"][0]
    np.testing.assert_allclose(batch["data"][0, 0], -line - np.arange(200) / 1000, atol=1e-5)
    np.testing.assert_allclose(batch["data"][0, 1], line + np.arange(200) / 1000, atol=1e-5)
    assert batch["labels"][0].tolist() == [t % 7 for t in range(200)]
    raw = Cortical6LayersDataset(which_set="valid", smooth_or_raw="raw", batch_size=3,
                                 data_dir=tmp_path, return_one_hot=True, return_01c=True,
                                 return_list=True)
    data, labels = raw.next()
    assert data.shape == (3, 200, 1) and labels.shape == (3, 200, 7)
    assert (labels.sum(axis=2) == 1).all()
    with pytest.raises(NotImplementedError, match="1-D"):
        Cortical6LayersDataset(which_set="train", data_dir=tmp_path,
                               data_augm_kwargs={"horizontal_flip": True})
