"""The 1-D FCN recipe (``fcn8 train --model fcn1d``): train_fcn1D.py's settings, lines, files.

Quick tests read the settings, the learning-rate schedule, the lines and the bad-input
errors without compiling; the end-to-end test trains a tiny 1-D FCN (one block of 2 filters)
on a few synthetic profiles from the command line, is interrupted in its second epoch,
resumes and runs the final test.
"""

import json
import re
from types import SimpleNamespace

import numpy as np
import pytensor
import pytest

from fcn8_lasagne import cli
from fcn8_lasagne.cli import main
from fcn8_lasagne.layers import get_all_param_values, set_all_param_values
from fcn8_lasagne.models.fcn1d import build_model
from fcn8_lasagne.training import Scores, get_recipe
from fcn8_lasagne.training.fcn1d import FCN1DRecipe
from fcn8_lasagne.weights import read_npz_values

FLOAT = r"(-?\d+\.\d{6}|nan)"
PER_CLASS = r"\[" + ", ".join(rf"'{k}: {FLOAT}'" for k in range(7)) + r"\]"
EPOCH_LINE = re.compile(
    rf"EPOCH (\d+): Avg cost train {FLOAT}, acc train {FLOAT}, cost val {FLOAT}, acc val "
    rf"{FLOAT}, jacc val per class {PER_CLASS}, jacc val {FLOAT} took {FLOAT} s$")
FINAL_LINE = re.compile(rf"FINAL MODEL: err test {FLOAT}, acc test {FLOAT}, jacc test per "
                        rf"class {PER_CLASS}, jacc test {FLOAT}$")

TINY = ["train", "--model", "fcn1d", "--n-filters", "2", "--filter-size", "3", "--depth", "1",
        "--synthetic-profiles", "20", "-batch_size", "8", "8", "8", "-ne", "3",
        "--time-budget", "0", "--no-progress"]


def _config(argv):
    return cli._train_config(cli.build_parser(cli._train_model(argv)).parse_args(argv))


def test_cortical_layers_defaults_are_train_fcn1d_py_s():
    config = _config(["train", "--model", "fcn1d", "-dataset", "cortical_layers",
                      "--data-dir", "profiles"])
    assert (config.learning_rate, config.penal_cst, config.num_epochs, config.max_patience,
            config.batch_size, config.seed) == (5e-4, 1e-3, 500, 25, (1024, 1024, 1), None)
    assert config.data_augmentation == {} and config.time_budget is None
    assert config.options == {"n_filters": 64, "filter_size": 25, "depth": 8,
                              "block": "bn_relu_conv"}
    assert config.dataset_options == {"smooth_or_raw": "both"}
    assert config.savepath.replace("\\", "/") == (
        "save_models/cortical_layers/fcn1D_lrate=0.0005_fil=64_fsizes=25_depth=8_data=both"
        "_decay=0.001_pat=25")


def test_synthetic_profiles_are_the_default_dataset():
    config = _config(["train", "--model", "fcn1d"])
    assert config.dataset == "synthetic_profiles" and config.seed == 1
    assert config.time_budget == 540 and config.batch_size[0] == 32
    assert (config.learning_rate, config.penal_cst) == (5e-4, 1e-3)
    assert _config(TINY).dataset_options == {"smooth_or_raw": "both", "n_profiles": 20}


def test_learning_rate_is_multiplied_by_0_99_before_every_epoch():
    recipe = FCN1DRecipe("fcn1d")
    recipe.learning_rate = pytensor.shared(np.float32(0))
    trainer = SimpleNamespace(config=SimpleNamespace(learning_rate=5e-4))
    # the original: learn_step.set_value(learn_step.get_value() * 0.99) at each epoch's start
    original = np.float32(5e-4)
    for epoch in range(30):
        original = np.float32(original * 0.99)
        recipe.on_epoch_start(trainer, epoch)
        assert recipe.learning_rate.get_value() == pytest.approx(original, rel=1e-5)
    recipe.on_epoch_start(trainer, 0)  # a function of the epoch: a resume recomputes it
    assert recipe.learning_rate.get_value() == pytest.approx(5e-4 * 0.99, rel=1e-6)


def test_files_histories_and_lines():
    recipe = get_recipe("fcn1d")
    files = recipe.files
    assert (files.best_weights, files.last_weights, files.best_errors, files.last_errors,
            files.log) == ("new_fcn1D_model_best.npz", "new_fcn1D_model_last.npz",
                           "fcn1D_errors_best.npz", "fcn1D_errors_last.npz",
                           "fcn1D_output.log")
    assert recipe.history_names == ("err_train", "acc_train", "err_valid", "acc_valid",
                                    "jacc_valid")
    per_class = np.array([0.981183, 0.953546, 0.945765, 0.980471, 0.914617, 0.96871,
                          0.971049])
    scores = Scores(0.041758, 0.984398, np.zeros((2, 7)), per_class, 0.959335,
                    score=0.959335)
    # the line published in doc/cnn_1D_segm.txt
    assert recipe.epoch_line(412, [0.065615, 0.993349], scores, 31.422823) == (
        "EPOCH 412: Avg cost train 0.065615, acc train 0.993349, cost val 0.041758, acc val "
        "0.984398, jacc val per class ['0: 0.981183', '1: 0.953546', '2: 0.945765', "
        "'3: 0.980471', '4: 0.914617', '5: 0.968710', '6: 0.971049'], jacc val 0.959335 took "
        "31.422823 s")
    assert FINAL_LINE.match(recipe.final_line(scores))
    assert recipe.history_values([0.1, 0.9], scores) == (0.1, 0.9, 0.041758, 0.984398,
                                                         0.959335)


