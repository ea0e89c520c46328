"""The U-Net recipe (``fcn8 train --model unet``): train_unet.py's settings, lines and files.

Quick tests read the settings, the lines and the bad-input errors without compiling; the
end-to-end test trains a tiny U-Net (2 base filters) on tiny synthetic EM stacks from the
command line, is interrupted in its second epoch, resumes and runs the final test.
"""

import json
import re

import numpy as np
import pytest
import tifffile

from fcn8_lasagne import cli
from fcn8_lasagne.cli import main
from fcn8_lasagne.layers import get_all_param_values, set_all_param_values
from fcn8_lasagne.models.unet import build_UNet
from fcn8_lasagne.training import Scores, get_recipe
from fcn8_lasagne.training.unet import UNetRecipe
from fcn8_lasagne.weights import read_npz_values

FLOAT = r"(-?\d+\.\d{6}|nan)"
EPOCH_LINE = re.compile(
    rf"EPOCH (\d+): Avg epoch training cost train {FLOAT}, cost val {FLOAT}, acc val {FLOAT}, "
    rf"jacc val class 0 {FLOAT}, jacc val class 1 {FLOAT}, jacc val {FLOAT} took {FLOAT} s$")
FINAL_LINE = re.compile(
    rf"FINAL MODEL: err test {FLOAT}, acc test {FLOAT}, jacc test class 0 {FLOAT}, "
    rf"jacc test class 1 {FLOAT}, jacc test {FLOAT}$")

TINY = ["train", "--model", "unet", "--base-n-filters", "2", "--synthetic-pages", "4",
        "--synthetic-page-size", "32", "32", "-batch_size", "3", "1", "1", "-ne", "3",
        "--time-budget", "0", "--no-progress",
        "-data_augmentation", json.dumps({"rotation_range": 25, "shear_range": 0.41,
                                          "horizontal_flip": True, "vertical_flip": True,
                                          "fill_mode": "reflect", "spline_warp": True,
                                          "warp_sigma": 2, "warp_grid_size": 3,
                                          "crop_size": [16, 16]})]


def _config(argv):
    return cli._train_config(cli.build_parser(cli._train_model(argv)).parse_args(argv))


def test_isbi_defaults_are_train_unet_py_s():
    config = _config(["train", "--model", "unet", "-dataset", "isbi_em", "--data-dir", "em"])
    assert (config.learning_rate, config.penal_cst, config.num_epochs, config.max_patience,
            config.batch_size, config.seed) == (1e-4, 0.0, 750, 100, (5, 5, 1), None)
    assert config.data_augmentation == {
        "rotation_range": 25, "shear_range": 0.41, "horizontal_flip": True,
        "vertical_flip": True, "fill_mode": "reflect", "spline_warp": True, "warp_sigma": 10,
        "warp_grid_size": 3, "crop_size": (224, 224)}
    assert config.time_budget is None and config.options["base_n_filters"] == 64
    assert config.savepath.replace("\\", "/") == "save_models/isbi_em/unet_data_aug"
    flags = _config(["train", "--model", "unet", "-dataset", "isbi_em", "--data-dir", "em",
                     "-penal_cst", "0.01", "-ne", "3", "-max_patience", "2",
                     "-learning_rate", "0.001", "-batch_size", "2", "2", "1"])
    assert (flags.penal_cst, flags.num_epochs, flags.max_patience, flags.learning_rate,
            flags.batch_size) == (0.01, 3, 2, 0.001, (2, 2, 1))


def test_synthetic_em_is_the_default_dataset_and_runs_seeded_within_a_budget():
    config = _config(["train", "--model", "unet"])
    assert config.dataset == "synthetic_em" and config.seed == 1
    assert config.time_budget == 540 and config.learning_rate == 1e-4
    assert config.data_augmentation["crop_size"] == (64, 64)
    assert config.data_augmentation["spline_warp"] and config.batch_size[0] == 5
    tiny = _config(TINY)
    assert tiny.dataset_options == {"n_pages": 4, "page_size": (32, 32)}
    assert tiny.time_budget is None


def test_files_and_histories_are_the_originals():
    recipe = get_recipe("unet")
    assert isinstance(recipe, UNetRecipe)
    files = recipe.files
    assert (files.best_weights, files.last_weights, files.best_errors, files.last_errors,
            files.log) == ("new_unet_model_best.npz", "new_unet_model_last.npz",
                           "unet_errors_best.npz", "unet_errors_last.npz", "unet_output.log")
    # np.savez(..., err_valid, err_train, acc_valid, jacc_valid) in the original
    assert recipe.history_names == ("err_valid", "err_train", "acc_valid", "jacc_valid")


def test_epoch_and_final_lines():
    recipe = get_recipe("unet")
    scores = Scores(0.265909, 0.888796, np.zeros((2, 2)), np.array([0.636058, 0.86197]),
                    0.749014, score=0.749014)
    assert recipe.epoch_line(364, [0.160667], scores, 4.379772) == (
        "EPOCH 364: Avg epoch training cost train 0.160667, cost val 0.265909, acc val "
        "0.888796, jacc val class 0 0.636058, jacc val class 1 0.861970, jacc val 0.749014 "
        "took 4.379772 s")
    assert FINAL_LINE.match(recipe.final_line(scores))


