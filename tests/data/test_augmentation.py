"""Affine transforms, flips, warps, crop and pad against arrays worked out by hand."""

import math

import numpy as np
import pytest

from fcn8_lasagne.data import Augmentation, BatchIterator
from fcn8_lasagne.data.augmentation import affine_matrix, spline_warp_field

TUTORIAL_OPTIONS = {"crop_size": (224, 224), "horizontal_flip": True, "fill_mode": "constant"}


class ScriptedRng:
    """Returns the numbers it is given, and records what was asked."""

    def __init__(self, uniforms=(), starts=(), ranged=(), normals=None):
        self.uniforms, self.starts = list(uniforms), list(starts)
        self.ranged, self.normals = list(ranged), normals
        self.integer_ranges, self.uniform_bounds, self.calls = [], [], []

    def random(self):
        self.calls.append("random")
        return self.uniforms.pop(0)

    def uniform(self, low, high):
        self.calls.append("uniform")
        self.uniform_bounds.append((low, high))
        return self.ranged.pop(0)

    def standard_normal(self, size):
        self.calls.append("standard_normal")
        assert self.normals.shape == size
        return self.normals.copy()

    def integers(self, low, high):
        self.calls.append("integers")
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
    with pytest.raises(ValueError, match="channel_shift_range"):
        Augmentation.from_tutorial_dict({"channel_shift_range": 10})
    with pytest.raises(ValueError, match="zoom_range"):
        Augmentation.from_tutorial_dict({"zoom_range": 0.2})
    with pytest.raises(ValueError, match="'mirror' is not supported.*'reflect', 'wrap'"):
        Augmentation.from_tutorial_dict({"fill_mode": "mirror"})
    for bad in ({"rotation_range": -1}, {"rotation_range": 200}, {"shear_range": "0.4"},
                {"warp_grid_size": 0}, {"warp_grid_size": 2.5}, {"spline_warp": "yes"},
                {"height_shift_range": 1.5}, {"warp_sigma": float("nan")}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            Augmentation.from_tutorial_dict(bad)
    assert Augmentation.from_tutorial_dict({}).is_identity
    assert Augmentation.from_tutorial_dict({"fill_mode": "reflect"}).is_identity
    assert not Augmentation.from_tutorial_dict({"spline_warp": True}).is_identity


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


# --- affine transforms, warps and fill modes (train_unet.py's dict) -------------------------

UNET_OPTIONS = {"rotation_range": 25, "shear_range": 0.41, "horizontal_flip": True,
                "vertical_flip": True, "fill_mode": "reflect", "spline_warp": True,
                "warp_sigma": 10, "warp_grid_size": 3, "crop_size": (224, 224)}


def test_unet_dict_is_read_with_its_meanings():
    augmentation = Augmentation.from_tutorial_dict(UNET_OPTIONS)
    assert augmentation.rotation_range == 25 and augmentation.shear_range == 0.41
    assert augmentation.horizontal_flip == augmentation.vertical_flip == 0.5
    assert augmentation.fill_mode == "reflect" and augmentation.spline_warp
    assert (augmentation.warp_sigma, augmentation.warp_grid_size) == (10, 3)
    assert augmentation.crop_size == (224, 224) and augmentation.has_affine


@pytest.mark.parametrize("size", [5, 6])
def test_rotation_by_90_degrees_is_rot90(size):
    image, label = grid(size, size, channels=2), grid(size, size)
    augmentation = Augmentation(rotation_range=90, fill_mode="nearest")
    rng = ScriptedRng(ranged=[-90.0, 90.0])
    out_image, out_label = augmentation(image, label, rng)
    np.testing.assert_array_equal(out_label, np.rot90(label))
    np.testing.assert_allclose(out_image, np.rot90(image, axes=(1, 2)), atol=1e-4)
    assert out_image.dtype == np.float32 and out_label.dtype == np.int32
    _, out_label = augmentation(image, label, rng)
    np.testing.assert_array_equal(out_label, np.rot90(label, -1))
    assert rng.uniform_bounds == [(-90, 90), (-90, 90)]


def test_shear_of_a_known_point():
    # 9x9 about the centre (4, 4), shear pi/6: output (r, c) reads the input at
    # (r - sin(pi/6) * (c - 4), 4 + cos(pi/6) * (c - 4)).
    image, label = grid(9, 9, channels=1), grid(9, 9)
    rng = ScriptedRng(ranged=[math.pi / 6])
    out_image, out_label = Augmentation(shear_range=1.0, fill_mode="nearest")(image, label, rng)
    # (4, 8) reads (2, 7.4641): label by nearest neighbour, the image (r * 9 + c, linear)
    # bilinearly, which is exact on a linear ramp.
    assert out_label[4, 8] == label[2, 7]
    assert out_image[0, 4, 8] == pytest.approx(2 * 9 + 4 + 4 * math.cos(math.pi / 6), abs=1e-4)
    # The centre column is left in place.
    np.testing.assert_array_equal(out_label[:, 4], label[:, 4])
    matrix = affine_matrix((9, 9), shear=math.pi / 6)
    np.testing.assert_allclose(matrix @ [4, 8, 1], [2, 4 + 4 * math.cos(math.pi / 6), 1])


@pytest.mark.parametrize("fill_mode, numpy_mode", [
    ("reflect", "symmetric"), ("nearest", "edge"), ("wrap", "wrap")])
def test_shift_fills_the_outside_as_np_pad(fill_mode, numpy_mode):
    image, label = grid(8, 8, channels=1), grid(8, 8)
    augmentation = Augmentation(height_shift_range=0.5, width_shift_range=0.5,
                                fill_mode=fill_mode)
    # Row shift 0.25 * 8 = 2 (the output reads two rows further down), column shift -3.
    out_image, out_label = augmentation(image, label, ScriptedRng(ranged=[0.25, -0.375]))
    expected = np.pad(label, ((0, 2), (3, 0)), mode=numpy_mode)[2:, :8]
    np.testing.assert_array_equal(out_label, expected)
    np.testing.assert_allclose(out_image[0], expected, atol=1e-4)


def test_constant_fill_uses_cval_and_the_void_label():
    image, label = grid(4, 4, channels=1), grid(4, 4)
    augmentation = Augmentation(height_shift_range=0.5, fill_mode="constant", cval=-7,
                                void_label=99)
    out_image, out_label = augmentation(image, label, ScriptedRng(ranged=[-0.25]))
    # Shift -1 row: the first row comes from outside.
    np.testing.assert_array_equal(out_label, np.vstack([[99] * 4, label[:3]]))
    np.testing.assert_allclose(out_image[0], np.vstack([[-7] * 4, label[:3]]), atol=1e-4)
    masked = Augmentation.from_tutorial_dict(
        {"height_shift_range": 0.5, "fill_mode": "constant", "cval_mask": 5}, void_label=99)
    assert masked(image, label, ScriptedRng(ranged=[-0.25]))[1][0].tolist() == [5] * 4
    with pytest.raises(ValueError, match="void_label"):
        Augmentation(rotation_range=10)(image, label, ScriptedRng(ranged=[3.0]))
    # The batch iterator gives it the dataset's void label.
    iterator = BatchIterator(_OneImage(), batch_size=1, seed=0,
                             augmentation=Augmentation(rotation_range=45))
    _, labels = next(iter(iterator))
    assert set(np.unique(labels)) <= {0, 1, 2}


class _OneImage:
    n_classes, void_label, image_paths = 2, 2, ("one.png",)

    def __len__(self):
        return 1

    def __getitem__(self, index):
        label = (grid(12, 12) % 3 == 0).astype(np.int32)
        return label[None].astype(np.float32), label


def _bspline3(t):
    t = np.abs(t)
    return np.where(t < 1, 2 / 3 - t ** 2 + t ** 3 / 2,
                    np.where(t < 2, (2 - t) ** 3 / 6, 0.0))


def test_warp_field_is_the_cubic_bspline_sum():
    rng = np.random.default_rng(3)
    control = rng.normal(size=(5, 5, 2))  # a 2x2 mesh
    height, width = 7, 10
    field = spline_warp_field((height, width), control)
    # Pixel centre x lies at mesh position (x + 0.5) * g / n; control point k at k - 1.
    rows = (np.arange(height) + 0.5) * 2 / height + 1
    columns = (np.arange(width) + 0.5) * 2 / width + 1
    basis_rows = _bspline3(rows[:, None] - np.arange(5)[None])
    basis_columns = _bspline3(columns[:, None] - np.arange(5)[None])
    for component in range(2):
        expected = np.einsum("ik,kl,jl->ij", basis_rows, control[:, :, component],
                             basis_columns)
        np.testing.assert_allclose(field[component], expected, atol=1e-12)
    # A constant control grid moves every pixel by that constant (the B-splines sum to 1).
    np.testing.assert_allclose(spline_warp_field((6, 6), np.full((6, 6, 2), 2.5)), 2.5)


def test_warp_with_sigma_zero_is_identity():
    image, label = grid(9, 7, channels=2), grid(9, 7)
    augmentation = Augmentation(spline_warp=True, warp_sigma=0, warp_grid_size=3,
                                fill_mode="reflect")
    out_image, out_label = augmentation(image, label, np.random.default_rng(0))
    np.testing.assert_array_equal(out_label, label)
    np.testing.assert_allclose(out_image, image, atol=1e-5)


def _symmetric_index(index, length):
    index = np.where(index < 0, -index - 1, index)
    return np.where(index >= length, 2 * length - 1 - index, index)


def test_warp_moves_pixels_by_the_field_of_the_drawn_control_points():
    height, width, sigma = 10, 12, 1.5
    image, label = grid(height, width, channels=1), grid(height, width)
    normals = np.random.default_rng(7).normal(size=(5, 5, 2))
    augmentation = Augmentation(spline_warp=True, warp_sigma=sigma, warp_grid_size=2,
                                fill_mode="reflect")
    rng = ScriptedRng(normals=normals)
    out_image, out_label = augmentation(image, label, rng)
    assert rng.calls == ["standard_normal"]
    control = sigma * normals
    control[[0, -1]] = 0
    control[:, [0, -1]] = 0  # the outer ring of control points stays in place
    field = spline_warp_field((height, width), control)
    rows, columns = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
    source_rows, source_columns = rows + field[0], columns + field[1]
    nearest = (_symmetric_index(np.rint(source_rows).astype(int), height),
               _symmetric_index(np.rint(source_columns).astype(int), width))
    np.testing.assert_array_equal(out_label, label[nearest])
    inside = ((source_rows >= 0) & (source_rows <= height - 1) & (source_columns >= 0)
              & (source_columns <= width - 1))
    assert inside.mean() > 0.5 and not np.allclose(field, 0)
    np.testing.assert_allclose(out_image[0][inside],
                               (source_rows * width + source_columns)[inside], atol=1e-3)


@pytest.mark.parametrize("fill_mode", ["reflect", "constant"])
def test_labels_stay_in_the_label_set(fill_mode):
    options = dict(UNET_OPTIONS, crop_size=(20, 20), warp_sigma=3, fill_mode=fill_mode)
    augmentation = Augmentation.from_tutorial_dict(options, void_label=2)
    label = (grid(32, 32) % 5 < 2).astype(np.int32)
    rng, seen = np.random.default_rng(11), set()
    for _ in range(20):
        out_image, out_label = augmentation(label[None].astype(np.float32), label, rng)
        assert out_label.shape == (20, 20) and out_label.dtype == np.int32
        seen |= set(np.unique(out_label).tolist())
        assert out_image.min() >= 0 and out_image.max() <= 1  # bilinear stays in range
    assert seen == ({0, 1} if fill_mode == "reflect" else {0, 1, 2})


def test_draw_order_affine_flips_warp_crop():
    augmentation = Augmentation(rotation_range=10, height_shift_range=0.1,
                                width_shift_range=0.1, shear_range=0.2, horizontal_flip=0.5,
                                vertical_flip=0.5, spline_warp=True, warp_grid_size=1,
                                crop_size=(3, 3), fill_mode="nearest")
    rng = ScriptedRng(uniforms=[0.9, 0.9], starts=[0, 0], ranged=[0.0, 0.0, 0.0, 0.0],
                      normals=np.zeros((4, 4, 2)))
    augmentation(grid(5, 5, 1), grid(5, 5), rng)
    assert rng.calls == ["uniform"] * 4 + ["random"] * 2 + ["standard_normal"] + \
        ["integers"] * 2
    assert rng.uniform_bounds == [(-10, 10), (-0.1, 0.1), (-0.1, 0.1), (-0.2, 0.2)]


def test_the_fcn8_dict_draws_what_it_always_drew():
    # Flip with probability 0.5 (one uniform), then the crop's row and column starts.
    augmentation = Augmentation.from_tutorial_dict(
        {"crop_size": (3, 4), "horizontal_flip": True, "fill_mode": "constant"})
    image, label = grid(6, 9, channels=1), grid(6, 9)
    rng, replay = np.random.default_rng(42), np.random.default_rng(42)
    for _ in range(5):
        _, out = augmentation(image, label, rng)
        flipped = label[:, ::-1] if replay.random() < 0.5 else label
        top, left = int(replay.integers(0, 4)), int(replay.integers(0, 6))
        np.testing.assert_array_equal(out, flipped[top:top + 3, left:left + 4])
    assert rng.random() == replay.random()


def test_legacy_random_state_drives_every_transform():
    augmentation = Augmentation.from_tutorial_dict(dict(UNET_OPTIONS, crop_size=(8, 8)))
    label = (grid(16, 16) % 3 == 0).astype(np.int32)
    first = augmentation(label[None].astype(np.float32), label, np.random.RandomState(4))
    again = augmentation(label[None].astype(np.float32), label, np.random.RandomState(4))
    np.testing.assert_array_equal(first[1], again[1])
    np.testing.assert_array_equal(first[0], again[0])
    assert first[1].shape == (8, 8)
