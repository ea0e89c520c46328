"""BatchIterator: batching, per-epoch shuffles from a seed, augmentation, size errors."""

from pathlib import Path

import numpy as np
import pytest

from fcn8_lasagne.data import Augmentation, BatchIterator, Polyps912, make_synthetic_polyps


class NumberedImages:
    """In-memory dataset: image i is filled with i, its labels with i % 2."""

    n_classes = 2
    void_label = 2

    def __init__(self, count, sizes=None):
        self.sizes = sizes or [(2, 3)] * count
        self.image_paths = tuple(Path(f"img{i}.bmp") for i in range(count))

    def __len__(self):
        return len(self.sizes)

    def __getitem__(self, index):
        height, width = self.sizes[index]
        image = np.full((3, height, width), index, dtype=np.float32)
        return image, np.full((height, width), index % 2, dtype=np.int32)


def visited(batches):
    return [int(x[0, 0, 0]) for images, _ in batches for x in images]


def test_batches_shapes_dtypes_and_last_partial_batch():
    iterator = BatchIterator(NumberedImages(7), batch_size=3)
    assert len(iterator) == 3
    batches = list(iterator)
    assert [images.shape for images, _ in batches] == [(3, 3, 2, 3)] * 2 + [(1, 3, 2, 3)]
    assert [labels.shape for _, labels in batches] == [(3, 2, 3)] * 2 + [(1, 2, 3)]
    assert all(x.dtype == np.float32 and y.dtype == np.int32 for x, y in batches)
    assert visited(batches) == list(range(7))
    np.testing.assert_array_equal(batches[0][1][:, 0, 0], [0, 1, 0])
    assert iterator.n_classes == 2 and iterator.void_label == 2


def test_without_shuffle_every_epoch_is_in_order():
    iterator = BatchIterator(NumberedImages(5), batch_size=2, seed=3)
    assert visited(iterator) == visited(iterator) == [0, 1, 2, 3, 4]


def test_shuffle_is_a_new_permutation_each_epoch_and_repeats_with_the_seed():
    first = BatchIterator(NumberedImages(20), batch_size=4, shuffle=True, seed=7)
    epochs = [visited(first) for _ in range(3)]
    assert all(sorted(order) == list(range(20)) for order in epochs)
    assert epochs[0] != epochs[1] and epochs[1] != epochs[2]
    assert epochs[0] != list(range(20))
    again = BatchIterator(NumberedImages(20), batch_size=4, shuffle=True, seed=7)
    assert [visited(again) for _ in range(3)] == epochs
    other_seed = BatchIterator(NumberedImages(20), batch_size=4, shuffle=True, seed=8)
    assert visited(other_seed) != epochs[0]
    resumed = BatchIterator(NumberedImages(20), batch_size=4, shuffle=True, seed=7)
    resumed.epoch = 2
    assert visited(resumed) == epochs[2]
    assert list(resumed.epoch_order(1)) == epochs[1]


def test_unseeded_shuffles_still_differ_between_epochs():
    iterator = BatchIterator(NumberedImages(20), batch_size=20, shuffle=True)
    assert visited(iterator) != visited(iterator)


def test_augmentation_gets_the_dataset_void_label_and_is_seeded():
    dataset = NumberedImages(4, sizes=[(2, 3), (5, 4), (1, 1), (3, 3)])
    augmentation = Augmentation(crop_size=(3, 3), horizontal_flip=0.5)
    iterator = BatchIterator(dataset, batch_size=4, seed=0, augmentation=augmentation)
    images, labels = next(iter(iterator))
    assert images.shape == (4, 3, 3, 3) and labels.shape == (4, 3, 3)
    # The 1x1 image (index 2, label 0) sits in the middle, padded with void 2 and zeros.
    np.testing.assert_array_equal(labels[2], [[2, 2, 2], [2, 0, 2], [2, 2, 2]])
    np.testing.assert_array_equal(images[2, 0], [[0, 0, 0], [0, 2, 0], [0, 0, 0]])
    repeat = BatchIterator(dataset, batch_size=4, seed=0, augmentation=augmentation)
    np.testing.assert_array_equal(next(iter(repeat))[1], labels)


def test_augmentation_with_another_void_label_is_refused():
    with pytest.raises(ValueError, match="void label is 2"):
        BatchIterator(NumberedImages(2), 1, augmentation=Augmentation(crop_size=2, void_label=5))


def test_images_of_different_sizes_in_one_batch():
    dataset = NumberedImages(3, sizes=[(2, 3), (2, 3), (4, 5)])
    iterator = BatchIterator(dataset, batch_size=3)
    with pytest.raises(ValueError) as error:
        next(iter(iterator))
    message = str(error.value)
    assert "img0.bmp 2x3" in message and "img2.bmp 4x5" in message
    assert [x.shape for x, _ in BatchIterator(dataset, batch_size=1)][-1] == (1, 3, 4, 5)


def test_iter_with_indices():
    iterator = BatchIterator(NumberedImages(5), batch_size=2, shuffle=True, seed=1)
    for images, _, indices in iterator.iter_with_indices():
        np.testing.assert_array_equal(images[:, 0, 0, 0], indices)


def test_bad_batch_size():
    with pytest.raises(ValueError, match="batch_size"):
        BatchIterator(NumberedImages(2), 0)


def test_tutorial_training_batches_from_synthetic_files(tmp_path):
    root = make_synthetic_polyps(tmp_path, n_train=3, n_valid=1, n_test=1, image_size=(32, 40))
    dataset = Polyps912(root, "train")
    augmentation = Augmentation.from_tutorial_dict(
        {"crop_size": (36, 36), "horizontal_flip": True, "fill_mode": "constant"},
        flip_every_image=True,
    )
    iterator = BatchIterator(dataset, batch_size=2, shuffle=True, seed=0,
                             augmentation=augmentation)
    batches = list(iterator.iter_with_indices())
    assert [images.shape for images, _, _ in batches] == [(2, 3, 36, 36), (1, 3, 36, 36)]
    for images, labels, indices in batches:
        for image, label, index in zip(images, labels, indices):
            original_image, original_label = dataset[index]
            # 32 rows padded to 36 (2 above, 2 below); 40 columns cropped to 36 after the flip.
            assert (label[:2] == 2).all() and (label[-2:] == 2).all()
            flipped = original_label[:, ::-1]
            starts = [s for s in range(5) if np.array_equal(flipped[:, s:s + 36], label[2:-2])]
            assert starts
            np.testing.assert_array_equal(
                image[:, 2:-2], original_image[:, :, ::-1][:, :, starts[0]:starts[0] + 36]
            )
