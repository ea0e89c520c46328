"""Layer-by-layer comparison of activations, the independent NumPy forward pass, and the
standalone Theano dump script."""

import ast
import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fcn8_lasagne import compare
from fcn8_lasagne.compare import (
    compare_activations,
    format_comparison,
    numpy_fcn_forward,
    verdict,
)
from tests import reference

REPOSITORY = Path(__file__).resolve().parent.parent
DUMP_SCRIPT = REPOSITORY / "weights" / "dump_theano_activations.py"


@pytest.fixture
def activations(rng):
    """Three layers of made-up activations, as a dump file would hold them."""
    return {
        "input": rng.standard_normal((1, 3, 6, 5)).astype(np.float32),
        "conv": rng.standard_normal((1, 4, 6, 5)).astype(np.float32),
        "pool": np.abs(rng.standard_normal((1, 4, 3, 2))).astype(np.float32) + 1.0,
        "probs": rng.uniform(0.1, 0.9, (30, 2)).astype(np.float32),
    }


def _copy(arrays):
    return {name: value.copy() for name, value in arrays.items()}


def _row(rows, layer):
    return next(row for row in rows if row.layer == layer)


# --- compare_activations ------------------------------------------------------------------


def test_equal_sources_match_with_zero_error(activations):
    rows = compare_activations(activations, _copy(activations))
    assert [row.layer for row in rows] == ["conv", "pool", "probs"]  # 'input' left out
    assert all(row.ok and row.max_abs_error == 0 and row.max_rel_error == 0 for row in rows)
    assert [row.reference_shape for row in rows] == [(1, 4, 6, 5), (1, 4, 3, 2), (30, 2)]
    assert verdict(rows).startswith("all 3 layers match within rtol 0.0001")


def test_perturbed_layer_reports_its_absolute_and_relative_error(activations):
    candidate = _copy(activations)
    candidate["pool"][0, 1, 2, 0] += 0.5
    rows = compare_activations(activations, candidate, rtol=1e-4)
    pool = _row(rows, "pool")
    scale = np.abs(activations["pool"]).max()
    assert pool.max_abs_error == pytest.approx(0.5, rel=1e-6)
    assert pool.max_rel_error == pytest.approx(0.5 / scale, rel=1e-6)
    assert not pool.ok
    assert _row(rows, "conv").ok and _row(rows, "probs").ok
    line = verdict(rows)
    assert line.startswith("1 of 3 layers differ (rtol 0.0001): pool (rel ")
    assert "conv" not in line and "probs" not in line


def test_rtol_decides_between_match_and_difference(activations):
    candidate = _copy(activations)
    scale = float(np.abs(activations["conv"]).max())
    candidate["conv"] = (activations["conv"].astype(np.float64) + 1e-3 * scale)
    assert not _row(compare_activations(activations, candidate, rtol=1e-4), "conv").ok
    assert _row(compare_activations(activations, candidate, rtol=1e-2), "conv").ok


def test_missing_layers_fail_in_either_direction(activations):
    candidate = _copy(activations)
    del candidate["pool"]
    candidate["extra"] = np.zeros(3)
    rows = compare_activations(activations, candidate)
    assert [row.layer for row in rows] == ["conv", "pool", "probs", "extra"]
    pool, extra = _row(rows, "pool"), _row(rows, "extra")
    assert (pool.ok, pool.problem, pool.candidate_shape) == (False, "missing in candidate", None)
    assert (extra.ok, extra.problem, extra.reference_shape) == (False, "missing in reference",
                                                                None)
    assert np.isnan(pool.max_abs_error)
    assert verdict(rows) == ("2 of 4 layers differ (rtol 0.0001): pool (missing in candidate), "
                             "extra (missing in reference)")
    table = format_comparison(rows)
    assert "MISSING IN CANDIDATE" in table and "MISSING IN REFERENCE" in table


def test_a_layer_named_in_neither_source_fails(activations):
    rows = compare_activations(activations, activations, layers=["conv", "nowhere"])
    assert _row(rows, "nowhere").problem == "missing in both"
    assert verdict(rows).startswith("1 of 2 layers differ")


