"""Crop, pad and flips against arrays worked out by hand."""

import numpy as np
import pytest

from fcn8_lasagne.data import Augmentation

TUTORIAL_OPTIONS = {"crop_size": (224, 224), "horizontal_flip": True, "fill_mode": "constant"}


class ScriptedRng:
    """Returns the numbers it is given, and records what was asked."""

    def __init__(self, uniforms=(), starts=()):
        self.uniforms, self.starts = list(uniforms), list(starts)
        self.integer_ranges = []

    def random(self):
        return self.uniforms.pop(0)

    def integers(self, low, high):
        self.integer_ranges.append((low, high))
        return self.starts.pop(0)


def grid(height, width, channels=None):
    values = np.arange(height * width).reshape(height, width)
    if channels is None:
        return values.astype(np.int32)
    return np.stack([values + 100 * c for c in range(channels)]).astype(np.float32)


def test_random_crop_takes_the_drawn_window_and_every_start_is_possible():
    image, label = grid(4, 5, channels=2), grid(4, 5)
    rng = ScriptedRng(starts=[2, 1])
    out_image, out_label = Augmentation(crop_size=(2, 3))(image, label, rng)
    # Rows 2..3, columns 1..3 of
    #  0  1  2  3  4
    #  5  6  7  8  9
    # 10 11 12 13 14
    # 15 16 17 18 19
    np.testing.assert_array_equal(out_label, [[11, 12, 13], [16, 17, 18]])
    np.testing.assert_array_equal(out_image[1], [[111, 112, 113], [116, 117, 118]])
    assert out_image.dtype == np.float32 and out_label.dtype == np.int32
    # Starts 0..2 for rows (4 - 2 + 1 choices) and 0..2 for columns (5 - 3 + 1).
    assert rng.integer_ranges == [(0, 3), (0, 3)]


def test_small_image_is_padded_centred_with_zero_and_void():
    image = np.array([[[1, 2, 3], [4, 5, 6]]], dtype=np.float32)
    label = np.array([[0, 1, 0], [1, 1, 0]], dtype=np.int32)
    out_image, out_label = Augmentation(crop_size=(5, 4), void_label=9)(image, label, None)
    # 3 missing rows: 1 above, 2 below; 1 missing column: 0 left, 1 right.
    np.testing.assert_array_equal(
        out_image[0],
        [[0, 0, 0, 0],
         [1, 2, 3, 0],
         [4, 5, 6, 0],
         [0, 0, 0, 0],
         [0, 0, 0, 0]],
    )
    np.testing.assert_array_equal(
        out_label,
        [[9, 9, 9, 9],
         [0, 1, 0, 9],
         [1, 1, 0, 9],
         [9, 9, 9, 9],
         [9, 9, 9, 9]],
    )


def test_crop_one_axis_and_pad_the_other():
    label = grid(2, 6)
    rng = ScriptedRng(starts=[4])
    _, out_label = Augmentation(crop_size=(4, 2), void_label=-1)(grid(2, 6, 1), label, rng)
    np.testing.assert_array_equal(out_label, [[-1, -1], [4, 5], [10, 11], [-1, -1]])
    assert rng.integer_ranges == [(0, 5)]


def test_padding_needs_a_void_label():
    with pytest.raises(ValueError, match="void_label"):
        Augmentation(crop_size=(3, 3))(grid(2, 2, 3), grid(2, 2), None)


def test_horizontal_then_vertical_flip():
    image, label = grid(2, 3, channels=1), grid(2, 3)
    flipped_image, flipped = Augmentation(horizontal_flip=1.0)(image, label, None)
    np.testing.assert_array_equal(flipped, [[2, 1, 0], [5, 4, 3]])
    np.testing.assert_array_equal(flipped_image[0], [[2, 1, 0], [5, 4, 3]])
    _, both = Augmentation(horizontal_flip=1.0, vertical_flip=1.0)(image, label, None)
    np.testing.assert_array_equal(both, [[5, 4, 3], [2, 1, 0]])


def test_flip_probability_compares_the_uniform_draw():
    augmentation = Augmentation(horizontal_flip=0.3)
    _, kept = augmentation(grid(1, 2, 1), grid(1, 2), ScriptedRng(uniforms=[0.3]))
    _, flipped = augmentation(grid(1, 2, 1), grid(1, 2), ScriptedRng(uniforms=[0.29]))
    assert kept.tolist() == [[0, 1]] and flipped.tolist() == [[1, 0]]


def test_flip_comes_before_the_crop():
    rng = ScriptedRng(starts=[0, 1])
    _, out = Augmentation(crop_size=(1, 2), horizontal_flip=1.0)(grid(2, 4, 1), grid(2, 4), rng)
    # Flipped: [[3, 2, 1, 0], [7, 6, 5, 4]]; window row 0, columns 1..2.
    np.testing.assert_array_equal(out, [[2, 1]])


def test_tutorial_dict_with_flip_every_image_flips_always():
    augmentation = Augmentation.from_tutorial_dict(TUTORIAL_OPTIONS, flip_every_image=True)
    assert augmentation.crop_size == (224, 224)
    assert augmentation.horizontal_flip == 1.0 and augmentation.vertical_flip == 0.0
    augmentation = augmentation.with_void_label(2)
    rng = np.random.default_rng(0)
    for _ in range(50):
        _, out = augmentation(grid(1, 2, 1), grid(1, 2), rng)
        # 1x2 padded to 224x224: 111 rows above, 111 columns left; [0, 1] flipped.
        assert out[111, 111:113].tolist() == [1, 0]
        assert (out == 2).sum() == 224 * 224 - 2


def test_tutorial_dict_reads_true_as_half_by_default():
    augmentation = Augmentation.from_tutorial_dict(
        {"horizontal_flip": True, "vertical_flip": True}, void_label=2
    )
    assert augmentation.horizontal_flip == 0.5 and augmentation.vertical_flip == 0.5
    rng = np.random.default_rng(1)
    flips = sum(
        augmentation(grid(1, 2, 1), grid(1, 2), rng)[1][0, 0] == 1 for _ in range(400)
    )
    assert 150 < flips < 250


def test_tutorial_dict_refuses_what_it_cannot_do():
    with pytest.raises(ValueError, match="rotation_range"):
        Augmentation.from_tutorial_dict({"rotation_range": 10})
    with pytest.raises(ValueError, match="nearest"):
        Augmentation.from_tutorial_dict({"fill_mode": "nearest"})
    assert Augmentation.from_tutorial_dict({}).is_identity


def test_crop_size_forms():
    assert Augmentation(crop_size=7).crop_size == (7, 7)
    assert Augmentation(crop_size=(0, 0)).crop_size is None
    with pytest.raises(ValueError):
        Augmentation(crop_size=(3, 0))
    with pytest.raises(ValueError):
        Augmentation(horizontal_flip=1.5)


def test_real_generator_visits_every_start_and_legacy_random_state_works():
    label = grid(3, 1)
    augmentation = Augmentation(crop_size=(1, 1))
    rng = np.random.default_rng(5)
    seen = {augmentation(grid(3, 1, 1), label, rng)[1].item() for _ in range(60)}
    assert seen == {0, 1, 2}
    legacy = np.random.RandomState(5)
    seen = {augmentation(grid(3, 1, 1), label, legacy)[1].item() for _ in range(60)}
    assert seen == {0, 1, 2}