def _error_line(capsys, argv):
    code = main(argv)
    captured = capsys.readouterr()
    assert code == 2, captured
    assert "Defining and compiling" not in captured.out
    lines = [line for line in captured.err.strip().splitlines()
             if not line.startswith("fcn8 train: note:")]
    assert len(lines) == 1, lines
    return lines[0]


@pytest.mark.parametrize("argv, words", [
    (["--filter-size", "4"], ["--filter-size", "odd", "4"]),
    (["--n-filters", "0"], ["--n-filters", "got 0"]),
    (["-data_augmentation", '{"horizontal_flip": true}'], ["-data_augmentation", "no "
                                                           "augmentation"]),
    (["-dataset", "synthetic_em"], ["-dataset synthetic_em", "synthetic_profiles, "
                                    "cortical_layers"]),
    (["-dataset", "cortical_layers", "--data-dir", ".", "--synthetic-profiles", "9"],
     ["--synthetic-profiles", "synthetic_profiles only"]),
])
def test_bad_settings_are_one_line_errors(tmp_path, capsys, argv, words):
    line = _error_line(capsys, ["train", "--model", "fcn1d", "--savepath",
                                str(tmp_path / "run")] + argv)
    assert all(word in line for word in words), line


def _write_profiles(root, n=5):
    folder = root / "6layers_segmentation"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in ("training_raw.txt", "training_geo.txt"):
        (folder / name).write_text("".join(
            " ".join(f"{value:.3f}" for value in rng.random(200)) + "\n" for _ in range(n)))
    labels = np.sort(rng.integers(0, 7, (n, 200)), axis=1)
    (folder / "training_cls.txt").write_text("".join(" ".join(map(str, row)) + "\n"
                                                     for row in labels))
    (folder / "training_regions.txt").write_text("".join("1\n" for _ in range(n)))
    return folder


def test_bad_profiles_fail_before_compiling(tmp_path, capsys):
    common = ["train", "--model", "fcn1d", "-dataset", "cortical_layers", "--no-progress",
              "--savepath", str(tmp_path / "run"), "--data-dir"]
    folder = _write_profiles(tmp_path / "short")
    path = folder / "training_raw.txt"
    lines = path.read_text().splitlines()
    lines[3] = " ".join(lines[3].split()[:150])
    path.write_text("\n".join(lines) + "\n")
    line = _error_line(capsys, common + [str(tmp_path / "short")])
    assert line.endswith(f"{path}, line 4: expected 200 values, got 150")
    folder = _write_profiles(tmp_path / "counts")
    path = folder / "training_cls.txt"
    path.write_text("".join(path.read_text().splitlines(keepends=True)[:4]))
    line = _error_line(capsys, common + [str(tmp_path / "counts")])
    assert f"has 5 lines but {path} has 4: line 5 of {folder / 'training_geo.txt'}" in line


@pytest.fixture
def profile_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("FCN8_LASAGNE_CACHE", str(tmp_path / "cache"))


def test_tiny_run_interrupted_resumed_and_tested(tmp_path, capsys, monkeypatch,
                                                 profile_cache):
    savepath = tmp_path / "run"
    argv = TINY + ["--savepath", str(savepath)]
    # 20 profiles: int(20 * 0.85) = 17 for training (3 batches of 8), 3 for validation

    def interrupt_in_epoch_1(self, trainer, iteration):
        if iteration == 4:  # the second step of epoch 1
            raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(FCN1DRecipe, "on_iteration", interrupt_in_epoch_1)
        assert main(argv) == 130
    out = capsys.readouterr().out
    assert "Batch. train: 3, val 1, test 1" in out and "Interrupted in epoch 1" in out

    assert main(argv + ["--resume"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert "Resuming at epoch 1 (patience 0)" in out
    assert FINAL_LINE.match(out[-1]), out[-1]
    log = (savepath / "fcn1D_output.log").read_text().splitlines()
    assert [EPOCH_LINE.match(line).group(1) for line in log] == ["0", "1", "2"]

    # err_train, acc_train, err_valid, acc_valid, jacc_valid: one value per epoch
    errors = read_npz_values(savepath / "fcn1D_errors_last.npz", allow_nonfinite=True)
    assert [len(values) for values in errors] == [3] * 5
    last = EPOCH_LINE.match(log[-1]).groups()
    for history, field in zip(errors[:4], last[1:5]):
        assert history[-1] == pytest.approx(float(field), abs=1e-6)
    assert 0 <= errors[1][-1] <= 1

    for name in ("new_fcn1D_model_best.npz", "new_fcn1D_model_last.npz"):
        outputs, _ = build_model(None, n_classes=7, nb_in_channels=2, filter_size=3,
                                 n_filters=2, depth=1)
        values = read_npz_values(savepath / name)
        set_all_param_values(outputs, values)
        for loaded, saved in zip(get_all_param_values(outputs), values):
            np.testing.assert_array_equal(loaded, saved)
    results = json.loads((savepath / "final_results.json").read_text())
    assert len(results["test"]["jaccard_per_class"]) == 7