def test_shape_mismatch_fails_and_shows_both_shapes(activations):
    candidate = _copy(activations)
    candidate["conv"] = candidate["conv"][:, :, :5]
    rows = compare_activations(activations, candidate)
    conv = _row(rows, "conv")
    assert (conv.ok, conv.problem) == (False, "shape mismatch")
    assert (conv.reference_shape, conv.candidate_shape) == ((1, 4, 6, 5), (1, 4, 5, 5))
    assert "1x4x6x5 vs 1x4x5x5" in format_comparison(rows)
    assert "conv (shape mismatch)" in verdict(rows)


def test_same_size_but_different_shape_is_a_mismatch(activations):
    candidate = _copy(activations)
    candidate["probs"] = candidate["probs"].reshape(1, 30, 2)
    assert _row(compare_activations(activations, candidate), "probs").problem == "shape mismatch"


def test_layers_argument_selects_and_orders_and_can_include_the_input(activations):
    candidate = _copy(activations)
    candidate["input"] = candidate["input"] + 1
    rows = compare_activations(activations, candidate, layers=["probs", "input"])
    assert [row.layer for row in rows] == ["probs", "input"]
    assert _row(rows, "probs").ok and not _row(rows, "input").ok


def test_sources_may_be_npz_files(activations, tmp_path):
    reference_path = tmp_path / "reference.npz"
    candidate_path = tmp_path / "candidate.npz"
    np.savez(reference_path, **activations)
    candidate = _copy(activations)
    candidate["probs"] = candidate["probs"] * 2
    np.savez(candidate_path, **candidate)
    from_files = compare_activations(str(reference_path), candidate_path)
    from_dicts = compare_activations(activations, candidate)
    assert from_files == from_dicts
    assert [row.ok for row in from_files] == [True, True, False]


def test_nan_and_infinity_in_the_same_places_count_as_equal():
    reference = {"layer": np.array([1.0, np.nan, np.inf, -2.0])}
    rows = compare_activations(reference, {"layer": reference["layer"].copy()})
    assert rows[0].ok and rows[0].max_abs_error == 0
    # relative errors are measured against the finite values only
    nan_elsewhere = {"layer": np.array([np.nan, np.nan, np.inf, -2.0])}
    row = compare_activations(reference, nan_elsewhere)[0]
    assert (row.ok, row.max_abs_error, row.max_rel_error) == (False, np.inf, np.inf)


def test_all_zero_reference_needs_atol_for_a_nonzero_candidate():
    zeros = {"relu": np.zeros((2, 3))}
    tiny = {"relu": np.full((2, 3), 1e-9)}
    assert compare_activations(zeros, {"relu": np.zeros((2, 3))})[0].ok
    strict = compare_activations(zeros, tiny)[0]
    assert (strict.ok, strict.max_rel_error) == (False, np.inf)
    slack = compare_activations(zeros, tiny, atol=1e-8)
    assert slack[0].ok
    assert "atol 1e-08" in verdict(slack)


def test_errors_are_computed_in_float64():
    reference = {"layer": np.array([1.0, 2.0], dtype=np.float32)}
    candidate = {"layer": np.array([1.0, 2.0 + 2 ** -20], dtype=np.float64)}
    row = compare_activations(reference, candidate)[0]
    assert row.max_abs_error == 2 ** -20
    assert row.max_rel_error == 2 ** -21


def test_format_comparison_has_one_line_per_layer_with_its_numbers(activations):
    candidate = _copy(activations)
    candidate["conv"][0, 0, 0, 0] += 3.0
    rows = compare_activations(activations, candidate)
    lines = format_comparison(rows).splitlines()
    assert lines[0].split() == ["layer", "shape", "max", "abs", "error", "max", "rel", "error",
                                "status"]
    assert len(lines) == 1 + len(rows)
    conv_fields = lines[1].split()
    assert conv_fields[0] == "conv" and conv_fields[1] == "1x4x6x5"
    assert float(conv_fields[2]) == pytest.approx(3.0, rel=1e-3)
    assert conv_fields[-1] == "DIFFERS"
    assert lines[2].split()[-1] == "ok"


def test_verdict_of_no_rows_is_not_a_pass():
    assert verdict([]) == "no layers compared"


# --- the NumPy building blocks --------------------------------------------------------------