def _error_line(capsys, argv):
    code = main(argv)
    captured = capsys.readouterr()
    assert code == 2, captured
    assert "Defining and compiling" not in captured.out
    lines = [line for line in captured.err.strip().splitlines()
             if not line.startswith("fcn8 train: note:")]  # e.g. advice on CPU cores
    assert len(lines) == 1, lines
    return lines[0]


@pytest.mark.parametrize("argv, words", [
    (["--base-n-filters", "0"], ["--base-n-filters", "got 0"]),
    (["-data_augmentation", '{"crop_size": [60, 64]}'], ["crop_size [60, 64]", "16", "60x64"]),
    (["-data_augmentation", '{"fill_mode": "mirror"}'], ["fill_mode", "'mirror'"]),
    (["-dataset", "synthetic"], ["-dataset synthetic", "synthetic_em, isbi_em"]),
    (["-dataset", "isbi_em", "--data-dir", ".", "--synthetic-pages", "3"],
     ["--synthetic-pages", "synthetic_em only"]),
])
def test_bad_settings_are_one_line_errors(tmp_path, capsys, argv, words):
    line = _error_line(capsys, ["train", "--model", "unet", "--savepath",
                                str(tmp_path / "run")] + argv)
    assert all(word in line for word in words), line


def _write_isbi(root, n_pages=30, bad_label_page=None):
    root.mkdir()
    volume = np.zeros((n_pages, 512, 512), np.uint8)
    labels = np.full((n_pages, 512, 512), 255, np.uint8)
    labels[:, ::8] = 0
    if bad_label_page is not None:
        labels[bad_label_page, 3, 5] = 128
    tifffile.imwrite(root / "train-volume.tif", volume, photometric="minisblack")
    tifffile.imwrite(root / "train-labels.tif", labels, photometric="minisblack")
    return root


def test_bad_isbi_stacks_fail_before_compiling(tmp_path, capsys):
    common = ["train", "--model", "unet", "-dataset", "isbi_em", "--savepath",
              str(tmp_path / "run"), "--no-progress", "--data-dir"]
    line = _error_line(capsys, common + [str(_write_isbi(tmp_path / "short", n_pages=29))])
    assert line.endswith(f"{tmp_path / 'short' / 'train-volume.tif'}: expected 30 pages, "
                         "got 29")
    line = _error_line(capsys, common + [str(_write_isbi(tmp_path / "grey",
                                                         bad_label_page=27))])
    assert f"{tmp_path / 'grey' / 'train-labels.tif'}, page 27: label value(s) 128" in line


@pytest.fixture
def em_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("FCN8_LASAGNE_CACHE", str(tmp_path / "cache"))


def test_tiny_run_interrupted_resumed_and_tested(tmp_path, capsys, monkeypatch, em_cache):
    savepath = tmp_path / "run"
    argv = TINY + ["--savepath", str(savepath)]

    def interrupt_in_epoch_1(self, trainer, iteration):
        if iteration == 1:  # the only step of epoch 1 (3 training pages, batch 3)
            raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(UNetRecipe, "on_iteration", interrupt_in_epoch_1)
        assert main(argv) == 130
    out = capsys.readouterr().out
    assert "Batch. train: 1, val 1, test 1" in out and "Interrupted in epoch 1" in out
    assert EPOCH_LINE.match([line for line in out.splitlines() if line.startswith("EPOCH")][0])

    assert main(argv + ["--resume"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert "Resuming at epoch 1 (patience 0)" in out
    assert FINAL_LINE.match(out[-1]), out[-1]
    log = (savepath / "unet_output.log").read_text().splitlines()
    assert [EPOCH_LINE.match(line).group(1) for line in log] == ["0", "1", "2"]

    # the errors files: err_valid, err_train, acc_valid, jacc_valid, one value per epoch
    errors = read_npz_values(savepath / "unet_errors_last.npz", allow_nonfinite=True)
    assert [len(values) for values in errors] == [3, 3, 3, 3]
    last = EPOCH_LINE.match(log[-1]).groups()
    assert errors[0][-1] == pytest.approx(float(last[2]), abs=1e-6)  # cost val
    assert errors[1][-1] == pytest.approx(float(last[1]), abs=1e-6)  # cost train
    assert errors[2][-1] == pytest.approx(float(last[3]), abs=1e-6)  # acc val

    # the best and last weights load back into the builder
    for name in ("new_unet_model_best.npz", "new_unet_model_last.npz"):
        net = build_UNet(1, num_output_classes=2, base_n_filters=2)
        values = read_npz_values(savepath / name)
        set_all_param_values(net["output_flattened"], values)
        for loaded, saved in zip(get_all_param_values(net["output_flattened"]), values):
            np.testing.assert_array_equal(loaded, saved)
    results = json.loads((savepath / "final_results.json").read_text())
    assert results["test"]["weights"] == "new_unet_model_best.npz"
    assert (savepath / "learning_curves.png").stat().st_size > 0
