"""The operation counts that benchmarks/ report GFLOP/s with (benchmarks/_flops.py)."""

import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(__file__)), "benchmarks"))
import _flops  # noqa: E402


def test_fcn8_layer_flops_at_224_match_hand_counts():
    counts = {name: _flops.conv_flops(kind, x, w, stride, pad)
              for name, kind, x, w, stride, pad in _flops.fcn8_layers(224, n_classes=21)}
    # conv1_1: 3 -> 64 channels on 224 + 2 * 100 - 2 = 422 pixels a side
    assert counts["conv1_1"] == 2 * 64 * 3 * 9 * 422 * 422
    assert counts["conv1_2"] == 2 * 64 * 64 * 9 * 422 * 422
    assert counts["conv2_1"] == 2 * 128 * 64 * 9 * 211 * 211
    assert counts["conv3_3"] == 2 * 256 * 256 * 9 * 105 * 105
    assert counts["conv4_1"] == 2 * 512 * 256 * 9 * 52 * 52
    assert counts["conv5_3"] == 2 * 512 * 512 * 9 * 26 * 26
    # fc6: 7x7 on pool5's 13 x 13 -> 7 x 7; fc7: 1x1
    assert counts["fc6"] == 2 * 4096 * 512 * 49 * 7 * 7
    assert counts["fc7"] == 2 * 4096 * 4096 * 7 * 7
    # transposed: every input pixel scatters Cout * k * k products
    assert counts["score2"] == 2 * 21 * 21 * 16 * 7 * 7
    assert counts["upsample"] == 2 * 21 * 21 * 256 * 34 * 34
    assert _flops.fcn8_flops(1, 224, 224, 21) == pytest.approx(sum(counts.values()))


def test_training_counts_three_passes_but_conv1_1_input_gradient_and_scales_with_batch():
    forward = _flops.fcn8_flops(1, 224, 224, 2)
    first = 2 * 64 * 3 * 9 * 422 * 422
    assert _flops.fcn8_flops(1, 224, 224, 2, "train") == pytest.approx(3 * forward - first)
    assert _flops.fcn8_flops(4, 224, 224, 2) == pytest.approx(4 * forward)
    with pytest.raises(ValueError, match="mode"):
        _flops.fcn8_flops(1, 224, 224, 2, "backward")


def test_rectangular_images_use_both_sides():
    layers = {name: x for name, _, x, _, _, _ in _flops.fcn8_layers(288, width=384)}
    assert layers["conv1_2"][2:] == (486, 582)
    assert layers["fc6"][2:] == (15, 18)  # 486 and 582 halved five times, floored


def test_simd_level_reads_the_flags(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx avx2 fma\n")
    assert _flops.simd_level(str(cpuinfo)) == "AVX2"
    cpuinfo.write_text("flags\t\t: avx2 avx512f avx512bw\n")
    assert _flops.simd_level(str(cpuinfo)) == "AVX-512"
    assert _flops.simd_level(str(tmp_path / "missing")) is None