def _direct_correlation(images, weights, padding):
    """Cross-correlation by its definition, one output value at a time."""
    padded = np.pad(images, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    batch, _, height, width = padded.shape
    n_filters, _, kernel_height, kernel_width = weights.shape
    result = np.zeros((batch, n_filters, height - kernel_height + 1, width - kernel_width + 1))
    for b in range(batch):
        for f in range(n_filters):
            for i in range(result.shape[2]):
                for j in range(result.shape[3]):
                    window = padded[b, :, i:i + kernel_height, j:j + kernel_width]
                    result[b, f, i, j] = np.sum(window * weights[f])
    return result


@pytest.mark.parametrize("padding", [0, 1, 3])
def test_correlation_matches_its_definition(rng, padding):
    images = rng.standard_normal((2, 3, 5, 6))
    weights = rng.standard_normal((4, 3, 3, 2))
    bias = rng.standard_normal(4)
    expected = _direct_correlation(images, weights, padding) + bias[None, :, None, None]
    np.testing.assert_allclose(compare._correlate(images, weights, bias, padding), expected,
                               rtol=1e-12, atol=1e-12)


def test_transposed_convolution_places_rotated_kernels_on_the_stride_grid():
    weights = np.arange(2 * 1 * 3 * 3, dtype=np.float64).reshape(2, 1, 3, 3)
    images = np.zeros((1, 2, 2, 2))
    images[0, 0, 0, 0] = 1.0  # channel 0 at (0, 0)
    images[0, 1, 1, 1] = 2.0  # channel 1 at (1, 1)
    result = compare._transposed_convolution(images, weights, np.array([0.5]), stride=2)
    assert result.shape == (1, 1, (2 - 1) * 2 + 3, (2 - 1) * 2 + 3)
    expected = np.full((5, 5), 0.5)
    expected[0:3, 0:3] += weights[0, 0, ::-1, ::-1]
    expected[2:5, 2:5] += 2.0 * weights[1, 0, ::-1, ::-1]
    np.testing.assert_array_equal(result[0, 0], expected)


def test_transposed_convolution_is_the_adjoint_of_strided_true_convolution(rng):
    # <deconv(y), x> = <y, strided convolution of x with the rotated kernel>:
    # Lasagne's Deconv2D(flip_filters=False) is the gradient of a true convolution
    weights = rng.standard_normal((3, 2, 4, 4))
    small = rng.standard_normal((1, 3, 3, 4))
    stride = 2
    big_height, big_width = (3 - 1) * stride + 4, (4 - 1) * stride + 4
    big = rng.standard_normal((1, 2, big_height, big_width))
    deconvolved = compare._transposed_convolution(small, weights, np.zeros(2), stride)
    # a true convolution of `big` with filters (3 ← 2) is a correlation with rotated kernels
    convolved = compare._correlate(big, weights[:, :, ::-1, ::-1], np.zeros(3), 0)
    strided = convolved[:, :, ::stride, ::stride]
    np.testing.assert_allclose(np.sum(deconvolved * big), np.sum(strided * small), rtol=1e-10)


def test_max_pool_drops_the_odd_border():
    images = np.arange(1 * 1 * 5 * 5, dtype=np.float64).reshape(1, 1, 5, 5)
    pooled = compare._max_pool_2x2(images)
    np.testing.assert_array_equal(pooled[0, 0], [[6, 8], [16, 18]])


def test_center_crop_keeps_the_extra_element_at_the_end():
    images = np.arange(7, dtype=np.float64).reshape(1, 1, 1, 7)
    small = np.zeros((1, 1, 1, 4))
    first, second = compare._center_crop_to_smallest(images, small)
    np.testing.assert_array_equal(first[0, 0, 0], [1, 2, 3, 4])  # 7 → 4 keeps 1:5
    assert second.shape == small.shape


# --- numpy_fcn_forward ------------------------------------------------------------------------

#: VGG16 convolution counts per block, in Lasagne parameter order.
_VGG_BLOCK_CONVS = (2, 2, 3, 3, 3)


def _narrow_fcn_params(rng, model, n_classes=3, width=2, fc_width=4):
    """Parameters of an FCN with 2-channel VGG layers: the NumPy pass reads widths from them."""
    shapes = []
    channels = 3
    for n_convs in _VGG_BLOCK_CONVS:
        for _ in range(n_convs):
            shapes += [(width, channels, 3, 3), (width,)]
            channels = width
    shapes += [(fc_width, width, 7, 7), (fc_width,), (fc_width, fc_width, 1, 1), (fc_width,),
               (n_classes, fc_width, 1, 1), (n_classes,)]
    if model == "fcn8":
        shapes += [(n_classes, n_classes, 4, 4), (n_classes,), (n_classes, width, 1, 1),
                   (n_classes,), (n_classes, n_classes, 4, 4), (n_classes,),
                   (n_classes, width, 1, 1), (n_classes,), (n_classes, n_classes, 16, 16),
                   (n_classes,)]
    elif model == "fcn16":
        shapes += [(n_classes, n_classes, 4, 4), (n_classes,), (n_classes, width, 1, 1),
                   (n_classes,), (n_classes, n_classes, 32, 32), (n_classes,)]
    else:
        shapes += [(n_classes, n_classes, 64, 64), (n_classes,)]
    return [rng.uniform(0.1, 0.5, shape) for shape in shapes]


@pytest.mark.parametrize("height, final_crop", [(224, 28), (225, 27)])
def test_fcn8_forward_has_the_tutorial_sizes(rng, height, final_crop):
    # docs/fcn8-semantics.md §3: pool3 52, pool4 26, pool5 13, fc6 7, score2 16, score4 34,
    # upsample 280, and the final centre crop offset
    params = _narrow_fcn_params(rng, "fcn8")
    images = rng.uniform(0, 1, (1, 3, height, 32))
    outputs = numpy_fcn_forward(images, params, "fcn8")
    sizes = {name: value.shape[2] for name, value in outputs.items() if value.ndim == 4}
    assert {name: sizes[name] for name in ("pool3", "pool4", "pool5", "fc6", "score2",
                                           "score4", "upsample")} == {
        "pool3": 52, "pool4": 26, "pool5": 13, "fc6": 7, "score2": 16, "score4": 34,
        "upsample": 280}
    # width 32: upsample is 88 wide, cropped from (88 - 32) // 2 = 28
    assert outputs["upsample"].shape[3] == 88
    np.testing.assert_array_equal(
        outputs["score"], outputs["upsample"][:, :, final_crop:final_crop + height, 28:60])
    probabilities = outputs["probs_dimshuffle"]
    assert probabilities.shape == (1, 3, height, 32)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-12)
    np.testing.assert_array_equal(outputs["probs"],
                                  probabilities.transpose(0, 2, 3, 1).reshape(-1, 3))


def test_score_layers_have_a_relu_and_deconvolutions_do_not(rng):
    params = _narrow_fcn_params(rng, "fcn8")
    for index in (30, 34, 38):  # score_fr.W, score_pool4.W, score_pool3.W: negative
        params[index] = -params[index]
    params[33] = np.zeros_like(params[33])  # score2.b
    params[37] = np.zeros_like(params[37])  # score4.b
    params[41] = -params[41]  # upsample.b: negative
    outputs = numpy_fcn_forward(rng.uniform(0, 1, (1, 3, 32, 32)), params, "fcn8")
    # their inputs are ReLU outputs (>= 0), so without a ReLU they would be negative
    for name in ("score_fr", "score_pool4", "score_pool3"):
        assert np.all(outputs[name] == 0), name
    # score2, score4 and score_final are then all zero and upsample (linear) is its bias
    assert np.all(outputs["score_final"] == 0)
    np.testing.assert_array_equal(outputs["upsample"][0, :, 5, 7], params[41])
    assert outputs["upsample"].max() < 0


@pytest.mark.parametrize("model, skip_layers", [
    ("fcn8", ["score2", "score_pool4", "score_fused", "score4", "score_pool3", "score_final"]),
    ("fcn16", ["score2", "score_pool4", "score_fused"]),
    ("fcn32", []),
])
def test_forward_names_every_layer_of_the_builder_in_order(rng, model, skip_layers):
    outputs = numpy_fcn_forward(rng.uniform(0, 1, (1, 3, 32, 36)),
                                _narrow_fcn_params(rng, model), model)
    body = ["input"]
    for block, n_convs in enumerate(_VGG_BLOCK_CONVS, start=1):
        body += [f"conv{block}_{i}" for i in range(1, n_convs + 1)] + [f"pool{block}"]
    body += ["fc6", "fc6_dropout", "fc7", "fc7_dropout", "score_fr"]
    head = ["upsample", "score", "final_dimshuffle", "final_reshape", "probs", "probs_reshape",
            "probs_dimshuffle"]
    assert list(outputs) == body + skip_layers + head
    assert outputs["score"].shape[2:] == (32, 36)
    assert all(value.dtype == np.float64 for value in outputs.values())


@pytest.mark.parametrize("model", ["fcn8", "fcn16", "fcn32"])
def test_forward_values_match_the_reference_forward_of_the_tests(model):
    """Every layer against ``tests/reference.py``'s FCN, written separately from the layer
    table, with He-scaled weights that keep every layer non-zero and the softmax unsaturated."""
    rng = np.random.default_rng(2)  # a seed whose score layers are all alive
    shapes = [p.shape for p in _narrow_fcn_params(rng, model, width=4, fc_width=8)]
    params = reference.scaled_random_params(shapes, rng)
    images = rng.uniform(0, 1, (2, 3, 35, 38))
    outputs = numpy_fcn_forward(images, params, model)
    expected = reference.fcn_forward(images, params, model)
    for name, value in outputs.items():
        want = expected[name]
        assert value.shape == want.shape, name
        scale = np.abs(want).max()
        assert scale > 0, f"{name} is all zero"
        np.testing.assert_allclose(value, want, rtol=0, atol=1e-12 * scale, err_msg=name)
    assert outputs["probs"].max() < 0.9


def test_forward_rejects_a_wrong_parameter_list(rng):
    with pytest.raises(ValueError, match="fcn8 has 42 parameter arrays, got 34"):
        numpy_fcn_forward(np.zeros((1, 3, 8, 8)), _narrow_fcn_params(rng, "fcn32"), "fcn8")
    with pytest.raises(ValueError, match="unknown model"):
        numpy_fcn_forward(np.zeros((1, 3, 8, 8)), [], "fcn4")


def test_compare_module_imports_nothing_of_the_package():
    # the NumPy forward pass must stay independent of the ops and layers it checks
    tree = ast.parse(Path(compare.__file__).read_text(encoding="utf-8"))
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            imported.add("." if node.level else node.module.split(".")[0])
    assert imported <= {"os", "collections", "dataclasses", "numpy"}, imported


# --- weights/dump_theano_activations.py ---------------------------------------------------


def _load_dump_script():
    spec = importlib.util.spec_from_file_location("dump_theano_activations", DUMP_SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_dump_script_is_valid_python():
    compile(DUMP_SCRIPT.read_text(encoding="utf-8"), str(DUMP_SCRIPT), "exec")


def test_dump_script_help_runs_without_theano():
    result = subprocess.run([sys.executable, str(DUMP_SCRIPT), "--help"], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "--fcn8" in result.stdout and "--size" in result.stdout


@pytest.mark.skipif(importlib.util.find_spec("theano") is not None,
                    reason="Theano is installed: the script would really run")
def test_dump_script_without_theano_says_what_it_needs(tmp_path):
    image = tmp_path / "image.npz"
    np.savez(image, input=np.zeros((1, 3, 8, 8), np.float32))
    result = subprocess.run(
        [sys.executable, str(DUMP_SCRIPT), "weights.npz", str(image), str(tmp_path / "o.npz"),
         "--fcn8", str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "Theano" in result.stderr and "Lasagne" in result.stderr
    assert not (tmp_path / "o.npz").exists()


def test_dump_script_feeds_the_same_input_as_the_project(tmp_path, rng):
    from fcn8_lasagne.inference import read_image, save_png

    script = _load_dump_script()
    pixels = rng.integers(0, 256, (30, 41, 3), dtype=np.uint8)
    save_png(pixels, tmp_path / "frame.png")
    for size in (None, (28, 36)):
        batch = script.read_input(str(tmp_path / "frame.png"), size)
        expected = read_image(str(tmp_path / "frame.png"), size)[None]
        assert batch.dtype == np.float32
        np.testing.assert_array_equal(batch, expected)
    # the `input` of an existing activation file is reused exactly
    stored = rng.standard_normal((1, 3, 9, 7)).astype(np.float32)
    np.savez(tmp_path / "ours.npz", input=stored, conv1_1=np.zeros(1))
    np.testing.assert_array_equal(script.read_input(str(tmp_path / "ours.npz"), None), stored)


def test_dump_script_names_the_layers_of_our_fcn8(rng):
    # the two files must use the same keys: the builder's names without the two inputs
    script = _load_dump_script()
    outputs = numpy_fcn_forward(rng.uniform(0, 1, (1, 3, 32, 32)),
                                _narrow_fcn_params(rng, "fcn8"), "fcn8")
    assert list(script.FCN8_LAYERS) == [name for name in outputs if name != "input"]
